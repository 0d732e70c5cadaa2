//! Listing the objects below a dataset's landing directory on any backend: a local landing is walked by
//! [`super::walk`], the others are listed through `object_store` (or, on S3, from raw key pages when a key is a
//! name no store path can hold). Entries that cannot be listed are returned as skipped, never an error.

use futures::StreamExt;

use crate::store::StoreLocation;

/// Every object below `<landing>/<dataset>/`, and the entries skipped (path, why; the caller reports them). A local landing is walked by
/// [`super::walk::list_local`] (symlink policy, faults skipped); other backends are listed through
/// `object_store`, where an error ends the listing early: what was listed so far is returned, the rest waits for
/// the next listing.
pub(super) async fn list_objects(
    landing: &StoreLocation,
    dataset: &str,
    follow_symlinks: bool,
) -> (Vec<object_store::ObjectMeta>, Vec<(String, String)>) {
    if let Some(root) = landing.local_root.clone() {
        let loc = landing.clone();
        let ds = dataset.to_string();
        let listed = tokio::task::spawn_blocking(move || {
            super::walk::list_local(&loc, &root, &ds, follow_symlinks)
        })
        .await
        .expect("listing landing does not panic");
        let mut skipped = Vec::new();
        for f in listed.faults {
            skipped.push((f.path, f.reason.to_string()));
        }
        return (listed.files, skipped);
    }
    let prefix = landing.path(dataset);
    let mut list = landing.store.list(Some(&prefix));
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    while let Some(meta) = list.next().await {
        match meta {
            Ok(m) => out.push(m),
            // On S3 such a key fails its whole page: list the keys raw instead (every key, each one that no
            // store path can hold reported).
            Err(object_store::Error::InvalidPath { .. }) if landing.s3_keys.is_some() => {
                match list_s3_raw(landing, dataset, &prefix).await {
                    Ok(listed) => return listed,
                    Err(source) => {
                        tracing::warn!(dataset, error = %source, listed = out.len(), "listing landing failed part way; using what was listed, the rest waits for the next listing");
                        break;
                    }
                }
            }
            // A name no store path can hold (a control character): said so, and the listing goes on (HDFS
            // lists entry by entry).
            Err(object_store::Error::InvalidPath { source }) => {
                skipped.push(unrepresentable(landing, dataset, &source));
            }
            // A file deleted between the directory read and its stat.
            Err(object_store::Error::NotFound { path, .. }) => {
                tracing::info!(%path, "file vanished while listing; skipped");
            }
            Err(source) => {
                tracing::warn!(dataset, error = %source, listed = out.len(), "listing landing failed part way; using what was listed, the rest waits for the next listing");
                break;
            }
        }
    }
    (out, skipped)
}

/// Every object below `prefix` on S3 from raw ListObjectsV2 pages (the store's `s3_keys` lister), and the keys no
/// store path can hold, reported as skipped; ignored names are left to the planner as for any listing.
async fn list_s3_raw(
    landing: &StoreLocation,
    dataset: &str,
    prefix: &object_store::path::Path,
) -> Result<(Vec<object_store::ObjectMeta>, Vec<(String, String)>), object_store::Error> {
    let Some(keys) = &landing.s3_keys else {
        return Ok((Vec::new(), Vec::new()));
    };
    let listed = keys.list(&format!("{}/", prefix.as_ref())).await?;
    let (mut out, mut skipped) = (Vec::new(), Vec::new());
    for o in listed {
        match object_store::path::Path::parse(&o.key) {
            Ok(location) => out.push(object_store::ObjectMeta {
                location,
                last_modified: o.last_modified,
                size: o.size,
                e_tag: o.e_tag,
                version: None,
            }),
            Err(e) => {
                skipped.push(unrepresentable(landing, dataset, &e));
            }
        }
    }
    Ok((out, skipped))
}

/// The landing-relative path and the reason of a listed name that no store path can hold.
fn unrepresentable(
    landing: &StoreLocation,
    dataset: &str,
    e: &object_store::path::Error,
) -> (String, String) {
    use object_store::path::Error as E;
    let raw = match e {
        E::BadSegment { path, .. } | E::EmptySegment { path } | E::NonUnicode { path, .. } => {
            path.trim_start_matches('/')
        }
        _ => dataset,
    };
    let below = format!("{}/", landing.prefix.as_ref());
    let rel = raw.strip_prefix(below.as_str()).unwrap_or(raw).to_string();
    (
        rel,
        format!("no store path can name it ({e}); not read (rename the file)"),
    )
}
