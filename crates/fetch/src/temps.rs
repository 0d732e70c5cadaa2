//! Stale store-client temporaries in landing: what an interrupted put of fetch leaves behind on HDFS.
//!
//! Fetch writes every file to its own hidden temporary `<dataset>/.<name>.tmp` and renames it into place. On HDFS
//! the store client adds a second level: a put (or multipart upload) of `.<name>.tmp` writes
//! `..<name>.tmp.tmp.<n>` and renames that when the file is closed (hdfs-native-object-store and the `hdrs`
//! adapter alike). A put interrupted by a crash, a kill or a store timeout leaves that inner temporary behind, and
//! the next put picks a fresh `<n>` instead of reusing it, so without cleanup they pile up (a GH Archive hour each).
//! Listings never read them (dot names), but they cost space and clutter landing.
//!
//! [`remove_stale_temps`] runs when a fetch or generate command starts and deletes, below `<dataset>/`, the inner
//! temporaries that belong to fetch (their owner is a `.<name>.tmp`) and are stale:
//! - `<name>` exists: that file was published since, so nothing writes its temporary any more; or
//! - older than [`STALE_TEMP_AGE`]: no upload of one file lasts that long, so the writer is gone.
//!
//! A younger inner temporary of a file not yet in landing may be the live upload of a concurrent fetch and is
//! left alone. Temporaries of other writers (names not owned by fetch) are never touched. Bronze needs no such
//! pass: every bronze put goes below `_staging/`, which recovery deletes whole on start.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::FetchError;
use lander_core::store::{Backend, StoreLocation};

/// Age after which an inner temporary of fetch is stale even when its file is not in landing: longer than any
/// one upload (a 4 GiB file at 2 MB/s takes 35 minutes), and HDFS's own lease hard limit, after which the
/// NameNode closes a file its writer abandoned.
pub(crate) const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// The fetch temporary (`.<name>.tmp`) that a store client's inner temporary `.<owner>.tmp.<n>` belongs to, or
/// `None` when `file_name` is not such an inner temporary of fetch.
pub(crate) fn fetch_temp_owner(file_name: &str) -> Option<&str> {
    let (owner, n) = file_name.strip_prefix('.')?.rsplit_once(".tmp.")?;
    let is_fetch_temp = owner.len() >= ".x.tmp".len()
        && owner.starts_with('.')
        && owner.ends_with(".tmp")
        && !owner.starts_with("..");
    (is_fetch_temp && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(owner)
}

/// Whether the inner temporary at `rel` (relative to landing), modified at `modified`, is stale at `now`, given
/// the set of relative paths present in landing.
pub(crate) fn is_stale(
    rel: &str,
    modified: DateTime<Utc>,
    now: DateTime<Utc>,
    present: &HashSet<String>,
) -> bool {
    let (dir, file_name) = match rel.rsplit_once('/') {
        Some((d, f)) => (Some(d), f),
        None => (None, rel),
    };
    let Some(owner) = fetch_temp_owner(file_name) else {
        return false;
    };
    let name = &owner[1..owner.len() - ".tmp".len()];
    let published = match dir {
        Some(d) => present.contains(&format!("{d}/{name}")),
        None => present.contains(name),
    };
    let old = now
        .signed_duration_since(modified)
        .to_std()
        .is_ok_and(|age| age >= STALE_TEMP_AGE);
    published || old
}

/// Deletes the stale inner temporaries of fetch below `<dataset>/` (see the module doc); returns how many. Only
/// HDFS landings have such temporaries (an S3 put is atomic, the local store hides and cleans its own), so other
/// backends are not listed.
///
/// # Errors
/// [`FetchError::ObjectStore`] when landing cannot be listed or a temporary cannot be deleted (a temporary that
/// vanished meanwhile is fine).
pub(crate) async fn remove_stale_temps(
    landing: &StoreLocation,
    dataset: &str,
) -> Result<usize, FetchError> {
    if landing.backend != Backend::Hdfs {
        return Ok(0);
    }
    let objects: Vec<_> = match landing
        .store
        .list(Some(&landing.path(dataset)))
        .try_collect()
        .await
    {
        Ok(v) => v,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(source) => {
            return Err(FetchError::ObjectStore {
                action: "list",
                location: landing.describe(dataset),
                source,
            })
        }
    };
    let listed: Vec<(String, object_store::ObjectMeta)> = objects
        .into_iter()
        .filter_map(|m| landing.relative(&m.location).map(|rel| (rel, m)))
        .collect();
    let present: HashSet<String> = listed.iter().map(|(rel, _)| rel.clone()).collect();
    let now = Utc::now();
    let mut removed = 0;
    for (rel, meta) in &listed {
        if !is_stale(rel, meta.last_modified, now, &present) {
            continue;
        }
        match landing.store.delete(&meta.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
            Err(source) => {
                return Err(FetchError::ObjectStore {
                    action: "delete",
                    location: landing.describe(rel),
                    source,
                })
            }
        }
    }
    if removed > 0 {
        tracing::info!(
            dataset,
            removed,
            landing = %landing.display,
            "removed temporaries of interrupted uploads"
        );
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_inner_temporaries_of_fetch_temporaries_have_an_owner() {
        assert_eq!(
            fetch_temp_owner("..2015-01-01-0.json.gz.tmp.tmp.1"),
            Some(".2015-01-01-0.json.gz.tmp")
        );
        assert_eq!(
            fetch_temp_owner("..ventas.csv.tmp.tmp.81604378624"),
            Some(".ventas.csv.tmp")
        );
        // fetch's own (resumable) temporary, a plain file, another writer's temporaries.
        for name in [
            ".2015-01-01-0.json.gz.tmp",
            "2015-01-01-0.json.gz",
            ".ventas.csv.tmp.1",
            "..ventas.csv.tmp.tmp.",
            "..ventas.csv.tmp.tmp.x1",
            "ventas.csv._COPYING_",
        ] {
            assert_eq!(fetch_temp_owner(name), None, "{name}");
        }
    }

    #[test]
    fn stale_when_published_or_old_never_otherwise() {
        let now = Utc::now();
        let young = now - chrono::TimeDelta::seconds(5);
        let old = now - chrono::TimeDelta::seconds(3601);
        let present: HashSet<String> = ["sales/a.csv", "sales/2025/b.csv"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(is_stale("sales/..a.csv.tmp.tmp.1", young, now, &present));
        assert!(is_stale(
            "sales/2025/..b.csv.tmp.tmp.3",
            young,
            now,
            &present
        ));
        assert!(!is_stale("sales/..c.csv.tmp.tmp.1", young, now, &present));
        assert!(is_stale("sales/..c.csv.tmp.tmp.1", old, now, &present));
        // Not fetch's: kept whatever its age.
        assert!(!is_stale("sales/.c.csv.tmp", old, now, &present));
        assert!(!is_stale("sales/.c.csv.tmp.1", old, now, &present));
    }
}
