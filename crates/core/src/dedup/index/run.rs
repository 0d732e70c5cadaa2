//! One run file of the dedup index: its name, its format, writing it durably and looking keys up in it.
//!
//! File format: `LNDRUN03`, key count (u64 LE), 20 reserved bytes, filter length (u64 LE), the filter (a blocked
//! Bloom filter: 512-bit blocks as u64 LE words), padding to 16 bytes, fences (u128 BE: the first key of each
//! block of 256 keys), padding to 4 KiB, keys (u128 BE, ascending). The filter and the fences are read into
//! memory when a run is opened; an exact check reads one block of keys.
//!
//! Runs written before (`LNDRUN02`) hold a binary fuse filter (descriptor: seed u64, three u32, LE, in the 20
//! bytes) and are still read. The Bloom filter is built in one pass over the keys, with no memory beyond itself
//! (a binary fuse builder needs about 25 bytes a key: 125 MB for a GH Archive day of 5M keys loaded from
//! bronze).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use xorf::{BinaryFuse8, Filter};

use super::{io_err, IndexError, Result};
use crate::dedup::fold;

const MAGIC: &[u8; 8] = b"LNDRUN03";
/// Runs with a binary fuse filter (read, no longer written).
const MAGIC_FUSE: &[u8; 8] = b"LNDRUN02";
/// Filter bits per key: with 7 probes in one 512-bit block, about 0.4% false positives.
const BLOOM_BITS_PER_KEY: usize = 12;
/// Bits probed per key, 9 bits of the key's high half each.
const BLOOM_PROBES: u32 = 7;
/// u64 words in a filter block (512 bits, one cache line).
const BLOOM_BLOCK_WORDS: usize = 8;
/// magic, key count, filter descriptor (seed u64, 3 × u32), fingerprint length.
const HEADER_LEN: usize = 8 + 8 + 20 + 8;
const KEY_LEN: usize = 16;
/// Keys per block: one 4 KiB page, so an exact check after a filter hit reads a single page of keys (a plain
/// binary search over a 70 MB run touches a dozen pages per check).
pub(super) const BLOCK_KEYS: usize = 256;
/// The key section starts on a page boundary so each block is exactly one page.
const PAGE: usize = 4096;
/// Days from 0001-01-01 (chrono's day count) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// The calendar date of a UTC day number (days since 1970-01-01).
pub(crate) fn date_of(day: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day.saturating_add(EPOCH_DAYS_FROM_CE))
        .expect("event days lie within chrono's date range")
}

fn day_from_date(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - EPOCH_DAYS_FROM_CE
}

/// Name of a run: `<YYYY-MM-DD>-b<lo>-b<hi>.run`.
pub(super) fn run_name(day: i32, lo: u64, hi: u64) -> String {
    format!(
        "{}-b{lo:020}-b{hi:020}.run",
        date_of(day).format("%Y-%m-%d")
    )
}

pub(super) fn parse_run_name(name: &str) -> Option<(i32, u64, u64)> {
    let stem = name.strip_suffix(".run")?;
    let (date, rest) = stem.split_at_checked(10)?;
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let rest = rest.strip_prefix("-b")?;
    let (lo, hi) = rest.split_once("-b")?;
    Some((day_from_date(date), lo.parse().ok()?, hi.parse().ok()?))
}

/// One immutable run: its filter and fences in memory, its keys on disk.
pub(super) struct Run {
    pub(super) lo: u64,
    pub(super) hi: u64,
    pub(super) keys: u64,
    pub(super) path: PathBuf,
    filter: KeyFilter,
    fences: Vec<u128>,
    file: File,
    keys_at: usize,
    pub(super) len: u64,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("path", &self.path)
            .field("keys", &self.keys)
            .finish()
    }
}

/// A run's filter: says "maybe" for every key of the run, and "no" for most others.
enum KeyFilter {
    /// Binary fuse filter over the folded keys (runs written before `LNDRUN03`).
    Fuse(BinaryFuse8),
    /// Blocked Bloom filter: the key's low half picks a 512-bit block, its high half the bits in it.
    Bloom(Box<[u64]>),
}

impl KeyFilter {
    fn contains(&self, key: u128) -> bool {
        match self {
            KeyFilter::Fuse(f) => f.contains(&fold(key)),
            KeyFilter::Bloom(words) => {
                let block = bloom_block(words.len(), key);
                bloom_bits(key).all(|(w, bit)| words[block + w] & bit != 0)
            }
        }
    }

    fn bytes(&self) -> usize {
        match self {
            KeyFilter::Fuse(f) => f.fingerprints.len(),
            KeyFilter::Bloom(words) => words.len() * 8,
        }
    }
}

/// The first word of `key`'s block in a filter of `words` words (keys are hashes: their halves are uniform).
fn bloom_block(words: usize, key: u128) -> usize {
    let blocks = (words / BLOOM_BLOCK_WORDS) as u128;
    ((u128::from(key as u64) * blocks) >> 64) as usize * BLOOM_BLOCK_WORDS
}

/// The (word in the block, bit mask) pairs of `key`.
fn bloom_bits(key: u128) -> impl Iterator<Item = (usize, u64)> {
    let h = (key >> 64) as u64;
    (0..BLOOM_PROBES).map(move |i| {
        let bit = (h >> (i * 9)) & 511;
        ((bit / 64) as usize, 1u64 << (bit % 64))
    })
}

/// The Bloom filter of `keys`, in one pass.
fn bloom_build(keys: &[u128]) -> Vec<u64> {
    bloom_build_from(keys.len(), |add| {
        keys.iter().for_each(|k| add(*k));
        Ok(())
    })
    .expect("adding from memory does not fail")
}

/// The Bloom filter, sized for `n` keys, of the keys `keys` feeds to its argument.
pub(super) fn bloom_build_from(
    n: usize,
    keys: impl FnOnce(&mut dyn FnMut(u128)) -> Result<()>,
) -> Result<Vec<u64>> {
    let blocks = (n * BLOOM_BITS_PER_KEY).div_ceil(512).max(1);
    let mut words = vec![0u64; blocks * BLOOM_BLOCK_WORDS];
    let len = words.len();
    keys(&mut |k| {
        let block = bloom_block(len, k);
        for (w, bit) in bloom_bits(k) {
            words[block + w] |= bit;
        }
    })?;
    Ok(words)
}

/// Where the sections of a run with `keys` keys and `fp_len` fingerprint bytes start: (fences, keys, end).
fn layout(keys: u64, fp_len: usize) -> Option<(usize, usize, usize)> {
    let keys = usize::try_from(keys).ok()?;
    let fences_at = HEADER_LEN.checked_add(fp_len)?.next_multiple_of(KEY_LEN);
    let fences_len = keys.div_ceil(BLOCK_KEYS).checked_mul(KEY_LEN)?;
    let keys_at = fences_at.checked_add(fences_len)?.next_multiple_of(PAGE);
    let end = keys_at.checked_add(keys.checked_mul(KEY_LEN)?)?;
    Some((fences_at, keys_at, end))
}

impl Run {
    /// Bytes of filter and fences this run keeps in memory.
    pub(super) fn memory_bytes(&self) -> u64 {
        (self.filter.bytes() + self.fences.len() * KEY_LEN) as u64
    }

    pub(super) fn open(path: &Path, lo: u64, hi: u64) -> Result<Run> {
        use std::os::unix::fs::FileExt;
        let corrupt = |reason: String| IndexError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let mut header = [0u8; HEADER_LEN];
        if len < HEADER_LEN as u64 {
            return Err(corrupt(format!("{len} bytes: shorter than the header")));
        }
        file.read_exact_at(&mut header, 0).map_err(io_err(path))?;
        let fuse = &header[..8] == MAGIC_FUSE;
        if !fuse && &header[..8] != MAGIC {
            return Err(corrupt("not a lander dedup run (bad magic)".into()));
        }
        let u64_at =
            |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
        let u32_at =
            |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
        let keys = u64_at(8);
        let descriptor = xorf::Descriptor {
            seed: u64_at(16),
            segment_length: u32_at(24),
            segment_length_mask: u32_at(28),
            segment_count_length: u32_at(32),
        };
        let fp_len = usize::try_from(u64_at(36)).map_err(|_| corrupt("huge filter".into()))?;
        let Some((fences_at, keys_at, end)) = layout(keys, fp_len).filter(|l| l.2 as u64 == len)
        else {
            return Err(corrupt(format!(
                "{len} bytes do not hold {keys} keys and a {fp_len}-byte filter"
            )));
        };
        // The filter and fences are probed for every lookup: read them into memory once.
        let mut fingerprints = vec![0u8; fp_len];
        file.read_exact_at(&mut fingerprints, HEADER_LEN as u64)
            .map_err(io_err(path))?;
        let mut raw = vec![0u8; keys_at - fences_at];
        file.read_exact_at(&mut raw, fences_at as u64)
            .map_err(io_err(path))?;
        let fences = raw
            .chunks_exact(KEY_LEN)
            .take((keys as usize).div_ceil(BLOCK_KEYS))
            .map(|c| u128::from_be_bytes(c.try_into().expect("16 bytes")))
            .collect();
        debug_assert_eq!(end as u64, len);
        let filter = if fuse {
            KeyFilter::Fuse(BinaryFuse8 {
                descriptor,
                fingerprints: fingerprints.into_boxed_slice(),
            })
        } else {
            if fp_len == 0 || fp_len % (BLOOM_BLOCK_WORDS * 8) != 0 {
                return Err(corrupt(format!(
                    "a {fp_len}-byte filter is not whole blocks"
                )));
            }
            KeyFilter::Bloom(
                fingerprints
                    .chunks_exact(8)
                    .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
                    .collect(),
            )
        };
        Ok(Run {
            lo,
            hi,
            keys,
            path: path.to_path_buf(),
            filter,
            fences,
            file,
            keys_at,
            len,
        })
    }

    /// Whether the run holds `key`: the filter first, then the fences (in memory) pick the one block (page) that
    /// can hold it, searched exactly.
    ///
    /// # Errors
    /// [`IndexError::Io`] when the block cannot be read.
    pub(super) fn contains(&self, key: u128) -> Result<bool> {
        use std::os::unix::fs::FileExt;
        if !self.filter.contains(key) {
            return Ok(false);
        }
        let block = self.fences.partition_point(|f| *f <= key);
        if block == 0 {
            return Ok(false);
        }
        let first = (block - 1) * BLOCK_KEYS;
        let n = BLOCK_KEYS.min(self.keys as usize - first);
        let mut page = [0u8; PAGE];
        // A read, not a mapping: mapped pages are faulted in 64 KiB at a time (the kernel's fault-around), which
        // made 3,000 filter hits cost 190 MB of resident file pages.
        self.file
            .read_exact_at(
                &mut page[..n * KEY_LEN],
                (self.keys_at + first * KEY_LEN) as u64,
            )
            .map_err(io_err(&self.path))?;
        let at = |i: usize| {
            u128::from_be_bytes(page[i * KEY_LEN..(i + 1) * KEY_LEN].try_into().expect("16"))
        };
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match at(mid).cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(true),
            }
        }
        Ok(false)
    }

    /// Every key, ascending (for merges and exports).
    pub(super) fn read_keys(&self) -> Result<Vec<u128>> {
        use std::io::{Read, Seek};
        let mut f = &self.file;
        f.seek(std::io::SeekFrom::Start(self.keys_at as u64))
            .map_err(io_err(&self.path))?;
        let mut r = std::io::BufReader::with_capacity(1 << 20, f);
        let mut out = Vec::with_capacity(self.keys as usize);
        let mut buf = [0u8; KEY_LEN];
        for _ in 0..self.keys {
            r.read_exact(&mut buf).map_err(io_err(&self.path))?;
            out.push(u128::from_be_bytes(buf));
        }
        Ok(out)
    }
}

/// Writes `keys` (sorted, distinct) as a run at `path`: temp file, fsync, rename, directory fsync.
pub(super) fn write_run(path: &Path, keys: &[u128]) -> Result<()> {
    debug_assert!(keys.windows(2).all(|w| w[0] < w[1]));
    let filter = bloom_build(keys);
    let fences: Vec<u128> = keys.chunks(BLOCK_KEYS).map(|b| b[0]).collect();
    write_run_with(path, keys.len() as u64, &filter, &fences, |out| {
        keys.iter().try_for_each(|k| out(*k))
    })
}

/// Writes a run of `n` keys (sorted, distinct) whose filter and fences are given and whose keys `keys` feeds to
/// its argument in order: temp file, fsync, rename, directory fsync.
pub(super) fn write_run_with(
    path: &Path,
    n: u64,
    filter: &[u64],
    fences: &[u128],
    keys: impl FnOnce(&mut dyn FnMut(u128) -> Result<()>) -> Result<()>,
) -> Result<()> {
    let dir = path.parent().expect("run paths have a parent directory");
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .expect("run paths have a file name")
            .to_string_lossy()
    ));
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let fp_len = filter.len() * 8;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&n.to_le_bytes());
    header.extend_from_slice(&[0u8; 20]);
    header.extend_from_slice(&(fp_len as u64).to_le_bytes());
    let (fences_at, keys_at, _) =
        layout(n, fp_len).expect("a run that fits in memory has a layout");
    debug_assert_eq!(fences.len() as u64, n.div_ceil(BLOCK_KEYS as u64));
    let head = |w: &mut BufWriter<File>| -> std::io::Result<()> {
        w.write_all(&header)?;
        for word in filter {
            w.write_all(&word.to_le_bytes())?;
        }
        w.write_all(&vec![0u8; fences_at - HEADER_LEN - fp_len])?;
        for f in fences {
            w.write_all(&f.to_be_bytes())?;
        }
        w.write_all(&vec![0u8; keys_at - fences_at - fences.len() * KEY_LEN])
    };
    head(&mut w).map_err(io_err(&tmp))?;
    let mut written = 0u64;
    keys(&mut |k| {
        written += 1;
        w.write_all(&k.to_be_bytes()).map_err(io_err(&tmp))
    })?;
    debug_assert_eq!(written, n);
    w.flush().map_err(io_err(&tmp))?;
    w.get_ref().sync_all().map_err(io_err(&tmp))?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

pub(super) fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

/// Deletes every run of the UTC days `days` in the run directory `dir` of one dataset (on disk; for a checkpoint
/// no process holds), base runs first, so a crash midway never leaves a day looking complete with keys missing.
/// The next run of the dataset reads those days back from bronze when a batch touches them. Returns the runs
/// deleted.
///
/// # Errors
/// [`IndexError::Io`] when the directory cannot be read or a run deleted.
pub fn forget_days(dir: &Path, days: &[i32]) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut doomed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((day, lo, _)) = parse_run_name(&name) {
            if days.contains(&day) {
                doomed.push((lo != 0, entry.path()));
            }
        }
    }
    doomed.sort();
    for (_, path) in &doomed {
        remove(path)?;
    }
    Ok(doomed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u64, salt: u64) -> Vec<u128> {
        let mut k: Vec<u128> = (0..n)
            .map(|i| crate::decode::key_hash(&salt.to_le_bytes(), &i.to_le_bytes()))
            .collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn bloom_runs_find_every_key_and_few_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(run_name(5, 1, 1));
        let ks = keys(100_000, 1);
        write_run(&path, &ks).expect("write");
        let run = Run::open(&path, 1, 1).expect("open");
        assert!(ks.iter().all(|k| run.contains(*k).expect("read")));
        let others = keys(100_000, 2);
        let maybe = others.iter().filter(|k| run.filter.contains(**k)).count();
        assert!(maybe < 1_000, "{maybe} false positives in 100k");
        assert!(!others.iter().any(|k| run.contains(*k).expect("read")));
    }

    #[test]
    fn runs_written_with_a_binary_fuse_filter_are_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(run_name(5, 1, 1));
        let ks = keys(10_000, 3);
        let folded: Vec<u64> = ks.iter().map(|k| fold(*k)).collect();
        let f = BinaryFuse8::try_from(&folded).expect("filter");
        let (fences_at, keys_at, _) =
            layout(ks.len() as u64, f.fingerprints.len()).expect("layout");
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC_FUSE);
        b.extend_from_slice(&(ks.len() as u64).to_le_bytes());
        b.extend_from_slice(&f.descriptor.seed.to_le_bytes());
        b.extend_from_slice(&f.descriptor.segment_length.to_le_bytes());
        b.extend_from_slice(&f.descriptor.segment_length_mask.to_le_bytes());
        b.extend_from_slice(&f.descriptor.segment_count_length.to_le_bytes());
        b.extend_from_slice(&(f.fingerprints.len() as u64).to_le_bytes());
        b.extend_from_slice(&f.fingerprints);
        b.resize(fences_at, 0);
        b.extend(ks.chunks(BLOCK_KEYS).flat_map(|c| c[0].to_be_bytes()));
        b.resize(keys_at, 0);
        b.extend(ks.iter().flat_map(|k| k.to_be_bytes()));
        std::fs::write(&path, b).expect("write");
        let run = Run::open(&path, 1, 1).expect("open");
        assert!(matches!(run.filter, KeyFilter::Fuse(_)));
        assert!(ks.iter().all(|k| run.contains(*k).expect("read")));
        assert!(!keys(1_000, 4)
            .iter()
            .any(|k| run.contains(*k).expect("read")));
        assert_eq!(run.read_keys().expect("keys"), ks);
    }
}
