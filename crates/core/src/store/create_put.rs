//! Put-if-absent on HDFS (`hdfs://`, hdfs-native-object-store) that leaves no temporary behind when it loses.
//!
//! The client's `put` with `PutMode::Create` writes a hidden `.<name>.tmp.<n>` (with the first free `<n>`) and
//! renames it onto `<name>` without overwrite. When another writer took `<name>` first (a Delta commit that lost
//! the race for its version), the rename fails and the temporary stays: the client does not delete it and does
//! not say which `<n>` it picked, so the caller cannot either. Two jobs appending to one table left 25 of them in
//! `_delta_log` after 99 commits.
//!
//! [`CreateByRename`] does the same put-if-absent in two steps it names itself: the payload is put (overwriting)
//! to `.<name>.lander-<random>.tmp`, which no other writer uses, and that is renamed onto `<name>` without
//! overwrite (HDFS `rename2` without `OVERWRITE`: atomic, refused when `<name>` exists). When the rename is
//! refused, the temporary is deleted and `AlreadyExists` returned, exactly as before. A crash between the two
//! steps leaves the temporary; `crate::table::temps` removes such leftovers when a run starts. Every other call
//! goes to the client unchanged. (`hdfs+jni://` needs no wrapper: its put deletes its temporary on failure.)

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    Result,
};

/// The marker in the names of [`CreateByRename`]'s temporaries (`.<name>.lander-<random>.tmp`).
pub const TEMP_MARK: &str = ".lander-";

/// An HDFS store whose `PutMode::Create` puts clean up after a lost race (see the module doc).
#[derive(Debug)]
pub struct CreateByRename {
    inner: Arc<dyn ObjectStore>,
}

impl CreateByRename {
    /// Wraps `inner` (an hdfs-native-object-store).
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }
}

impl std::fmt::Display for CreateByRename {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.inner)
    }
}

/// `.<name>.lander-<random>.tmp` beside `location`, or `None` for a path without a file name.
fn temp_for(location: &Path) -> Option<Path> {
    let name = location.filename()?;
    let tmp = format!(".{name}{TEMP_MARK}{:016x}.tmp", rand::random::<u64>());
    let parts: Vec<_> = location.parts().collect();
    let parent = Path::from_iter(parts[..parts.len().saturating_sub(1)].iter().cloned());
    Some(parent.clone().join(tmp))
}

#[async_trait]
impl ObjectStore for CreateByRename {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let Some(temp) = temp_for(location).filter(|_| matches!(opts.mode, PutMode::Create)) else {
            return self.inner.put_opts(location, payload, opts).await;
        };
        // Taken already: lost before writing a byte (the client checks this too).
        match self.inner.head(location).await {
            Ok(_) => {
                return Err(object_store::Error::AlreadyExists {
                    path: location.to_string(),
                    source: "the object exists".into(),
                })
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let put = PutOptions {
            mode: PutMode::Overwrite,
            ..opts
        };
        let written = self.inner.put_opts(&temp, payload, put).await?;
        match self.inner.rename_if_not_exists(&temp, location).await {
            Ok(()) => Ok(written),
            Err(e) => {
                // Lost the race (or the rename failed): the temporary is ours alone, remove it.
                if let Err(d) = self.inner.delete(&temp).await {
                    tracing::warn!(temp = %temp, error = %d, "could not delete the temporary of a put that did not take its name");
                }
                Err(e)
            }
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_are_hidden_beside_their_target() {
        let t = temp_for(&Path::from("a/t/_delta_log/00000000000000000007.json")).expect("name");
        let s = t.to_string();
        assert!(
            s.starts_with("a/t/_delta_log/.00000000000000000007.json.lander-"),
            "{s}"
        );
        assert!(s.ends_with(".tmp"));
        assert_ne!(
            temp_for(&Path::from("x.json")),
            temp_for(&Path::from("x.json"))
        );
    }
}
