//! Wake-ups for continuous mode: filesystem events on a local landing zone.
//!
//! Takes in a landing location and produces [`WatchEvent`]s (relative path, and whether the file was renamed
//! into place) on a bounded channel. Events can be lost or coalesced by the OS (and HDFS or S3 have none at
//! all), so the scheduler always pairs this with a periodic full listing; when the channel is full, events are
//! dropped and [`LandingWatcher::overflowed`] tells the scheduler to list everything.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::store::StoreLocation;

/// Events that may wait for the scheduler before new ones are dropped (a full listing then catches up).
pub(crate) const WATCH_CHANNEL_CAPACITY: usize = 8192;

/// Something happened to a path in landing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatchEvent {
    /// Path relative to the landing root.
    pub(crate) rel: String,
    /// The file was renamed into place (complete by the writer's protocol).
    pub(crate) renamed_in: bool,
}

/// A running watcher (or none, for backends without events).
pub(crate) struct LandingWatcher {
    _watcher: Option<notify::RecommendedWatcher>,
    _keep_open: Option<mpsc::Sender<WatchEvent>>,
    overflow: Arc<AtomicBool>,
    /// The events.
    pub(crate) events: mpsc::Receiver<WatchEvent>,
}

impl LandingWatcher {
    /// Whether events were dropped since the last call (then list everything).
    pub(crate) fn overflowed(&self) -> bool {
        self.overflow.swap(false, Ordering::Relaxed)
    }

    /// Whether this watcher delivers events at all.
    pub(crate) fn is_active(&self) -> bool {
        self._watcher.is_some()
    }
}

/// Starts watching `landing` recursively (new dataset directories included). Symlinked directories are watched
/// only with `follow_symlinks` (the listing applies the full symlink policy to every event's path anyway). For a
/// non-local landing, or if the OS refuses the watch, returns an inactive watcher and logs why: polling alone
/// then finds new files.
pub(crate) fn watch(landing: &StoreLocation, follow_symlinks: bool) -> LandingWatcher {
    let (tx, rx) = mpsc::channel(WATCH_CHANNEL_CAPACITY);
    let overflow = Arc::new(AtomicBool::new(false));
    let Some(root) = landing.local_root.clone() else {
        tracing::info!(landing = %landing.display, "no filesystem events for this backend; relying on periodic listing");
        return LandingWatcher {
            _watcher: None,
            _keep_open: Some(tx),
            overflow,
            events: rx,
        };
    };
    let sender = tx.clone();
    let flag = overflow.clone();
    let root_for_events = root.clone();
    let handler = move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else {
            flag.store(true, Ordering::Relaxed);
            return;
        };
        let (paths, renamed_in): (Vec<PathBuf>, bool) = match ev.kind {
            EventKind::Create(_) => (ev.paths, false),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => (ev.paths, true),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                (ev.paths.into_iter().skip(1).collect(), true)
            }
            EventKind::Modify(ModifyKind::Name(_)) => (ev.paths, false),
            EventKind::Modify(_) => (ev.paths, false),
            _ => return,
        };
        for p in paths {
            let Ok(rel) = p.strip_prefix(&root_for_events) else {
                continue;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            if rel.is_empty() {
                continue;
            }
            if sender.try_send(WatchEvent { rel, renamed_in }).is_err() {
                flag.store(true, Ordering::Relaxed);
            }
        }
    };
    let config = notify::Config::default().with_follow_symlinks(follow_symlinks);
    let watcher = notify::RecommendedWatcher::new(handler, config).and_then(|mut w| {
        w.watch(&root, RecursiveMode::Recursive)?;
        Ok(w)
    });
    match watcher {
        Ok(w) => LandingWatcher {
            _watcher: Some(w),
            _keep_open: None,
            overflow,
            events: rx,
        },
        Err(e) => {
            tracing::warn!(error = %e, root = %root.display(), "cannot watch landing; relying on periodic listing");
            LandingWatcher {
                _watcher: None,
                _keep_open: Some(tx),
                overflow,
                events: rx,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_created_and_renamed_files_with_relative_paths() {
        let (_dir, loc) = crate::source::temp_landing();
        let mut w = watch(&loc, false);
        assert!(w.is_active());
        let root = loc.local_root.clone().expect("local");
        std::fs::create_dir_all(root.join("ds")).expect("mkdir");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        std::fs::write(root.join("ds/.a.tmp"), b"x\n").expect("write");
        std::fs::rename(root.join("ds/.a.tmp"), root.join("ds/a.json")).expect("rename");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut saw_rename = false;
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, w.events.recv()).await {
            if ev.rel == "ds/a.json" && ev.renamed_in {
                saw_rename = true;
                break;
            }
        }
        assert!(saw_rename);
    }
}
