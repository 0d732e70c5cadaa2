//! `lander checkpoint gaps`: the expected hourly files of a time-sliced dataset against what landing and the
//! checkpoint hold.
//!
//! Takes a dataset whose files are named by UTC hour as GH Archive names them (`YYYY-MM-DD-H.json.gz`, anywhere
//! below `<landing>/<dataset>/`) and an hour range (default: the first to the last hour seen in landing or the
//! checkpoint), and reports per hour: missing (in neither), pending (in landing, not ingested yet), failed
//! (rejected whole), quarantined (ingested with quarantined lines) and late (committed more than `--late-after`
//! after the hour ended). Missing hours are summarised as ranges (one per run of consecutive hours, with a total),
//! not one row per hour: a run longer than `--max-gap` is reported as a span that was never expected (a landing
//! that holds single sample hours years apart is not a series with years of gaps), and gets no fetch command.
//! The report ends with the exact `lander fetch gharchive --from .. --to ..` commands that fetch the real gaps
//! again (one per range). Read-only: the checkpoint is opened through [`CheckpointStore::open_snapshot`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;
use futures::StreamExt;
use serde::Serialize;

use super::output::{blocking, emit, emit_json, fmt_time, open_read};
use super::{load_config, LocationArgs};
use crate::checkpoint::{CheckpointStore, FileStatus};
use crate::cli::UsageError;
use crate::config::{parse_duration, Config};
use crate::fetch::gharchive::{hour_range, parse_hour_arg, parse_hour_file_name, HourArg};
use crate::source::listing::is_ignored_path;
use crate::store::StoreLocation;

/// Most hours one report covers (about 11 years): a typo in `--from` must not build a huge table.
const MAX_HOURS: i64 = 100_000;

/// `lander checkpoint gaps`.
#[derive(Debug, Args)]
pub(crate) struct GapsArgs {
    /// Locations and config (uses --landing and --checkpoint).
    #[command(flatten)]
    pub(crate) locations: LocationArgs,
    /// The hourly dataset.
    #[arg(long, short = 'd', default_value = "gharchive")]
    pub(crate) dataset: String,
    /// First hour (UTC): 2015-01-01T05, 2015-01-01-5 or 2015-01-01 [default: first hour seen].
    #[arg(long, value_parser = parse_hour_arg)]
    pub(crate) from: Option<HourArg>,
    /// Last hour (UTC), inclusive; a date means its last hour [default: last hour seen].
    #[arg(long, value_parser = parse_hour_arg)]
    pub(crate) to: Option<HourArg>,
    /// An hour committed more than this long after it ended counts as late.
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub(crate) late_after: Duration,
    /// A run of missing hours longer than this is a span never expected (separate sample hours, not a series),
    /// reported without a fetch command; give a longer one to count such a span as a gap.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub(crate) max_gap: Duration,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The report (`--json`).
#[derive(Debug, Serialize)]
pub(crate) struct GapsJson {
    /// Dataset.
    pub(crate) dataset: String,
    /// First hour covered (UTC).
    pub(crate) from: DateTime<Utc>,
    /// Last hour covered (UTC), inclusive.
    pub(crate) to: DateTime<Utc>,
    /// Hours in the range, less the spans that are not expected.
    pub(crate) expected: u64,
    /// Hours in spans of missing hours longer than `max_gap_seconds` (never expected, not gaps).
    pub(crate) not_expected: u64,
    /// The longest run of missing hours that still counts as a gap.
    pub(crate) max_gap_seconds: u64,
    /// Hours ingested (committed, with or without quarantined lines).
    pub(crate) ingested: u64,
    /// Hours with no file in landing and no checkpoint record.
    pub(crate) missing: u64,
    /// Hours in landing that are not ingested yet.
    pub(crate) pending: u64,
    /// Hours whose file was rejected as a whole.
    pub(crate) failed: u64,
    /// Hours ingested with quarantined lines.
    pub(crate) quarantined: u64,
    /// Hours committed more than `late_after_seconds` after they ended.
    pub(crate) late: u64,
    /// The lateness threshold.
    pub(crate) late_after_seconds: u64,
    /// Every hour with a file or record that is not simply ingested on time, oldest first (missing hours are in
    /// `ranges`).
    pub(crate) hours: Vec<HourJson>,
    /// Runs of consecutive hours with no file and no record, oldest first.
    pub(crate) ranges: Vec<RangeJson>,
    /// Commands that fetch the missing hours again.
    pub(crate) fetch_commands: Vec<String>,
}

/// One hour with something to report.
#[derive(Debug, Serialize)]
pub(crate) struct HourJson {
    /// The hour (UTC).
    pub(crate) hour: DateTime<Utc>,
    /// `pending`, `failed` or `ingested`.
    pub(crate) state: &'static str,
    /// Landing path(s) of the hour (a dataset may hold one hour in several sub-directories).
    pub(crate) paths: Vec<String>,
    /// Modification time of the file in landing (or when it was processed, as recorded).
    pub(crate) landed_at: Option<DateTime<Utc>>,
    /// When the first batch that read it committed.
    pub(crate) committed_at: Option<DateTime<Utc>>,
    /// How long after the hour ended it was committed, when over the threshold.
    pub(crate) late_by_seconds: Option<i64>,
    /// Quarantined lines.
    pub(crate) quarantined: u64,
    /// Why it failed.
    pub(crate) reason: Option<String>,
}

/// A run of consecutive hours with no file in landing and no checkpoint record.
#[derive(Debug, Serialize)]
pub(crate) struct RangeJson {
    /// First hour of the run (UTC).
    pub(crate) from: DateTime<Utc>,
    /// Last hour of the run (UTC), inclusive.
    pub(crate) to: DateTime<Utc>,
    /// Hours in the run.
    pub(crate) hours: u64,
    /// `missing` (a gap, fetched by a command of `fetch_commands`) or `not_expected` (longer than the max gap).
    pub(crate) kind: &'static str,
}

#[derive(Default)]
struct Seen {
    paths: Vec<String>,
    landed: Option<DateTime<Utc>>,
    in_landing: bool,
    committed: Option<DateTime<Utc>>,
    recorded: bool,
    quarantined: u64,
    failed: Option<String>,
}

/// Runs `lander checkpoint gaps`.
///
/// # Errors
/// Exit 2 for an unknown dataset or a range with no hours; exit 1 for listing or checkpoint failures.
pub(crate) async fn run(a: GapsArgs) -> anyhow::Result<()> {
    let config = load_config(&a.locations)?;
    if !config.datasets.contains_key(&a.dataset) {
        return Err(UsageError(format!(
            "--dataset {}: no such dataset is configured",
            a.dataset
        ))
        .into());
    }
    let landing = StoreLocation::open_with(&config.landing, &config.storage)
        .context("while opening landing")?;
    let mut seen = hours_in_landing(&landing, &a.dataset).await?;
    if CheckpointStore::exists(&config.checkpoint) {
        hours_in_checkpoint(&config, &a.dataset, &mut seen).await?;
    }
    let (from, to) = hour_bounds(&a, &landing, &seen)?;
    let hours = hour_range(from, to).map_err(|e| UsageError(e.to_string()))?;
    let report = build(&a, &config.landing, from, to, &hours, &seen);
    if a.json {
        return emit_json(&report);
    }
    emit(&render(&report))
}

/// The hourly files of `dataset` in landing, by hour.
async fn hours_in_landing(
    landing: &StoreLocation,
    dataset: &str,
) -> anyhow::Result<BTreeMap<DateTime<Utc>, Seen>> {
    let mut seen: BTreeMap<DateTime<Utc>, Seen> = BTreeMap::new();
    let prefix = landing.path(dataset);
    let mut list = landing.store.list(Some(&prefix));
    while let Some(meta) = list.next().await {
        let meta = meta.context("while listing landing")?;
        let Some(rel) = landing.relative(&meta.location) else {
            continue;
        };
        let name = rel.rsplit('/').next().unwrap_or_default();
        let Some(hour) = parse_hour_file_name(name).filter(|_| !is_ignored_path(&rel)) else {
            continue;
        };
        let s = seen.entry(hour).or_default();
        s.in_landing = true;
        s.landed = Some(meta.last_modified);
        s.paths.push(rel);
    }
    Ok(seen)
}

/// Adds to `seen` the checkpoint's records of `dataset`'s hourly files: their state, quarantined lines, and when
/// the first batch that read each committed.
async fn hours_in_checkpoint(
    config: &Config,
    dataset: &str,
    seen: &mut BTreeMap<DateTime<Utc>, Seen>,
) -> anyhow::Result<()> {
    let store = open_read(config).await?;
    let ds = dataset.to_string();
    let (files, batches) = blocking(move || -> anyhow::Result<_> {
        Ok((store.files(Some(&ds))?, store.batches(Some(&ds))?))
    })
    .await
    .context("while reading the checkpoint")?;
    let mut first_commit: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for b in &batches {
        for i in &b.inputs {
            let t = first_commit
                .entry(i.path.as_str())
                .or_insert(b.committed_at);
            *t = (*t).min(b.committed_at);
        }
    }
    for f in &files {
        let name = f.path.rsplit('/').next().unwrap_or_default();
        let Some(hour) = parse_hour_file_name(name) else {
            continue;
        };
        let s = seen.entry(hour).or_default();
        if !s.paths.contains(&f.path) {
            s.paths.push(f.path.clone());
        }
        s.recorded = true;
        s.landed = s.landed.or(Some(f.modified)).min(Some(f.modified));
        s.quarantined += f.counts.quarantined;
        if let FileStatus::Failed { reason } = &f.status {
            s.failed = Some(reason.clone());
        }
        let committed = first_commit
            .get(f.path.as_str())
            .copied()
            .unwrap_or(f.processed_at);
        s.committed = Some(s.committed.map_or(committed, |c| c.min(committed)));
    }
    Ok(())
}

/// The first and last hour of the report: `--from`/`--to`, else the first/last hour seen.
///
/// # Errors
/// [`UsageError`] when there is no hour to start or end at, or the range is longer than [`MAX_HOURS`].
fn hour_bounds(
    a: &GapsArgs,
    landing: &StoreLocation,
    seen: &BTreeMap<DateTime<Utc>, Seen>,
) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>)> {
    let from = a
        .from
        .map(|h| h.hour)
        .or_else(|| seen.keys().next().copied());
    let to =
        a.to.map(|h| {
            if h.date_only {
                h.hour + TimeDelta::hours(23)
            } else {
                h.hour
            }
        })
        .or_else(|| seen.keys().next_back().copied());
    let (Some(from), Some(to)) = (from, to) else {
        return Err(UsageError(format!(
            "no hourly files (YYYY-MM-DD-H.json.gz) of {} in landing {} or the checkpoint: give --from and --to",
            a.dataset, landing.display
        ))
        .into());
    };
    if (to - from).num_hours() > MAX_HOURS {
        return Err(UsageError(format!(
            "--from {} --to {} spans more than {MAX_HOURS} hours",
            from.format("%Y-%m-%dT%H"),
            to.format("%Y-%m-%dT%H")
        ))
        .into());
    }
    Ok((from, to))
}

fn build(
    a: &GapsArgs,
    landing: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    hours: &[DateTime<Utc>],
    seen: &BTreeMap<DateTime<Utc>, Seen>,
) -> GapsJson {
    let late_after = TimeDelta::from_std(a.late_after).unwrap_or(TimeDelta::MAX);
    let mut r = GapsJson {
        dataset: a.dataset.clone(),
        from,
        to,
        expected: hours.len() as u64,
        not_expected: 0,
        max_gap_seconds: a.max_gap.as_secs(),
        ingested: 0,
        missing: 0,
        pending: 0,
        failed: 0,
        quarantined: 0,
        late: 0,
        late_after_seconds: a.late_after.as_secs(),
        hours: Vec::new(),
        ranges: Vec::new(),
        fetch_commands: Vec::new(),
    };
    let mut missing_runs: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for &hour in hours {
        let Some(s) = seen.get(&hour) else {
            match missing_runs.last_mut() {
                Some(run) if run.1 + TimeDelta::hours(1) == hour => run.1 = hour,
                _ => missing_runs.push((hour, hour)),
            }
            continue;
        };
        r.count_hour(hour, s, late_after);
    }
    r.ranges = missing_ranges(&missing_runs, a.max_gap);
    for g in &r.ranges {
        if g.kind == "missing" {
            r.missing += g.hours;
        } else {
            r.not_expected += g.hours;
        }
    }
    r.expected -= r.not_expected;
    r.fetch_commands = fetch_commands(&r.ranges, landing, &a.dataset);
    r
}

impl GapsJson {
    /// Counts an hour with a file or record (`s`), and lists it in `hours` unless it was simply ingested on time.
    fn count_hour(&mut self, hour: DateTime<Utc>, s: &Seen, late_after: TimeDelta) {
        let state = match (&s.failed, s.recorded) {
            (Some(_), _) => "failed",
            (None, true) => "ingested",
            (None, false) => "pending",
        };
        match state {
            "failed" => self.failed += 1,
            "ingested" => self.ingested += 1,
            _ => self.pending += 1,
        }
        let late_by = s
            .committed
            .map(|c| c - (hour + TimeDelta::hours(1)))
            .filter(|d| *d > late_after);
        if late_by.is_some() {
            self.late += 1;
        }
        if s.quarantined > 0 {
            self.quarantined += 1;
        }
        if state != "ingested" || late_by.is_some() || s.quarantined > 0 {
            self.hours.push(HourJson {
                hour,
                state,
                paths: s.paths.clone(),
                landed_at: s.landed,
                committed_at: s.committed,
                late_by_seconds: late_by.map(|d| d.num_seconds()),
                quarantined: s.quarantined,
                reason: s.failed.clone(),
            });
        }
    }
}

/// The runs of missing hours (first, last), each a gap (`missing`) or, when longer than `max_gap`, a span never
/// expected (`not_expected`).
fn missing_ranges(runs: &[(DateTime<Utc>, DateTime<Utc>)], max_gap: Duration) -> Vec<RangeJson> {
    let max_gap = TimeDelta::from_std(max_gap).unwrap_or(TimeDelta::MAX);
    runs.iter()
        .map(|&(from, to)| {
            let n = (to - from).num_hours() + 1;
            let kind = if TimeDelta::hours(n) > max_gap {
                "not_expected"
            } else {
                "missing"
            };
            RangeJson {
                from,
                to,
                hours: n as u64,
                kind,
            }
        })
        .collect()
}

/// The `lander fetch gharchive` commands that fetch the gaps among `ranges` again (with `--landing` and
/// `--dataset` when they are not the defaults).
fn fetch_commands(ranges: &[RangeJson], landing: &str, dataset: &str) -> Vec<String> {
    let mut extra = String::new();
    if landing != crate::config::Config::default().landing {
        let _ = write!(extra, " --landing {}", shell_word(landing));
    }
    if dataset != "gharchive" {
        let _ = write!(extra, " --dataset {}", shell_word(dataset));
    }
    ranges
        .iter()
        .filter(|g| g.kind == "missing")
        .map(|g| (g.from, g.to))
        .map(|(s, e)| {
            format!(
                "lander fetch gharchive --from {} --to {}{extra}",
                s.format("%Y-%m-%dT%H"),
                e.format("%Y-%m-%dT%H")
            )
        })
        .collect()
}

/// `s` quoted for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:=+@%,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `3d 4h 5m`, to the minute (seconds under a minute).
fn short_duration(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn render(r: &GapsJson) -> String {
    let mut s = format!(
        "{}: {} .. {} UTC: {} hour(s) expected, {} not expected, {} ingested, {} missing, {} pending, {} failed, {} with quarantined lines, {} late (committed > {} after the hour ended)\n",
        r.dataset,
        r.from.format("%Y-%m-%dT%H"),
        r.to.format("%Y-%m-%dT%H"),
        r.expected,
        r.not_expected,
        r.ingested,
        r.missing,
        r.pending,
        r.failed,
        r.quarantined,
        r.late,
        short_duration(r.late_after_seconds as i64),
    );
    if !r.hours.is_empty() {
        let _ = writeln!(
            s,
            "{:<15} {:<9} {:<10} {:<20} {:<20} PATH / REASON",
            "HOUR (UTC)", "STATE", "LATE BY", "LANDED (UTC)", "COMMITTED (UTC)"
        );
    }
    for h in &r.hours {
        let mut what = h.paths.join(", ");
        if h.quarantined > 0 {
            let _ = write!(what, " ({} quarantined line(s))", h.quarantined);
        }
        if let Some(reason) = &h.reason {
            let _ = write!(what, ": {reason}");
        }
        let _ = writeln!(
            s,
            "{:<15} {:<9} {:<10} {:<20} {:<20} {}",
            h.hour.format("%Y-%m-%dT%H"),
            h.state,
            h.late_by_seconds.map_or_else(|| "-".into(), short_duration),
            h.landed_at.map_or_else(|| "-".into(), fmt_time),
            h.committed_at.map_or_else(|| "-".into(), fmt_time),
            if what.is_empty() { "-" } else { &what },
        );
    }
    render_ranges(&mut s, r);
    for c in &r.fetch_commands {
        let _ = writeln!(s, "hint: {c}");
    }
    s
}

/// One line per run of missing hours, a total, and a note when every run is a span never expected.
fn render_ranges(s: &mut String, r: &GapsJson) {
    if r.ranges.is_empty() {
        return;
    }
    let max_gap = short_duration(r.max_gap_seconds as i64);
    let _ = writeln!(s, "{:<30} {:>8}  NO FILE", "HOURS (UTC)", "HOURS");
    for g in &r.ranges {
        let what = if g.kind == "missing" {
            "missing".to_string()
        } else {
            format!("not expected (longer than --max-gap {max_gap}: separate hours, not a series)")
        };
        let _ = writeln!(
            s,
            "{} .. {} {:>8}  {what}",
            g.from.format("%Y-%m-%dT%H"),
            g.to.format("%Y-%m-%dT%H"),
            g.hours,
        );
    }
    let count = |kind: &str| r.ranges.iter().filter(|g| g.kind == kind).count();
    let _ = writeln!(
        s,
        "total: {} hour(s) missing in {} range(s); {} hour(s) not expected in {} span(s) longer than {max_gap}",
        r.missing,
        count("missing"),
        r.not_expected,
        count("not_expected"),
    );
    if r.missing == 0 {
        let _ = writeln!(
            s,
            "note: no gap to fetch; the hours seen are more than {max_gap} apart (to check a stretch as a series, \
             give --from/--to and a longer --max-gap)"
        );
    }
}
