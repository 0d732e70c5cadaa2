//! The run summary of `once` and `available-now`: a table on stdout, and the same figures as JSON for
//! schedulers (`--summary-json PATH`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use comfy_table::{presets::ASCII_MARKDOWN, Table};
use serde::Serialize;

use crate::modes::{BatchReport, RecordCounts, RunMode, RunSummary};

/// What one dataset did in a run.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct DatasetSummary {
    /// Batches committed.
    pub(crate) batches: u64,
    /// Files read and committed (including failed ones).
    pub(crate) files: u64,
    /// Files planned but left unread because the run was interrupted (the next run reads them).
    pub(crate) files_unread: u64,
    /// Rows written to bronze, duplicates dropped, records written without a dedup check (event day beyond
    /// `dedup_retention`, or not readable from bronze), records quarantined (a failed file counts one).
    /// Flattened: the JSON has `rows`, `duplicates`, `unchecked` and `quarantined` here, in that order.
    #[serde(flatten)]
    pub(crate) counts: RecordCounts,
    /// Files rejected whole.
    pub(crate) failed_files: u64,
    /// Parquet parts published.
    pub(crate) parts: u64,
    /// Landing bytes read.
    pub(crate) input_bytes: u64,
    /// Seconds spent in this dataset's batches.
    pub(crate) seconds: f64,
    /// Input megabytes (10^6 bytes) per second of those batches.
    pub(crate) mb_per_s: f64,
}

impl DatasetSummary {
    fn add(&mut self, b: &BatchReport) {
        self.batches += 1;
        self.files += b.files as u64;
        self.counts += b.counts;
        self.failed_files += b.failed_files as u64;
        self.parts += b.parts as u64;
        self.input_bytes += b.bytes;
        self.seconds += b.elapsed.as_secs_f64();
    }

    fn finish(&mut self) {
        self.mb_per_s = if self.seconds > 0.0 {
            self.input_bytes as f64 / 1e6 / self.seconds
        } else {
            0.0
        };
    }
}

/// The whole run, as written by `--summary-json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunSummaryReport {
    /// `ok`, `failed`, or `interrupted` (a signal stopped the run before it read every file: `files` were
    /// committed, `files_unread` were not).
    pub(crate) status: &'static str,
    /// The error, when `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// The signal, when `interrupted` (`SIGINT`, `SIGTERM`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) interrupted_by: Option<String>,
    /// Run mode.
    pub(crate) mode: RunMode,
    /// Landing location.
    pub(crate) landing: String,
    /// Bronze location.
    pub(crate) bronze: String,
    /// Start (UTC).
    pub(crate) started_at: DateTime<Utc>,
    /// End (UTC).
    pub(crate) finished_at: DateTime<Utc>,
    /// Wall seconds of the run.
    pub(crate) seconds: f64,
    /// Per dataset (datasets with nothing new appear with zeros).
    pub(crate) datasets: BTreeMap<String, DatasetSummary>,
    /// Sum over datasets (`seconds` and `mb_per_s` are the run's wall time and rate).
    pub(crate) total: DatasetSummary,
}

impl RunSummaryReport {
    /// Builds the report of a run that ended with `result` (the error as printed, when it failed, start-up
    /// included); `signal` is the shutdown signal received, if any: a run that left files unread reports it.
    pub(crate) fn new(
        mode: RunMode,
        landing: String,
        bronze: String,
        started_at: DateTime<Utc>,
        result: Result<&RunSummary, String>,
        signal: Option<i32>,
    ) -> Self {
        let finished_at = Utc::now();
        let seconds = ((finished_at - started_at).num_microseconds().unwrap_or(0) as f64) / 1e6;
        let mut datasets: BTreeMap<String, DatasetSummary> = BTreeMap::new();
        let mut total = DatasetSummary::default();
        let error = match result {
            Ok(s) => {
                for d in &s.idle_datasets {
                    datasets.entry(d.clone()).or_default();
                }
                for b in &s.batches {
                    datasets.entry(b.dataset.clone()).or_default().add(b);
                    total.add(b);
                }
                for (d, n) in &s.unread {
                    datasets.entry(d.clone()).or_default().files_unread = *n;
                    total.files_unread += n;
                }
                None
            }
            Err(e) => Some(e),
        };
        let interrupted = error.is_none() && total.files_unread > 0;
        datasets.values_mut().for_each(DatasetSummary::finish);
        total.seconds = seconds;
        total.finish();
        Self {
            status: match (&error, interrupted) {
                (Some(_), _) => "failed",
                (None, true) => "interrupted",
                (None, false) => "ok",
            },
            error,
            interrupted_by: interrupted
                .then(|| crate::cli::exit::signal_name(signal.unwrap_or(libc::SIGINT))),
            mode,
            landing,
            bronze,
            started_at,
            finished_at,
            seconds,
            datasets,
            total,
        }
    }

    /// The summary table (datasets as rows, plus a total row when there are several); an `unread` column when
    /// the run was interrupted.
    pub(crate) fn table(&self) -> String {
        let unread = self.total.files_unread > 0;
        let mut t = Table::new();
        let mut header = vec![
            "dataset",
            "batches",
            "files",
            "rows",
            "duplicates",
            "quarantined",
            "failed files",
            "parts",
            "input",
            "seconds",
            "MB/s",
        ];
        let unchecked = self.total.counts.unchecked > 0;
        if unchecked {
            header.insert(5, "unchecked");
        }
        if unread {
            header.insert(3, "unread");
        }
        t.load_style(ASCII_MARKDOWN).set_header(header);
        let mut row = |name: &str, d: &DatasetSummary| {
            let mut cells = vec![
                name.to_string(),
                d.batches.to_string(),
                d.files.to_string(),
                d.counts.rows.to_string(),
                d.counts.duplicates.to_string(),
                d.counts.quarantined.to_string(),
                d.failed_files.to_string(),
                d.parts.to_string(),
                indicatif::HumanBytes(d.input_bytes).to_string(),
                format!("{:.2}", d.seconds),
                format!("{:.1}", d.mb_per_s),
            ];
            if unchecked {
                cells.insert(5, d.counts.unchecked.to_string());
            }
            if unread {
                cells.insert(3, d.files_unread.to_string());
            }
            t.add_row(cells);
        };
        for (name, d) in &self.datasets {
            row(name, d);
        }
        if self.datasets.len() > 1 {
            row("total", &self.total);
        }
        t.to_string()
    }

    /// Writes the JSON to `path` (through a temp name and a rename, so a scheduler never reads half a file).
    ///
    /// # Errors
    /// The file cannot be written.
    pub(crate) fn write_json(&self, path: &std::path::Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, &json)?;
        std::io::Write::write_all(&mut tmp, b"\n")?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}
