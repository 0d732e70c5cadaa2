//! How a command ends: the exit code of an error chain, the chain as printed, and the signal that stopped a run.
//!
//! Exit codes: 0 ok (a closed stdout included: `lander … | head -1`), 1 runtime failure, 2 usage or configuration
//! error, 128 + the signal number (130 SIGINT, 143 SIGTERM) for a bounded run that a signal cut short before it
//! read everything, as shells report a process that the signal killed.

use std::sync::atomic::{AtomicI32, Ordering};

use super::UsageError;

/// The first shutdown signal received (0: none): a bounded run that it interrupted exits 128 + this number.
static SHUTDOWN_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Records that `signal` (a `libc::SIG*` number) requested shutdown; only the first one counts.
pub(crate) fn record_signal(signal: i32) {
    let _ = SHUTDOWN_SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
}

/// The signal that requested shutdown, if one did.
pub(crate) fn shutdown_signal() -> Option<i32> {
    match SHUTDOWN_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The conventional name of the signals lander handles.
pub(crate) fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        s => format!("signal {s}"),
    }
}

/// A bounded run (`once`, `available-now`) stopped by a signal before it read every file it had planned: what it
/// committed stays committed, the files it did not read are left for the next run.
#[derive(Debug, thiserror::Error)]
#[error(
    "interrupted by {}: {committed} file(s) committed, {unread} file(s) left unread for the next run",
    signal_name(*signal)
)]
pub struct Interrupted {
    /// The signal (`libc::SIGINT`, `libc::SIGTERM`).
    pub(crate) signal: i32,
    /// Files committed by this run before the signal.
    pub(crate) committed: u64,
    /// Files planned but not read (abandoned batches, batches not started).
    pub(crate) unread: u64,
}

impl Interrupted {
    /// 128 + the signal number, as a shell reports a process killed by that signal.
    pub fn exit_code(&self) -> i32 {
        128 + self.signal
    }
}

/// Maps an error chain to the process exit code: 0 for a closed stdout, 2 for configuration/usage errors,
/// 128 + signal for an interrupted bounded run, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if is_broken_pipe(e) {
        return 0;
    }
    for cause in e.chain() {
        if let Some(i) = cause.downcast_ref::<Interrupted>() {
            return i.exit_code();
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return 2;
        }
        if cause.downcast_ref::<crate::config::ConfigError>().is_some() {
            return 2;
        }
        if let Some(crate::modes::RunError::Config(_) | crate::modes::RunError::Binding(_)) =
            cause.downcast_ref::<crate::modes::RunError>()
        {
            return 2;
        }
        // A bad fetch argument (e.g. a --dataset that `run` would never read) is a usage error too.
        if let Some(crate::fetch::FetchError::InvalidArgument { .. }) = cause.downcast_ref() {
            return 2;
        }
    }
    1
}

/// Whether the chain ends in a write to a closed pipe (the reader of stdout went away): not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The chain as one line, `outer: cause: root`, each distinct cause once. Errors that embed their source in
/// their own message (`cannot open {path}: {source}`) and also return it from `source()` would otherwise
/// print the same cause twice.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut last = String::new();
    let mut cause = Some(e);
    while let Some(c) = cause {
        cause = c.source();
        let text = c.to_string();
        if text.is_empty() || last.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        last = text;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open local directory {path}: {source}")]
    struct Embeds {
        path: String,
        source: std::io::Error,
    }

    fn io(kind: std::io::ErrorKind) -> std::io::Error {
        std::io::Error::from(kind)
    }

    #[test]
    fn each_cause_is_printed_once() {
        let nested = || Embeds {
            path: "b".into(),
            source: io(std::io::ErrorKind::NotFound),
        };
        let root = io(std::io::ErrorKind::NotFound).to_string();
        // An error that embeds its source, under one and under two contexts, and a plain chain.
        for (e, want) in [
            (
                anyhow::Error::new(nested()).context("while opening bronze"),
                format!("while opening bronze: cannot open local directory b: {root}"),
            ),
            (
                anyhow::Error::new(nested())
                    .context("while opening bronze")
                    .context("while starting"),
                format!(
                    "while starting: while opening bronze: cannot open local directory b: {root}"
                ),
            ),
            (
                anyhow::Error::new(io(std::io::ErrorKind::NotFound)).context("while reading x"),
                format!("while reading x: {root}"),
            ),
        ] {
            let got = error_chain(e.as_ref());
            assert_eq!(got, want);
            assert_eq!(got.matches(&root).count(), 1, "{got}");
        }
    }

    #[test]
    fn exit_codes_per_outcome() {
        let interrupted = |signal| {
            anyhow::Error::new(Interrupted {
                signal,
                committed: 1,
                unread: 2,
            })
        };
        assert_eq!(exit_code(&interrupted(libc::SIGINT)), 130);
        assert_eq!(exit_code(&interrupted(libc::SIGTERM)), 143);
        let pipe = anyhow::Error::new(io(std::io::ErrorKind::BrokenPipe)).context("while writing");
        assert_eq!(exit_code(&pipe), 0);
        let usage = anyhow::Error::new(UsageError("x".into())).context("while starting");
        assert_eq!(exit_code(&usage), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("disk on fire")), 1);
    }
}
