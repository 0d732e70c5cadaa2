//! Opening a location per scheme: a local directory, or a remote store (HDFS, S3) behind [`TimeoutStore`].
//!
//! Every remote scheme takes the same steps, in this order, so their errors come in the same order: read
//! `$LANDER_STORE_TIMEOUT`, split the `storage` options, build the scheme's client (the only per-scheme step,
//! see [`Remote`]), wrap it in [`TimeoutStore`] and root it at the URL's path. Opening does no I/O.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

use super::{
    Backend, StoreError, StoreLocation, TimeoutStore, DEFAULT_STORE_TIMEOUT, STORE_TIMEOUT_ENV,
};

/// The client a remote URL asks for, with the parts of the URL it needs.
enum Remote<'a> {
    /// `hdfs://` or `viewfs://`: the pure-Rust client.
    Hdfs {
        scheme: &'a str,
        /// Empty for `fs.defaultFS`.
        authority: &'a str,
    },
    /// `hdfs+jni://`: libhdfs over JNI.
    #[cfg(feature = "hdrs")]
    HdfsJni {
        /// Empty for `fs.defaultFS`.
        authority: &'a str,
    },
    /// `s3://` or `s3a://`.
    S3 { bucket: &'a str },
}

impl StoreLocation {
    /// Opens a location given as a local path, a `file://` URL, `hdfs://authority/path` or `s3://bucket/prefix`.
    ///
    /// A local directory is created if missing. Opening a remote location does no I/O: an unreachable
    /// service shows up on the first call, as a [`StoreError::TimedOut`] at the latest.
    ///
    /// # Errors
    /// [`StoreError::Unsupported`] for an unknown scheme or a malformed URL, [`StoreError::Local`] when the
    /// directory cannot be made, [`StoreError::ObjectStore`] when the client refuses its configuration,
    /// [`StoreError::Timeout`] for a malformed `$LANDER_STORE_TIMEOUT`.
    pub fn open(location: &str) -> Result<Self, StoreError> {
        Self::open_with(location, &BTreeMap::new())
    }

    /// [`StoreLocation::open`] with store options (`storage` in `lander.toml`), which override the environment:
    /// object_store's S3 keys (`aws_endpoint`, `aws_region`, ...) for `s3://`, Hadoop keys (containing a `.`)
    /// for `hdfs://`. A local location ignores them.
    ///
    /// # Errors
    /// As [`StoreLocation::open`]; [`StoreError::Unsupported`] for an option that is neither an S3 key nor a
    /// Hadoop key.
    pub fn open_with(
        location: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Self, StoreError> {
        let Some((scheme, rest)) = location.split_once("://") else {
            return Self::open_local(location, location);
        };
        let unsupported = |reason: String| StoreError::Unsupported {
            location: location.to_string(),
            reason,
        };
        let (authority, path) = split_authority(rest);
        let remote = match scheme {
            "file" => return Self::open_local(rest, location),
            "hdfs" | "viewfs" => Remote::Hdfs { scheme, authority },
            #[cfg(feature = "hdrs")]
            "hdfs+jni" => Remote::HdfsJni { authority },
            #[cfg(not(feature = "hdrs"))]
            "hdfs+jni" => return Err(unsupported(
                "hdfs+jni:// (libhdfs over JNI) needs a build with `--features hdrs`; hdfs:// needs no JVM".into(),
            )),
            "s3" | "s3a" if authority.is_empty() => {
                return Err(unsupported(
                    "an S3 location needs a bucket: s3://bucket/prefix".into(),
                ))
            }
            "s3" | "s3a" => Remote::S3 { bucket: authority },
            other => return Err(unsupported(format!(
                "scheme {other}:// is not supported (use a local path, hdfs://host:port/path or s3://bucket/prefix)"
            ))),
        };
        Self::open_remote(remote, path, location, options)
    }

    /// A remote location: the client `remote` names, behind the per-call timeout, rooted at `path`.
    fn open_remote(
        remote: Remote<'_>,
        path: &str,
        display: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Self, StoreError> {
        let timeout = store_timeout()?;
        let (hadoop, s3) = split_options(options, display)?;
        let refused = |source| StoreError::ObjectStore {
            location: display.to_string(),
            source,
        };
        // `base` is the store's URL, for messages.
        let mut s3_keys = None;
        let (store, backend, base): (Arc<dyn ObjectStore>, _, _) = match remote {
            Remote::Hdfs { scheme, authority } => {
                let mut builder =
                    hdfs_native_object_store::HdfsObjectStoreBuilder::new().with_config(hadoop);
                // An empty authority (`hdfs:///path`) means `fs.defaultFS` from $HADOOP_CONF_DIR.
                if !authority.is_empty() {
                    builder = builder.with_url(format!("{scheme}://{authority}"));
                }
                let store = builder.build().map_err(refused)?;
                (
                    // Put-if-absent that removes its temporary when it loses (`super::create_put`).
                    Arc::new(super::create_put::CreateByRename::new(Arc::new(store))),
                    Backend::Hdfs,
                    format!("{scheme}://{authority}"),
                )
            }
            #[cfg(feature = "hdrs")]
            Remote::HdfsJni { authority } => {
                // libhdfs's name for `fs.defaultFS` is "default".
                let namenode = if authority.is_empty() {
                    "default".to_string()
                } else {
                    format!("hdfs://{authority}")
                };
                let store = super::hdrs::HdrsStore::new(namenode, hadoop);
                (
                    Arc::new(store),
                    Backend::Hdfs,
                    format!("hdfs+jni://{authority}"),
                )
            }
            Remote::S3 { bucket } => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env();
                for (key, value) in s3 {
                    builder = builder.with_config(key, value);
                }
                let builder = builder.with_bucket_name(bucket);
                let store = builder.clone().build().map_err(refused)?;
                s3_keys = Some(Arc::new(super::s3_keys::S3Keys::new(
                    &builder,
                    store.clone(),
                    bucket,
                )));
                (Arc::new(store), Backend::S3, format!("s3://{bucket}"))
            }
        };
        let service = if backend == Backend::S3 { "S3" } else { "HDFS" };
        Ok(Self {
            store: Arc::new(TimeoutStore::new(store, service, base, timeout)),
            prefix: parse_prefix(path, display)?,
            display: display.to_string(),
            local_root: None,
            s3_keys,
            backend,
        })
    }

    fn open_local(path: &str, display: &str) -> Result<Self, StoreError> {
        let local_err = |source| StoreError::Local {
            path: path.to_string(),
            source,
        };
        // The one std::fs use outside tests: LocalFileSystem needs an existing root to canonicalize.
        std::fs::create_dir_all(path).map_err(local_err)?;
        let root = std::fs::canonicalize(path).map_err(local_err)?;
        let fs = LocalFileSystem::new_with_prefix(&root)
            .map_err(|source| StoreError::ObjectStore {
                location: display.to_string(),
                source,
            })?
            .with_fsync(true)
            .with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(fs),
            prefix: Path::default(),
            display: display.to_string(),
            local_root: Some(root),
            s3_keys: None,
            backend: Backend::Local,
        })
    }
}

/// Splits `authority/path/...` into the authority and the path (without its leading `/`).
fn split_authority(rest: &str) -> (&str, &str) {
    match rest.split_once('/') {
        Some((authority, path)) => (authority, path),
        None => (rest, ""),
    }
}

/// Splits `storage` options into Hadoop keys (with a `.`) and S3 keys.
#[allow(clippy::type_complexity)]
fn split_options(
    options: &BTreeMap<String, String>,
    display: &str,
) -> Result<
    (
        Vec<(String, String)>,
        Vec<(object_store::aws::AmazonS3ConfigKey, String)>,
    ),
    StoreError,
> {
    let mut hadoop = Vec::new();
    let mut s3 = Vec::new();
    for (key, value) in options {
        if key.contains('.') {
            hadoop.push((key.clone(), value.clone()));
        } else if let Ok(k) = key.to_ascii_lowercase().parse() {
            s3.push((k, value.clone()));
        } else {
            return Err(StoreError::Unsupported {
                location: display.to_string(),
                reason: format!(
                    "storage option {key:?} is neither an S3 key (aws_endpoint, aws_region, ...) nor a Hadoop key (dfs.*, fs.*)"
                ),
            });
        }
    }
    Ok((hadoop, s3))
}

/// The store prefix for the path part of a URL (`a/b/` -> `a/b`).
fn parse_prefix(path: &str, display: &str) -> Result<Path, StoreError> {
    let trimmed = path.trim_matches('/');
    Path::parse(trimmed).map_err(|source| StoreError::Unsupported {
        location: display.to_string(),
        reason: format!("invalid path {trimmed:?}: {source}"),
    })
}

/// The per-call limit for remote stores: `$LANDER_STORE_TIMEOUT` or [`DEFAULT_STORE_TIMEOUT`].
fn store_timeout() -> Result<Duration, StoreError> {
    match std::env::var(STORE_TIMEOUT_ENV) {
        Ok(value) => humantime::parse_duration(&value).map_err(|e| StoreError::Timeout {
            value,
            message: e.to_string(),
        }),
        Err(_) => Ok(DEFAULT_STORE_TIMEOUT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_split_into_store_and_prefix() {
        let s3 = StoreLocation::open("s3://bucket/a/b/").expect("s3");
        assert_eq!(s3.backend, Backend::S3);
        assert_eq!(s3.prefix.as_ref(), "a/b");
        assert_eq!(
            s3.path("gharchive/x.json.gz").as_ref(),
            "a/b/gharchive/x.json.gz"
        );
        assert_eq!(s3.describe("gharchive"), "s3://bucket/a/b/gharchive");
        assert!(StoreLocation::open("s3:///nobucket").is_err());
        let hdfs = StoreLocation::open("hdfs://127.0.0.1:1/proyecto/landing").expect("hdfs");
        assert_eq!(hdfs.backend, Backend::Hdfs);
        assert_eq!(hdfs.prefix.as_ref(), "proyecto/landing");
    }
}
