//! `lander generate sales`: deterministic synthetic rows with a reported share of duplicates and malformed rows.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser as _;
use lander::cli::fetch::GenerateCommand;
use tokio_util::sync::CancellationToken;

use super::names;

#[derive(clap::Parser)]
struct GenerateCli {
    #[command(subcommand)]
    cmd: GenerateCommand,
}

/// The valid/duplicate/malformed counts of generated CSV text, by a strict reading of the sample schema.
fn classify_rows(text: &str) -> (u64, u64, u64) {
    let mut seen: HashMap<String, String> = HashMap::new();
    let (mut valid, mut duplicate, mut malformed) = (0, 0, 0);
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        let well_formed = f.len() == 10
            && f[0].parse::<u64>().is_ok()
            && chrono::NaiveDateTime::parse_from_str(f[1], "%Y-%m-%d %H:%M:%S").is_ok()
            && f[5].parse::<u64>().is_ok()
            && f[6].parse::<f64>().is_ok()
            && f[7].parse::<f64>().is_ok();
        if !well_formed {
            malformed += 1;
        } else if seen.insert(f[0].to_string(), line.to_string()).is_some() {
            duplicate += 1;
        } else {
            valid += 1;
        }
    }
    (valid, duplicate, malformed)
}

fn generate_cmd(args: &[&str]) -> GenerateCommand {
    GenerateCli::try_parse_from(std::iter::once("generate").chain(args.iter().copied()))
        .expect("valid generate arguments")
        .cmd
}

async fn generate(landing: &Path, extra: &[&str]) -> anyhow::Result<lander::fetch::SalesSummary> {
    let landing = landing.to_str().expect("utf8");
    let mut args = vec!["sales", "--landing", landing];
    args.extend_from_slice(extra);
    let GenerateCommand::Sales(sales) = generate_cmd(&args);
    lander::cli::fetch::generate_sales(sales, CancellationToken::new()).await
}

fn read_dir_csv(dir: &Path) -> (Vec<String>, String) {
    let files = names(dir);
    let mut text = String::new();
    let header = "transaction_id,timestamp,customer_id,product_id,category,quantity,unit_price,total,payment_method,status";
    for name in &files {
        let content = std::fs::read_to_string(dir.join(name)).expect("csv");
        let body = content
            .strip_prefix(header)
            .expect("exact header")
            .strip_prefix('\n')
            .expect("newline");
        text.push_str(body);
    }
    (files, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_sales_is_deterministic_and_reports_its_noise() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 5000 rows from seed 42 with 2% duplicates and 1% malformed, cut into 3 files here and into 1 below.
    let rows = [
        "--rows",
        "5000",
        "--seed",
        "42",
        "--duplicate-share",
        "0.02",
        "--malformed-share",
        "0.01",
    ];
    let args = [&rows[..], &["--files", "3"]].concat();
    let summary = generate(&dir.path().join("a"), &args)
        .await
        .expect("generate");
    let (files, text) = read_dir_csv(&dir.path().join("a/sales"));
    assert_eq!(
        files,
        [
            "ventas-42-00000.csv",
            "ventas-42-00001.csv",
            "ventas-42-00002.csv"
        ]
    );
    assert_eq!(summary.files, files);
    assert_eq!(text.lines().count(), 5000);
    let (valid, duplicate, malformed) = classify_rows(&text);
    assert_eq!(
        (valid, duplicate, malformed),
        (
            summary.counts.valid,
            summary.counts.duplicate,
            summary.counts.malformed
        )
    );
    assert!(duplicate > 50 && malformed > 20, "{summary}");
    assert!(summary.to_string().contains(&format!(
        "valid={valid} duplicate={duplicate} malformed={malformed}"
    )));

    // Same seed elsewhere, cut into one file: the same rows.
    let one = generate(&dir.path().join("b"), &rows)
        .await
        .expect("generate");
    let (_, text_b) = read_dir_csv(&dir.path().join("b/sales"));
    assert_eq!(text, text_b);
    assert_eq!(one.counts, summary.counts);

    // Same seed and landing again: refused rather than overwritten.
    let err = generate(&dir.path().join("a"), &args)
        .await
        .expect_err("no overwrite");
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");

    // Trickle mode: one file per second of --rate rows.
    let started = Instant::now();
    let trickle = generate(
        &dir.path().join("c"),
        &["--rows", "25", "--rate", "10", "--seed", "1"],
    )
    .await
    .expect("generate");
    assert_eq!(trickle.files.len(), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "paced at one file per second"
    );
    let (_, text_c) = read_dir_csv(&dir.path().join("c/sales"));
    assert_eq!(text_c.lines().count(), 25);
}
