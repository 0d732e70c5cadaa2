//! The single-writer lock on `<dir>/LOCK` (holding the writer's PID), and the copy a reader takes of a locked
//! store.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use super::{io_err, CheckpointError, CheckpointStore, Result};

/// Takes an exclusive, non-blocking `flock` on `<dir>/LOCK` and writes this process's PID into it; the returned
/// file holds the lock until it is dropped.
///
/// # Errors
/// [`CheckpointError::Locked`] naming the holder's PID when another open file holds the lock (flock is per open
/// file description, so a second open in the same process conflicts too); [`CheckpointError::Io`] otherwise.
pub(super) fn try_lock(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    // Called through the trait: std's inherent `File::try_lock` needs Rust 1.89, above this crate's MSRV.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(CheckpointError::Locked {
                dir: dir.to_path_buf(),
                pid: if pid.is_empty() { "unknown" } else { pid }.to_string(),
            });
        }
        Err(fs4::TryLockError::Error(source)) => return Err(CheckpointError::Io { path, source }),
    }
    file.set_len(0).map_err(io_err(&path))?;
    file.rewind().map_err(io_err(&path))?;
    write!(file, "{}", std::process::id()).map_err(io_err(&path))?;
    file.sync_all().map_err(io_err(&path))?;
    Ok(file)
}

pub(super) fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

// Read-only helpers for `lander checkpoint` (src/cli/checkpoint/).
impl CheckpointStore {
    /// Whether `dir` holds a checkpoint store, i.e. a run (or an import) has created one there. Does not open
    /// or lock anything.
    pub fn exists(dir: &Path) -> bool {
        dir.join("sled").is_dir()
    }

    /// The PID written in `<dir>/LOCK` by the process that holds (or last held) the single-writer lock, when
    /// the file is readable and not empty. Reading it does not take the lock.
    pub fn lock_holder(dir: &Path) -> Option<String> {
        let text = std::fs::read_to_string(dir.join("LOCK")).ok()?;
        let pid = text.trim();
        (!pid.is_empty()).then(|| pid.to_string())
    }
}
