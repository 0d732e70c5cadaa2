//! CSV schema inference keeps data exactly: a dataset declared without `columns` lands wide integers, huge or
//! rounded floats and yes/no codes with every original value intact, and a header-only first file does not fix
//! every column as text.

use crate::common::{parquet_files, run_duckdb, Workdir};

/// A config with one CSV dataset `d` (key `id`, event time `t`) and no `columns`: every other type is inferred.
fn write_config(w: &Workdir) -> String {
    let p = w.path().join("lander.toml");
    std::fs::write(
        &p,
        "[datasets.d]\nformat = \"csv\"\nkey = [\"id\"]\nevent_time = \"t\"\ntimestamp_formats = [\"%Y-%m-%d\"]\ntimezone = \"UTC\"\n",
    )
    .expect("lander.toml");
    p.display().to_string()
}

/// `(column, duckdb type, value as text)` for every non-key column of every bronze row of `d`, ordered by id.
fn bronze_values(w: &Workdir, columns: &[&str]) -> Vec<String> {
    let files: Vec<String> = parquet_files(&w.bronze().join("d"))
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert!(!files.is_empty(), "no bronze parts for d");
    let script = r#"
import duckdb, sys, json
files = json.loads(sys.argv[1])
cols = sys.argv[2].split(",")
sel = ", ".join(f"typeof({c}), CAST({c} AS VARCHAR)" for c in cols)
for row in duckdb.sql(f"SELECT id, {sel} FROM read_parquet({files!r}) ORDER BY id").fetchall():
    print("|".join(str(v) for v in row))
"#;
    let files = serde_json::to_string(&files).expect("json");
    run_duckdb(script, &[&files, &columns.join(",")])
        .lines()
        .map(String::from)
        .collect()
}

fn run_once(w: &Workdir, config: &str) {
    w.run_once(&["-c", config]);
}

/// Each lossy shape of the issue in its own column; bronze holds the values exactly as written, typed only
/// where the type keeps them (`price` and `count` show that ordinary columns are still typed).
#[test]
fn inferred_columns_keep_every_original_value() {
    let w = Workdir::new();
    let config = write_config(&w);
    w.land_bytes(
        "d",
        "a.csv",
        b"id,t,big,huge,flag,price,count,ok\n\
          1,2020-01-01,12345678901234567890,1e400,y,0.1,7,true\n\
          2,2020-01-02,-98765432109876543210,2.5,n,1.25,-3,FALSE\n\
          3,2020-01-03,5,3,y,10,0,True\n",
    );
    run_once(&w, &config);
    let rows = bronze_values(&w, &["big", "huge", "flag", "price", "count", "ok"]);
    assert_eq!(
        rows,
        [
            "1|DECIMAL(38,0)|12345678901234567890|VARCHAR|1e400|VARCHAR|y|DOUBLE|0.1|BIGINT|7|BOOLEAN|true",
            "2|DECIMAL(38,0)|-98765432109876543210|VARCHAR|2.5|VARCHAR|n|DOUBLE|1.25|BIGINT|-3|BOOLEAN|false",
            "3|DECIMAL(38,0)|5|VARCHAR|3|VARCHAR|y|DOUBLE|10.0|BIGINT|0|BOOLEAN|true",
        ]
    );
}

/// A header-only first file, alone in its run, then a file with rows in a later run: the rows file fixes the
/// types. Also both in one run (the header-only file first in listing order).
#[test]
fn a_header_only_first_file_does_not_fix_every_column_as_text() {
    let header = b"id,t,qty,price,ok\n";
    let rows = b"id,t,qty,price,ok\n1,2020-01-01,7,0.5,true\n2,2020-01-02,-3,1.25,false\n";
    let expected = [
        "1|BIGINT|7|DOUBLE|0.5|BOOLEAN|true",
        "2|BIGINT|-3|DOUBLE|1.25|BOOLEAN|false",
    ];

    let w = Workdir::new();
    let config = write_config(&w);
    w.land_bytes("d", "a-header.csv", header);
    run_once(&w, &config);
    w.land_bytes("d", "b-rows.csv", rows);
    run_once(&w, &config);
    assert_eq!(
        bronze_values(&w, &["qty", "price", "ok"]),
        expected,
        "two runs"
    );

    let w = Workdir::new();
    let w2_config = write_config(&w);
    w.land_bytes("d", "a-header.csv", header);
    w.land_bytes("d", "b-rows.csv", rows);
    run_once(&w, &w2_config);
    assert_eq!(
        bronze_values(&w, &["qty", "price", "ok"]),
        expected,
        "one run"
    );
}
