//! The libhdfs calls that carry names, made directly (through `hdfs-sys`) in JNI's *modified UTF-8*.
//!
//! libhdfs passes every path through JNI's `NewStringUTF` and hands names back from `GetStringUTFChars`, both
//! in modified UTF-8: a character beyond U+FFFF (an emoji, 4 bytes in UTF-8) is a surrogate pair of two 3-byte
//! sequences, and NUL is `C0 80`. The `hdrs` crate passes Rust's UTF-8 as is and reads names back with
//! `CStr::to_str(..).expect(..)`, so listing a directory that holds an emoji name panics (and the whole listing
//! is lost), and opening such a name asks for another one. Here paths are encoded, and names decoded, both
//! ways, so every name HDFS can hold is listed and read under its own name.
//!
//! The handle comes from its own `hdfsBuilderConnect` with the same NameNode and configuration as the `hdrs`
//! client: Hadoop caches `FileSystem` instances per scheme, authority and user, so both share one Java client.
//! Neither is ever disconnected (closing the cached instance would close it under the other).

use std::ffi::{c_int, c_void, CStr, CString};
use std::io;

use chrono::{DateTime, Utc};
use hdfs_sys::{
    hdfsBuilderConfSetStr, hdfsBuilderConnect, hdfsBuilderSetNameNode, hdfsCloseFile, hdfsCopy,
    hdfsCreateDirectory, hdfsDelete, hdfsFS, hdfsFileInfo, hdfsFreeFileInfo, hdfsGetPathInfo,
    hdfsListDirectory, hdfsNewBuilder, hdfsOpenFile, hdfsPread, hdfsRename,
    tObjectKind_kObjectKindDirectory,
};

/// One directory entry or path status, as libhdfs reports it, with its name decoded.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// The last segment of the path (the file or directory name).
    pub name: String,
    /// Whether it is a directory.
    pub(crate) is_dir: bool,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (libhdfs reports whole seconds).
    pub modified: DateTime<Utc>,
}

/// A libhdfs file system handle. libhdfs handles are thread safe.
#[derive(Debug)]
pub(super) struct RawFs(hdfsFS);

// SAFETY: an `hdfsFS` is a global JNI reference to a thread-safe Hadoop `FileSystem`; libhdfs attaches each
// calling thread to the JVM itself.
unsafe impl Send for RawFs {}
// SAFETY: as above.
unsafe impl Sync for RawFs {}

/// `s` as a C string in JNI's modified UTF-8 (see the module docs).
pub(super) fn jni_path(s: &str) -> CString {
    let mut out = Vec::with_capacity(s.len() + 8);
    for c in s.chars() {
        let mut units = [0u16; 2];
        match c {
            '\0' => out.extend_from_slice(&[0xC0, 0x80]),
            c if (c as u32) > 0xFFFF => {
                for u in c.encode_utf16(&mut units).iter() {
                    let u = u32::from(*u);
                    out.extend_from_slice(&[
                        0xE0 | (u >> 12) as u8,
                        0x80 | ((u >> 6) & 0x3F) as u8,
                        0x80 | (u & 0x3F) as u8,
                    ]);
                }
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes()),
        }
    }
    CString::new(out).expect("modified UTF-8 has no NUL byte: NUL is encoded as C0 80")
}

/// Decodes modified UTF-8 (or plain UTF-8) into a `String`: surrogate pairs become one character, `C0 80` a
/// NUL. A byte sequence that is neither becomes U+FFFD rather than a panic.
pub(super) fn from_jni(bytes: &[u8]) -> String {
    let mut units: Vec<u16> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let cont = |k: usize| bytes.get(i + k).map(|x| u32::from(x & 0x3F));
        let (cp, len) = match b {
            0x00..=0x7F => (Some(u32::from(b)), 1),
            0xC0..=0xDF => (cont(1).map(|c1| (u32::from(b & 0x1F) << 6) | c1), 2),
            0xE0..=0xEF => match (cont(1), cont(2)) {
                (Some(c1), Some(c2)) => (Some((u32::from(b & 0x0F) << 12) | (c1 << 6) | c2), 3),
                _ => (None, 1),
            },
            0xF0..=0xF7 => match (cont(1), cont(2), cont(3)) {
                (Some(c1), Some(c2), Some(c3)) => (
                    Some((u32::from(b & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3),
                    4,
                ),
                _ => (None, 1),
            },
            _ => (None, 1),
        };
        match cp {
            Some(cp) if cp > 0xFFFF => {
                let c = char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER);
                units.extend_from_slice(c.encode_utf16(&mut [0u16; 2]));
            }
            // A 16-bit unit, surrogate halves included: paired up by the UTF-16 decoding below.
            Some(cp) => units.push(cp as u16),
            None => units.push(0xFFFD),
        }
        i += len;
    }
    String::from_utf16_lossy(&units)
}

/// The last `/`-separated segment of a name libhdfs returned (`hdfs://nn:port/dir/name` → `name`).
fn last_segment(bytes: &[u8]) -> &[u8] {
    match bytes.iter().rposition(|b| *b == b'/') {
        Some(i) => &bytes[i + 1..],
        None => bytes,
    }
}

/// The error libhdfs left in errno (an `EIO` if it left none).
fn last_error() -> io::Error {
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(0) | None => io::Error::from_raw_os_error(libc::EIO),
        _ => e,
    }
}

/// Clears errno, so that a null result with errno 0 reads as "empty", as libhdfs means it.
fn clear_errno() {
    // SAFETY: errno is thread-local; writing it is what `errno::set_errno` does.
    unsafe { *libc::__errno_location() = 0 };
}

fn entry(info: &hdfsFileInfo) -> Entry {
    // SAFETY: libhdfs fills `mName` with a NUL-terminated string that lives as long as `info`.
    let name = unsafe { CStr::from_ptr(info.mName) }.to_bytes();
    Entry {
        name: from_jni(last_segment(name)),
        is_dir: info.mKind == tObjectKind_kObjectKindDirectory,
        size: u64::try_from(info.mSize).unwrap_or(0),
        // `c_long` (seconds) is 32 bits on some targets, where the conversion is not the identity.
        #[allow(clippy::useless_conversion)]
        modified: DateTime::from_timestamp(i64::from(info.mLastMod), 0).unwrap_or_default(),
    }
}

impl RawFs {
    /// Connects to `namenode` with the configuration keys `config` (applied as `hdrs::ClientBuilder` does).
    pub(super) fn connect(namenode: &str, config: &[(String, String)]) -> io::Result<Self> {
        let c =
            |s: &str| CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
        let nn = c(namenode)?;
        let pairs = config
            .iter()
            .map(|(k, v)| Ok((c(k)?, c(v)?)))
            .collect::<io::Result<Vec<_>>>()?;
        clear_errno();
        // SAFETY: the builder is consumed by `hdfsBuilderConnect`; the strings outlive the calls.
        let fs = unsafe {
            let builder = hdfsNewBuilder();
            hdfsBuilderSetNameNode(builder, nn.as_ptr());
            // libhdfs prepends each option; the last value set for a key must win, as in `hdrs`.
            for (k, v) in pairs.iter().rev() {
                hdfsBuilderConfSetStr(builder, k.as_ptr(), v.as_ptr());
            }
            hdfsBuilderConnect(builder)
        };
        if fs.is_null() {
            return Err(last_error());
        }
        Ok(Self(fs))
    }

    /// The entries of the directory `path` (any order). A missing directory is `NotFound`.
    pub(super) fn list(&self, path: &str) -> io::Result<Vec<Entry>> {
        let p = jni_path(path);
        let mut n: c_int = 0;
        clear_errno();
        // SAFETY: `p` outlives the call; the array is freed below with its length.
        let infos = unsafe { hdfsListDirectory(self.0, p.as_ptr(), &mut n) };
        if infos.is_null() {
            // Null with errno 0 is an empty directory.
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(0) | None => Ok(Vec::new()),
                _ => Err(e),
            };
        }
        let count = usize::try_from(n).unwrap_or(0);
        // SAFETY: libhdfs returned `n` consecutive entries.
        let out = unsafe { std::slice::from_raw_parts(infos, count) }
            .iter()
            .map(entry)
            .collect();
        // SAFETY: allocated by `hdfsListDirectory` with `n` entries, freed once.
        unsafe { hdfsFreeFileInfo(infos, n) };
        Ok(out)
    }

    /// The status of `path`.
    pub(super) fn info(&self, path: &str) -> io::Result<Entry> {
        let p = jni_path(path);
        clear_errno();
        // SAFETY: `p` outlives the call; the entry is freed below.
        let info = unsafe { hdfsGetPathInfo(self.0, p.as_ptr()) };
        if info.is_null() {
            return Err(last_error());
        }
        // SAFETY: non-null, one entry, freed once.
        let e = entry(unsafe { &*info });
        unsafe { hdfsFreeFileInfo(info, 1) };
        Ok(e)
    }

    /// Reads `len` bytes of `path` from `offset` (fewer only if the file ends first: an `UnexpectedEof`).
    pub(crate) fn read_range(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let p = jni_path(path);
        clear_errno();
        // SAFETY: `p` outlives the call; the file is closed below on every path.
        let file = unsafe {
            hdfsOpenFile(self.0, p.as_ptr(), 0 /* O_RDONLY */, 0, 0, 0)
        };
        if file.is_null() {
            return Err(last_error());
        }
        let mut buf = vec![0u8; len];
        let mut filled = 0usize;
        let result = loop {
            if filled == len {
                break Ok(());
            }
            let want = i32::try_from(len - filled).unwrap_or(i32::MAX);
            let at = i64::try_from(offset + filled as u64).unwrap_or(i64::MAX);
            // SAFETY: the buffer has `len - filled >= want` bytes from `filled`.
            let n = unsafe {
                hdfsPread(
                    self.0,
                    file,
                    at,
                    buf[filled..].as_mut_ptr() as *mut c_void,
                    want,
                )
            };
            match n {
                n if n < 0 => break Err(last_error()),
                0 => {
                    break Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("file ended at byte {}", offset + filled as u64),
                    ))
                }
                n => filled += n as usize,
            }
        };
        // SAFETY: opened above, closed once.
        unsafe { hdfsCloseFile(self.0, file) };
        result.map(|()| buf)
    }

    /// Deletes the file `path`.
    pub(super) fn delete(&self, path: &str) -> io::Result<()> {
        let p = jni_path(path);
        clear_errno();
        // SAFETY: `p` outlives the call.
        match unsafe { hdfsDelete(self.0, p.as_ptr(), 0) } {
            0 => Ok(()),
            _ => Err(last_error()),
        }
    }

    /// Creates the directory `path` and its parents (present already is success).
    pub(crate) fn create_dir(&self, path: &str) -> io::Result<()> {
        let p = jni_path(path);
        clear_errno();
        // SAFETY: `p` outlives the call.
        match unsafe { hdfsCreateDirectory(self.0, p.as_ptr()) } {
            0 => Ok(()),
            _ => Err(last_error()),
        }
    }

    /// Copies the file `from` to `to` (a client-side read and write).
    pub(super) fn copy(&self, from: &str, to: &str) -> io::Result<()> {
        let (f, t) = (jni_path(from), jni_path(to));
        clear_errno();
        // SAFETY: both strings outlive the call; source and target are on this file system.
        match unsafe { hdfsCopy(self.0, f.as_ptr(), self.0, t.as_ptr()) } {
            0 => Ok(()),
            _ => Err(last_error()),
        }
    }

    /// Renames `from` to `to` (HDFS's old rename: refuses an existing target).
    pub(super) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (f, t) = (jni_path(from), jni_path(to));
        clear_errno();
        // SAFETY: both strings outlive the call.
        match unsafe { hdfsRename(self.0, f.as_ptr(), t.as_ptr()) } {
            0 => Ok(()),
            _ => Err(last_error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modified_utf8_round_trips_every_kind_of_character() {
        for s in [
            "plain.csv",
            "ventas_año_2024.csv",
            "emoji_📦🚀.csv",
            "日本語/データ.csv",
            "nul\0in.csv",
            "mixed 𝄞 é \u{FFFF} \u{10FFFF}",
        ] {
            let enc = jni_path(s);
            let bytes = enc.as_bytes();
            assert!(!bytes.iter().any(|b| (0xF0..=0xF7).contains(b)), "{s}");
            assert_eq!(from_jni(bytes), s);
            // Plain UTF-8 decodes too (a name written by another client, or a future libhdfs).
            assert_eq!(from_jni(s.as_bytes()), s);
        }
        // An emoji is two 3-byte surrogates in modified UTF-8.
        assert_eq!(jni_path("📦").as_bytes().len(), 6);
        // Garbage never panics.
        assert_eq!(from_jni(&[0xFF, b'a', 0xE0]), "\u{FFFD}a\u{FFFD}");
    }
}
