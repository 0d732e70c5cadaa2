//! Landing, bronze and the checkpoint must be three separate places.
//!
//! Takes the three locations as configured and refuses any pair where one is the other or lies inside it: with
//! bronze or the checkpoint inside landing, lander lists and ingests its own Parquet parts and sled files; with
//! landing inside bronze (or the checkpoint inside bronze) `checkpoint verify` and recovery see files they do not
//! know. Locations are compared after normalization, on every backend: a local path is made absolute, `.` and
//! `..` are resolved, and the part that exists is canonicalized (symlinks resolved); a URL is compared by scheme
//! (`s3a` = `s3`, `hdfs+jni` = `hdfs`), authority and path segments. Read-only: nothing is created.

use std::path::{Component, Path, PathBuf};

/// A location reduced for comparison: the store it is on and its path segments from that store's root.
#[derive(Debug, PartialEq, Eq)]
struct Normalized {
    /// `""` for the local filesystem, else `scheme://authority`.
    store: String,
    segments: Vec<String>,
}

impl Normalized {
    fn contains(&self, other: &Normalized) -> bool {
        self.store == other.store && other.segments.starts_with(&self.segments)
    }
}

/// Checks that no two of landing, bronze and checkpoint overlap.
///
/// # Errors
/// A message naming both locations of the first overlapping pair and how they overlap.
pub(crate) fn check_overlap(landing: &str, bronze: &str, checkpoint: &Path) -> Result<(), String> {
    let checkpoint_s = checkpoint.display().to_string();
    let named = [
        ("landing", landing, normalize(landing)),
        ("bronze", bronze, normalize(bronze)),
        ("checkpoint", checkpoint_s.as_str(), local(checkpoint)),
    ];
    for (i, (an, av, a)) in named.iter().enumerate() {
        for (bn, bv, b) in &named[i + 1..] {
            let why = if a == b {
                format!("{an} {av} and {bn} {bv} are the same location")
            } else if a.contains(b) {
                format!("{bn} {bv} lies inside {an} {av}")
            } else if b.contains(a) {
                format!("{an} {av} lies inside {bn} {bv}")
            } else {
                continue;
            };
            return Err(format!(
                "{why}: landing, bronze and checkpoint must not overlap (lander would read its own output and state as input, or take landing files for its own); give each its own directory"
            ));
        }
    }
    Ok(())
}

/// A location string (local path, `file://` or a URL) reduced for comparison.
fn normalize(location: &str) -> Normalized {
    if let Some(path) = location.strip_prefix("file://") {
        return local(Path::new(path));
    }
    let Some((scheme, rest)) = location.split_once("://") else {
        return local(Path::new(location));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "s3a" => "s3".to_string(),
        "hdfs+jni" => "hdfs".to_string(),
        s => s.to_string(),
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut segments: Vec<String> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s.to_string()),
        }
    }
    Normalized {
        store: format!("{scheme}://{}", authority.to_ascii_lowercase()),
        segments,
    }
}

/// A local path made absolute and lexically resolved, with its longest existing ancestor canonicalized (so a
/// symlink to landing, or `./landing/../landing/x`, is recognised).
fn local(path: &Path) -> Normalized {
    let mut abs = if path.is_absolute() {
        PathBuf::new()
    } else {
        std::env::current_dir().unwrap_or_default()
    };
    for c in path.components() {
        match c {
            Component::ParentDir => {
                abs.pop();
            }
            Component::CurDir => {}
            other => abs.push(other),
        }
    }
    // Canonicalize what exists; the rest (not created yet) is appended as written.
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    let mut probe = abs.clone();
    let resolved = loop {
        if let Ok(c) = std::fs::canonicalize(&probe) {
            break c;
        }
        match probe.file_name() {
            Some(name) => {
                rest.push(name.to_os_string());
                probe.pop();
            }
            None => break abs,
        }
    };
    let full = rest.iter().rev().fold(resolved, |p, n| p.join(n));
    Normalized {
        store: String::new(),
        segments: full
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_overlapping_pair_is_refused_on_every_backend() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = dir.path().join("L");
        std::fs::create_dir_all(&l).expect("mkdir");
        let s = |p: PathBuf| p.display().to_string();
        let ok = |a: &str, b: &str, c: &Path| check_overlap(a, b, c).is_ok();
        // Separate siblings, and a shared prefix of names that is not a parent.
        assert!(ok(
            &s(l.clone()),
            &s(dir.path().join("B")),
            &dir.path().join("C")
        ));
        assert!(ok(
            &s(l.clone()),
            &s(dir.path().join("L2")),
            &dir.path().join("C")
        ));
        // Inside, equal, either way round, through `..` and through a symlink.
        let err = check_overlap(&s(l.clone()), &s(l.join("bronze")), &dir.path().join("C"))
            .expect_err("bronze inside landing");
        assert!(
            err.contains("bronze") && err.contains("inside landing"),
            "{err}"
        );
        assert!(!ok(
            &s(l.clone()),
            &s(dir.path().join("B")),
            &l.join("state")
        ));
        assert!(!ok(&s(l.join("in")), &s(l.clone()), &dir.path().join("C")));
        assert!(!ok(
            &s(l.clone()),
            &s(l.join("../L")),
            &dir.path().join("C")
        ));
        std::os::unix::fs::symlink(&l, dir.path().join("link")).expect("symlink");
        assert!(!ok(
            &s(l.clone()),
            &s(dir.path().join("link/bronze")),
            &dir.path().join("C")
        ));
        assert!(!ok(
            &s(l.clone()),
            &format!("file://{}/x", l.display()),
            &dir.path().join("C")
        ));
        let c = dir.path().join("C");
        assert!(!ok(&s(dir.path().join("B")), &s(c.join("b")), &c));
        // Remote: the same bucket or cluster and path, however spelled; other buckets are apart.
        assert!(!ok("s3://b/lake", "s3a://b/lake/bronze/", &c));
        assert!(!ok("hdfs://nn:8020/lake/", "hdfs+jni://NN:8020/lake", &c));
        assert!(ok("s3://b/lake/landing", "s3://b/lake/bronze", &c));
        assert!(ok("s3://a/lake", "s3://b/lake", &c));
        assert!(ok("s3://b/lake", &s(l.clone()), &c));
    }
}
