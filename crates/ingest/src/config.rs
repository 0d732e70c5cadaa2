//! Configuration: `lander.toml` merged with command-line overrides.
//!
//! Takes in an optional TOML file (every key is documented in docs/configuration.md and on the field below) and produces a
//! validated [`Config`]. Precedence, lowest first: built-in defaults, the TOML file, CLI flags. Two datasets are
//! built in (`gharchive`, `sales`); a `[datasets.NAME]` table overrides or adds one. The first directory level of
//! landing names the dataset.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod keys;
mod overlap;
pub use crate::decode::csv::CsvOptions;
pub use crate::table::TableFormat;

/// Configuration errors: all map to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The file has a key the schema does not know (a typo, most often).
    #[error("invalid config file {path}: unknown key `{key}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key, dotted below the top level (`datasets.sales.delimitr`).
        key: String,
        /// The closest known key.
        suggestion: Option<String>,
    },
    /// A key of a `[datasets.NAME]` table has a wrong value: `line` is the key's own line (when written as
    /// `key = value` under the table's header), and `message` says what is wrong and how to fix it.
    #[error("invalid config file {path}{}: `{key}`: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    DatasetKey {
        /// The file.
        path: PathBuf,
        /// The key, dotted (`datasets.shop.infer_rows`).
        key: String,
        /// The 1-based line of the key, when found.
        line: Option<usize>,
        /// What is wrong, and the fix.
        message: String,
    },
    /// A `LANDER_<KEY>` environment variable does not hold a valid value for its key.
    #[error("invalid environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Landing zone: a local directory or URL. Default `layers/landing`.
    pub landing: String,
    /// Bronze layer: a local directory or URL. Default `layers/bronze`.
    pub bronze: String,
    /// Checkpoint directory (local; holds the sled store and the lock file). Default `checkpoints`.
    pub checkpoint: PathBuf,
    /// A file whose size or mtime changed less than this long ago is not ready yet, unless it was renamed into
    /// place. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub settle_time: Duration,
    /// Dedup horizon: how long behind the newest event time a day's keys stay in the local dedup index (run
    /// files beside the checkpoint). It bounds the index's disk and memory, not what is checked: a day the index
    /// no longer holds is read back from bronze when a record of it arrives (for a dataset whose bronze holds no
    /// key column, a CSV table written before `_record_key`, records of such a day are not checked and are
    /// counted as unchecked).
    /// Default `35d`. Cost: 16 bytes of disk and about 1.1 bytes of memory per held key.
    #[serde(with = "humantime_serde")]
    pub dedup_horizon: Duration,
    /// Byte budget of the dedup index of one dataset (run files on disk plus filters in memory), in bytes. When
    /// a commit leaves more, whole UTC days are evicted, least recently written or loaded first; an evicted day is
    /// read back from bronze on its next touch, so the budget bounds cost, not what is checked (a CSV table
    /// written before `_record_key`, whose bronze holds no key column, is not evicted). Default 4 GiB (4294967296).
    pub dedup_cache_bytes: u64,
    /// Dedup retention: records whose UTC event day lies more than this before the batch's start are not checked
    /// for duplicates at all; they are written and counted (`lander_records_unchecked_total`, the run summary,
    /// the batch log line). Default: none (every record is checked, whatever its age).
    #[serde(with = "humantime_serde")]
    pub dedup_retention: Option<Duration>,
    /// Upper bound on files per batch (available-now, micro-batch, continuous). Default 1000 (no bound in `once`).
    pub max_files_per_batch: usize,
    /// Upper bound on input bytes per batch, in bytes. Default 1 GiB (no bound in `once`).
    pub max_bytes_per_batch: u64,
    /// Micro-batch trigger interval. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Continuous mode: how long to wait for more events before cutting a batch. Default `50ms`.
    #[serde(with = "humantime_serde")]
    pub max_batch_delay: Duration,
    /// Continuous/micro-batch: full listing of landing as a safety net for lost events. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Roll to a new Parquet part when one exceeds this many bytes. Default 256 MiB. A dataset's own key wins
    /// ([`TableOverrides`]), as for the `compact_*` keys.
    pub target_file_bytes: u64,
    /// Rows per Parquet row group (upper bound). Default 65536.
    pub row_group_rows: usize,
    /// Files decoded in parallel. Default: number of CPUs.
    pub parallelism: usize,
    /// What to do with a landing file after its batch committed: `off`, `delete` or `archive:<dir>`. Default `off`.
    pub clean_source: String,
    /// Ignore files older than this on the first start of a new checkpoint. Default: none.
    #[serde(with = "humantime_serde")]
    pub max_file_age: Option<Duration>,
    /// Process the newest files first. Default false.
    pub latest_first: bool,
    /// Options of remote landing/bronze stores, overriding the environment. For `s3://`: object_store's S3 keys
    /// (`aws_endpoint`, `aws_region`, `aws_access_key_id`, `aws_secret_access_key`, `aws_allow_http`,
    /// `aws_virtual_hosted_style_request`, ...). For `hdfs://`: Hadoop keys (anything with a `.`, e.g.
    /// `dfs.ha.namenodes.ns`), as if in `hdfs-site.xml`. Default: empty (the `AWS_*` variables and
    /// `$HADOOP_CONF_DIR` only).
    pub storage: BTreeMap<String, String>,
    /// Follow symlinks in landing whose target lies outside landing. Default false: such links are logged and
    /// skipped. Symlinks to a path inside landing are never followed (the target is read under its own name).
    pub follow_symlinks: bool,
    /// Longest record (NDJSON line, CSV record), in bytes. A longer record is skipped to its end without being
    /// buffered and quarantined with its first 4096 bytes and its length. Default 16 MiB (16777216).
    pub max_record_bytes: u64,
    /// Largest landing file (or unread tail of a growing one), in bytes; a larger file is rejected whole.
    /// Default 16 GiB (17179869184).
    pub max_file_bytes: u64,
    /// Most decompressed bytes per gzip file; beyond it the file is rejected whole. Default 32 GiB (34359738368).
    pub max_decompressed_bytes: u64,
    /// Highest ratio of decompressed to compressed bytes of a gzip file (judged after the first 64 MiB of
    /// output); beyond it the file is rejected whole as a decompression bomb. Default 100.
    pub max_decompression_ratio: u64,
    /// Earliest accepted event time: `YYYY-MM-DD` or RFC 3339. Earlier records are quarantined.
    /// Default `2000-01-01` (UTC).
    pub event_time_min: String,
    /// How far past the ingestion time an event time may lie; later records are quarantined. Default `1d`.
    #[serde(with = "humantime_serde")]
    pub event_time_max_future: Duration,
    /// Continuous/micro-batch: how long a growing plain file's unterminated last line waits for its newline
    /// before it is taken as a record anyway (a writer may pause mid-line for a while). Default `10m`.
    /// In `once`/`available-now` a settled file's last line is a record at once.
    #[serde(with = "humantime_serde")]
    pub partial_line_timeout: Duration,
    /// `run`: serve `/metrics`, `/healthz` and `/readyz` on this address, e.g. `127.0.0.1:9464`. Default: off.
    pub metrics_addr: Option<String>,
    /// How bronze is published: `delta` (each dataset is a Delta Lake table, one commit per batch) or `parquet`
    /// (plain hive-partitioned Parquet published part by part by rename, for readers without Delta: a reader can
    /// see part of a batch). Default `delta`.
    pub table_format: TableFormat,
    /// Delta: write a log checkpoint every this many commits. Default 100.
    pub delta_checkpoint_interval: u64,
    /// `micro-batch`/`continuous` with `table_format = "delta"`: a partition with at least this many parts smaller
    /// than `target_file_bytes` is compacted automatically once it has gone quiet (`compact_quiet`), on a task
    /// beside the batches (`crate::modes::compact`). `0` turns automatic compaction off. Default 16. A dataset's
    /// own key wins ([`TableOverrides`]).
    pub compact_min_files: usize,
    /// How long a partition must go without a new part before it is compacted automatically. Default `10m`.
    #[serde(with = "humantime_serde")]
    pub compact_quiet: Duration,
    /// A partition with this many small parts is compacted automatically even when it is not quiet (a day that
    /// files keep landing in). Default 64.
    pub compact_max_files: usize,
    /// This process is worker `I` of `N` sharing one landing and one bronze (`"I/N"`, e.g. `"0/3"`): it takes
    /// only the landing files whose stable hash mod `N` is `I` (`crate::source::assign`). Default: none (every
    /// file).
    pub worker: Option<String>,
    /// Datasets by name (= first directory level in landing).
    pub datasets: BTreeMap<String, DatasetConfig>,
}

impl Default for Config {
    /// The defaults of every key. The decoding limits are [`crate::decode::Limits::default`]'s.
    fn default() -> Self {
        let limits = crate::decode::Limits::default();
        Self {
            landing: lander_core::DEFAULT_LANDING.into(),
            bronze: "layers/bronze".into(),
            checkpoint: PathBuf::from("checkpoints"),
            settle_time: Duration::from_secs(1),
            dedup_horizon: Duration::from_secs(35 * 24 * 3600),
            dedup_retention: None,
            dedup_cache_bytes: 4 << 30,
            max_files_per_batch: 1000,
            max_bytes_per_batch: 1 << 30,
            interval: Duration::from_secs(10),
            max_batch_delay: Duration::from_millis(50),
            poll_interval: Duration::from_secs(5),
            target_file_bytes: 256 << 20,
            row_group_rows: 65_536,
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            clean_source: "off".into(),
            max_file_age: None,
            latest_first: false,
            storage: BTreeMap::new(),
            follow_symlinks: false,
            max_record_bytes: limits.max_record_bytes,
            max_file_bytes: limits.max_file_bytes,
            max_decompressed_bytes: limits.max_decompressed_bytes,
            max_decompression_ratio: limits.max_decompression_ratio,
            // A date, as `lander.toml` spells it (`limits()` reads it back to the same instant).
            event_time_min: chrono::DateTime::from_timestamp_micros(limits.min_event_time)
                .map(|t| t.date_naive().to_string())
                .unwrap_or_default(),
            event_time_max_future: Duration::from_micros(
                u64::try_from(limits.max_event_time_ahead).unwrap_or(0),
            ),
            partial_line_timeout: Duration::from_secs(600),
            metrics_addr: None,
            table_format: TableFormat::Delta,
            delta_checkpoint_interval: 100,
            compact_min_files: 16,
            compact_quiet: Duration::from_secs(600),
            compact_max_files: 64,
            worker: None,
            datasets: BTreeMap::new(),
        }
    }
}

/// One dataset: how its files are decoded and deduplicated, and its own table settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "format", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DatasetConfig {
    /// GH Archive hourly files: gzip (or plain) NDJSON in Events-API or Timeline-API shape.
    Gharchive {
        /// This dataset's own table settings.
        #[serde(flatten)]
        table: TableOverrides,
    },
    /// Delimited text.
    Csv {
        /// How the files are read and typed.
        #[serde(flatten)]
        csv: CsvOptions,
        /// This dataset's own table settings.
        #[serde(flatten)]
        table: TableOverrides,
    },
}

impl DatasetConfig {
    /// The built-in `gharchive` dataset.
    pub(crate) fn gharchive() -> Self {
        Self::Gharchive {
            table: TableOverrides::default(),
        }
    }

    /// A CSV dataset with `csv` options and no table settings of its own.
    pub(crate) fn csv(csv: CsvOptions) -> Self {
        Self::Csv {
            csv,
            table: TableOverrides::default(),
        }
    }

    /// The CSV options, for a CSV dataset.
    pub(crate) fn csv_options(&self) -> Option<&CsvOptions> {
        match self {
            Self::Csv { csv, .. } => Some(csv),
            Self::Gharchive { .. } => None,
        }
    }

    /// This dataset's own table settings (each unset one is the top-level key's: [`Config::table_settings`]).
    pub(crate) fn table(&self) -> &TableOverrides {
        match self {
            Self::Gharchive { table } | Self::Csv { table, .. } => table,
        }
    }
}

/// Keys of a `[datasets.NAME]` table that every format takes: the size of the dataset's parts and its automatic
/// compaction. Each key left out is the top-level key of the same name, so [`Config::default`] stays the one
/// source of every default; [`Config::table_settings`] resolves them. `compact_min_files = 0` turns automatic
/// compaction off for this dataset alone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TableOverrides {
    /// This dataset's `target_file_bytes` (its batches' parts, its compactions, `lander table optimize`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) target_file_bytes: Option<u64>,
    /// This dataset's `compact_min_files`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) compact_min_files: Option<usize>,
    /// This dataset's `compact_quiet`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub(crate) compact_quiet: Option<Duration>,
    /// This dataset's `compact_max_files`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) compact_max_files: Option<usize>,
}

/// The table settings of one dataset, resolved: its own keys ([`TableOverrides`]), else the top-level ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSettings {
    /// Roll to a new part, and compact parts into parts, of about this many bytes.
    pub target_file_bytes: u64,
    /// Compact a quiet partition with at least this many small parts; `0`: never automatically.
    pub(crate) compact_min_files: usize,
    /// How long a partition must go without a new part to be quiet.
    pub(crate) compact_quiet: Duration,
    /// Compact a partition with this many small parts even when it is not quiet.
    pub(crate) compact_max_files: usize,
}

/// The built-in `sales` dataset: the schema of `transacciones_ventas.csv`.
pub(crate) fn builtin_sales() -> DatasetConfig {
    DatasetConfig::csv(CsvOptions::sales())
}

impl Config {
    /// The parsed `worker`, if set.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when it is not `I/N` with `0 <= I < N`.
    pub fn worker_spec(&self) -> Result<Option<crate::source::assign::WorkerSpec>, ConfigError> {
        self.worker
            .as_deref()
            .map(|w| {
                w.parse().map_err(|e: crate::source::assign::AssignError| {
                    ConfigError::Invalid(e.to_string())
                })
            })
            .transpose()
    }

    /// Loads `path` (TOML) over the defaults, then applies the `LANDER_<KEY>` environment variables
    /// ([`keys::env_overrides`]). When `path` is `None`, `./lander.toml` is used if it exists.
    ///
    /// # Errors
    /// [`ConfigError::Read`] / [`ConfigError::Parse`] for an unreadable or malformed file,
    /// [`ConfigError::UnknownKey`] for a key the schema does not know, [`ConfigError::Env`] for a bad variable.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("lander.toml"), false),
        };
        let parse_err = |e: toml::de::Error| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        };
        let (mut table, mut config) = match std::fs::read_to_string(&path) {
            Ok(text) => {
                // Keys first, so that a typo gets a hint instead of serde's list of every field.
                let table: toml::Table = toml::from_str(&text).map_err(parse_err)?;
                keys::check_keys(&path, &text, &table)?;
                (table, toml::from_str::<Config>(&text).map_err(parse_err)?)
            }
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                (toml::Table::new(), Config::default())
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let env = keys::env_overrides();
        if !env.is_empty() {
            config = keys::apply_env(&mut table, &env)?;
        }
        config
            .datasets
            .entry("gharchive".into())
            .or_insert_with(DatasetConfig::gharchive);
        config
            .datasets
            .entry("sales".into())
            .or_insert_with(builtin_sales);
        Ok(config)
    }

    /// The table settings of `dataset`: its own keys in `[datasets.NAME]`, else the top-level ones (also for a
    /// dataset that is not configured).
    pub fn table_settings(&self, dataset: &str) -> TableSettings {
        let top = self.top_table_settings();
        let Some(own) = self.datasets.get(dataset).map(DatasetConfig::table) else {
            return top;
        };
        TableSettings {
            target_file_bytes: own.target_file_bytes.unwrap_or(top.target_file_bytes),
            compact_min_files: own.compact_min_files.unwrap_or(top.compact_min_files),
            compact_quiet: own.compact_quiet.unwrap_or(top.compact_quiet),
            compact_max_files: own.compact_max_files.unwrap_or(top.compact_max_files),
        }
    }

    /// The top-level table settings (those of a dataset without keys of its own).
    fn top_table_settings(&self) -> TableSettings {
        TableSettings {
            target_file_bytes: self.target_file_bytes,
            compact_min_files: self.compact_min_files,
            compact_quiet: self.compact_quiet,
            compact_max_files: self.compact_max_files,
        }
    }

    /// The parsed `metrics_addr`, if set.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when it is not `HOST:PORT` with a numeric IP.
    pub fn metrics_socket(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        self.metrics_addr
            .as_deref()
            .map(|a| {
                a.parse().map_err(|_| {
                    ConfigError::Invalid(format!(
                        "metrics_addr {a:?} is not an IP:PORT address, e.g. 127.0.0.1:9464"
                    ))
                })
            })
            .transpose()
    }

    /// Checks values that serde cannot: non-zero sizes, CSV options.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.worker_spec()?;
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.max_files_per_batch == 0 {
            return bad("max_files_per_batch must be at least 1".into());
        }
        if self.max_bytes_per_batch == 0 {
            return bad("max_bytes_per_batch must be at least 1".into());
        }
        if self.parallelism == 0 {
            return bad("parallelism must be at least 1".into());
        }
        if self.delta_checkpoint_interval == 0 {
            return bad("delta_checkpoint_interval must be at least 1".into());
        }
        check_compaction("", &self.top_table_settings())?;
        if self.row_group_rows == 0 {
            return bad("row_group_rows must be at least 1".into());
        }
        if self.interval.is_zero() {
            return bad("interval must be greater than 0".into());
        }
        self.clean_source_action()?;
        self.metrics_socket()?;
        overlap::check_overlap(&self.landing, &self.bronze, &self.checkpoint)
            .map_err(ConfigError::Invalid)?;
        for (key, v) in [
            ("max_record_bytes", self.max_record_bytes),
            ("max_file_bytes", self.max_file_bytes),
            ("max_decompressed_bytes", self.max_decompressed_bytes),
            ("max_decompression_ratio", self.max_decompression_ratio),
        ] {
            if v == 0 {
                return bad(format!("{key} must be at least 1"));
            }
        }
        self.limits()?;
        for (name, ds) in &self.datasets {
            if let Err(e) = crate::source::check_name(name) {
                return bad(format!(
                    "dataset name {name:?} is not a directory name that landing is read from: {e}"
                ));
            }
            check_compaction(&format!("datasets.{name}: "), &self.table_settings(name))?;
            if let Some(o) = ds.csv_options() {
                self.validate_csv(name, o)?;
            }
        }
        Ok(())
    }

    /// The checks of CSV dataset `name`'s options (ASCII delimiter and quote, an event-time column, a known
    /// encoding, timestamp formats, the time zone, schema evolution against the table format, column types).
    fn validate_csv(
        &self,
        name: &str,
        o: &crate::decode::csv::CsvOptions,
    ) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !o.delimiter.is_ascii() || !o.quote.is_ascii() {
            return bad(format!(
                "datasets.{name}: delimiter and quote must be ASCII"
            ));
        }
        if o.event_time.is_empty() {
            return bad(format!(
                "datasets.{name}: event_time (the column that partitions bronze) is required"
            ));
        }
        if !matches!(
            o.encoding.to_ascii_lowercase().as_str(),
            "utf-8" | "utf8" | "latin-1" | "latin1" | "iso-8859-1" | "windows-1252" | "cp1252"
        ) {
            return bad(format!(
                "datasets.{name}: encoding {:?} is not one of utf-8, latin-1, windows-1252",
                o.encoding
            ));
        }
        if o.timestamp_formats.is_empty() {
            return bad(format!(
                "datasets.{name}: timestamp_formats must not be empty"
            ));
        }
        crate::decode::csv::parse_timezone(&o.timezone)
            .map_err(|e| ConfigError::Invalid(format!("datasets.{name}: {e}")))?;
        // Parts of a plain-Parquet bronze have no log to say which schema is current: a reader would
        // meet parts of different schemas and must merge them itself.
        if self.table_format == TableFormat::Parquet
            && o.schema_evolution == Some(crate::decode::csv::SchemaEvolution::AddColumns)
        {
            return bad(format!("datasets.{name}: schema_evolution = \"add_columns\" needs table_format = \"delta\" (a plain-Parquet bronze cannot evolve its schema; use \"fail\" or \"rescue\")"));
        }
        for (col, ty) in &o.columns {
            crate::decode::csv::ColumnType::parse(ty)
                .map_err(|e| ConfigError::Invalid(format!("datasets.{name}.columns.{col}: {e}")))?;
        }
        Ok(())
    }

    /// The decode limits and event-time policy of this configuration.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when `event_time_min` is neither a date nor an RFC 3339 time.
    pub fn limits(&self) -> Result<crate::decode::Limits, ConfigError> {
        let s = self.event_time_min.trim();
        let min = chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_micros())
            .or_else(|_| {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| {
                    d.and_hms_opt(0, 0, 0)
                        .expect("midnight exists")
                        .and_utc()
                        .timestamp_micros()
                })
            })
            .map_err(|_| {
                ConfigError::Invalid(format!(
                    "event_time_min {s:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 time"
                ))
            })?;
        Ok(crate::decode::Limits {
            max_record_bytes: self.max_record_bytes,
            max_file_bytes: self.max_file_bytes,
            max_decompressed_bytes: self.max_decompressed_bytes,
            max_decompression_ratio: self.max_decompression_ratio,
            min_event_time: min,
            max_event_time_ahead: i64::try_from(self.event_time_max_future.as_micros())
                .unwrap_or(i64::MAX),
        })
    }

    /// The parsed `clean_source` setting.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for anything but `off`, `delete`, `archive:<dir>`.
    pub(crate) fn clean_source_action(&self) -> Result<CleanSource, ConfigError> {
        match self.clean_source.as_str() {
            "off" => Ok(CleanSource::Off),
            "delete" => Ok(CleanSource::Delete),
            s => match s.strip_prefix("archive:") {
                Some(dir) if !dir.is_empty() => Ok(CleanSource::Archive(dir.to_string())),
                _ => Err(ConfigError::Invalid(format!(
                    "clean_source {s:?} must be off, delete or archive:<dir>"
                ))),
            },
        }
    }
}

/// What happens to a landing file after its batch committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CleanSource {
    /// Leave it.
    Off,
    /// Delete it.
    Delete,
    /// Move it below this directory (a path relative to the landing root), keeping its relative path.
    Archive(String),
}

/// Checks the compaction settings of the top level (`prefix` empty) or of one dataset (`prefix`
/// `datasets.NAME: `).
fn check_compaction(prefix: &str, t: &TableSettings) -> Result<(), ConfigError> {
    if t.compact_min_files == 1 {
        return Err(ConfigError::Invalid(format!("{prefix}compact_min_files must be at least 2 (one part alone is never rewritten), or 0 to turn automatic compaction off")));
    }
    if t.compact_max_files < t.compact_min_files {
        return Err(ConfigError::Invalid(format!(
            "{prefix}compact_max_files ({}) must be at least compact_min_files ({})",
            t.compact_max_files, t.compact_min_files
        )));
    }
    Ok(())
}

/// Parses durations like `10s`, `1m`, `7d`, `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

pub use lander_core::units::parse_byte_size;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file() {
        let text = r#"
            landing = "in"
            settle_time = "250ms"
            dedup_horizon = "2d"
            [datasets.superstore]
            format = "csv"
            key = ["Row ID"]
            event_time = "Order Date"
            timestamp_formats = ["%m/%d/%Y"]
            [datasets.superstore.columns]
            "Postal Code" = "string"
        "#;
        let mut c: Config = toml::from_str(text).expect("parse");
        c.datasets
            .entry("sales".into())
            .or_insert_with(builtin_sales);
        c.validate().expect("valid");
        assert_eq!(c.settle_time, Duration::from_millis(250));
        assert_eq!(c.dedup_horizon, Duration::from_secs(2 * 86400));
        assert_eq!(
            c.limits().expect("limits"),
            crate::decode::Limits::default()
        );
        match &c.datasets["superstore"] {
            DatasetConfig::Csv { csv: o, .. } => {
                assert_eq!(o.key, vec!["Row ID".to_string()]);
                assert_eq!(o.delimiter, ',');
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<Config>("landingg = 'x'").is_err());
        let c = Config {
            clean_source: "archive:".into(),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            event_time_min: "last tuesday".into(),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            event_time_min: "2010-06-01T00:00:00+02:00".into(),
            ..Config::default()
        };
        assert_eq!(
            c.limits().expect("limits").min_event_time,
            1_275_343_200_000_000
        );
    }
    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("123"), Ok(123));
        assert_eq!(parse_byte_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_byte_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_byte_size("64 mib"), Ok(64 << 20));
        assert_eq!(parse_byte_size(" 1 MB "), Ok(1_000_000));
        assert!(parse_byte_size("99999999999999TiB").is_err());
        assert!(parse_byte_size("lots").is_err());
        assert!(parse_byte_size("5XB").is_err());
        assert!(parse_byte_size("99999999999999TiB").is_err());
    }
}
