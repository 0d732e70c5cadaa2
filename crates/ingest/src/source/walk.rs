//! Listing a local landing directory without letting one bad entry stop the listing.
//!
//! Takes in the canonical root of a local landing zone and a dataset name, and produces the regular files below
//! `<root>/<dataset>/` as `object_store` [`ObjectMeta`] (the same locations, sizes and mtimes that
//! `LocalFileSystem` reports), plus a [`Fault`] for every entry that was skipped. This replaces
//! `LocalFileSystem::list` for the local backend because that listing follows every symlink and *ends* at its
//! first error: one symlink loop or one unreadable directory made the whole dataset fail, and whatever came after
//! it in walk order was never ingested.
//!
//! Guarantees:
//! - never fails: every problem is a [`Fault`] naming the entry, and the walk goes on with the next entry;
//! - only regular files are returned (a FIFO would block a reader forever; sockets and devices are not data);
//! - ignored names (dotfiles, `_` prefixes, temp suffixes) are pruned without being read, directories included;
//! - a symlink is followed only when its target lies outside landing *and* `follow_symlinks` is set. A symlink
//!   whose target lies inside landing is never followed: the target is listed under its own name already, and
//!   following it would list the same bytes twice (or forever, for a link to an ancestor). Each directory is
//!   entered at most once (by canonical path), so loops through followed links terminate too.
//!
//! This is the one place besides `store` that touches `std::fs`, and only for a local landing: it is blocking
//! and runs on the blocking pool (see [`list_local`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use object_store::ObjectMeta;

use super::names::is_ignored_name;
use crate::store::StoreLocation;

/// Why an entry of landing was skipped by a listing.
#[derive(Debug)]
pub(crate) struct Fault {
    /// Path relative to the landing root.
    pub(crate) path: String,
    /// What is wrong.
    pub(crate) reason: Skip,
}

/// What is wrong with a landing entry that a listing skips (the message is for the log).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Skip {
    /// A symlink whose target does not exist.
    #[error("broken symlink (its target does not exist); skipped")]
    BrokenLink,
    /// A chain of links the kernel gave up resolving (ELOOP).
    #[error("symlink loop (the chain of links never reaches a file); skipped")]
    LinkLoop,
    /// A path that cannot be resolved for another reason.
    #[error("cannot resolve its path: {0}; skipped")]
    Unresolvable(std::io::Error),
    /// A symlink to somewhere inside landing (relative path of the target).
    #[error("symlink to {0:?} inside landing: not followed (the target is listed under its own name; following it would read it twice, or loop)")]
    LinkInside(String),
    /// A symlink out of landing while `follow_symlinks` is off.
    #[error("symlink leaves landing (to {}): not followed (set follow_symlinks = true or pass --follow-symlinks to read it)", .0.display())]
    LinkOutside(PathBuf),
    /// A FIFO, socket or device.
    #[error(
        "not a regular file (a FIFO, socket or device would block or mislead a reader); skipped"
    )]
    NotRegular,
    /// Its metadata cannot be read.
    #[error("cannot read its metadata: {0}; skipped")]
    Metadata(std::io::Error),
    /// Its file type cannot be read.
    #[error("cannot read its file type: {0}; skipped")]
    FileType(std::io::Error),
    /// A directory that cannot be read.
    #[error("cannot read directory: {0}; skipped")]
    Directory(std::io::Error),
    /// An entry of a directory that cannot be read.
    #[error("cannot read an entry of the directory: {0}; skipped")]
    Entry(std::io::Error),
    /// A file name that is not UTF-8.
    #[error(
        "file name is not valid UTF-8 (no store path can name it); not read (rename the file)"
    )]
    NotUtf8,
    /// A name that has no store location (a control character in it): it cannot be read; rename it.
    #[error("{0}; not read (rename the file)")]
    NoLocation(crate::store::UnrepresentableName),
    /// The dataset directory is a symlink to a file.
    #[error("the dataset directory is a symlink to a file; skipped")]
    DatasetLinkToFile,
    /// The dataset "directory" is a file.
    #[error("expected a dataset directory, found a file; skipped")]
    DatasetIsFile,
}

/// What a local listing found.
#[derive(Debug, Default)]
pub(crate) struct LocalListing {
    /// Regular files, in no particular order.
    pub(crate) files: Vec<ObjectMeta>,
    /// Entries that were skipped, with why.
    pub(crate) faults: Vec<Fault>,
}

/// Checks one path (from a filesystem event) against the same rules as [`list_local`]: `Ok(true)` when it is a
/// regular file that may be read, `Ok(false)` when it is not a file at all (a directory; its files are listed on
/// their own) or is gone, and `Err` with the reason when it must be skipped.
pub(crate) fn check_local_path(
    root: &Path,
    rel: &str,
    follow_symlinks: bool,
) -> Result<bool, Skip> {
    let full = root.join(rel);
    let canonical = match std::fs::canonicalize(&full) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match std::fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_symlink() => Err(Skip::BrokenLink),
                _ => Ok(false),
            }
        }
        Err(e) => return Err(symlink_error(e)),
    };
    if canonical != full {
        // Some component is a symlink.
        if canonical.starts_with(root) {
            return Err(inside(root, &canonical));
        }
        if !follow_symlinks {
            return Err(Skip::LinkOutside(canonical));
        }
    }
    match std::fs::metadata(&canonical) {
        Ok(m) if m.is_file() => Ok(true),
        Ok(m) if m.is_dir() => Ok(false),
        Ok(_) => Err(Skip::NotRegular),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Skip::Metadata(e)),
    }
}

fn symlink_error(e: std::io::Error) -> Skip {
    // ELOOP: the kernel gave up resolving the chain of links.
    if e.raw_os_error() == Some(libc::ELOOP) {
        Skip::LinkLoop
    } else {
        Skip::Unresolvable(e)
    }
}

fn inside(root: &Path, target: &Path) -> Skip {
    let rel = target
        .strip_prefix(root)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    Skip::LinkInside(if rel.is_empty() { ".".to_string() } else { rel })
}

/// The metadata of the file `<root>/<rel>` under its store location: the name itself, unencoded, which is how
/// `LocalFileSystem` names the file it opens (`ventas_año.csv` is the location `…/ventas_año.csv`, not
/// `…/ventas_a%C3%B1o.csv`). A name that no store location can hold is [`Skip::NoLocation`].
fn object_meta(
    landing: &StoreLocation,
    rel: &str,
    m: &std::fs::Metadata,
) -> Result<ObjectMeta, Skip> {
    let last_modified: DateTime<Utc> = m
        .modified()
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| DateTime::<Utc>::from(std::time::UNIX_EPOCH));
    Ok(ObjectMeta {
        location: landing.exact_path(rel).map_err(Skip::NoLocation)?,
        last_modified,
        size: m.len(),
        e_tag: None,
        version: None,
    })
}

/// Lists the regular files below `<root>/<dataset>/` of a local landing (`root` canonical), skipping and
/// reporting every entry that cannot or must not be read. Blocking: call it on the blocking pool.
pub(crate) fn list_local(
    landing: &StoreLocation,
    root: &Path,
    dataset: &str,
    follow_symlinks: bool,
) -> LocalListing {
    let mut walk = Walk {
        landing,
        root,
        follow_symlinks,
        out: LocalListing::default(),
        stack: Vec::new(),
    };
    walk.start(dataset);
    let mut visited: HashSet<PathBuf> = HashSet::new();
    while let Some((dir, rel_dir)) = walk.stack.pop() {
        let canonical = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
        if !visited.insert(canonical) {
            continue;
        }
        walk.read_dir(&dir, &rel_dir);
    }
    walk.out
}

/// One walk of [`list_local`]: its policy inputs, what it found so far, and the directories still to read.
struct Walk<'a> {
    landing: &'a StoreLocation,
    root: &'a Path,
    follow_symlinks: bool,
    out: LocalListing,
    /// (directory to read, its path relative to the landing root)
    stack: Vec<(PathBuf, String)>,
}

impl Walk<'_> {
    /// Records that `path` (relative to the landing root) was skipped for `reason`.
    fn fault(&mut self, path: String, reason: Skip) {
        self.out.faults.push(Fault { path, reason });
    }

    /// Queues `<root>/<dataset>` as the first directory to read, or records why the dataset cannot be walked.
    fn start(&mut self, dataset: &str) {
        let start = self.root.join(dataset);
        match std::fs::symlink_metadata(&start) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => self.fault(dataset.to_string(), Skip::Metadata(e)),
            Ok(m) if m.is_dir() => self.stack.push((start, dataset.to_string())),
            Ok(m) if m.file_type().is_symlink() => {
                match resolve_link(self.root, &start, self.follow_symlinks) {
                    Ok(target) if target.is_dir() => self.stack.push((target, dataset.to_string())),
                    Ok(_) => self.fault(dataset.to_string(), Skip::DatasetLinkToFile),
                    Err(reason) => self.fault(dataset.to_string(), reason),
                }
            }
            Ok(_) => self.fault(dataset.to_string(), Skip::DatasetIsFile),
        }
    }

    /// Reads directory `dir` (`rel_dir` relative to the landing root) and sorts each entry not ignored by name.
    fn read_dir(&mut self, dir: &Path, rel_dir: &str) {
        let entries = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.fault(rel_dir.to_string(), Skip::Directory(e));
                return;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.fault(rel_dir.to_string(), Skip::Entry(e));
                    continue;
                }
            };
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                self.fault(
                    format!("{rel_dir}/{}", name.to_string_lossy()),
                    Skip::NotUtf8,
                );
                continue;
            };
            if is_ignored_name(name) {
                continue;
            }
            let rel = format!("{rel_dir}/{name}");
            match entry.file_type() {
                Ok(file_type) => self.entry(rel, entry.path(), file_type),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => self.fault(rel, Skip::FileType(e)),
            }
        }
    }

    /// Sorts entry `rel` at `path` by its type: a directory is queued, a regular file recorded, a symlink
    /// resolved by the policy, anything else skipped.
    fn entry(&mut self, rel: String, path: PathBuf, file_type: std::fs::FileType) {
        if file_type.is_dir() {
            self.stack.push((path, rel));
        } else if file_type.is_file() {
            match std::fs::metadata(&path) {
                Ok(m) => self.file(rel, &m),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => self.fault(rel, Skip::Metadata(e)),
            }
        } else if file_type.is_symlink() {
            let target = match resolve_link(self.root, &path, self.follow_symlinks) {
                Ok(t) => t,
                Err(reason) => return self.fault(rel, reason),
            };
            match std::fs::metadata(&target) {
                Ok(m) if m.is_dir() => self.stack.push((target, rel)),
                Ok(m) if m.is_file() => self.file(rel, &m),
                Ok(_) => self.fault(rel, Skip::NotRegular),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => self.fault(rel, Skip::Metadata(e)),
            }
        } else {
            self.fault(rel, Skip::NotRegular);
        }
    }

    /// Records regular file `rel` from its metadata `m`, or why it is skipped.
    fn file(&mut self, rel: String, m: &std::fs::Metadata) {
        match object_meta(self.landing, &rel, m) {
            Ok(meta) => self.out.files.push(meta),
            Err(reason) => self.fault(rel, reason),
        }
    }
}

/// Resolves a symlink and applies the policy: `Ok(target)` only for a target outside landing with
/// `follow_symlinks` set.
fn resolve_link(root: &Path, link: &Path, follow_symlinks: bool) -> Result<PathBuf, Skip> {
    let target = match std::fs::canonicalize(link) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Skip::BrokenLink),
        Err(e) => return Err(symlink_error(e)),
    };
    if target.starts_with(root) {
        return Err(inside(root, &target));
    }
    if !follow_symlinks {
        return Err(Skip::LinkOutside(target));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_links_and_special_files_are_faults_not_errors() {
        let outside = tempfile::tempdir().expect("tempdir");
        let (_dir, loc) = crate::source::temp_landing();
        let root = loc.local_root.clone().expect("local");
        std::fs::create_dir_all(root.join("ds/sub")).expect("mkdir");
        std::fs::write(root.join("ds/a.json"), b"{}\n").expect("write");
        std::fs::write(root.join("ds/sub/b.json"), b"{}\n").expect("write");
        std::fs::write(root.join("ds/.hidden.json"), b"{}\n").expect("write");
        std::fs::write(root.join("ds/sub/odd name.json"), b"{}\n").expect("write");
        std::fs::write(outside.path().join("c.json"), b"{}\n").expect("write");
        std::os::unix::fs::symlink(&root, root.join("ds/loop")).expect("symlink");
        std::os::unix::fs::symlink(root.join("ds/self1"), root.join("ds/self2")).expect("ln");
        std::os::unix::fs::symlink(root.join("ds/self2"), root.join("ds/self1")).expect("ln");
        std::os::unix::fs::symlink(outside.path().join("c.json"), root.join("ds/out.json"))
            .expect("symlink");
        std::os::unix::fs::symlink(outside.path(), root.join("ds/outdir")).expect("symlink");
        let fifo = std::ffi::CString::new(root.join("ds/pipe.json").to_str().expect("utf8"))
            .expect("cstring");
        // SAFETY: mkfifo on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);

        let names = |l: &LocalListing| {
            let mut v: Vec<String> = l
                .files
                .iter()
                .map(|m| loc.relative(&m.location).expect("below"))
                .collect();
            v.sort();
            v
        };
        let l = list_local(&loc, &root, "ds", false);
        assert_eq!(
            names(&l),
            vec!["ds/a.json", "ds/sub/b.json", "ds/sub/odd name.json"]
        );
        // The location reads back the file, as with LocalFileSystem's own listing.
        let odd = l
            .files
            .iter()
            .find(|m| m.location.as_ref().contains("odd"))
            .expect("odd name");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let got = rt
            .block_on(async { object_store::ObjectStoreExt::get(&loc.store, &odd.location).await })
            .expect("readable");
        assert_eq!(rt.block_on(got.bytes()).expect("bytes").as_ref(), b"{}\n");
        let fault_of = |l: &LocalListing, p: &str| {
            l.faults
                .iter()
                .find(|f| f.path == p)
                .map(|f| f.reason.to_string())
                .unwrap_or_default()
        };
        assert!(fault_of(&l, "ds/loop").contains("inside landing"));
        assert!(fault_of(&l, "ds/self1").contains("loop"));
        assert!(fault_of(&l, "ds/out.json").contains("leaves landing"));
        assert!(fault_of(&l, "ds/pipe.json").contains("not a regular file"));

        let l = list_local(&loc, &root, "ds", true);
        assert_eq!(
            names(&l),
            vec![
                "ds/a.json",
                "ds/out.json",
                "ds/outdir/c.json",
                "ds/sub/b.json",
                "ds/sub/odd name.json"
            ]
        );
        assert_eq!(check_local_path(&root, "ds/a.json", false).ok(), Some(true));
        assert_eq!(check_local_path(&root, "ds/sub", false).ok(), Some(false));
        assert!(matches!(
            check_local_path(&root, "ds/out.json", false),
            Err(Skip::LinkOutside(_))
        ));
        assert_eq!(
            check_local_path(&root, "ds/out.json", true).ok(),
            Some(true)
        );
        assert!(matches!(
            check_local_path(&root, "ds/loop/ds/a.json", true),
            Err(Skip::LinkInside(_))
        ));
        assert!(matches!(
            check_local_path(&root, "ds/pipe.json", false),
            Err(Skip::NotRegular)
        ));
    }

    /// Every name a file can have is listed under a location that reads that very file (no percent-encoding of
    /// `ñ`, `%`, `#`, ...), and a name no location can hold is a fault naming it.
    #[test]
    fn each_listed_location_reads_back_its_own_file() {
        let (_dir, loc) = crate::source::temp_landing();
        let root = loc.local_root.clone().expect("local");
        let names = [
            "ventas_año.csv",
            "a b.csv",
            "50%.csv",
            "lit%C3%B1.csv",
            "x#y.csv",
            "q?*|<>\\\"\\.csv",
            "📦.csv",
            "año/dic#a/z.csv",
        ];
        for n in names {
            let p = root.join("ds").join(n);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, n.as_bytes()).expect("write");
        }
        std::fs::write(root.join("ds/tab\there.csv"), b"x").expect("write");
        let l = list_local(&loc, &root, "ds", false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut got: Vec<String> = Vec::new();
        for m in &l.files {
            let rel = loc.relative(&m.location).expect("below");
            let bytes = rt
                .block_on(async {
                    let g = object_store::ObjectStoreExt::get(&loc.store, &m.location).await?;
                    g.bytes().await
                })
                .unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!(format!("ds/{}", String::from_utf8_lossy(&bytes)), rel);
            assert_eq!(loc.exact_path(&rel).expect("exact"), m.location);
            got.push(rel);
        }
        assert_eq!(got.len(), names.len(), "{got:?} {:?}", l.faults);
        assert_eq!(l.faults.len(), 1, "{:?}", l.faults);
        assert_eq!(l.faults[0].path, "ds/tab\there.csv");
        assert!(matches!(l.faults[0].reason, Skip::NoLocation(_)));
    }

    /// An unreadable directory (here: one whose path is longer than PATH_MAX, which `read_dir` refuses even to
    /// root) is a fault; the rest of the dataset is listed.
    #[test]
    fn an_unreadable_directory_is_a_fault_and_the_rest_is_listed() {
        let (_dir, loc) = crate::source::temp_landing();
        let root = loc.local_root.clone().expect("local");
        std::fs::create_dir_all(root.join("ds")).expect("mkdir");
        std::fs::write(root.join("ds/ok.json"), b"{}\n").expect("write");
        let name = std::ffi::CString::new("d".repeat(250)).expect("cstring");
        let start = std::ffi::CString::new(root.join("ds").to_str().expect("utf8")).expect("c");
        // SAFETY: plain libc calls on NUL-terminated strings and descriptors opened here.
        unsafe {
            let mut fd = libc::open(start.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
            assert!(fd >= 0);
            for _ in 0..20 {
                assert_eq!(libc::mkdirat(fd, name.as_ptr(), 0o755), 0);
                let next = libc::openat(fd, name.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
                assert!(next >= 0);
                libc::close(fd);
                fd = next;
            }
            libc::close(fd);
        }
        let l = list_local(&loc, &root, "ds", false);
        let names: Vec<String> = l
            .files
            .iter()
            .map(|m| loc.relative(&m.location).expect("below"))
            .collect();
        assert_eq!(names, vec!["ds/ok.json"]);
        assert_eq!(l.faults.len(), 1, "{:?}", l.faults);
        assert!(
            l.faults[0]
                .reason
                .to_string()
                .contains("cannot read directory"),
            "{:?}",
            l.faults
        );
    }
}
