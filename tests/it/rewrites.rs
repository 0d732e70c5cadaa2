//! A rewrite is told from an append exactly: a file changed after it was processed is an
//! append only when the bytes already read are unchanged; any other change (same size, longer sharing head and
//! tail, shorter, truncated to nothing then refilled) is a new version, read whole, with a warning naming the
//! file, and `explain` says "rewritten". A `touch` is nothing new. Every shape runs on a plain CSV and on a plain
//! NDJSON file, and bronze is read back with DuckDB against the distinct keys of every version written.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::common::data::{checkpoint_files, run_once_ok, sample_lines};
use crate::common::*;

/// The two tailed formats.
#[derive(Debug, Clone, Copy)]
enum Format {
    Csv,
    Ndjson,
}

impl Format {
    fn dataset(self) -> &'static str {
        match self {
            Format::Csv => "sales",
            Format::Ndjson => "gharchive",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Format::Csv => "sales/day.csv",
            Format::Ndjson => "gharchive/events.json",
        }
    }

    /// The dedup key's column in bronze.
    fn key_column(self) -> &'static str {
        match self {
            Format::Csv => "transaction_id",
            Format::Ndjson => "event_key",
        }
    }

    /// Rows of a version (a sales row is ~90 bytes, a GH event ~1-2 KiB: fewer events keep files small).
    fn scale(self) -> u64 {
        match self {
            Format::Csv => 10,
            Format::Ndjson => 1,
        }
    }

    /// The bytes of a file holding these keys, in order. Every key of the tests has the same number of digits, so
    /// that a row's length does not depend on its key (a same-size edit stays the same size).
    fn body(self, keys: &[u64]) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Format::Csv => {
                out.extend_from_slice(b"transaction_id,timestamp,customer_id,product_id,category,quantity,unit_price,total,payment_method,status\n");
                for k in keys {
                    out.extend_from_slice(
                        format!("{k},2025-10-2{} 19:07:27,8961,79973,Deportes,7,160.74,1125.18,Transferencia,Cancelada\n", k % 5)
                            .as_bytes(),
                    );
                }
            }
            Format::Ndjson => {
                let template = gh_template();
                for k in keys {
                    out.extend_from_slice(template.replacen("{ID}", &k.to_string(), 1).as_bytes());
                    out.push(b'\n');
                }
            }
        }
        out
    }
}

/// The shortest of the first GH Archive 2015 events, with its id replaced by `{ID}`.
fn gh_template() -> String {
    let line = sample_lines("2015-01-01-0.json.gz", 50)
        .into_iter()
        .min_by_key(Vec::len)
        .expect("sample lines");
    let line = String::from_utf8(line).expect("utf-8");
    let start = line.find("\"id\":\"").expect("an id") + 6;
    let end = start + line[start..].find('"').expect("end of id");
    format!("{}{{ID}}{}", &line[..start], &line[end..])
}

/// Keys `from..from + n` (all with seven digits).
fn keys(from: u64, n: u64) -> Vec<u64> {
    (from..from + n).collect()
}

/// Writes `bytes` over the landing file in place (truncate + write, as an editor or `copytruncate` does).
fn write_in_place(w: &Workdir, f: Format, bytes: &[u8]) {
    let path = w.landing().join(f.file());
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, bytes).expect("write in place");
}

/// Appends `bytes` to the landing file.
fn append(w: &Workdir, f: Format, bytes: &[u8]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(w.landing().join(f.file()))
        .expect("open for append");
    file.write_all(bytes).expect("append");
}

/// The distinct keys in bronze and the row count, read by DuckDB.
fn bronze_keys(w: &Workdir, f: Format) -> (BTreeSet<u64>, u64) {
    let dir = w.bronze().join(f.dataset());
    let script = format!(
        "import duckdb\n\
         rel = \"read_parquet('{}/**/*.parquet', hive_partitioning=true)\"\n\
         print(duckdb.sql('select count(*) from ' + rel).fetchall()[0][0])\n\
         for (k,) in duckdb.sql('select distinct cast({} as varchar) from ' + rel).fetchall(): print(k)",
        dir.display(),
        f.key_column()
    );
    let out = run_duckdb(&script, &[]);
    let mut lines = out.lines();
    let rows = lines.next().expect("count").trim().parse().expect("count");
    let keys = lines
        .map(|l| l.trim().parse().expect("a numeric key"))
        .collect();
    (keys, rows)
}

/// Asserts bronze holds each key of `versions` exactly once.
fn assert_bronze(w: &Workdir, f: Format, versions: &[&[u64]]) {
    let want: BTreeSet<u64> = versions.iter().flat_map(|v| v.iter().copied()).collect();
    let (got, rows) = bronze_keys(w, f);
    assert_eq!(
        rows,
        want.len() as u64,
        "{f:?}: bronze rows vs distinct keys of all versions"
    );
    assert!(
        got == want,
        "{f:?}: bronze keys differ from the keys of all versions: {} missing, {} extra",
        want.difference(&got).count(),
        got.difference(&want).count()
    );
}

fn explain_json(w: &Workdir, path: &str) -> Value {
    explain_settling(w, path, "0s")
}

/// `explain --json` with `--settle-time settle`.
fn explain_settling(w: &Workdir, path: &str, settle: &str) -> Value {
    let mut args: Vec<String> = vec!["explain".into(), path.into(), "--json".into()];
    args.extend(w.location_args());
    args.extend(["--settle-time".into(), settle.into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    serde_json::from_str(&w.run_ok(&refs)).expect("explain --json")
}

/// The stderr lines that warn that `path` was rewritten.
fn rewritten_warnings(stderr: &str, path: &str) -> usize {
    stderr
        .lines()
        .filter(|l| {
            l.contains("WARN")
                && l.contains("file rewritten after it was processed")
                && l.contains(path)
        })
        .count()
}

/// Runs once after a rewrite and checks the warning, the counts, the checkpoint record and `explain`.
fn run_rewritten(w: &Workdir, f: Format, new_rows: u64, duplicates: u64, version: u64) {
    // Still settling: waiting, and said to be rewritten (even at the same size, with the same first and last KiB).
    let settling = explain_settling(w, f.file(), "1h");
    assert_eq!(settling["checkpoint_state"], "rewritten", "{settling:#}");
    let v = settling["verdict"].as_str().expect("verdict");
    assert!(v.starts_with("waiting: rewritten content settling"), "{v}");
    let before = explain_json(w, f.file());
    assert_eq!(before["readiness"]["change"], "rewritten", "{before:#}");
    assert_eq!(before["checkpoint_state"], "rewritten", "{before:#}");
    let v = before["verdict"].as_str().expect("verdict");
    assert!(v.starts_with("pending: rewritten"), "{v}");
    let (stdout, stderr) = run_once_ok(w, &[]);
    assert_eq!(rewritten_warnings(&stderr, f.file()), 1, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "{new_rows} rows written, {duplicates} duplicates dropped, 0 quarantined"
        )),
        "{f:?}: {stdout}"
    );
    let rec = &checkpoint_files(w)[f.file()];
    assert_eq!(rec["versions"], version, "{rec:#}");
    assert_eq!(rec["status"], "ok", "{rec:#}");
    assert_eq!(rec["bytes_consumed"], rec["size"], "{rec:#}");
    let after = explain_json(w, f.file());
    assert_eq!(after["readiness"]["state"], "unchanged", "{after:#}");
    let v = after["verdict"].as_str().expect("verdict");
    assert!(v.contains("rewritten"), "{v}");
    // And the next run finds nothing new.
    assert!(w.run_once(&[]).contains("nothing new"));
}

/// The first version of every shape: `n` rows, ingested, checked.
fn first_version(w: &Workdir, f: Format, n: u64) -> Vec<u64> {
    let v1 = keys(1_000_000, n);
    write_in_place(w, f, &f.body(&v1));
    let (stdout, _) = run_once_ok(w, &[]);
    assert!(
        stdout.contains(&format!("{n} rows written, 0 duplicates dropped")),
        "{stdout}"
    );
    assert_bronze(w, f, &[&v1]);
    // Make sure the rewrite gets another modification time even on a coarse clock.
    std::thread::sleep(std::time::Duration::from_millis(20));
    v1
}

fn each_format(test: impl Fn(Format)) {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    for f in [Format::Csv, Format::Ndjson] {
        test(f);
    }
}

/// The same size, some keys in the middle changed: a new version, not "nothing new".
#[test]
fn a_same_size_edit_in_the_middle_is_a_new_version() {
    each_format(|f| {
        let w = Workdir::new();
        let n = 2_000 * f.scale();
        let changed = 100 * f.scale();
        let v1 = first_version(&w, f, n);
        let mut v2 = v1.clone();
        let mid = (n / 2) as usize;
        for (i, k) in v2[mid..mid + changed as usize].iter_mut().enumerate() {
            *k = 2_000_000 + i as u64;
        }
        let size = std::fs::metadata(w.landing().join(f.file()))
            .expect("stat")
            .len();
        write_in_place(&w, f, &f.body(&v2));
        assert_eq!(
            std::fs::metadata(w.landing().join(f.file()))
                .expect("stat")
                .len(),
            size
        );
        run_rewritten(&w, f, changed, n - changed, 1);
        assert_bronze(&w, f, &[&v1, &v2]);
    });
}

/// Longer, with the same first and last rows (the first and last KiB unchanged): a new version, not an append.
#[test]
fn a_longer_rewrite_sharing_head_and_tail_is_a_new_version() {
    each_format(|f| {
        let w = Workdir::new();
        let n = 2_000 * f.scale();
        let v1 = first_version(&w, f, n);
        let (head, tail) = (100 * f.scale() as usize, 100 * f.scale() as usize);
        let added = 4_000 * f.scale();
        let mut v2 = v1[..head].to_vec();
        v2.extend(keys(3_000_000, added));
        v2.extend_from_slice(&v1[v1.len() - tail..]);
        write_in_place(&w, f, &f.body(&v2));
        run_rewritten(&w, f, added, (head + tail) as u64, 1);
        assert_bronze(&w, f, &[&v1, &v2]);
    });
}

/// Shorter: the first half kept, new rows after it.
#[test]
fn a_shorter_rewrite_is_a_new_version() {
    each_format(|f| {
        let w = Workdir::new();
        let n = 2_000 * f.scale();
        let v1 = first_version(&w, f, n);
        let kept = (n / 2) as usize;
        let added = 50 * f.scale();
        let mut v2 = v1[..kept].to_vec();
        v2.extend(keys(4_000_000, added));
        write_in_place(&w, f, &f.body(&v2));
        run_rewritten(&w, f, added, kept as u64, 1);
        assert_bronze(&w, f, &[&v1, &v2]);
    });
}

/// `copytruncate`: the file is truncated to nothing, then written again. Seen empty by a run, the empty version
/// is a rewrite and the new content an append to it; seen only refilled (longer or shorter than before), the new
/// content is a rewrite.
#[test]
fn copytruncate_rotation_is_a_new_version() {
    each_format(|f| {
        let n = 2_000 * f.scale();
        // Seen empty in between.
        let w = Workdir::new();
        let v1 = first_version(&w, f, n);
        write_in_place(&w, f, b"");
        run_rewritten(&w, f, 0, 0, 1);
        let v2 = keys(5_000_000, n / 4);
        append(&w, f, &f.body(&v2));
        let (stdout, stderr) = run_once_ok(&w, &[]);
        assert_eq!(rewritten_warnings(&stderr, f.file()), 0, "{stderr}");
        assert!(
            stdout.contains(&format!("{} rows written, 0 duplicates dropped", n / 4)),
            "{stdout}"
        );
        assert_bronze(&w, f, &[&v1, &v2]);
        // Refilled before any run saw it empty: longer, then shorter than the version before.
        for rows in [n * 2, n / 10] {
            let w = Workdir::new();
            let v1 = first_version(&w, f, n);
            write_in_place(&w, f, b"");
            let v2 = keys(6_000_000, rows);
            append(&w, f, &f.body(&v2));
            run_rewritten(&w, f, rows, 0, 1);
            assert_bronze(&w, f, &[&v1, &v2]);
        }
    });
}

/// A pure append is read from where the last run stopped: only the new bytes, no duplicates, no warning.
#[test]
fn a_pure_append_tails_only_the_new_bytes() {
    each_format(|f| {
        let w = Workdir::new();
        let n = 2_000 * f.scale();
        let v1 = first_version(&w, f, n);
        let size1 = std::fs::metadata(w.landing().join(f.file()))
            .expect("stat")
            .len();
        let mut all = vec![v1.clone()];
        for round in 0..3u64 {
            let more = keys(7_000_000 + round * 100_000, 100 * f.scale() * (round + 1));
            // The header is written once, at the top: appended CSV rows have none.
            let body = f.body(&more);
            let rows = match f {
                Format::Csv => &body[body.iter().position(|b| *b == b'\n').expect("header") + 1..],
                Format::Ndjson => &body[..],
            };
            append(&w, f, rows);
            let (stdout, stderr) = run_once_ok(&w, &[]);
            assert_eq!(rewritten_warnings(&stderr, f.file()), 0, "{stderr}");
            assert!(
                stdout.contains(&format!(
                    "{} rows written, 0 duplicates dropped",
                    more.len()
                )),
                "{f:?} round {round}: {stdout}"
            );
            all.push(more);
        }
        let rec = &checkpoint_files(&w)[f.file()];
        assert_eq!(rec["versions"], 0, "{rec:#}");
        assert_eq!(
            rec["batches"].as_array().expect("batches").len(),
            4,
            "{rec:#}"
        );
        assert_eq!(rec["bytes_consumed"], rec["size"], "{rec:#}");
        // The second batch read from where the first stopped.
        let batches = batch_inputs(&w, f);
        assert_eq!(batches[1], (size1, batches[2].0), "{batches:?}");
        let refs: Vec<&[u64]> = all.iter().map(Vec::as_slice).collect();
        assert_bronze(&w, f, &refs);
    });
}

/// (start, end) of the file's input in each batch that read it, oldest first (from `explain --json`).
fn batch_inputs(w: &Workdir, f: Format) -> Vec<(u64, u64)> {
    let x = explain_json(w, f.file());
    let mut out: Vec<(u64, u64, u64)> = x["batches"]
        .as_array()
        .expect("batches")
        .iter()
        .flat_map(|b| {
            let id = b["id"].as_u64().expect("id");
            b["inputs"]
                .as_array()
                .expect("inputs")
                .iter()
                .map(move |i| {
                    let n = |k: &str| i[k].as_u64().expect("offset");
                    (id, n("start"), n("end"))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, s, e)| (s, e)).collect()
}

/// A `touch` (new modification time, same bytes) is nothing new, however often it happens.
#[test]
fn a_touch_is_nothing_new() {
    each_format(|f| {
        let w = Workdir::new();
        let n = 2_000 * f.scale();
        let v1 = first_version(&w, f, n);
        let path = w.landing().join(f.file());
        for i in 1..=2u64 {
            touch(&path, i);
            let (stdout, stderr) = run_once_ok(&w, &[]);
            assert!(stdout.contains("nothing new"), "{f:?}: {stdout}");
            assert_eq!(rewritten_warnings(&stderr, f.file()), 0, "{stderr}");
            let x = explain_json(&w, f.file());
            assert_eq!(x["readiness"]["state"], "unchanged", "{x:#}");
            assert_eq!(x["checkpoint_state"], "processed", "{x:#}");
        }
        let rec = &checkpoint_files(&w)[f.file()];
        assert_eq!(rec["versions"], 0, "{rec:#}");
        assert_eq!(
            rec["batches"].as_array().expect("batches").len(),
            1,
            "{rec:#}"
        );
        assert_bronze(&w, f, &[&v1]);
    });
}

/// Sets the modification time `hours` hours before now (another time than the one the checkpoint recorded).
fn touch(path: &Path, hours: u64) {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(hours * 3600))
        .expect("set mtime");
}

/// A daemon tails a growing file (a half line waits for its end), ignores a `touch`, and reads a same-size rewrite
/// as a new version: the prefix hash carried across appends in one process is that of the bytes on disk.
#[test]
fn continuous_tails_appends_and_reads_a_rewrite_whole() {
    each_format(|f| {
        let w = Workdir::new();
        std::fs::create_dir_all(w.landing().join(f.dataset())).expect("mkdir");
        let d = crate::common::daemon::Daemon::start(
            &w,
            "continuous",
            &[
                "--settle-time",
                "300ms",
                "--poll-interval",
                "200ms",
                "--partial-line-timeout",
                "60s",
            ],
        );
        let bronze = w.bronze().join(f.dataset());
        let deadline = std::time::Duration::from_secs(30);
        let n = 500 * f.scale();
        let mut cur = keys(1_000_000, n);
        write_in_place(&w, f, &f.body(&cur));
        assert!(
            wait_until(deadline, || count_rows(&bronze) == cur.len()),
            "{f:?}: first version"
        );
        for round in 0..3u64 {
            let more = keys(7_000_000 + round * 100_000, 20 * f.scale());
            let body = f.body(&more);
            let rows = match f {
                Format::Csv => {
                    body[body.iter().position(|b| *b == b'\n').expect("header") + 1..].to_vec()
                }
                Format::Ndjson => body,
            };
            // Half of it first: the rows before the cut land, the cut row waits for its end.
            let cut = rows.len() / 2;
            append(&w, f, &rows[..cut]);
            let whole = rows[..cut].iter().filter(|b| **b == b'\n').count();
            assert!(
                wait_until(deadline, || count_rows(&bronze) == cur.len() + whole),
                "{f:?} round {round}: the complete rows of the first half"
            );
            append(&w, f, &rows[cut..]);
            cur.extend(&more);
            assert!(
                wait_until(deadline, || count_rows(&bronze) == cur.len()),
                "{f:?} round {round}"
            );
        }
        let rec = &checkpoint_files(&w)[f.file()];
        assert_eq!(
            rec["records_duplicate"], 0,
            "appends are never read twice: {rec:#}"
        );
        assert_eq!(rec["versions"], 0, "{rec:#}");
        // A touch: nothing new (several listings pass).
        touch(&w.landing().join(f.file()), 1);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        assert_eq!(count_rows(&bronze), cur.len());
        // The same size, keys in the middle changed.
        let mut v2 = cur.clone();
        let mid = cur.len() / 2;
        let changed = 30 * f.scale() as usize;
        for (i, k) in v2[mid..mid + changed].iter_mut().enumerate() {
            *k = 2_000_000 + i as u64;
        }
        write_in_place(&w, f, &f.body(&v2));
        let union = cur.len() + changed;
        assert!(
            wait_until(deadline, || count_rows(&bronze) == union),
            "{f:?}: the rewrite"
        );
        let (status, _, stderr) = d.stop();
        assert!(status.success(), "{stderr}");
        assert_eq!(rewritten_warnings(&stderr, f.file()), 1, "{stderr}");
        // Every prefix hash was computed while reading (the daemon logs at debug level).
        assert!(
            !stderr.contains("consumed prefix hashed by one more read"),
            "{stderr}"
        );
        let rec = &checkpoint_files(&w)[f.file()];
        assert_eq!(rec["versions"], 1, "{rec:#}");
        assert_eq!(rec["records_ok"], changed as u64, "{rec:#}");
        assert_eq!(
            rec["records_duplicate"],
            (cur.len() - changed) as u64,
            "{rec:#}"
        );
        assert_bronze(&w, f, &[&cur, &v2]);
        assert!(w.run_once(&[]).contains("nothing new"));
    });
}

/// A gzip file is read whole, so its consumed prefix is all of it: a `touch` is nothing new, new bytes under the
/// same name are a new version; its hash is computed while it is read (no second read).
#[test]
fn a_gzip_file_touched_is_unchanged_and_rewritten_is_a_new_version() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let name = "gharchive/hour.json.gz";
    let run = |w: &Workdir| {
        let out = w
            .cmd()
            .env("RUST_LOG", "lander=debug")
            .args(w.once_args())
            .output()
            .expect("spawn");
        assert_success(&out, &["run", "--mode", "once"], w.path());
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !stderr.contains("consumed prefix hashed by one more read"),
            "{stderr}"
        );
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    };
    let path = w.land(
        &gharchive("2011-02-15-0.json.gz"),
        "gharchive",
        "hour.json.gz",
    );
    run(&w);
    // The events of each hour, counted here (the genuine 2011-02-15-0 holds 1,639, 2015-01-01-0 7,702: `run_once`
    // checks both; a plain clone reads their bundled prefixes).
    let old_events = crate::common::data::gz_lines(&gharchive("2011-02-15-0.json.gz")).len();
    let new_events = crate::common::data::gz_lines(&gharchive("2015-01-01-0.json.gz")).len();
    assert_eq!(count_rows(&w.bronze().join("gharchive")), old_events);
    touch(&path, 1);
    let (stdout, stderr) = run(&w);
    assert!(stdout.contains("nothing new"), "{stdout}");
    assert_eq!(rewritten_warnings(&stderr, name), 0, "{stderr}");
    std::fs::copy(gharchive("2015-01-01-0.json.gz"), &path).expect("rewrite in place");
    let x = explain_json(&w, name);
    assert_eq!(x["readiness"]["change"], "rewritten", "{x:#}");
    let (stdout, stderr) = run(&w);
    assert_eq!(rewritten_warnings(&stderr, name), 1, "{stderr}");
    assert!(
        stdout.contains(&format!("{new_events} rows written, 0 duplicates dropped")),
        "{stdout}"
    );
    let keys = string_column(&w.bronze().join("gharchive"), "event_key");
    let distinct: BTreeSet<_> = keys.iter().collect();
    let total = old_events + new_events;
    assert_eq!((keys.len(), distinct.len()), (total, total));
    assert!(w.run_once(&[]).contains("nothing new"));
}
