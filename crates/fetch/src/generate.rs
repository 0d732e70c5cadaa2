//! `lander generate sales`: synthetic sales transactions into `<landing>/sales/`.
//!
//! Takes a row count, a seed and a few shares, and produces CSV files in exactly the schema of
//! `transacciones_ventas.csv`:
//!
//! ```text
//! transaction_id,timestamp,customer_id,product_id,category,quantity,unit_price,total,payment_method,status
//! 1,2025-10-25 19:07:27,8961,79973,Deportes,7,160.74,1125.18,Transferencia,Cancelada
//! ```
//!
//! Value shapes follow the sample: sequential integer ids, `YYYY-MM-DD HH:MM:SS` timestamps within a window
//! (default: the [`sales_defaults::WINDOW`] before [`sales_defaults::END_TIME`]), customer ids 1000-9999, product ids 10001-99999, five Spanish
//! categories each with its own price range, quantity 1-10, prices with at most two decimals written the way the
//! sample writes them (`500.0`, `453.9`, `1125.18`), `total = quantity * unit_price` exactly (computed in cents), and
//! three payment methods and statuses.
//!
//! Guarantees:
//! - **Deterministic.** The row sequence depends only on `--seed` and the shares (not on `--files` or `--rate`,
//!   which only cut it into files), so a test can recompute what was written.
//! - **Known noise.** A `--duplicate-share` of rows repeat an earlier valid row exactly (same transaction_id; drawn
//!   from the last 4096 valid rows, so duplicates cross file boundaries) and a `--malformed-share` of rows are broken
//!   (non-numeric quantity or price, missing fields, impossible timestamp) with their own fresh ids. The final line
//!   printed reports valid/duplicate/malformed counts: after dedup and quarantine, bronze holds exactly `valid` rows.
//! - **Atomic files.** Each file is written to `.<name>.tmp` and published with a no-clobber rename; an existing
//!   file is never overwritten.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use object_store::{ObjectStoreExt as _, WriteMultipart};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use super::{open_landing, validate_dataset, FetchError, DEFAULT_LANDING};
use lander_core::store::StoreLocation;

/// The header of `transacciones_ventas.csv`.
pub(crate) const SALES_HEADER: &str =
    "transaction_id,timestamp,customer_id,product_id,category,quantity,unit_price,total,payment_method,status";

/// Categories and their unit price range in cents (inclusive), as observed in the sample file.
const CATEGORIES: [(&str, u64, u64); 5] = [
    ("Electrónica", 5_000, 200_000),
    ("Hogar", 3_000, 80_000),
    ("Deportes", 2_500, 60_000),
    ("Ropa", 2_000, 50_000),
    ("Libros", 1_000, 10_000),
];
/// Payment methods of the sample file.
const PAYMENT_METHODS: [&str; 3] = ["Tarjeta", "PayPal", "Transferencia"];
/// Statuses of the sample file.
const STATUSES: [&str; 3] = ["Completada", "Pendiente", "Cancelada"];
/// Valid rows remembered as duplicate sources: enough to cross file boundaries, small enough to stay in memory.
const DUPLICATE_POOL_ROWS: usize = 4096;
/// Rows generated per blocking task and upload write (~0.5 MiB of CSV).
const CHUNK_ROWS: u64 = 8192;
/// Upload chunk size for generated files (the S3 minimum part size, see the fetch module).
const UPLOAD_CHUNK_BYTES: usize = 5 * 1024 * 1024;

/// Defaults of [`SalesArgs`], written the way `--help` shows them (the command line takes its defaults from here,
/// and [`SalesArgs::default`] parses them).
pub mod sales_defaults {
    /// [`super::SalesArgs::files`].
    pub const FILES: u64 = 1;
    /// [`super::SalesArgs::dataset`].
    pub const DATASET: &str = "sales";
    /// [`super::SalesArgs::duplicate_share`].
    pub const DUPLICATE_SHARE: f64 = 0.01;
    /// [`super::SalesArgs::malformed_share`].
    pub const MALFORMED_SHARE: f64 = 0.0;
    /// [`super::SalesArgs::prefix`].
    pub const PREFIX: &str = "ventas";
    /// [`super::SalesArgs::end_time`]: the end of the sample file, so output is reproducible with a seed.
    pub const END_TIME: &str = "2025-10-27 12:00:00";
    /// [`super::SalesArgs::window`] (humantime).
    pub const WINDOW: &str = "30days";
}

/// Arguments of `lander generate sales`.
#[derive(Debug, Clone)]
pub struct SalesArgs {
    /// Total data rows to write (valid + duplicate + malformed), header lines not included; at least 1.
    pub rows: u64,
    /// Number of files to split the rows into (as evenly as possible); at least 1. Ignored with `rate`.
    pub files: u64,
    /// Trickle mode: write one file per second holding this many rows (at least 1), until `rows` are written or
    /// the command is cancelled.
    pub rate: Option<u64>,
    /// Random seed; the same seed and shares give the same rows. `None`: a random seed.
    pub seed: Option<u64>,
    /// Landing zone. Files go to `<landing>/<dataset>/`.
    pub landing: String,
    /// Dataset directory under landing.
    pub dataset: String,
    /// Share of rows (0.0-1.0) that repeat an earlier row exactly, same transaction_id.
    pub duplicate_share: f64,
    /// Share of rows (0.0-1.0) that are malformed.
    pub malformed_share: f64,
    /// First transaction_id. `None`: the start of a block of 2^24 ids drawn from the seed.
    pub start_id: Option<u64>,
    /// File name prefix; files are named `<prefix>-<seed>-<nnnnn>.csv`.
    pub prefix: String,
    /// End of the timestamp window.
    pub end_time: EndTime,
    /// Length of the timestamp window before `end_time`.
    pub window: Duration,
}

impl Default for SalesArgs {
    /// One file of 1 row with the defaults of `generate sales`.
    fn default() -> Self {
        use sales_defaults as d;
        Self {
            rows: 1,
            files: d::FILES,
            rate: None,
            seed: None,
            landing: DEFAULT_LANDING.to_string(),
            dataset: d::DATASET.to_string(),
            duplicate_share: d::DUPLICATE_SHARE,
            malformed_share: d::MALFORMED_SHARE,
            start_id: None,
            prefix: d::PREFIX.to_string(),
            end_time: parse_end_time(d::END_TIME).expect("the default end time parses"),
            window: super::default_duration(d::WINDOW),
        }
    }
}

/// The end of the generated timestamps' window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndTime {
    /// The time the command starts.
    Now,
    /// A fixed UTC time.
    At(DateTime<Utc>),
}

/// Parses `--end-time`.
///
/// # Errors
/// [`FetchError::InvalidArgument`] for anything but the accepted forms.
pub fn parse_end_time(value: &str) -> Result<EndTime, FetchError> {
    let trimmed = value.trim();
    if trimmed.eq_ignore_ascii_case("now") {
        return Ok(EndTime::Now);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(EndTime::At(t.with_timezone(&Utc)));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S") {
        return Ok(EndTime::At(t.and_utc()));
    }
    if let Ok(d) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d") {
        return Ok(EndTime::At(d.and_time(chrono::NaiveTime::MIN).and_utc()));
    }
    Err(FetchError::InvalidArgument {
        name: "--end-time",
        value: value.to_string(),
        reason: "expected now, RFC 3339, YYYY-MM-DD HH:MM:SS or YYYY-MM-DD".to_string(),
    })
}

/// Row counts by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Well-formed rows with a transaction_id not written before.
    pub valid: u64,
    /// Exact repeats of an earlier valid row.
    pub duplicate: u64,
    /// Rows that a strict parser must reject.
    pub malformed: u64,
}

impl RowCounts {
    /// All data rows.
    pub(crate) fn total(&self) -> u64 {
        self.valid + self.duplicate + self.malformed
    }
}

/// What `generate sales` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesSummary {
    /// The directory (or URL) the files went to.
    pub(crate) location: String,
    /// The names of the files written, in order.
    pub files: Vec<String>,
    /// Rows written, by kind.
    pub counts: RowCounts,
    /// The seed used.
    pub seed: u64,
    /// The first transaction_id.
    pub(crate) first_id: u64,
    /// The next unused transaction_id (pass it as --start-id to continue the sequence).
    pub(crate) next_id: u64,
}

impl fmt::Display for SalesSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "generated {} rows in {} files under {}: valid={} duplicate={} malformed={} seed={} next_id={}",
            self.counts.total(),
            self.files.len(),
            self.location,
            self.counts.valid,
            self.counts.duplicate,
            self.counts.malformed,
            self.seed,
            self.next_id
        )
    }
}

/// Settings of a [`SalesGenerator`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct GeneratorConfig {
    pub(crate) seed: u64,
    /// The first transaction_id.
    pub(crate) start_id: u64,
    pub(crate) duplicate_share: f64,
    pub(crate) malformed_share: f64,
    /// Latest timestamp.
    pub(crate) end: DateTime<Utc>,
    /// Timestamps fall in `(end - window, end]`.
    pub(crate) window: Duration,
}

/// Deterministic generator of sales CSV rows (synchronous and pure; run it off the reactor).
#[derive(Debug)]
pub(crate) struct SalesGenerator {
    rng: StdRng,
    config: GeneratorConfig,
    window_seconds: i64,
    next_id: u64,
    recent: VecDeque<String>,
    counts: RowCounts,
}

impl SalesGenerator {
    /// A generator starting at `config.start_id`.
    pub(crate) fn new(config: GeneratorConfig) -> Self {
        let window_seconds = i64::try_from(config.window.as_secs())
            .unwrap_or(i64::MAX)
            .max(1);
        Self {
            rng: StdRng::seed_from_u64(config.seed),
            config,
            window_seconds,
            next_id: config.start_id,
            recent: VecDeque::with_capacity(DUPLICATE_POOL_ROWS),
            counts: RowCounts::default(),
        }
    }

    /// Rows written so far, by kind.
    pub(crate) fn counts(&self) -> RowCounts {
        self.counts
    }

    /// The next unused transaction_id.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Appends `rows` CSV lines (each ending in `\n`) to `out`.
    pub(crate) fn write_rows(&mut self, rows: u64, out: &mut String) {
        for _ in 0..rows {
            self.write_row(out);
            out.push('\n');
        }
    }

    fn write_row(&mut self, out: &mut String) {
        let draw: f64 = self.rng.random();
        if draw < self.config.duplicate_share && !self.recent.is_empty() {
            let index = self.rng.random_range(0..self.recent.len());
            out.push_str(&self.recent[index]);
            self.counts.duplicate += 1;
        } else if draw < self.config.duplicate_share + self.config.malformed_share {
            let row = self.malformed_row();
            out.push_str(&row);
            self.counts.malformed += 1;
        } else {
            let row = self.valid_row();
            out.push_str(&row);
            if self.recent.len() == DUPLICATE_POOL_ROWS {
                self.recent.pop_front();
            }
            self.recent.push_back(row);
            self.counts.valid += 1;
        }
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn timestamp(&mut self) -> String {
        let back = self.rng.random_range(0..self.window_seconds);
        (self.config.end - TimeDelta::seconds(back))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    /// The fields of a well-formed row, with a fresh id.
    fn valid_fields(&mut self) -> [String; 10] {
        let id = self.take_id();
        let timestamp = self.timestamp();
        let customer: u32 = self.rng.random_range(1000..=9999);
        let product: u32 = self.rng.random_range(10001..=99999);
        let (category, low, high) = CATEGORIES[self.rng.random_range(0..CATEGORIES.len())];
        let quantity: u64 = self.rng.random_range(1..=10);
        let unit_cents = self.rng.random_range(low..=high);
        let payment = PAYMENT_METHODS[self.rng.random_range(0..PAYMENT_METHODS.len())];
        let status = STATUSES[self.rng.random_range(0..STATUSES.len())];
        [
            id.to_string(),
            timestamp,
            customer.to_string(),
            product.to_string(),
            category.to_string(),
            quantity.to_string(),
            format_amount(unit_cents),
            format_amount(unit_cents * quantity),
            payment.to_string(),
            status.to_string(),
        ]
    }

    fn valid_row(&mut self) -> String {
        self.valid_fields().join(",")
    }

    fn malformed_row(&mut self) -> String {
        let mut fields = self.valid_fields();
        match self.rng.random_range(0..4u8) {
            0 => fields[5] = ["tres", "N/A", "x"][self.rng.random_range(0..3)].to_string(),
            1 => fields[6] = ["abc", "", "12..5"][self.rng.random_range(0..3)].to_string(),
            2 => {
                fields[1] = ["2025-13-45 25:61:00", "ayer", "27/10/2025 12:07"]
                    [self.rng.random_range(0..3)]
                .to_string();
            }
            _ => return fields[..7].join(","),
        }
        fields.join(",")
    }
}

/// Formats cents the way the sample file does (Python's float repr): at least one decimal, no trailing zero
/// beyond it (`50000` -> `500.0`, `45390` -> `453.9`, `112518` -> `1125.18`).
pub(crate) fn format_amount(cents: u64) -> String {
    let (units, rest) = (cents / 100, cents % 100);
    if rest % 10 == 0 {
        format!("{units}.{}", rest / 10)
    } else {
        format!("{units}.{rest:02}")
    }
}

/// Splits `rows` into `files` near-equal parts (the first ones one row larger).
fn split_rows(rows: u64, files: u64) -> Vec<u64> {
    let (base, extra) = (rows / files, rows % files);
    (0..files).map(|i| base + u64::from(i < extra)).collect()
}

/// Runs `generate sales` and returns what was written (the caller prints it). `storage` holds the store options
/// landing is opened with (the config file's `[storage]` section).
///
/// On cancellation it stops between files (or abandons the file being written, whose temporary name is removed)
/// and returns what was published so far.
///
/// # Errors
/// Invalid arguments, an unusable landing, a failed write, or [`FetchError::AlreadyExists`].
pub async fn generate_sales(
    args: &SalesArgs,
    storage: &BTreeMap<String, String>,
    cancel: CancellationToken,
) -> Result<SalesSummary, FetchError> {
    validate_sales_args(args)?;
    let prefix = super::names::sanitize_file_name(&args.prefix, "--prefix")?;
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let start_id = args.start_id.unwrap_or_else(|| seeded_start_id(seed));
    let end = match args.end_time {
        EndTime::Now => Utc::now(),
        EndTime::At(t) => t,
    };
    let landing = open_landing(&args.landing, storage).await?;
    super::temps::remove_stale_temps(&landing, &args.dataset).await?;
    let mut generator = SalesGenerator::new(GeneratorConfig {
        seed,
        start_id,
        duplicate_share: args.duplicate_share,
        malformed_share: args.malformed_share,
        end,
        window: args.window,
    });
    // Counts as of the last published file: rows of an abandoned file are not reported.
    let (mut counts, mut next_id) = (generator.counts(), generator.next_id());
    let mut files = Vec::new();

    let plan = rows_per_file(args);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for (index, rows) in plan.into_iter().enumerate() {
        if args.rate.is_some() {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
        }
        if cancel.is_cancelled() {
            break;
        }
        let name = format!("{prefix}-{seed}-{index:05}.csv");
        let (back, published) =
            write_file(&landing, &args.dataset, &name, generator, rows, &cancel).await?;
        generator = back;
        if !published {
            break;
        }
        (counts, next_id) = (generator.counts(), generator.next_id());
        tracing::info!(
            file = %landing.describe(&format!("{}/{name}", args.dataset)),
            rows,
            "generated"
        );
        files.push(name);
    }
    Ok(SalesSummary {
        location: landing.describe(&args.dataset),
        files,
        counts,
        seed,
        first_id: start_id,
        next_id,
    })
}

/// Refuses an invalid dataset name, shares outside 0..=1 or adding up to more than 1, and more files than rows.
fn validate_sales_args(args: &SalesArgs) -> Result<(), FetchError> {
    validate_dataset(&args.dataset)?;
    validate_share("--duplicate-share", args.duplicate_share)?;
    validate_share("--malformed-share", args.malformed_share)?;
    if args.duplicate_share + args.malformed_share > 1.0 {
        return Err(FetchError::InvalidArgument {
            name: "--malformed-share",
            value: args.malformed_share.to_string(),
            reason: "--duplicate-share plus --malformed-share must not exceed 1".to_string(),
        });
    }
    if args.rate.is_none() && args.files > args.rows {
        return Err(FetchError::InvalidArgument {
            name: "--files",
            value: args.files.to_string(),
            reason: format!("is more than --rows {}", args.rows),
        });
    }
    Ok(())
}

/// The rows of each file: `--rows` split into `--files` near-equal parts, or with `--rate`, `rate` rows per file
/// (the last one holding the rest).
fn rows_per_file(args: &SalesArgs) -> Vec<u64> {
    match args.rate {
        None => split_rows(args.rows, args.files),
        Some(rate) => {
            let mut plan = vec![rate; usize::try_from(args.rows / rate).unwrap_or(usize::MAX)];
            if !args.rows.is_multiple_of(rate) {
                plan.push(args.rows % rate);
            }
            plan
        }
    }
}

/// Ids per seed-derived block: more rows than one `generate` run writes in practice (16.7 million).
const SEEDED_ID_BLOCK_BITS: u32 = 24;

/// The first id of the seed's block: block `1 + mix(seed) mod 2^38`, so ids stay below 2^62 (an int64 in bronze)
/// and above 2^24 (every id of the bundled sample and of `--start-id 1` sequences of up to 16.7 million rows).
/// Two random seeds share a block with probability 2^-38.
fn seeded_start_id(seed: u64) -> u64 {
    // splitmix64's finaliser: neighbouring seeds land on unrelated blocks.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (1 + z % (1 << 38)) << SEEDED_ID_BLOCK_BITS
}

fn validate_share(name: &'static str, share: f64) -> Result<(), FetchError> {
    if (0.0..=1.0).contains(&share) {
        Ok(())
    } else {
        Err(FetchError::InvalidArgument {
            name,
            value: share.to_string(),
            reason: "must be between 0 and 1".to_string(),
        })
    }
}

/// Writes one file of `rows` rows to `.<name>.tmp`, then publishes it as `<dataset>/<name>` without overwriting.
///
/// Returns the generator back (it moves through blocking tasks) and whether the file was published (`false` when
/// cancelled midway; the rows generated for it are then still counted by the generator, so the caller stops).
async fn write_file(
    landing: &StoreLocation,
    dataset: &str,
    name: &str,
    mut generator: SalesGenerator,
    rows: u64,
    cancel: &CancellationToken,
) -> Result<(SalesGenerator, bool), FetchError> {
    let relative = format!("{dataset}/{name}");
    let target = landing.path(&relative);
    let temp = landing.path(&format!("{dataset}/.{name}.tmp"));
    let store_error = |action: &'static str, source: object_store::Error| FetchError::ObjectStore {
        action,
        location: landing.describe(&relative),
        source,
    };
    match landing.store.head(&target).await {
        Ok(_) => {
            return Err(FetchError::AlreadyExists {
                location: landing.describe(&relative),
            })
        }
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(store_error("check", e)),
    }
    let upload = landing
        .store
        .put_multipart(&temp)
        .await
        .map_err(|e| store_error("write", e))?;
    let mut upload = WriteMultipart::new_with_chunk_size(upload, UPLOAD_CHUNK_BYTES);
    upload.put(Bytes::from(format!("{SALES_HEADER}\n")));
    let mut remaining = rows;
    while remaining > 0 {
        if cancel.is_cancelled() {
            // Dropping the staged upload removes it; nothing was published.
            let _ = upload.abort().await;
            return Ok((generator, false));
        }
        let n = remaining.min(CHUNK_ROWS);
        let (back, chunk) = tokio::task::spawn_blocking(move || {
            let mut chunk = String::with_capacity(usize::try_from(n).unwrap_or(0) * 80);
            generator.write_rows(n, &mut chunk);
            (generator, chunk)
        })
        .await
        .map_err(|source| FetchError::Task {
            what: format!("generating rows of {relative}"),
            source,
        })?;
        generator = back;
        upload
            .wait_for_capacity(2)
            .await
            .map_err(|e| store_error("write", e))?;
        upload.put(Bytes::from(chunk));
        remaining -= n;
    }
    upload.finish().await.map_err(|e| store_error("write", e))?;
    // Crash before the rename: only the ignored `.<name>.tmp` exists; it is overwritten by a rerun.
    match super::rename_no_clobber(landing, &temp, &target).await {
        Ok(()) => Ok((generator, true)),
        Err(object_store::Error::AlreadyExists { .. }) => {
            let _ = landing.store.delete(&temp).await;
            Err(FetchError::AlreadyExists {
                location: landing.describe(&relative),
            })
        }
        Err(e) => Err(store_error("publish", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(seed: u64, duplicate_share: f64, malformed_share: f64) -> GeneratorConfig {
        GeneratorConfig {
            seed,
            start_id: 1,
            duplicate_share,
            malformed_share,
            end: DateTime::parse_from_rfc3339("2025-10-27T12:00:00Z")
                .expect("valid")
                .with_timezone(&Utc),
            window: Duration::from_secs(30 * 86_400),
        }
    }

    fn generate(config: GeneratorConfig, rows: u64) -> (String, RowCounts) {
        let mut generator = SalesGenerator::new(config);
        let mut out = String::new();
        generator.write_rows(rows, &mut out);
        (out, generator.counts())
    }

    #[test]
    fn same_seed_same_rows_whatever_the_chunking() {
        let (a, counts) = generate(config(42, 0.05, 0.05), 3000);
        let (b, _) = generate(config(42, 0.05, 0.05), 3000);
        assert_eq!(a, b);
        assert_eq!(counts.total(), 3000);
        let mut generator = SalesGenerator::new(config(42, 0.05, 0.05));
        let mut chunked = String::new();
        for n in [1, 999, 2000] {
            generator.write_rows(n, &mut chunked);
        }
        assert_eq!(a, chunked);
        let (c, _) = generate(config(43, 0.05, 0.05), 3000);
        assert_ne!(a, c);
    }

    /// A strict check of one row against the sample schema: the kind of validation the decoder applies.
    fn is_valid(line: &str) -> bool {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 10 {
            return false;
        }
        let cents = |s: &str| -> Option<u64> {
            let (units, decimals) = s.split_once('.')?;
            if decimals.is_empty() || decimals.len() > 2 {
                return None;
            }
            let decimals = if decimals.len() == 1 {
                format!("{decimals}0")
            } else {
                decimals.to_string()
            };
            Some(units.parse::<u64>().ok()? * 100 + decimals.parse::<u64>().ok()?)
        };
        let (Ok(_), Ok(_), Ok(_), Ok(q), Some(price), Some(total)) = (
            f[0].parse::<u64>(),
            f[2].parse::<u32>(),
            f[3].parse::<u32>(),
            f[5].parse::<u64>(),
            cents(f[6]),
            cents(f[7]),
        ) else {
            return false;
        };
        NaiveDateTime::parse_from_str(f[1], "%Y-%m-%d %H:%M:%S").is_ok()
            && CATEGORIES
                .iter()
                .any(|(c, low, high)| *c == f[4] && (*low..=*high).contains(&price))
            && (1..=10).contains(&q)
            && total == q * price
            && PAYMENT_METHODS.contains(&f[8])
            && STATUSES.contains(&f[9])
    }

    #[test]
    fn counts_match_the_rows_written() {
        let (out, counts) = generate(config(7, 0.02, 0.03), 20_000);
        let mut seen: HashMap<&str, &str> = HashMap::new();
        let (mut valid, mut duplicate, mut malformed) = (0, 0, 0);
        for line in out.lines() {
            if !is_valid(line) {
                malformed += 1;
                continue;
            }
            let id = line.split(',').next().expect("id");
            match seen.insert(id, line) {
                None => valid += 1,
                Some(earlier) => {
                    assert_eq!(earlier, line, "a duplicate repeats the whole row");
                    duplicate += 1;
                }
            }
        }
        assert_eq!(
            RowCounts {
                valid,
                duplicate,
                malformed
            },
            counts
        );
        assert!((300..=500).contains(&duplicate), "{duplicate}");
        assert!((450..=750).contains(&malformed), "{malformed}");
        // Valid and malformed rows each take a fresh id; duplicates take none.
        let max_id = seen.keys().map(|id| id.parse::<u64>().expect("id")).max();
        assert!(max_id <= Some(counts.valid + counts.malformed));
    }

    #[test]
    fn rows_look_like_the_sample() {
        let (out, counts) = generate(config(1, 0.0, 0.0), 500);
        assert_eq!(counts.valid, 500);
        for (i, line) in out.lines().enumerate() {
            assert!(is_valid(line), "{line}");
            assert!(line.starts_with(&format!("{},2025-", i + 1)), "{line}");
            let ts = NaiveDateTime::parse_from_str(
                line.split(',').nth(1).expect("ts"),
                "%Y-%m-%d %H:%M:%S",
            )
            .expect("timestamp");
            assert!(
                ts <= NaiveDateTime::parse_from_str("2025-10-27 12:00:00", "%Y-%m-%d %H:%M:%S")
                    .expect("end")
            );
            assert!(
                ts > NaiveDateTime::parse_from_str("2025-09-27 12:00:00", "%Y-%m-%d %H:%M:%S")
                    .expect("start")
            );
        }
    }

    #[test]
    fn amounts_are_written_like_the_sample() {
        assert_eq!(format_amount(50_000), "500.0");
        assert_eq!(format_amount(45_390), "453.9");
        assert_eq!(format_amount(112_518), "1125.18");
        assert_eq!(format_amount(1_005), "10.05");
        assert_eq!(format_amount(7), "0.07");
        assert_eq!(format_amount(0), "0.0");
    }

    #[test]
    fn rows_split_evenly() {
        assert_eq!(split_rows(10, 3), vec![4, 3, 3]);
        assert_eq!(split_rows(9, 3), vec![3, 3, 3]);
        assert_eq!(split_rows(1, 1), vec![1]);
        assert_eq!(split_rows(2500, 3), vec![834, 833, 833]);
    }

    #[test]
    fn end_times() {
        assert_eq!(parse_end_time("now").expect("now"), EndTime::Now);
        let at = |s: &str| match parse_end_time(s).expect(s) {
            EndTime::At(t) => t.to_rfc3339(),
            EndTime::Now => String::new(),
        };
        assert_eq!(at("2025-10-27 12:00:00"), "2025-10-27T12:00:00+00:00");
        assert_eq!(at("2025-10-27T14:00:00+02:00"), "2025-10-27T12:00:00+00:00");
        assert_eq!(at("2025-10-27"), "2025-10-27T00:00:00+00:00");
        assert!(parse_end_time("tomorrow").is_err());
    }
}
