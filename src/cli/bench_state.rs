//! `lander bench-dedup-state` (hidden): builds a large committed dedup state directly, for benchmarks of
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

use crate::checkpoint::{BatchCommit, BatchRecord, CheckpointStore};
use crate::dedup::index::DedupIndex;

/// Arguments of `lander bench-dedup-state`.
#[derive(Debug, clap::Args)]
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
        let keys: Vec<u128> = (0..per_day).map(|_| rng.random()).collect();
        let day_start = i64::from(day) * 86_400_000_000;
        let day_end = day_start + 86_400_000_000 - 1;
        let runs = index.write_batch(&a.dataset, id, BTreeMap::from([(day, keys)]))?;
        let now = Utc::now();
        store.commit(&BatchCommit {
            batch: BatchRecord {
                id,
                dataset: a.dataset.clone(),
                started_at: now,
                committed_at: now,
                inputs: Vec::new(),
                outputs: Vec::new(),
                rows: per_day,
                duplicates: 0,
                quarantined: 0,
                min_event_time: Some(day_start),
                max_event_time: Some(day_end),
            },
            files: Vec::new(),
            schema: None,
        })?;
        index.publish(runs, None)?;
    }
    let stats = index.snapshot(&a.dataset).stats();
    super::checkpoint::emit(&format!(
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
