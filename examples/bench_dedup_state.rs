//! `bench_dedup_state` (an example, not part of the lander binary; `scripts/bench_dedup_state.sh` and
//! `scripts/bench_cold_days.sh` build it): builds a large committed dedup state directly, for benchmarks of
//! start-up, lookups and commits against it (ingesting tens of millions of events through `run` only to get
//! there would take most of an hour).
//!
//! It writes one committed batch per UTC day through the same calls `run` uses (dedup runs, then the checkpoint
//! commit, then publishing the runs), so the result is an ordinary checkpoint: `run` resumes from it, and
//! `checkpoint stats` describes it. Keys are random 128-bit values (what key hashes look like), so none of them
//! collides with a real record's key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use chrono::{NaiveDate, Utc};
use rand::{Rng, SeedableRng};

use lander::checkpoint::{BatchCommit, BatchRecord, CheckpointStore, StoredCounts};
use lander::dedup::index::DedupIndex;

/// Arguments of `lander bench-dedup-state`.
#[derive(Debug, clap::Parser)]
pub struct BenchStateArgs {
    /// Checkpoint directory to create or extend.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Dataset whose dedup state is built.
    #[arg(long, default_value = "gharchive")]
    pub dataset: String,
    /// Keys in total, spread evenly over the days.
    #[arg(long, default_value_t = 30_000_000)]
    pub keys: u64,
    /// Number of UTC days, ending with --last-day.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Last UTC day (YYYY-MM-DD).
    #[arg(long, default_value = "2014-12-31")]
    pub last_day: NaiveDate,
    /// Seed of the key generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A plain-Parquet bronze directory: the last --bronze-days days are written there instead of as dedup
    /// runs (their batches list the parts as outputs), so those days are cold: `run --table-format parquet`
    /// reads their keys back from bronze when a batch touches them.
    #[arg(long)]
    pub bronze: Option<PathBuf>,
    /// Days (the last ones) written to --bronze as Parquet parts instead of dedup runs.
    #[arg(long, default_value_t = 0)]
    pub bronze_days: u32,
    /// Parts per bronze day (a day of hourly batches writes 24).
    #[arg(long, default_value_t = 24)]
    pub bronze_parts: u32,
}

/// Runs `lander bench-dedup-state`.
///
/// # Errors
/// Checkpoint or dedup index failures.
pub fn run(a: BenchStateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = CheckpointStore::open(&a.checkpoint).context("while opening the checkpoint")?;
    let index = DedupIndex::new(&a.checkpoint);
    let last = store.last_batch_id(&a.dataset)?;
    index.load(&a.dataset, last, None)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let per_day = a.keys / u64::from(a.days.max(1));
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
    let last_day = (a.last_day - epoch).num_days() as i32;
    for (n, day) in ((last_day - a.days as i32 + 1)..=last_day).enumerate() {
        let id = last + n as u64 + 1;
        let day_start = i64::from(day) * 86_400_000_000;
        let day_end = day_start + 86_400_000_000 - 1;
        let (runs, outputs) = match a.bronze.as_deref() {
            Some(bronze) if day > last_day - a.bronze_days as i32 => {
                let first = 3_000_000_000 + n as u64 * per_day;
                let outputs = write_bronze_day(&a, bronze, day, id, first, per_day)?;
                (index.write_batch(&a.dataset, id, BTreeMap::new())?, outputs)
            }
            _ => {
                let keys: Vec<u128> = (0..per_day).map(|_| rng.random()).collect();
                let runs = index.write_batch(&a.dataset, id, BTreeMap::from([(day, keys)]))?;
                (runs, Vec::new())
            }
        };
        let now = Utc::now();
        store.commit(&BatchCommit {
            batch: BatchRecord {
                id,
                dataset: a.dataset.clone(),
                started_at: now,
                committed_at: now,
                inputs: Vec::new(),
                outputs,
                counts: StoredCounts {
                    rows: per_day,
                    duplicates: 0,
                    quarantined: 0,
                },
                min_event_time: Some(day_start),
                max_event_time: Some(day_end),
            },
            files: Vec::new(),
            schema: None,
        })?;
        index.publish(runs, None)?;
    }
    let stats = index.snapshot(&a.dataset).stats();
    emit(&format!(
        "built dedup state of {}: {} keys in {} run(s) over {} day(s), {} bytes on disk, {} bytes of filters, in {:.1}s\n",
        a.dataset,
        stats.keys,
        stats.runs,
        stats.days,
        stats.bytes,
        stats.filter_bytes,
        started.elapsed().as_secs_f64()
    ))
}

/// Writes `keys` GH Archive-like event ids (decimal numbers from `first`) as the `event_key` column of
/// --bronze-parts Parquet parts in day `day`'s partition of a plain-Parquet bronze, with bronze's writer
/// properties. Only the key column is written: it is the only one a day load reads.
fn write_bronze_day(
    a: &BenchStateArgs,
    bronze: &std::path::Path,
    day: i32,
    batch: u64,
    first: u64,
    keys: u64,
) -> anyhow::Result<Vec<lander::checkpoint::OutputFile>> {
    use arrow::array::StringBuilder;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let rel_dir = format!(
        "{}/{}",
        a.dataset,
        lander::sink::partition::PartitionKey { days: day }.path()
    );
    std::fs::create_dir_all(bronze.join(&rel_dir))?;
    let schema = Arc::new(Schema::new(vec![Field::new(
        "event_key",
        DataType::Utf8,
        false,
    )]));
    let parts = u64::from(a.bronze_parts.max(1));
    let mut outputs = Vec::new();
    for p in 0..parts {
        let (lo, hi) = (first + keys * p / parts, first + keys * (p + 1) / parts);
        let rel = format!("{rel_dir}/part-b{batch:08}-{p:04}.parquet");
        let file = std::fs::File::create(bronze.join(&rel))?;
        let mut w = parquet::arrow::ArrowWriter::try_new(
            file,
            schema.clone(),
            Some(lander::sink::writer::writer_properties(65_536)),
        )?;
        let mut k = lo;
        while k < hi {
            let end = hi.min(k + 65_536);
            let mut b = StringBuilder::new();
            (k..end).for_each(|id| b.append_value(id.to_string()));
            w.write(&arrow::record_batch::RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(b.finish())],
            )?)?;
            k = end;
        }
        w.close()?;
        outputs.push(lander::checkpoint::OutputFile {
            bytes: std::fs::metadata(bronze.join(&rel))?.len(),
            path: rel,
            rows: hi - lo,
        });
    }
    Ok(outputs)
}

/// Prints `text` to stdout (an error when stdout is closed, instead of a panic).
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    run(<BenchStateArgs as clap::Parser>::parse())
}
