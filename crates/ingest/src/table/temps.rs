//! Leftover temporaries of log entries in a table's `_delta_log/` on HDFS, removed when a run starts.
//!
//! A put of a log entry writes a hidden temporary and renames it onto `<version>.json`: the client's own
//! `.<version>.json.tmp.<n>`, or lander's `.<version>.json.lander-<random>.tmp` (`crate::store::create_put`)
//! and, inside that put, the client's `..<version>.json.lander-<random>.tmp.tmp.<n>`. A process killed mid-put,
//! or a client that lost the race and did not clean up (older lander, other writers using the plain client),
//! leaves them behind; readers ignore them (hidden names) but they pile up.
//!
//! [`remove_stale_log_temps`] deletes a temporary only when both hold:
//! - its `<version>.json` exists: that version is taken, so the temporary can never be renamed onto it (a live
//!   writer holding it can only lose its race), and
//! - it is older than [`STALE_LOG_TEMP_AGE`]: a writer still writing it (a slow NameNode, a paused process) is
//!   not disturbed mid-put; its rename would fail anyway, but with an I/O error instead of a clean lost race.
//!
//! A temporary of a version nobody has taken may be another writer's commit in flight, and is never touched.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use object_store::ObjectStoreExt;

use super::TableError;
use crate::store::StoreLocation;

/// Age after which a log temporary whose version exists is abandoned: a log entry is a few KiB, its put takes
/// milliseconds; minutes cover a NameNode failover or a long GC pause of the writer.
pub(crate) const STALE_LOG_TEMP_AGE: Duration = Duration::from_secs(5 * 60);

/// The version file (`<20 digits>.json`) a hidden log temporary `file_name` was written for, or `None` when the
/// name is not such a temporary.
pub(crate) fn temp_owner(file_name: &str) -> Option<&str> {
    let bare = file_name.trim_start_matches('.');
    if bare.len() == file_name.len() {
        return None;
    }
    let owner = bare.get(..25)?;
    let (digits, rest) = owner.split_at(20);
    let temp_suffix = &bare[25..];
    (digits.bytes().all(|b| b.is_ascii_digit())
        && rest == ".json"
        && (temp_suffix.starts_with(".tmp.")
            || temp_suffix.starts_with(crate::store::create_put::TEMP_MARK)))
    .then_some(owner)
}

/// Deletes the stale temporaries (see the module doc) in `<root>/_delta_log/` of `bronze` at `now`; returns how
/// many. A table without a log has none.
///
/// # Errors
/// [`TableError::Store`] when the log cannot be listed or a temporary cannot be deleted (one that vanished
/// meanwhile is fine).
pub(crate) async fn remove_stale_log_temps(
    bronze: &StoreLocation,
    root: &str,
    now: DateTime<Utc>,
) -> Result<usize, TableError> {
    let dir = format!("{root}/_delta_log");
    let store_err = |action, path: String, source| TableError::Store {
        action,
        path,
        source,
    };
    let prefix = bronze.path(&dir);
    let mut list = bronze.store.list(Some(&prefix));
    let mut stale = Vec::new();
    while let Some(item) = list.next().await {
        let meta = match item {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => break,
            Err(e) => return Err(store_err("list", bronze.describe(&dir), e)),
        };
        let Some(owner) = meta.location.filename().and_then(temp_owner) else {
            continue;
        };
        let old = now
            .signed_duration_since(meta.last_modified)
            .to_std()
            .is_ok_and(|age| age >= STALE_LOG_TEMP_AGE);
        if old {
            stale.push((meta.location.clone(), format!("{dir}/{owner}")));
        }
    }
    let mut removed = 0;
    for (temp, owner) in stale {
        match bronze.store.head(&bronze.path(&owner)).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(store_err("read", bronze.describe(&owner), e)),
        }
        match bronze.store.delete(&temp).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
            Err(e) => return Err(store_err("delete", temp.to_string(), e)),
        }
        tracing::info!(temp = %temp, "removed a stale temporary of a delta log entry whose version exists");
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hidden_temporaries_of_version_files_have_an_owner() {
        let v = "00000000000000000007.json";
        for name in [
            format!(".{v}.tmp.1"),
            format!(".{v}.tmp.12"),
            format!(".{v}.lander-00ab.tmp"),
            format!("..{v}.lander-00ab.tmp.tmp.1"),
        ] {
            assert_eq!(temp_owner(&name), Some(v), "{name}");
        }
        for name in [
            v.to_string(),
            format!("{v}.tmp.1"),
            ".00000000000000000007.checkpoint.parquet.tmp.1".to_string(),
            "._last_checkpoint.tmp.1".to_string(),
            ".0000000000000000007.json.tmp.1".to_string(),
            format!(".{v}.crc"),
            ".x.tmp.1".to_string(),
        ] {
            assert_eq!(temp_owner(&name), None, "{name}");
        }
    }

    #[tokio::test]
    async fn stale_temporaries_of_taken_versions_are_removed_and_nothing_else() {
        use object_store::PutPayload;
        let dir = tempfile::tempdir().expect("tempdir");
        let bronze = StoreLocation::open(&dir.path().display().to_string()).expect("local");
        let log = "t/_delta_log";
        let put = |name: String| {
            let bronze = bronze.clone();
            async move {
                bronze
                    .store
                    .put(
                        &bronze.path(&format!("{log}/{name}")),
                        PutPayload::from_static(b"{}"),
                    )
                    .await
                    .expect("put");
            }
        };
        let v1 = format!("{:020}.json", 1);
        put(v1.clone()).await;
        put(format!(".{v1}.tmp.1")).await;
        put(format!(".{v1}.lander-01.tmp")).await;
        put(format!(".{:020}.json.tmp.1", 2)).await;
        let now = Utc::now();
        // Young: kept even though version 1 exists.
        assert_eq!(
            remove_stale_log_temps(&bronze, "t", now)
                .await
                .expect("run"),
            0
        );
        let later = now + chrono::Duration::from_std(STALE_LOG_TEMP_AGE).expect("age");
        assert_eq!(
            remove_stale_log_temps(&bronze, "t", later)
                .await
                .expect("run"),
            2
        );
        let mut left: Vec<String> = std::fs::read_dir(dir.path().join(log))
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [format!(".{:020}.json.tmp.1", 2), v1]);
        assert_eq!(
            remove_stale_log_temps(&bronze, "absent", later)
                .await
                .expect("run"),
            0
        );
    }
}
