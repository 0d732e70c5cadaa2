//! Download progress: a bar on a terminal, plain log lines otherwise.

use std::io::{self, IsTerminal as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar on a terminal, nothing otherwise (callers then log plain lines).
#[derive(Clone)]
pub(crate) struct Progress {
    pub(super) bar: ProgressBar,
    files_done: Arc<AtomicUsize>,
    files_total: Option<usize>,
}

impl Progress {
    /// A bar on stderr when stderr is a terminal, hidden otherwise. `files_total` is `None` when open-ended.
    pub(crate) fn new(files_total: Option<usize>) -> Self {
        let bar = if io::stderr().is_terminal() {
            let template = "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}";
            match ProgressStyle::with_template(template) {
                Ok(style) => {
                    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
                        .with_style(style.progress_chars("=> "));
                    bar.enable_steady_tick(Duration::from_millis(250));
                    bar
                }
                Err(_) => ProgressBar::hidden(),
            }
        } else {
            ProgressBar::hidden()
        };
        let progress = Self {
            bar,
            files_done: Arc::new(AtomicUsize::new(0)),
            files_total,
        };
        progress.update_message();
        progress
    }

    /// Whether a bar is drawn (otherwise per-file log lines are the only progress report).
    pub(crate) fn is_interactive(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Runs `log` (a `tracing` call) with the bar cleared, so log lines do not tear it.
    pub(crate) fn log(&self, log: impl FnOnce()) {
        if self.is_interactive() {
            self.bar.suspend(log);
        } else {
            log();
        }
    }

    /// Counts one resolved file.
    pub(crate) fn file_done(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.update_message();
    }

    /// Removes the bar from the terminal.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn update_message(&self) {
        let done = self.files_done.load(Ordering::Relaxed);
        match self.files_total {
            Some(total) => self.bar.set_message(format!("{done}/{total} files")),
            None => self.bar.set_message(format!("{done} files")),
        }
    }
}
