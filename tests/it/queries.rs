//! Comercio360's analyses (`queries/comercio360/*.sql`) over bronze: the real binary lands
//! `transacciones_ventas.csv` plus a generated spike day, DuckDB runs each SQL file unchanged over a `sales` view,
//! and every figure is compared with the same figure computed here from the raw CSV rows (deduplicated by
//! `transaction_id` as lander does, days in UTC from `timestamp`), not with a second copy of the SQL.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate, NaiveDateTime};

use crate::common::*;

/// The day the generated rows make an outlier: 24 days of the sample precede it, more than the 7 the query needs.
const SPIKE_DAY: &str = "2025-10-20";

/// Products of the generated completed rows: each gets [`SPIKE_ROWS_PER_PRODUCT`] sales of [`SPIKE_TOTAL`].
const SPIKE_PRODUCTS: [i64; 3] = [900_001, 900_002, 900_003];

/// Enough rows to lift the day ~2 M above a ~2.4 M daily revenue whose spread is a few 100 k.
const SPIKE_ROWS_PER_PRODUCT: usize = 70;

/// Price of every generated sale (exact in cents).
const SPIKE_TOTAL: &str = "9999.99";

/// One raw CSV row, as the analyses see it.
struct Sale {
    day: NaiveDate,
    customer_id: i64,
    product_id: i64,
    category: String,
    /// `total` in cents: bronze stores `decimal(14,2)`, so sums are exact on both sides.
    total_cents: i64,
    completed: bool,
}

fn queries_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/comercio360")
}

/// `12.3` / `12.34` / `12` -> cents, exactly (no float rounding).
fn cents(s: &str) -> i64 {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    assert!(frac.len() <= 2, "more than 2 decimals in {s:?}");
    let frac = format!("{frac:0<2}");
    let sign = if int.starts_with('-') { -1 } else { 1 };
    let int: i64 = int.parse().unwrap_or_else(|e| panic!("amount {s:?}: {e}"));
    int * 100 + sign * frac.parse::<i64>().expect("cents")
}

/// The generated landing file: header, completed spike sales on [`SPIKE_DAY`], the same number of cancelled
/// ones (which must not count), and exact copies of the sample's first 5 rows (duplicates lander drops).
fn spike_csv(sample: &str) -> String {
    let mut lines = sample.lines();
    let header = lines.next().expect("header");
    let mut out = format!("{header}\n");
    let mut id = 900_000_000_i64;
    for (i, product) in SPIKE_PRODUCTS.iter().enumerate() {
        for n in 0..SPIKE_ROWS_PER_PRODUCT {
            for status in ["Completada", "Cancelada"] {
                id += 1;
                out.push_str(&format!(
                    "{id},{SPIKE_DAY} {:02}:{:02}:07,{},{product},Electrónica,1,{SPIKE_TOTAL},{SPIKE_TOTAL},Tarjeta,{status}\n",
                    8 + i,
                    n % 60,
                    70_000 + n,
                ));
            }
        }
    }
    for line in lines.take(5) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Parses the CSV texts in landing order, keeping the first row of each `transaction_id`.
fn parse_sales(texts: &[&str]) -> Vec<Sale> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for text in texts {
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let headers = r.headers().expect("header").clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        };
        let (id, ts, customer, product, category, total, status) = (
            col("transaction_id"),
            col("timestamp"),
            col("customer_id"),
            col("product_id"),
            col("category"),
            col("total"),
            col("status"),
        );
        for rec in r.records() {
            let rec = rec.expect("csv record");
            if !seen.insert(rec[id].to_string()) {
                continue;
            }
            // The sample's timestamps carry no offset; lander's `sales` dataset reads them as UTC.
            let ts = NaiveDateTime::parse_from_str(&rec[ts], "%Y-%m-%d %H:%M:%S")
                .unwrap_or_else(|e| panic!("timestamp {:?}: {e}", &rec[ts]));
            out.push(Sale {
                day: ts.date(),
                customer_id: rec[customer].parse().expect("customer_id"),
                product_id: rec[product].parse().expect("product_id"),
                category: rec[category].to_string(),
                total_cents: cents(&rec[total]),
                completed: &rec[status] == "Completada",
            });
        }
    }
    out
}

/// Bronze built by the real binary from the sample plus the spike file, and the deduplicated raw rows.
fn bronze_with_spike() -> (Workdir, Vec<Sale>) {
    let sample_path = crate::common::sample("sales/transacciones_ventas.csv");
    let sample = std::fs::read_to_string(&sample_path).expect("sales sample");
    let spike = spike_csv(&sample);
    let w = Workdir::new();
    w.land(&sample_path, "sales", "transacciones_ventas.csv");
    w.land_bytes("sales", "transacciones_ventas-spike.csv", spike.as_bytes());
    w.run_once(&[]);
    let sales = parse_sales(&[&sample, &spike]);
    assert_eq!(
        count_rows(&w.bronze().join("sales")),
        sales.len(),
        "bronze holds one row per transaction_id"
    );
    (w, sales)
}

/// Runs one SQL file with DuckDB over a `sales` view of `bronze/sales` (exactly as the README shows) and returns
/// its rows as column -> text (DuckDB's `str()` of each value: decimals exact, dates `YYYY-MM-DD`).
fn duckdb_rows(bronze: &Path, sql_file: &str) -> Vec<BTreeMap<String, String>> {
    const SCRIPT: &str = "import duckdb, json, sys\n\
        con = duckdb.connect()\n\
        glob = sys.argv[1].replace(\"'\", \"''\") + '/sales/**/*.parquet'\n\
        con.execute(f\"CREATE VIEW sales AS SELECT * FROM read_parquet('{glob}', hive_partitioning=true)\")\n\
        rel = con.sql(open(sys.argv[2], encoding='utf-8').read())\n\
        for row in rel.fetchall():\n    print(json.dumps({c: str(v) for c, v in zip(rel.columns, row)}))\n";
    let path = queries_dir().join(sql_file);
    let out = run_duckdb(
        SCRIPT,
        &[&bronze.display().to_string(), &path.display().to_string()],
    );
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn float(row: &BTreeMap<String, String>, col: &str) -> f64 {
    row[col]
        .parse()
        .unwrap_or_else(|e| panic!("{col} = {:?}: {e}", row[col]))
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: got {got}, want {want}"
    );
}

/// Completed revenue per (day, product), in cents.
fn revenue_by<K: Ord>(sales: &[Sale], key: impl Fn(&Sale) -> K) -> BTreeMap<K, i64> {
    let mut out = BTreeMap::new();
    for s in sales.iter().filter(|s| s.completed) {
        *out.entry(key(s)).or_insert(0) += s.total_cents;
    }
    out
}

fn fmt_cents(c: i64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

#[test]
fn daily_top10_matches_the_raw_csv() {
    if !require_samples(&["sales/transacciones_ventas.csv"]) {
        return;
    }
    let (w, sales) = bronze_with_spike();
    let by_day_product = revenue_by(&sales, |s| (s.day, s.product_id));
    let mut per_day: BTreeMap<NaiveDate, Vec<(i64, i64)>> = BTreeMap::new();
    for ((day, product), c) in by_day_product {
        per_day.entry(day).or_default().push((c, product));
    }
    let mut want = Vec::new();
    for (day, mut v) in per_day {
        v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (rank, (c, product)) in v.into_iter().take(10).enumerate() {
            want.push(vec![
                day.to_string(),
                (rank + 1).to_string(),
                product.to_string(),
                fmt_cents(c),
            ]);
        }
    }
    let got: Vec<Vec<String>> = duckdb_rows(&w.bronze(), "daily_top10.sql")
        .into_iter()
        .map(|r| {
            ["day", "rank", "product_id", "revenue"]
                .map(|c| r[c].clone())
                .to_vec()
        })
        .collect();
    let days = sales.iter().map(|s| s.day).collect::<BTreeSet<_>>().len();
    assert_eq!(
        got.len(),
        days * 10,
        "{days} days of data (32 in the full sample), 10 products each"
    );
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "day, rank, product_id, revenue");
    }
    // The spike's three products lead their day, tied, so in product_id order (the sample has a real tie too:
    // 2025-10-12, ranks 8 and 9, 15425.76 each).
    let spike: Vec<&Vec<String>> = got.iter().filter(|r| r[0] == SPIKE_DAY).take(3).collect();
    let ids: Vec<String> = SPIKE_PRODUCTS.iter().map(|p| p.to_string()).collect();
    assert_eq!(spike.iter().map(|r| r[2].clone()).collect::<Vec<_>>(), ids);
}

#[test]
fn monthly_kpis_match_the_raw_csv() {
    if !require_samples(&["sales/transacciones_ventas.csv"]) {
        return;
    }
    let (w, sales) = bronze_with_spike();
    type Kpi = (BTreeSet<i64>, usize, i64);
    let mut want: BTreeMap<(String, String), Kpi> = BTreeMap::new();
    for s in sales.iter().filter(|s| s.completed) {
        let month = format!("{:04}-{:02}", s.day.year(), s.day.month());
        let e = want.entry((month, s.category.clone())).or_default();
        e.0.insert(s.customer_id);
        e.1 += 1;
        e.2 += s.total_cents;
    }
    let got = duckdb_rows(&w.bronze(), "monthly_kpis.sql");
    assert_eq!(got.len(), want.len(), "one row per month and category");
    assert_eq!(want.len(), 10, "2 months x 5 categories");
    for (row, ((month, category), (customers, orders, revenue))) in got.iter().zip(&want) {
        assert_eq!((&row["month"], &row["category"]), (month, category));
        assert_eq!(
            row["customers"],
            customers.len().to_string(),
            "{month} {category}"
        );
        assert_eq!(row["orders"], orders.to_string(), "{month} {category}");
        assert_eq!(row["revenue"], fmt_cents(*revenue), "{month} {category}");
        assert_close(
            float(row, "avg_ticket"),
            *revenue as f64 / 100.0 / *orders as f64,
            &format!("avg_ticket {month} {category}"),
        );
    }
}

#[test]
fn outliers_match_the_raw_csv_and_find_the_spike_day() {
    if !require_samples(&["sales/transacciones_ventas.csv"]) {
        return;
    }
    let (w, sales) = bronze_with_spike();
    let daily = revenue_by(&sales, |s| s.day);
    let mut want = Vec::new();
    for (&day, &revenue) in &daily {
        let prior: Vec<f64> = daily
            .range(day - chrono::Days::new(30)..day)
            .map(|(_, &c)| c as f64 / 100.0)
            .collect();
        if prior.len() < 7 {
            continue;
        }
        let n = prior.len() as f64;
        let mean = prior.iter().sum::<f64>() / n;
        let std = (prior.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        if revenue as f64 / 100.0 > mean + 2.0 * std {
            want.push((day.to_string(), revenue, mean, std));
        }
    }
    let got = duckdb_rows(&w.bronze(), "outliers.sql");
    assert!(
        want.iter().any(|(d, ..)| d == SPIKE_DAY),
        "the spike day is an outlier in the raw data: {want:?}"
    );
    assert_eq!(
        got.iter().map(|r| r["day"].clone()).collect::<Vec<_>>(),
        want.iter().map(|w| w.0.clone()).collect::<Vec<_>>()
    );
    for (row, (day, revenue, mean, std)) in got.iter().zip(&want) {
        assert_eq!(row["revenue"], fmt_cents(*revenue), "{day}");
        assert_close(float(row, "mean_30d"), *mean, &format!("mean_30d {day}"));
        assert_close(float(row, "std_30d"), *std, &format!("std_30d {day}"));
    }
}
