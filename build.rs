//! Build script: embeds the git commit and the build date for `lander --version`, and with the `hdrs` feature
//! records the directory of `libjvm.so` as an rpath.
//!
//! Sets `LANDER_GIT_COMMIT` (short hash, `-dirty` when tracked files differ from HEAD, `unknown` outside a git
//! checkout or without git, e.g. a source tarball) and `LANDER_BUILD_DATE` (UTC `YYYY-MM-DD`, or
//! `$SOURCE_DATE_EPOCH` for reproducible builds). It never fails the build.
//!
//! It reruns only when HEAD moves (checkout, commit) or `SOURCE_DATE_EPOCH` changes, not on every source edit:
//! rerunning it on each edit would rebuild the whole crate for every change of a test or a README. So `-dirty`
//! and the date describe the tree when HEAD last moved; a release is built from a fresh checkout anyway.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(["--no-optional-locks"])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// With the `hdrs` feature, records the directory of `libjvm.so` (found by `hdfs-sys`'s build script) as an rpath
/// of every binary and test, so `hdfs+jni://` works without `LD_LIBRARY_PATH`. Does nothing otherwise.
fn jvm_rpath() {
    if std::env::var_os("CARGO_FEATURE_HDRS").is_none() {
        return;
    }
    // hdfs-sys 0.3.1 prints `cargo:metadata=JVM_PATH=<dir>`, which Cargo passes on as DEP_HDFS_METADATA.
    let jvm = std::env::var("DEP_HDFS_JVM_PATH").ok().or_else(|| {
        std::env::var("DEP_HDFS_METADATA")
            .ok()
            .and_then(|m| m.strip_prefix("JVM_PATH=").map(str::to_string))
    });
    if let Some(jvm) = jvm {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{jvm}");
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    jvm_rpath();
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]).filter(|s| !s.is_empty()) {
        Some(hash) => {
            // `git status` without optional locks does not rewrite the index (which would rerun this script).
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            // HEAD, the branch it points to and packed-refs: any commit or checkout touches one of them.
            for args in [
                ["rev-parse", "--git-path", "HEAD"],
                ["rev-parse", "--git-path", "packed-refs"],
            ] {
                if let Some(p) = git(&args) {
                    println!("cargo:rerun-if-changed={}", PathBuf::from(p).display());
                }
            }
            if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
                if let Some(p) = git(&["rev-parse", "--git-path", &r]) {
                    println!("cargo:rerun-if-changed={}", PathBuf::from(p).display());
                }
            }
            format!("{hash}{}", if dirty { "-dirty" } else { "" })
        }
        None => "unknown".to_string(),
    };
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| i64::try_from(d.as_secs()).ok())
        });
    let date = secs.map_or_else(
        || "unknown".to_string(),
        |s| {
            let (y, m, d) = civil_from_days(s.div_euclid(86_400));
            format!("{y:04}-{m:02}-{d:02}")
        },
    );
    println!("cargo:rustc-env=LANDER_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=LANDER_BUILD_DATE={date}");
}
