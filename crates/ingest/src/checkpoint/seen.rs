//! The table version up to which this checkpoint has seen what other writers committed (`seen/<dataset>`), for
//! the cross-worker dedup check (`crate::modes::cross_check`).

use super::{CheckpointError, CheckpointStore, Result};

fn key(dataset: &str) -> String {
    format!("seen/{dataset}")
}

impl CheckpointStore {
    /// The Delta version of `dataset`'s table up to which every other writer's committed parts are reflected in
    /// the local dedup index (`None`: never recorded).
    ///
    /// # Errors
    /// [`CheckpointError::Sled`], or [`CheckpointError::Corrupt`] for a value that is not 8 bytes.
    pub(crate) fn seen_version(&self, dataset: &str) -> Result<Option<u64>> {
        let k = key(dataset);
        match self.get_raw(&k)? {
            None => Ok(None),
            Some(v) => {
                let bytes: [u8; 8] =
                    v.as_ref()
                        .try_into()
                        .map_err(|_| CheckpointError::Corrupt {
                            dir: self.dir.clone(),
                            key: k.clone(),
                            message: format!("expected 8 bytes, found {}", v.len()),
                        })?;
                Ok(Some(u64::from_be_bytes(bytes)))
            }
        }
    }

    /// Durably records [`CheckpointStore::seen_version`].
    ///
    /// # Errors
    /// [`CheckpointError::Sled`].
    pub(crate) fn set_seen_version(&self, dataset: &str, version: u64) -> Result<()> {
        self.put_raw(&key(dataset), &version.to_be_bytes())?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_version_round_trips_per_dataset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cp = CheckpointStore::open(dir.path()).expect("open");
        assert_eq!(cp.seen_version("a").expect("read"), None);
        cp.set_seen_version("a", 7).expect("write");
        cp.set_seen_version("b", 9).expect("write");
        assert_eq!(cp.seen_version("a").expect("read"), Some(7));
        drop(cp);
        let cp = CheckpointStore::open(dir.path()).expect("reopen");
        assert_eq!(cp.seen_version("b").expect("read"), Some(9));
    }
}
