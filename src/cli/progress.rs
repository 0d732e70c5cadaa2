//! Progress of a bounded run (`once`, `available-now`): a bar on a terminal, a log line every
//! [`LOG_EVERY`] otherwise.
//!
//! It reads the process metrics ([`crate::metrics`]): bytes and records read so far, and the backlog the
//! listing found. The total is what was read plus what is still in the backlog, so it is known as soon as the
//! first listing is done and stays right across batches. Log lines written while the bar is shown go above it
//! ([`LogWriter`]).

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

/// Log-line interval when stderr is not a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

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

/// Progress figures summed over `datasets`: (bytes read, records read, bytes still in the backlog).
fn figures(datasets: &[String]) -> (u64, u64, u64) {
    let m = crate::metrics::get();
    let mut out = (0, 0, 0);
    for d in datasets {
        let l = crate::metrics::ds(d);
        out.0 += m.read_bytes.get_or_create(&l).get();
        out.1 += m.records_read.get_or_create(&l).get();
        out.2 += m.backlog_bytes.get_or_create(&l).get().max(0) as u64;
    }
    out
}

/// Shows progress until `done` fires. Returns at once with nothing shown when `quiet`.
pub async fn show(datasets: Vec<String>, quiet: bool, done: CancellationToken) {
    if quiet {
        return;
    }
    let (base_bytes, base_records, _) = figures(&datasets);
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
    loop {
        tokio::select! {
            _ = done.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let (bytes, records, backlog) = figures(&datasets);
        let read = bytes - base_bytes;
        let records = records - base_records;
        let total = read + backlog;
        match &bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(read);
                bar.set_message(format!("{records} records"));
            }
            None => {
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                let rate = read as f64 / secs;
                let eta = if rate > 0.0 && total > read {
                    format!(
                        ", ETA {}",
                        humantime::format_duration(Duration::from_secs(
                            ((total - read) as f64 / rate) as u64
                        ))
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
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
        if let Ok(mut g) = ACTIVE.lock() {
            *g = None;
        }
    }
}
