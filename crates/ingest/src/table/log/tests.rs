//! Tests of the Delta log through the kernel: racing writers, log checkpoints, open time.

use super::*;
use crate::sink::{TimeRange, WrittenFile};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

fn schema() -> Schema {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Schema::new(vec![
        Field::new("event_key", DataType::Utf8, false),
        Field::new("created_at", ts, false),
    ])
}

fn part(name: &str, rows: u64) -> Add {
    let f = WrittenFile {
        staging: String::new(),
        final_path: format!("ds/year=2015/month=01/day=01/{name}"),
        rows,
        bytes: 10,
        time_range: Some(TimeRange {
            column: "created_at".into(),
            min: 1_420_070_400_000_000,
            max: 1_420_070_401_000_001,
            nulls: 0,
        }),
    };
    actions::add_of("ds", &f, 1).expect("below the root")
}

fn batch(app: &str, version: i64, name: &str) -> Commit {
    Commit {
        adds: vec![part(name, 3)],
        txn: (app.into(), version),
        info: serde_json::json!({"lander": {
            "batch": version,
            "landing": "/landing",
            "inputs": [{"path": "a.json.gz", "fingerprint": "f1", "start": 0, "end": 10}, {"path": "b.json.gz", "fingerprint": null, "start": 5, "end": 7}],
        }}),
        schema: None,
    }
}

fn log_lines(dir: &std::path::Path, version: u64) -> Vec<serde_json::Value> {
    let path = dir.join(format!("ds/_delta_log/{version:020}.json"));
    std::fs::read_to_string(path)
        .expect("commit file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_writers_both_commit_and_a_batch_never_commits_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bronze = StoreLocation::open(dir.path().to_str().expect("utf8")).expect("open");
    let table = DeltaTable::new(&bronze, "ds");
    assert!(table.load().await.expect("load").is_none(), "no table yet");
    let mut a = table.create(&schema()).await.expect("create");
    // A second creator finds version 0 taken and reads the table instead of failing.
    let mut b = table.create(&schema()).await.expect("create again");
    assert_eq!(a.metadata.id, b.metadata.id);
    assert_eq!(
        (a.protocol.min_reader_version, a.protocol.min_writer_version),
        (1, 2)
    );

    assert_eq!(
        table
            .commit(&mut a, &batch("app-a", 1, "pa1"))
            .await
            .expect("a1"),
        Committed::At(1)
    );
    // B's snapshot is stale: version 1 is taken, so it rebuilds and commits version 2.
    assert_eq!(
        table
            .commit(&mut b, &batch("app-b", 1, "pb1"))
            .await
            .expect("b1"),
        Committed::At(2)
    );
    // A retried batch that the table already has is not committed again, from either snapshot.
    assert_eq!(
        table
            .commit(&mut b, &batch("app-a", 1, "pa1"))
            .await
            .expect("a1 again"),
        Committed::Already
    );
    assert_eq!(
        table
            .commit(&mut a, &batch("app-b", 1, "pb1"))
            .await
            .expect("b1 again"),
        Committed::Already
    );
    let s = table.load().await.expect("load").expect("table");
    assert_eq!(s.version, 2);
    assert_eq!(
        (
            s.app_version("app-a"),
            s.app_version("app-b"),
            s.app_version("app-c")
        ),
        (Some(1), Some(1), None)
    );
    assert_eq!(
        s.files.keys().cloned().collect::<Vec<_>>(),
        [
            "year=2015/month=01/day=01/pa1",
            "year=2015/month=01/day=01/pb1"
        ]
    );
    assert_eq!(
        s.files.keys().collect::<Vec<_>>(),
        b.files.keys().collect::<Vec<_>>()
    );
    let f = &s.files["year=2015/month=01/day=01/pa1"];
    assert_eq!(f.partition_values["month"].as_deref(), Some("01"));
    assert!(table.check_schema(&s, &schema()).is_ok());
    let other = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
    assert!(matches!(
        table.check_schema(&s, &other),
        Err(TableError::SchemaMismatch { .. })
    ));

    // The commit file itself: one add with lander's statistics, the txn, and lander's commitInfo fields.
    let lines = log_lines(dir.path(), 1);
    let add = lines.iter().find_map(|l| l.get("add")).expect("add");
    let stats: serde_json::Value =
        serde_json::from_str(add["stats"].as_str().expect("stats")).expect("json");
    assert_eq!(stats["numRecords"], 3);
    assert_eq!(stats["minValues"]["created_at"], "2015-01-01T00:00:00.000Z");
    // 1 µs past the second rounds the maximum up to the next millisecond.
    assert_eq!(stats["maxValues"]["created_at"], "2015-01-01T00:00:01.001Z");
    assert_eq!(add["partitionValues"]["day"], "01");
    assert_eq!(add["dataChange"], true);
    let txn = lines.iter().find_map(|l| l.get("txn")).expect("txn");
    assert_eq!(
        (txn["appId"].as_str(), txn["version"].as_i64()),
        (Some("app-a"), Some(1))
    );
    let info = lines
        .iter()
        .find_map(|l| l.get("commitInfo"))
        .expect("commitInfo");
    assert_eq!(info["operation"], "WRITE");
    assert_eq!(
        info["engineInfo"],
        format!("lander/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(info["lander"]["landing"], "/landing");
    assert_eq!(info["lander"]["inputs"][0]["fingerprint"], "f1");
    assert_eq!(info["lander"]["inputs"][1]["path"], "b.json.gz");
    assert_eq!(info["lander"]["inputs"][1]["end"], 7);
}

/// Two writers whose batches both add column `channel`: the first commit's `metaData` adds it, the second (on a
/// stale snapshot) finds it there when it rebuilds and adds nothing; both batches commit, the table id stays, and
/// a batch that changes a column's type or lacks one is refused.
#[tokio::test(flavor = "multi_thread")]
async fn racing_writers_that_add_the_same_column_add_it_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bronze = StoreLocation::open(dir.path().to_str().expect("utf8")).expect("open");
    let table = DeltaTable::new(&bronze, "ds");
    let mut a = table.create(&schema()).await.expect("create");
    let mut b = table.load().await.expect("load").expect("table");
    let mut wide = schema().fields().to_vec();
    wide.push(Arc::new(Field::new("channel", DataType::Utf8, true)));
    let wide = Schema::new(wide);
    assert_eq!(
        table.check_schema(&a, &wide).expect("an evolution"),
        ["channel"]
    );
    let evolving = |app: &str, name: &str| Commit {
        schema: Some(actions::schema_string(&wide).expect("schema")),
        ..batch(app, 1, name)
    };
    assert_eq!(
        table
            .commit(&mut a, &evolving("app-a", "pa1"))
            .await
            .expect("a1"),
        Committed::At(1)
    );
    assert!(
        a.metadata.schema_string.contains("\"channel\""),
        "the snapshot sees the new schema"
    );
    assert_eq!(
        table
            .commit(&mut b, &evolving("app-b", "pb1"))
            .await
            .expect("b1"),
        Committed::At(2)
    );
    let metadata = |v: u64| {
        log_lines(dir.path(), v)
            .into_iter()
            .filter_map(|l| l.get("metaData").cloned())
            .collect::<Vec<_>>()
    };
    let added = metadata(1);
    assert_eq!(added.len(), 1, "version 1 adds the column");
    assert!(metadata(2).is_empty(), "version 2 finds it there");
    let s = table.load().await.expect("load").expect("table");
    assert_eq!(s.metadata.id, a.metadata.id);
    let fields: serde_json::Value =
        serde_json::from_str(&s.metadata.schema_string).expect("schema json");
    let names: Vec<&str> = fields["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "channel").count(),
        1,
        "{names:?}"
    );
    assert!(
        table.check_schema(&s, &schema()).is_err(),
        "a batch without channel"
    );
    let mut retyped = schema().fields().to_vec();
    retyped.push(Arc::new(Field::new("channel", DataType::Int64, true)));
    assert!(matches!(
        table.check_schema(&s, &Schema::new(retyped)),
        Err(TableError::SchemaMismatch { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_checkpoint_holds_the_whole_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bronze = StoreLocation::open(dir.path().to_str().expect("utf8")).expect("open");
    let table = DeltaTable::new(&bronze, "ds");
    let mut s = table.create(&schema()).await.expect("create");
    for v in 1..=4 {
        table
            .commit(&mut s, &batch("app", v, &format!("p{v}")))
            .await
            .expect("commit");
        let wrote = table.maybe_checkpoint(&mut s, 2).await.expect("checkpoint");
        assert_eq!(wrote, v % 2 == 0, "version {v}");
    }
    let log = dir.path().join("ds/_delta_log");
    assert!(log.join(format!("{:020}.checkpoint.parquet", 4)).is_file());
    // Without the commits the checkpoint replaces, the table reads the same from the checkpoint alone.
    for v in 0..=4 {
        std::fs::remove_file(log.join(format!("{v:020}.json"))).expect("remove");
    }
    let back = table.load().await.expect("load").expect("table");
    assert_eq!(back.version, 4);
    assert_eq!(back.app_version("app"), Some(4));
    assert_eq!(
        back.files.keys().collect::<Vec<_>>(),
        s.files.keys().collect::<Vec<_>>()
    );
    assert_eq!(back.protocol, s.protocol);
    assert_eq!(back.metadata, s.metadata);
    // The snapshot moved onto the checkpoint keeps committing.
    let mut back = back;
    assert_eq!(
        table
            .commit(&mut back, &batch("app", 5, "p5"))
            .await
            .expect("commit"),
        Committed::At(5)
    );
}

/// Opening a table of 10,000 commits (log checkpoints every 100, as by default): prints the time. Run with
/// `cargo test --lib open_time -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: writes 10,000 commits"]
async fn open_time_of_ten_thousand_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bronze = StoreLocation::open(dir.path().to_str().expect("utf8")).expect("open");
    let table = DeltaTable::new(&bronze, "ds");
    let mut s = table.create(&schema()).await.expect("create");
    let started = std::time::Instant::now();
    for v in 1..=10_000 {
        table
            .commit(&mut s, &batch("app", v, &format!("p{v}")))
            .await
            .expect("commit");
        table
            .maybe_checkpoint(&mut s, 100)
            .await
            .expect("checkpoint");
    }
    eprintln!("10,000 commits in {:?}", started.elapsed());
    let started = std::time::Instant::now();
    let opened = table.load().await.expect("load").expect("table");
    let v = opened.app_version("app");
    eprintln!(
        "opened version {} ({} files, txn {v:?}) in {:?}",
        opened.version,
        opened.files.len(),
        started.elapsed()
    );
    assert_eq!(opened.files.len(), 10_000);
}
