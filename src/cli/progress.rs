//! Progress of a bounded run (`once`, `available-now`): a bar on a terminal, a log line every
//! [`LOG_EVERY`] otherwise.
//!
//! It reads the process metrics ([`crate::metrics`]): bytes and records read so far, bytes committed, and the
//! backlog the listing found. The total is the input of the run: what batches committed plus what is still in
//! the backlog (`Accounting`). Bytes read are not added to it: a batch's files stay in the backlog until it
//! commits, so "read + backlog" counted them twice (a 290 MiB input showed a 557 MiB total and twice the ETA).
//! The total is known once the first listing is done, never shrinks, grows only by files discovered later, and
//! the bar ends at 100% when the backlog is empty. Log lines written while the bar is shown go above it
//! ([`LogWriter`]).

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

/// Log-line interval when stderr is not a terminal.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

/// Redraw interval of the bar.
const TICK: Duration = Duration::from_millis(200);

/// The bar being shown, if any: log lines are printed around it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A `tracing` writer for stderr that suspends the progress bar (if one is shown) while a line is written.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ACTIVE.lock().ok().and_then(|g| g.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Progress figures of the process metrics, summed over the datasets of the run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sample {
    /// Bytes read from landing (counted as they stream, before the batch commits).
    read: u64,
    /// Records read.
    records: u64,
    /// Bytes of input consumed by committed batches.
    committed: u64,
    /// Bytes the last listing found pending, less what batches committed since.
    backlog: u64,
}

/// Progress figures summed over `datasets`.
fn figures(datasets: &[String]) -> Sample {
    let m = crate::metrics::get();
    let mut out = Sample::default();
    for d in datasets {
        let l = crate::metrics::ds(d);
        out.read += m.read_bytes.get_or_create(&l).get();
        out.records += m.records_read.get_or_create(&l).get();
        out.committed += m.input_bytes.get_or_create(&l).get();
        out.backlog += m.backlog_bytes.get_or_create(&l).get().max(0) as u64;
    }
    out
}

/// The run's position and total, from samples of the metrics.
#[derive(Debug)]
struct Accounting {
    /// The figures when the run started (the metrics are process-wide).
    base: Sample,
    /// The input of the run so far: never shrinks, grows only when a listing finds more.
    total: u64,
}

impl Accounting {
    fn new(base: Sample) -> Self {
        Self { base, total: 0 }
    }

    /// (bytes read, total bytes, records read) of the run at `now`. Committed plus backlog is the run's input
    /// whether or not the batch in flight has committed yet (its files are in the backlog until then).
    fn update(&mut self, now: Sample) -> (u64, u64, u64) {
        let read = now.read.saturating_sub(self.base.read);
        let committed = now.committed.saturating_sub(self.base.committed);
        self.total = self.total.max(committed + now.backlog).max(read);
        (
            read,
            self.total,
            now.records.saturating_sub(self.base.records),
        )
    }

    /// The final figures: with nothing left in the backlog, the run read its whole input (100%), even where a
    /// file's bytes were not all consumed (a partial last line, a file rejected whole).
    fn finish(&mut self, now: Sample) -> (u64, u64, u64) {
        let (read, total, records) = self.update(now);
        if now.backlog == 0 && read > 0 {
            self.total = read;
            return (read, read, records);
        }
        (read, total, records)
    }
}

/// Shows progress until `done` fires. Returns at once with nothing shown when `quiet`.
pub(crate) async fn show(datasets: Vec<String>, quiet: bool, done: CancellationToken) {
    if quiet {
        return;
    }
    let mut acc = Accounting::new(figures(&datasets));
    let started = tokio::time::Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        let style = ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        )
        .map(|s| s.progress_chars("=> "));
        match style {
            Ok(style) => {
                let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
                    .with_style(style);
                if let Ok(mut g) = ACTIVE.lock() {
                    *g = Some(bar.clone());
                }
                Some(bar)
            }
            Err(_) => None,
        }
    } else {
        None
    };
    let mut ticker = tokio::time::interval(if terminal { TICK } else { LOG_EVERY });
    ticker.tick().await;
    let mut logged = false;
    loop {
        tokio::select! {
            _ = done.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let (read, total, records) = acc.update(figures(&datasets));
        match &bar {
            Some(bar) => draw(bar, read, total, records),
            None => {
                log_line(started.elapsed(), read, total, records);
                logged = true;
            }
        }
    }
    let (read, total, records) = acc.finish(figures(&datasets));
    if let Some(bar) = bar {
        draw(&bar, read, total, records);
        bar.finish_and_clear();
        if let Ok(mut g) = ACTIVE.lock() {
            *g = None;
        }
    } else if logged {
        // A log that showed progress also shows where it ended.
        log_line(started.elapsed(), read, total, records);
    }
}

fn draw(bar: &ProgressBar, read: u64, total: u64, records: u64) {
    bar.set_length(total);
    bar.set_position(read);
    bar.set_message(format!("{records} records"));
}

/// The `progress:` log line written when stderr is not a terminal.
fn log_line(elapsed: Duration, read: u64, total: u64, records: u64) {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = read as f64 / secs;
    let eta = if rate > 0.0 && total > read {
        format!(
            ", ETA {}",
            humantime::format_duration(Duration::from_secs(((total - read) as f64 / rate) as u64))
        )
    } else {
        String::new()
    };
    tracing::info!(
        "progress: {} of {} read, {records} records, {}/s{eta}",
        HumanBytes(read),
        HumanBytes(total),
        HumanBytes(rate as u64)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn at(read: u64, committed: u64, backlog: u64) -> Sample {
        Sample {
            read,
            records: read / 100,
            committed,
            backlog,
        }
    }

    /// 290 MiB in three files, read in two batches: the total stays 290 MiB while a batch's files are read
    /// and not committed yet (where "read + backlog" reached 2x), and the run ends at 100%.
    #[test]
    fn total_is_the_input_of_the_run_across_batches() {
        let mut acc = Accounting::new(Sample::default());
        // Before the first listing: nothing known.
        assert_eq!(acc.update(at(0, 0, 0)).1, 0);
        // Listing: 290 MiB pending.
        let input = 290 * MIB;
        for read in [0, 50 * MIB, 100 * MIB, 190 * MIB] {
            // Batch 1 (190 MiB) reading: nothing committed, the backlog still holds its files.
            let (r, total, _) = acc.update(at(read, 0, input));
            assert_eq!((r, total), (read, input));
        }
        // Batch 1 commits (its last line was partial: 1 KiB not consumed).
        let (_, total, _) = acc.update(at(190 * MIB, 190 * MIB - 1024, 100 * MIB));
        assert_eq!(total, input);
        // Batch 2 reads the rest, then commits.
        assert_eq!(
            acc.update(at(250 * MIB, 190 * MIB - 1024, 100 * MIB)).1,
            input
        );
        let end = at(input, input - 1024, 0);
        assert_eq!(acc.update(end).1, input);
        let (r, total, _) = acc.finish(end);
        assert_eq!((r, total), (input, input), "ends at 100%");
    }

    /// A file found by a later listing grows the total by its size, once.
    #[test]
    fn files_discovered_later_grow_the_total() {
        let mut acc = Accounting::new(Sample::default());
        assert_eq!(acc.update(at(10 * MIB, 0, 100 * MIB)).1, 100 * MIB);
        assert_eq!(acc.update(at(100 * MIB, 100 * MIB, 0)).1, 100 * MIB);
        // A new 30 MiB file is listed.
        assert_eq!(acc.update(at(100 * MIB, 100 * MIB, 30 * MIB)).1, 130 * MIB);
        assert_eq!(acc.update(at(120 * MIB, 100 * MIB, 30 * MIB)).1, 130 * MIB);
        assert_eq!(
            acc.finish(at(130 * MIB, 130 * MIB, 0)),
            (130 * MIB, 130 * MIB, 130 * MIB / 100)
        );
    }

    /// The metrics are process-wide: what earlier runs of the process read does not count, and an interrupted
    /// run (backlog left) does not claim 100%.
    #[test]
    fn figures_are_relative_to_the_start_and_an_interrupted_run_is_not_complete() {
        let mut acc = Accounting::new(at(500 * MIB, 500 * MIB, 0));
        assert_eq!(
            acc.update(at(520 * MIB, 500 * MIB, 80 * MIB)),
            (20 * MIB, 80 * MIB, 20 * MIB / 100)
        );
        let (r, total, _) = acc.finish(at(540 * MIB, 500 * MIB, 80 * MIB));
        assert_eq!((r, total), (40 * MIB, 80 * MIB));
    }
}
