//! Object-store locations: turn a `--landing`/`--bronze` argument into an `Arc<dyn ObjectStore>` plus a prefix.
//!
//! Every read of landing and every write of bronze goes through [`StoreLocation`], never `std::fs`, so that
//! another backend (HDFS, S3) plugs in without touching the pipeline. The only local-filesystem special case is
//! creating the root directory of a local location on first use, because `LocalFileSystem` refuses a prefix that
//! does not exist.
//!
//! # Atomicity and durability per backend
//! - local (`LocalFileSystem`, the default): opened `with_fsync(true)`, so a `put`, a completed multipart upload
//!   and a `rename` are durable (file and parent directory fsynced) when they return; `rename` is `rename(2)`,
//!   atomic within one filesystem.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

/// Errors opening a storage location.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The location names a scheme this build does not support.
    #[error("unsupported storage location {location}: {reason}")]
    Unsupported {
        /// The location as given by the user.
        location: String,
        /// Why it is not supported.
        reason: String,
    },
    /// A local root directory could not be created or resolved.
    #[error("cannot open local directory {path}: {source}")]
    Local {
        /// The directory.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The object store rejected the location.
    #[error("cannot open {location}: {source}")]
    ObjectStore {
        /// The location as given by the user.
        location: String,
        /// The underlying error.
        source: object_store::Error,
    },
}

/// A root inside an object store: all paths the pipeline uses are relative to `prefix`.
#[derive(Clone, Debug)]
pub struct StoreLocation {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The root inside the store (empty for a local directory, which is itself the store root).
    pub prefix: Path,
    /// How the user named the location, for messages.
    pub display: String,
    /// The absolute local directory, when the location is on the local filesystem.
    pub local_root: Option<std::path::PathBuf>,
}

impl StoreLocation {
    /// Opens a location given as a local path, a `file://` URL (or, in builds with those backends, `hdfs://`/`s3://`).
    ///
    /// A local directory is created if missing.
    ///
    /// # Errors
    /// [`StoreError::Unsupported`] for an unknown scheme, [`StoreError::Local`] when the directory cannot be made.
    pub fn open(location: &str) -> Result<Self, StoreError> {
        if let Some((scheme, _)) = location.split_once("://") {
            match scheme {
                "file" => {
                    let path = location.trim_start_matches("file://");
                    Self::open_local(path, location)
                }
                other => Err(StoreError::Unsupported {
                    location: location.to_string(),
                    reason: format!(
                        "scheme {other}:// is not supported by this build (use a local path)"
                    ),
                }),
            }
        } else {
            Self::open_local(location, location)
        }
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
        })
    }

    /// The store path of `relative` (a `/`-separated path below this location's root).
    pub fn path(&self, relative: &str) -> Path {
        let mut parts: Vec<object_store::path::PathPart<'static>> = self
            .prefix
            .parts()
            .map(|p| p.as_ref().to_string().into())
            .collect();
        parts.extend(
            relative
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| object_store::path::PathPart::from(s.to_string())),
        );
        Path::from_iter(parts)
    }

    /// The part of `path` below this location's root, `/`-separated, or `None` when `path` is outside it.
    pub fn relative(&self, path: &Path) -> Option<String> {
        let parts: Vec<_> = path
            .prefix_match(&self.prefix)?
            .map(|p| p.as_ref().to_string())
            .collect();
        Some(parts.join("/"))
    }

    /// A human-readable name for `relative` inside this location (a filesystem path when local).
    pub fn describe(&self, relative: &str) -> String {
        match &self.local_root {
            Some(root) => root.join(relative).display().to_string(),
            None => format!("{}/{}", self.display.trim_end_matches('/'), relative),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let loc =
            StoreLocation::open(dir.path().join("a/b").to_str().expect("utf8")).expect("open");
        let p = loc.path("gharchive/x/2015-01-01-0.json.gz");
        assert_eq!(
            loc.relative(&p).as_deref(),
            Some("gharchive/x/2015-01-01-0.json.gz")
        );
        assert!(dir.path().join("a/b").is_dir());
        assert!(StoreLocation::open("ftp://x/y").is_err());
    }
}
