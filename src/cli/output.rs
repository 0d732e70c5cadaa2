//! The CLI's output toolbox, shared by every command: opening the checkpoint to read or write, running its blocking
//! calls, writing to stdout (text or pretty JSON), and formatting times, durations and byte sizes. A leaf of `cli`:
//! the commands import it, it imports none of them.

use std::io::Write;

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::config::Config;

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("checkpoint reads and writes do not panic")
}

/// Opens the checkpoint for reading (a snapshot when a daemon holds it).
pub(crate) async fn open_read(config: &Config) -> anyhow::Result<CheckpointStore> {
    let dir = config.checkpoint.clone();
    if !CheckpointStore::exists(&dir) {
        bail!(
            "no checkpoint in {} (nothing was ingested with this --checkpoint yet)",
            dir.display()
        );
    }
    let d = dir.clone();
    let store = blocking(move || CheckpointStore::open_snapshot(&d))
        .await
        .with_context(|| format!("while opening the checkpoint in {}", dir.display()))?;
    if store.is_snapshot() {
        let pid = CheckpointStore::lock_holder(&dir).unwrap_or_else(|| "unknown".into());
        // A failed note must not fail the command.
        let _ = writeln!(
            std::io::stderr(),
            "checkpoint is locked by a running lander (pid {pid}); showing a snapshot"
        );
    }
    Ok(store)
}

/// Opens the checkpoint for writing; a daemon holding it is reported as such.
pub(crate) async fn open_write(config: &Config, action: &str) -> anyhow::Result<CheckpointStore> {
    let dir = config.checkpoint.clone();
    let d = dir.clone();
    match blocking(move || CheckpointStore::open(&d)).await {
        Ok(s) => Ok(s),
        Err(CheckpointError::Locked { dir, pid }) => bail!(
            "checkpoint {} is locked by a running lander (pid {pid}): stop it before you {action}",
            dir.display()
        ),
        Err(e) => {
            Err(e).with_context(|| format!("while opening the checkpoint in {}", dir.display()))
        }
    }
}

/// Writes `text` to stdout (errors, a broken pipe included, are returned).
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("while writing to stdout")
}

pub(crate) fn emit_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("while encoding the JSON output")?;
    text.push('\n');
    emit(&text)
}

pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A duration the way an operator writes one: a count of the largest unit that holds it exactly (`35d`, `36h`,
/// `90m`, `250ms`), as `lander.toml` and the flags accept it back. humantime's own format splits days into
/// months of 30.44 days (`35d` would print as `1month 4days 13h 26m 24s`).
pub(crate) fn fmt_duration(d: std::time::Duration) -> String {
    const UNITS: [(&str, u128); 7] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let (unit, per) = UNITS
        .iter()
        .find(|(_, per)| nanos.is_multiple_of(*per))
        .copied()
        .unwrap_or(("ns", 1));
    format!("{}{unit}", nanos / per)
}

pub(crate) fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_written_and_parse_back() {
        for written in [
            "35d", "1d", "36h", "90m", "1s", "250ms", "50ms", "10m", "7d", "0s", "1500us",
        ] {
            let d = crate::config::parse_duration(written).expect("valid");
            assert_eq!(fmt_duration(d), written);
        }
        // Written with several units: the largest exact one.
        let d = crate::config::parse_duration("1h 30m").expect("valid");
        assert_eq!(fmt_duration(d), "90m");
        assert_eq!(crate::config::parse_duration(&fmt_duration(d)), Ok(d));
    }
}
