//! `lander fetch s3 s3://bucket/prefix --dataset D`: copy new objects from S3 into `<landing>/D/`.
//!
//! Takes an S3 bucket/prefix (the sales pipeline's source) and produces `<landing>/<dataset>/<path below the
//! prefix>` for every object not yet in landing. Each object is streamed into a hidden temporary name
//! (`.<name>.tmp` beside the target, ignored by listing) and moved to its final name with a no-clobber rename, the
//! same staged put as the HTTP fetches, so landing never shows a partial file whatever its backend. Objects whose
//! path has a hidden or temporary segment (`_`/`.` prefixes, `.tmp`, ...) are not copied; an object already in
//! landing is skipped without reading it, so a rerun copies only what is new. Credentials and endpoint come from
//! the `AWS_*` variables (see `lander_core::store`).

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt, WriteMultipart};
use tokio_util::sync::CancellationToken;

use super::{open_landing, rename_no_clobber, validate_dataset, FetchError, FetchSummary, S3Args};
use lander_core::store::{backend_of, Backend, StoreLocation};

/// Objects copied concurrently.
const COPY_CONCURRENCY: usize = 4;

/// Multipart chunk size of the copy into landing (S3 requires at least 5 MiB for every part but the last).
const CHUNK_BYTES: usize = 8 << 20;

/// What happened to one object.
enum Copied {
    Fetched(u64),
    Skipped,
    Pending,
    Failed,
}

/// Runs `fetch s3`; `storage` holds the store options of both the source and landing (the config file's
/// `[storage]` section).
///
/// # Errors
/// An invalid dataset name, a location that is not `s3://`, an unusable landing, or a failed listing of the
/// source. Per-object failures are counted in the summary.
pub async fn run(
    args: S3Args,
    storage: &BTreeMap<String, String>,
    cancel: CancellationToken,
) -> Result<FetchSummary, FetchError> {
    validate_dataset(&args.dataset)?;
    if backend_of(&args.url) != Backend::S3 {
        return Err(FetchError::InvalidUrl {
            url: args.url,
            reason: "fetch s3 copies from s3://bucket/prefix".into(),
        });
    }
    // The source and landing take the same `[storage]` options, as `run`'s landing and bronze do.
    let source =
        StoreLocation::open_with(&args.url, storage).map_err(|source| FetchError::Source {
            url: args.url.clone(),
            source: Box::new(source),
        })?;
    let landing = open_landing(&args.landing, storage).await?;
    super::temps::remove_stale_temps(&landing, &args.dataset).await?;
    let objects: Vec<ObjectMeta> = source
        .store
        .list(Some(&source.prefix))
        .try_collect()
        .await
        .map_err(|e| FetchError::ObjectStore {
            action: "list",
            location: args.url.clone(),
            source: e,
        })?;
    let mut objects: Vec<(String, ObjectMeta)> = objects
        .into_iter()
        .filter_map(|m| source.relative(&m.location).map(|rel| (rel, m)))
        .filter(|(rel, _)| !rel.is_empty() && !lander_core::names::is_ignored_path(rel))
        .collect();
    objects.sort_by(|a, b| a.0.cmp(&b.0));
    tracing::info!(source = %args.url, objects = objects.len(), landing = %landing.display, "copying from S3");

    let outcomes: Vec<Copied> = futures::stream::iter(objects)
        .map(|(rel, meta)| {
            let (source, landing, cancel, dataset) =
                (&source, &landing, &cancel, args.dataset.as_str());
            async move {
                if cancel.is_cancelled() {
                    return Copied::Pending;
                }
                let target = format!("{dataset}/{rel}");
                match copy_one(source, landing, &meta, &target).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(object = %meta.location, error = %e, "copy from S3 failed");
                        Copied::Failed
                    }
                }
            }
        })
        .buffer_unordered(COPY_CONCURRENCY)
        .collect()
        .await;
    let mut summary = FetchSummary::default();
    for o in outcomes {
        match o {
            Copied::Fetched(bytes) => {
                summary.fetched += 1;
                summary.bytes += bytes;
            }
            Copied::Skipped => summary.skipped += 1,
            Copied::Pending => summary.pending += 1,
            Copied::Failed => summary.failed += 1,
        }
    }
    Ok(summary)
}

/// Copies one object to `target` (relative to landing) unless it is there already.
async fn copy_one(
    source: &StoreLocation,
    landing: &StoreLocation,
    meta: &ObjectMeta,
    target: &str,
) -> Result<Copied, FetchError> {
    let started = Instant::now();
    let final_path = landing.path(target);
    match landing.store.head(&final_path).await {
        Ok(_) => return Ok(Copied::Skipped),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(store_err("check", landing.describe(target))(e)),
    }
    let (dir, name) = target.rsplit_once('/').unwrap_or(("", target));
    let temp = landing.path(&format!("{dir}/.{name}.tmp"));
    let src = source.describe(&source.relative(&meta.location).unwrap_or_default());

    // Crash or failure while copying: only the hidden temporary object exists; the next run overwrites it.
    let bytes = copy_to_temp(source, landing, meta, &temp, target, &src).await?;

    let published = rename_no_clobber(landing, &temp, &final_path).await;
    match published {
        Ok(()) => {
            tracing::info!(
                object = %src,
                file = %landing.describe(target),
                bytes,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "copied"
            );
            Ok(Copied::Fetched(bytes))
        }
        Err(object_store::Error::AlreadyExists { .. }) => {
            delete_quietly(landing, &temp).await;
            Ok(Copied::Skipped)
        }
        Err(e) => {
            delete_quietly(landing, &temp).await;
            Err(store_err("publish", landing.describe(target))(e))
        }
    }
}

/// Streams the object `meta` (described as `src`) into the temporary object `temp` of landing (for `target`), in
/// multipart chunks; aborts the upload when the copy fails. Returns the bytes copied.
async fn copy_to_temp(
    source: &StoreLocation,
    landing: &StoreLocation,
    meta: &ObjectMeta,
    temp: &Path,
    target: &str,
    src: &str,
) -> Result<u64, FetchError> {
    let upload = landing
        .store
        .put_multipart(temp)
        .await
        .map_err(store_err("write", landing.describe(target)))?;
    let mut upload = WriteMultipart::new_with_chunk_size(upload, CHUNK_BYTES);
    let copied = async {
        let mut body = source
            .store
            .get(&meta.location)
            .await
            .map_err(store_err("read", src.to_string()))?
            .into_stream();
        let mut bytes = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk: Bytes = chunk.map_err(store_err("read", src.to_string()))?;
            bytes += chunk.len() as u64;
            upload
                .wait_for_capacity(2)
                .await
                .map_err(store_err("write", landing.describe(target)))?;
            upload.put(chunk);
        }
        Ok::<u64, FetchError>(bytes)
    }
    .await;
    let bytes = match copied {
        Ok(b) => b,
        Err(e) => {
            let _ = upload.abort().await;
            return Err(e);
        }
    };
    upload
        .finish()
        .await
        .map_err(store_err("write", landing.describe(target)))?;
    Ok(bytes)
}

/// Turns an object store error into [`FetchError::ObjectStore`] for `action` on `location`.
fn store_err(
    action: &'static str,
    location: String,
) -> impl FnOnce(object_store::Error) -> FetchError {
    move |source| FetchError::ObjectStore {
        action,
        location,
        source,
    }
}

async fn delete_quietly(landing: &StoreLocation, path: &Path) {
    if let Err(e) = landing.store.delete(path).await {
        tracing::debug!(%path, error = %e, "could not delete a temporary object");
    }
}
