//! Test harness: a temp workdir per test, the real `lander` binary, and readers for what it wrote.
//!
//! Helpers that more than one behaviour file uses live here, by topic: the storage backends, a background daemon,
//! sample data, Delta table readers, the fetch tests' HTTP server, the `/metrics` endpoint, `lander table` and
//! `--workers` helpers. A behaviour file keeps the helpers only it uses.

#![allow(dead_code)]

pub mod backends;
pub mod daemon;
pub mod data;
pub mod delta;
pub mod fetch_server;
pub mod serve;
pub mod table;
pub mod workers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The full samples (read-only; never copied into the repository): `$LANDER_TEST_DATA` if set, else
/// `../shared/data` beside the repository. A plain clone has neither; tests that need them start with
/// [`require_shared_data`], and the bundled `tests/fixtures/` cover the core behaviours.
pub fn shared_data() -> PathBuf {
    match std::env::var_os("LANDER_TEST_DATA") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
    }
}

/// The full samples' directory, or `None` after printing `SKIPPED: <test> needs the full samples at <path> (set
/// LANDER_TEST_DATA)` when it is absent (a plain clone). `.ci/run` checks that they exist, so CI never skips.
/// Use as `let Some(_) = require_shared_data() else { return };` at the top of a test.
pub fn require_shared_data() -> Option<PathBuf> {
    let dir = shared_data();
    if dir.join("gharchive").is_dir() && dir.join("sales").is_dir() {
        return Some(dir);
    }
    let thread = std::thread::current();
    // Straight to the stderr handle, not eprintln!: the test harness captures the macros' output of passing
    // tests, and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {} needs the full samples at {} (set LANDER_TEST_DATA)",
        thread.name().unwrap_or("this test"),
        dir.display()
    );
    None
}

/// The bundled samples: `tests/fixtures/landing/<dataset>/...` (always present, see tests/fixtures/README.md).
pub fn fixtures_landing() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/landing")
}

/// One of the five GH Archive sample files.
pub fn gharchive(name: &str) -> PathBuf {
    sample(&format!("gharchive/{name}"))
}

/// The bundled prefixes of the full samples (tests/fixtures/README.md): each is the first lines of the genuine
/// file of that name (GH Archive: the first 800 lines of 2011, 1,000 of 2013 and of 2015-01-01-0; sales: the
/// first 3,000 rows; Superstore: the first 1,000 rows).
const BUNDLED: [(&str, &str); 5] = [
    (
        "gharchive/2011-02-15-0.json.gz",
        "gharchive/2011-02-15-0.json.gz",
    ),
    (
        "gharchive/2013-02-15-0.json.gz",
        "gharchive/2013-02-15-0.json.gz",
    ),
    (
        "gharchive/2015-01-01-0.json.gz",
        "gharchive/2015-01-01-0.json.gz",
    ),
    (
        "sales/transacciones_ventas.csv",
        "sales/transacciones_ventas-sample.csv",
    ),
    (
        "sales/Sample - Superstore.csv",
        "superstore/Sample - Superstore-sample.csv",
    ),
];

/// A sample by its path under the full samples (`gharchive/<hour>.json.gz`, `sales/transacciones_ventas.csv`,
/// `sales/Sample - Superstore.csv`):
/// the genuine file when the full samples are present, else its bundled prefix when there is one (a plain clone).
/// Tests that use it compute what they expect from the bytes they get, never from fixed counts.
pub fn sample(rel: &str) -> PathBuf {
    let genuine = shared_data().join(rel);
    if genuine.is_file() {
        return genuine;
    }
    match BUNDLED.iter().find(|(full, _)| *full == rel) {
        Some((_, bundled)) => fixtures_landing().join(bundled),
        None => genuine,
    }
}

/// The samples the storage conformance suites use: all four have bundled prefixes, so those suites run on a plain
/// clone too.
pub const STANDARD_SAMPLES: [&str; 4] = [
    "gharchive/2011-02-15-0.json.gz",
    "gharchive/2013-02-15-0.json.gz",
    "gharchive/2015-01-01-0.json.gz",
    "sales/transacciones_ventas.csv",
];

/// Whether every sample in `rels` can be had ([`sample`]: genuine or bundled); if not, prints `SKIPPED` like
/// [`require_shared_data`]. Use as `if !require_samples(&[...]) { return; }`.
pub fn require_samples(rels: &[&str]) -> bool {
    if rels.iter().all(|r| sample(r).is_file()) {
        return true;
    }
    require_shared_data().is_some()
}

/// All five GH Archive sample names.
pub const GHARCHIVE_FILES: [&str; 5] = [
    "2011-02-15-0.json.gz",
    "2012-02-15-0.json.gz",
    "2013-02-15-0.json.gz",
    "2015-01-01-0.json.gz",
    "2015-01-01-1.json.gz",
];

/// The GH Archive sample hours at hand, in [`GHARCHIVE_FILES`] order: all five with the full samples, the three
/// with a bundled prefix on a plain clone. For tests that land "every hour" and compute what they expect from them.
pub fn gharchive_hours() -> Vec<&'static str> {
    GHARCHIVE_FILES
        .into_iter()
        .filter(|f| gharchive(f).is_file())
        .collect()
}

/// The lander binary under test.
pub fn lander_bin() -> &'static str {
    env!("CARGO_BIN_EXE_lander")
}

/// A per-test working directory with `landing/`, `bronze/` and `state/` (the checkpoint).
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("landing")).expect("mkdir");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn landing(&self) -> PathBuf {
        self.path().join("landing")
    }

    pub fn bronze(&self) -> PathBuf {
        self.path().join("bronze")
    }

    pub fn checkpoint(&self) -> PathBuf {
        self.path().join("state")
    }

    /// Copies a file into `landing/<dataset>/<name>` through a temp name + rename, like a well-behaved writer.
    pub fn land(&self, src: &Path, dataset: &str, name: &str) -> PathBuf {
        let dest = self.landing().join(dataset).join(name);
        let dir = dest.parent().expect("has a parent").to_path_buf();
        std::fs::create_dir_all(&dir).expect("mkdir");
        let tmp = dir.join(format!(
            ".{}.tmp",
            dest.file_name().expect("name").to_string_lossy()
        ));
        std::fs::copy(src, &tmp).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        std::fs::rename(&tmp, &dest).expect("rename");
        dest
    }

    /// Writes bytes into `landing/<dataset>/<name>` (temp name + rename).
    pub fn land_bytes(&self, dataset: &str, name: &str, bytes: &[u8]) -> PathBuf {
        let dir = self.landing().join(dataset);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).expect("write");
        let dest = dir.join(name);
        std::fs::rename(&tmp, &dest).expect("rename");
        dest
    }

    /// A `lander` command in this workdir (no arguments yet).
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(lander_bin());
        c.current_dir(self.path()).env("RUST_LOG", "lander=info");
        c
    }

    /// The standard location flags.
    pub fn location_args(&self) -> Vec<String> {
        vec![
            "--landing".into(),
            self.landing().display().to_string(),
            "--bronze".into(),
            self.bronze().display().to_string(),
            "--checkpoint".into(),
            self.checkpoint().display().to_string(),
        ]
    }

    /// The arguments of `lander run --mode once --settle-time 0s` over this workdir's locations.
    pub fn once_args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["run", "--mode", "once", "--settle-time", "0s"]
            .map(String::from)
            .to_vec();
        args.extend(self.location_args());
        args
    }

    /// Runs `lander <args>`; returns the output whatever the status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("spawn lander")
    }

    /// Runs `lander <args>` and panics with everything useful unless it exits 0; returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_success(&out, args, self.path());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `lander run --mode once` with the workdir's locations, settle time 0 and `extra` flags.
    pub fn run_once(&self, extra: &[&str]) -> String {
        let mut args: Vec<String> = vec![
            "run".into(),
            "--mode".into(),
            "once".into(),
            "--settle-time".into(),
            "0s".into(),
        ];
        args.extend(self.location_args());
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run_ok(&refs)
    }
}

pub fn assert_success(out: &Output, args: &[&str], cwd: &Path) {
    if !out.status.success() {
        panic!(
            "lander {:?} failed in {}\nstatus: {}\n--- stdout\n{}\n--- stderr\n{}",
            args,
            cwd.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every `*.parquet` data file below `dir` (not the Delta log's checkpoints), sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                // A Delta log checkpoint is a Parquet file too, but of log actions, not data.
                if p.file_name().is_some_and(|n| n == "_delta_log") {
                    continue;
                }
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    walk(dir, &mut out);
    out.sort();
    out
}

/// Reads one Parquet file back with the `parquet` crate.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap_or_else(|e| panic!("parquet {}: {e}", path.display()))
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect()
}

/// `path` with the random token of its batch removed from a part name (`part-b00000001-<12 hex>-0000.parquet`
/// becomes `part-b00000001-0000.parquet`): part names are unique across writers, so two runs of the same input
/// name their parts differently; tests compare the rest.
pub fn canonical_part_path(path: &str) -> String {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let canonical = match name.strip_prefix("part-b") {
        Some(rest)
            if rest.len() > 22
                && rest.as_bytes()[8] == b'-'
                && rest.as_bytes()[21] == b'-'
                && rest[9..21].bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            format!("part-b{}{}", &rest[..9], &rest[22..])
        }
        _ => name.to_string(),
    };
    if dir.is_empty() {
        canonical
    } else {
        format!("{dir}/{canonical}")
    }
}

/// Row count of every Parquet file below `dir`, by path relative to `dir` ([`canonical_part_path`]).
pub fn rows_by_file(dir: &Path) -> BTreeMap<String, usize> {
    parquet_files(dir)
        .into_iter()
        .map(|p| {
            let n = read_parquet(&p).iter().map(|b| b.num_rows()).sum();
            let rel = p.strip_prefix(dir).expect("below").display().to_string();
            (canonical_part_path(&rel), n)
        })
        .collect()
}

/// Total rows in all Parquet files below `dir`.
pub fn count_rows(dir: &Path) -> usize {
    rows_by_file(dir).values().sum()
}

/// All values of a string column over every Parquet file below `dir`.
pub fn string_column(dir: &Path, column: &str) -> Vec<Option<String>> {
    use arrow::array::{Array, AsArray};
    let mut out = Vec::new();
    for p in parquet_files(dir) {
        for b in read_parquet(&p) {
            let c = b
                .column_by_name(column)
                .unwrap_or_else(|| panic!("no column {column} in {}", p.display()));
            let c = c.as_string::<i32>();
            for i in 0..c.len() {
                out.push(c.is_valid(i).then(|| c.value(i).to_string()));
            }
        }
    }
    out
}

/// [`string_column`] while a writer may still delete parts below `dir` (a daemon rolling back a killed batch):
/// `None` when a listed part vanished before it could be read.
pub fn try_string_column(dir: &Path, column: &str) -> Option<Vec<Option<String>>> {
    use arrow::array::{Array, AsArray};
    let mut out = Vec::new();
    for p in parquet_files(dir) {
        let f = std::fs::File::open(&p).ok()?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .ok()?
            .build()
            .ok()?;
        for b in reader {
            let b = b.ok()?;
            let c = b.column_by_name(column)?.as_string::<i32>().clone();
            out.extend((0..c.len()).map(|i| c.is_valid(i).then(|| c.value(i).to_string())));
        }
    }
    Some(out)
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    f()
}

/// Runs a Python script with the `duckdb` package (`python3 -c SCRIPT ARGS...`) and returns its stdout.
/// Fails, never skips, when `python3` or `duckdb` is missing: `scripts/test` installs it (in `.venv/`).
pub fn run_duckdb(script: &str, args: &[&str]) -> String {
    let probe = Command::new("python3")
        .args(["-c", "import duckdb"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "this test needs the duckdb Python package (scripts/test installs it in .venv): {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("this test needs python3 with the duckdb package: {e}"),
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("spawn python3");
    assert!(
        out.status.success(),
        "python3 (duckdb) failed: {}\n--- script\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `lander <args>` in `w`, polling its peak RSS (`VmHWM`); returns (output, peak KiB).
pub fn run_measured(w: &Workdir, args: &[String]) -> (std::process::Output, u64) {
    let mut child = w
        .cmd()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let status = std::path::PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak = 0u64;
    // Read the pipes on threads so a chatty child never blocks on a full pipe while we poll.
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out_pipe, &mut v).ok();
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err_pipe, &mut v).ok();
        v
    });
    let exit = loop {
        if let Ok(s) = std::fs::read_to_string(&status) {
            for l in s.lines() {
                if let Some(v) = l.strip_prefix("VmHWM:") {
                    let kib: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    peak = peak.max(kib);
                }
            }
        }
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let out = std::process::Output {
        status: exit,
        stdout: out_t.join().expect("stdout thread"),
        stderr: err_t.join().expect("stderr thread"),
    };
    (out, peak)
}

/// A `lander` process started in the background, with its stdout and stderr in files of the workdir (read
/// while it runs, e.g. to send a signal once the log shows a batch under way). Killed if the test fails.
pub struct Background {
    child: Option<std::process::Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Background {
    /// Starts `lander <args>` in `w` (`RUST_LOG=lander=info`); `name` names its output files.
    pub fn start(w: &Workdir, name: &str, args: &[String]) -> Self {
        let stdout = w.path().join(format!("{name}.stdout"));
        let stderr = w.path().join(format!("{name}.stderr"));
        let file = |p: &Path| std::fs::File::create(p).expect("output file");
        let child = w
            .cmd()
            .args(args)
            .stdout(file(&stdout))
            .stderr(file(&stderr))
            .spawn()
            .expect("spawn lander");
        Self {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (at most `timeout`) until its log contains `needle`; panics with the log otherwise.
    pub fn wait_for_log(&self, needle: &str, timeout: std::time::Duration) {
        if !wait_until(timeout, || self.log().contains(needle)) {
            panic!(
                "no {needle:?} in the log after {timeout:?}:\n{}",
                self.log()
            );
        }
    }

    /// Sends `signal` (`libc::SIGINT`, `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(pid, signal) };
    }

    /// Waits for the exit (at most 30 s); returns (status, stdout, stderr).
    pub fn wait(mut self) -> (std::process::ExitStatus, String, String) {
        let mut child = self.child.take().expect("running");
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if start.elapsed() > std::time::Duration::from_secs(30) {
                let _ = child.kill();
                panic!("lander did not exit within 30 s:\n{}", self.log());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        (status, read(&self.stdout), read(&self.stderr))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A stdout whose reader is already gone: every write to it fails with a broken pipe (EPIPE).
pub fn closed_stdout() -> std::process::Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    std::process::Stdio::from(writer)
}

/// The bronze partition directory `year=YYYY/month=MM/day=DD` of a UTC day.
pub fn day_partition(d: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    format!(
        "year={:04}/month={:02}/day={:02}",
        d.year(),
        d.month(),
        d.day()
    )
}

/// The copy of the failed landing file `rel` that batch `batch` put in `dataset`'s quarantine:
/// `_quarantine/<dataset>/files/b<batch: 8 digits>[-<token>]/<rel>` (Delta names carry the batch's token, Parquet
/// names do not). Panics unless exactly one batch directory of that id exists.
pub fn quarantined_copy(bronze: &Path, dataset: &str, batch: u64, rel: &str) -> PathBuf {
    let files = bronze.join("_quarantine").join(dataset).join("files");
    let id = format!("b{batch:08}");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&files)
        .unwrap_or_else(|e| panic!("read {}: {e}", files.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            name == id || name.starts_with(&format!("{id}-"))
        })
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "one copy directory of batch {batch}: {dirs:?}"
    );
    dirs[0].join(rel)
}
