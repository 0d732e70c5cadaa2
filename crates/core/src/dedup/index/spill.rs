//! The keys of one day being loaded from bronze, with memory bounded whatever the day's size: keys gather in a
//! buffer of [`SPILL_KEYS`]; a full buffer is sorted and appended to a temporary file as one sorted chunk, and
//! the day's run is written from a merge of those chunks ([`write_spilled_run`]), so a day of 5M keys (80 MB)
//! costs one 16 MB buffer, the filter and the fences in memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::run::{bloom_build_from, write_run, write_run_with};
use super::{io_err, Result};

/// Keys held before a sorted chunk is spilled: 16 MB.
pub(crate) const SPILL_KEYS: usize = 1 << 20;
const KEY_LEN: usize = 16;

/// The keys of a day being loaded (see the module doc).
pub struct KeySpill {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    buf: Vec<u128>,
    /// Sorted, distinct chunks in the file: (offset in keys, keys).
    chunks: Vec<(u64, u64)>,
    spilled: u64,
    limit: usize,
}

impl std::fmt::Debug for KeySpill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySpill")
            .field("path", &self.path)
            .field("keys", &self.len())
            .finish()
    }
}

impl KeySpill {
    /// An empty set of keys whose chunks, if any, go to the temporary file `path` (deleted on drop).
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            buf: Vec::new(),
            chunks: Vec::new(),
            spilled: 0,
            limit: SPILL_KEYS,
        }
    }

    /// Keys added so far (with repeats).
    pub(crate) fn len(&self) -> u64 {
        self.spilled + self.buf.len() as u64
    }

    /// Adds `keys`.
    ///
    /// # Errors
    /// [`super::IndexError::Io`] when a chunk cannot be spilled.
    pub fn extend(&mut self, keys: &[u128]) -> Result<()> {
        let mut keys = keys;
        while !keys.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(self.limit);
            }
            let take = keys.len().min(self.limit - self.buf.len());
            self.buf.extend_from_slice(&keys[..take]);
            keys = &keys[take..];
            if self.buf.len() == self.limit {
                self.spill()?;
            }
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        super::sort_on_two_threads(&mut self.buf);
        self.buf.dedup();
        if self.file.is_none() {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.path)
                .map_err(io_err(&self.path))?;
            self.file = Some(BufWriter::with_capacity(1 << 20, f));
        }
        let w = self.file.as_mut().expect("just created");
        let at = self.chunks.last().map_or(0, |(o, n)| o + n);
        for k in &self.buf {
            w.write_all(&k.to_le_bytes()).map_err(io_err(&self.path))?;
        }
        self.chunks.push((at, self.buf.len() as u64));
        self.spilled += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

impl Drop for KeySpill {
    fn drop(&mut self) {
        if !self.chunks.is_empty() || self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes the keys of `spill` (sorted, distinct) as a run at `path`: from memory when they never left the
/// buffer, else from two merges of the spilled chunks (one builds the filter and fences, one writes the keys).
pub(super) fn write_spilled_run(path: &Path, mut spill: KeySpill) -> Result<u64> {
    if spill.chunks.is_empty() {
        let mut keys = std::mem::take(&mut spill.buf);
        super::sort_on_two_threads(&mut keys);
        keys.dedup();
        write_run(path, &keys)?;
        return Ok(keys.len() as u64);
    }
    if !spill.buf.is_empty() {
        spill.spill()?;
    }
    spill.buf = Vec::new();
    let mut w = spill.file.take().expect("chunks were spilled");
    w.flush().map_err(io_err(&spill.path))?;
    let file = w
        .into_inner()
        .map_err(|e| io_err(&spill.path)(e.into_error()))?;
    // Filter sized for every key spilled (exact when the day's keys are distinct, as bronze's are).
    let mut n = 0u64;
    let mut fences = Vec::new();
    let filter = bloom_build_from(spill.spilled as usize, |add| {
        merge(&file, &spill.path, &spill.chunks, |k| {
            if n.is_multiple_of(super::run::BLOCK_KEYS as u64) {
                fences.push(k);
            }
            n += 1;
            add(k);
            Ok(())
        })
    })?;
    write_run_with(path, n, &filter, &fences, |out| {
        merge(&file, &spill.path, &spill.chunks, out)
    })?;
    Ok(n)
}

/// Keys read from a chunk at a time during a merge (256 KiB).
const READ_KEYS: u64 = 1 << 14;

/// One spilled chunk being merged: positional reads, so the chunks share one file handle.
struct ChunkReader {
    at: u64,
    left: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    fn next(&mut self, file: &File, path: &Path) -> Result<Option<u128>> {
        use std::os::unix::fs::FileExt;
        if self.pos == self.buf.len() {
            if self.left == 0 {
                return Ok(None);
            }
            let n = self.left.min(READ_KEYS);
            self.buf.resize(n as usize * KEY_LEN, 0);
            file.read_exact_at(&mut self.buf, self.at * KEY_LEN as u64)
                .map_err(io_err(path))?;
            self.at += n;
            self.left -= n;
            self.pos = 0;
        }
        let k = u128::from_le_bytes(
            self.buf[self.pos..self.pos + KEY_LEN]
                .try_into()
                .expect("16 bytes"),
        );
        self.pos += KEY_LEN;
        Ok(Some(k))
    }
}

/// Calls `each` with every distinct key of the sorted chunks, ascending.
fn merge(
    file: &File,
    path: &Path,
    chunks: &[(u64, u64)],
    mut each: impl FnMut(u128) -> Result<()>,
) -> Result<()> {
    let mut readers: Vec<ChunkReader> = chunks
        .iter()
        .map(|(at, n)| ChunkReader {
            at: *at,
            left: *n,
            buf: Vec::new(),
            pos: 0,
        })
        .collect();
    let mut heap = BinaryHeap::with_capacity(readers.len());
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(k) = r.next(file, path)? {
            heap.push(Reverse((k, i)));
        }
    }
    let mut last = None;
    while let Some(Reverse((k, i))) = heap.pop() {
        if last != Some(k) {
            each(k)?;
            last = Some(k);
        }
        if let Some(k) = readers[i].next(file, path)? {
            heap.push(Reverse((k, i)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::run::Run;
    use super::*;

    #[test]
    fn a_spilled_day_is_written_as_one_sorted_distinct_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tmp = dir.path().join(".spill.tmp");
        let mut spill = KeySpill::new(tmp.clone());
        spill.limit = 1000;
        // 10,000 keys in pieces of 777, each key twice (across chunks), in a scrambled order.
        let keys: Vec<u128> = (0..10_000u128)
            .map(|i| (i * 7919) % 10_000 * 0x1_0000_0001)
            .collect();
        for piece in keys.chunks(777).chain(keys.chunks(777)) {
            spill.extend(piece).expect("extend");
        }
        assert_eq!(spill.len(), 20_000);
        assert!(tmp.exists(), "chunks spilled");
        let path = dir.path().join(super::super::run_name(5, 0, 1));
        assert_eq!(write_spilled_run(&path, spill).expect("write"), 10_000);
        assert!(!tmp.exists(), "the spill file is deleted");
        let run = Run::open(&path, 0, 1).expect("open");
        let mut want = keys.clone();
        want.sort_unstable();
        assert_eq!(run.read_keys().expect("keys"), want);
        assert!(keys.iter().all(|k| run.contains(*k).expect("read")));
        assert!(!run.contains(3).expect("read"));
    }
}
