//! Hostile input: listing faults, limits, event-time policy and malformed files. Each test runs the
//! real binary and checks that the run goes on, that good records of the same file land, that bad ones are in
//! the quarantine with file, line/offset and a reason, and that the log says what happened.

use std::io::Write;
use std::path::Path;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;

use crate::common::daemon::Daemon;
use crate::common::data::{checkpoint_files, quarantine, run_once_ok, sample_lines};
use crate::common::data::{hour_bytes, hour_events, hour_events_of};
use crate::common::*;

fn ndjson(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gz");
    e.finish().expect("gz")
}

const SALES_HEADER: &str = "transaction_id,timestamp,customer_id,product_id,category,quantity,unit_price,total,payment_method,status\n";
const SALES_ROW: &str =
    "1,2025-10-25 19:07:27,8961,79973,Deportes,7,160.74,1125.18,Transferencia,Cancelada\n";

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().expect("utf8")).expect("cstring");
    // SAFETY: mkfifo on a NUL-terminated path owned by the test.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// Nests directories below `dir` until their path is longer than PATH_MAX: `read_dir` then fails (even for
/// root, unlike permission bits), which stands for any unreadable directory.
fn unreadable_dir(dir: &Path) {
    let name = std::ffi::CString::new("d".repeat(250)).expect("cstring");
    let start = std::ffi::CString::new(dir.to_str().expect("utf8")).expect("cstring");
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
}

/// A symlink loop, a symlink out of landing, a FIFO, a broken link, an unreadable directory, a directory named
/// like a data file and a loop at the top of landing: each is logged and skipped, and everything else lands. With `--follow-symlinks`
/// the link out of landing is read, the others still are not.
#[test]
fn listing_faults_are_logged_and_skipped_and_the_rest_lands() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let outside = tempfile::tempdir().expect("tempdir");
    w.land(
        &gharchive("2011-02-15-0.json.gz"),
        "gharchive",
        "2011-02-15-0.json.gz",
    );
    w.land_bytes(
        "sales",
        "day1.csv",
        format!("{SALES_HEADER}{SALES_ROW}").as_bytes(),
    );
    let gh = w.landing().join("gharchive");
    std::os::unix::fs::symlink(w.landing(), gh.join("loop")).expect("ln loop");
    std::os::unix::fs::symlink(w.landing(), w.landing().join("toploop")).expect("ln top");
    std::os::unix::fs::symlink(gh.join("b.json"), gh.join("a.json")).expect("ln a");
    std::os::unix::fs::symlink(gh.join("a.json"), gh.join("b.json")).expect("ln b");
    std::os::unix::fs::symlink(gh.join("nowhere.json"), gh.join("broken.json")).expect("ln");
    let out_file = outside.path().join("2012-02-15-0.json.gz");
    std::fs::write(&out_file, hour_bytes("2012-02-15-0.json.gz")).expect("write");
    std::os::unix::fs::symlink(&out_file, gh.join("2012-02-15-0.json.gz")).expect("ln out");
    mkfifo(&gh.join("pipe.json"));
    std::fs::create_dir_all(gh.join("dir.json.gz")).expect("mkdir");
    unreadable_dir(&gh);

    let (stdout, stderr) = run_once_ok(&w, &[]);
    assert!(stdout.contains("gharchive: batch 1 committed"), "{stdout}");
    // loop, a.json, b.json, broken.json, the link out, pipe.json, the deep directory.
    assert!(stdout.contains("landing: 7 entr(ies) skipped"), "{stdout}");
    assert_eq!(
        count_rows(&w.bronze().join("gharchive")),
        hour_events(&["2011-02-15-0.json.gz"])
    );
    assert_eq!(count_rows(&w.bronze().join("sales")), 1);
    for needle in [
        "gharchive/loop",
        "inside landing: not followed",
        "symlink loop",
        "gharchive/2012-02-15-0.json.gz",
        "symlink leaves landing",
        "--follow-symlinks",
        "gharchive/pipe.json",
        "not a regular file",
        "broken symlink",
        "cannot read directory",
    ] {
        assert!(stderr.contains(needle), "log lacks {needle:?}:\n{stderr}");
    }
    let files = checkpoint_files(&w);
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        vec!["gharchive/2011-02-15-0.json.gz", "sales/day1.csv"]
    );

    // Allowed by flag: only the link out of landing is read; loops and the FIFO are still skipped.
    let (stdout, _) = run_once_ok(&w, &["--follow-symlinks"]);
    assert!(stdout.contains("gharchive: batch 2 committed"), "{stdout}");
    assert_eq!(
        count_rows(&w.bronze().join("gharchive")),
        hour_events(&["2011-02-15-0.json.gz"]) + hour_events_of(&["2012-02-15-0.json.gz"])
    );
    assert!(checkpoint_files(&w).contains_key("gharchive/2012-02-15-0.json.gz"));
    assert!(run_once_ok(&w, &["--follow-symlinks"])
        .0
        .contains("nothing new"));
}

/// An over-long line is quarantined with its first bytes and its length while the lines around it land, and
/// the process never holds the line: its peak RSS stays far below the line's size.
#[test]
fn an_over_long_line_is_quarantined_without_being_buffered() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let lines = sample_lines("2015-01-01-0.json.gz", 3);
    let dir = w.landing().join("gharchive");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("big.json");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    f.write_all(&lines[0]).expect("w");
    f.write_all(b"\n").expect("w");
    // Line 2: a valid event padded with 200 MiB of blanks before its closing brace.
    const LONG: usize = 200 << 20;
    let head = &lines[1][..lines[1].len() - 1];
    f.write_all(head).expect("w");
    let blanks = vec![b' '; 1 << 20];
    for _ in 0..(LONG - head.len() - 1) / blanks.len() {
        f.write_all(&blanks).expect("w");
    }
    let long_len = head.len() + (LONG - head.len() - 1) / blanks.len() * blanks.len() + 1;
    f.write_all(b"}\n").expect("w");
    f.write_all(&lines[2]).expect("w");
    f.write_all(b"\n").expect("w");
    f.into_inner().expect("flush").sync_all().expect("sync");

    let args = w.once_args();
    let (out, peak_kib) = run_measured(&w, &args);
    assert_success(&out, &[], w.path());
    eprintln!("peak RSS {peak_kib} KiB for a {LONG}-byte line");
    assert!(
        peak_kib > 0 && peak_kib < 120 * 1024,
        "peak RSS {peak_kib} KiB for a {LONG}-byte line"
    );
    assert_eq!(count_rows(&w.bronze().join("gharchive")), 2);
    let mut q = quarantine(&w, "gharchive");
    // Besides the cut record, one row names the whole file's copy in `_quarantine/<dataset>/files/`.
    let copy = q
        .iter()
        .position(|r| r.line == 0)
        .expect("a row naming the copy");
    assert!(q.remove(copy).reason.ends_with("gharchive/big.json"));
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].source_file, "gharchive/big.json");
    assert_eq!(q[0].line, 2);
    assert_eq!(q[0].offset, lines[0].len() as i64 + 1);
    assert_eq!(q[0].raw.len(), 4096);
    assert_eq!(&q[0].raw[..64], &lines[1][..64]);
    assert!(
        q[0].reason.contains(&format!(
            "record is {long_len} bytes, over max_record_bytes (16777216 bytes)"
        )),
        "{}",
        q[0].reason
    );
}

/// A CSV record over the limit (a quoted field of 20 MiB on one line; one spanning lines is cut back to its first
/// line instead, see `stray_quote`) is quarantined with its head and its length; the rows before and after it
/// land with their own offsets.
#[test]
fn an_over_long_csv_record_is_quarantined_and_the_rows_after_it_land() {
    let w = Workdir::new();
    let mut data = format!("{SALES_HEADER}{SALES_ROW}").into_bytes();
    let long_offset = data.len();
    data.extend(b"2,2025-10-25 19:07:27,8961,79973,\"");
    let chunk = "a \"\"quoted\"\", long category ".repeat(1 << 10);
    while data.len() < long_offset + (20 << 20) {
        data.extend(chunk.as_bytes());
    }
    data.extend(b"\",7,160.74,1125.18,Transferencia,Cancelada\n");
    let long_len = data.len() - 1 - long_offset;
    let after_offset = data.len();
    data.extend(SALES_ROW.replacen('1', "3", 1).as_bytes());
    w.land_bytes("sales", "long.csv", &data);
    let (stdout, _) = run_once_ok(&w, &[]);
    assert!(
        stdout.contains("2 rows written, 0 duplicates dropped, 1 quarantined"),
        "{stdout}"
    );
    let mut q = quarantine(&w, "sales");
    let copy = q
        .iter()
        .position(|r| r.line == 0)
        .expect("a row naming the copy");
    assert!(q.remove(copy).reason.ends_with("sales/long.csv"));
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].offset, long_offset as i64);
    assert_eq!(q[0].line, 3);
    assert_eq!(q[0].raw.len(), 4096);
    assert!(q[0]
        .raw
        .starts_with(b"2,2025-10-25 19:07:27,8961,79973,\"a "));
    assert!(
        q[0].reason.contains(&format!(
            "record is {long_len} bytes, over max_record_bytes (16777216 bytes)"
        )),
        "{}",
        q[0].reason
    );
    let offsets: Vec<i64> = parquet_files(&w.bronze().join("sales"))
        .iter()
        .flat_map(|p| read_parquet(p))
        .flat_map(|b| {
            b.column_by_name("_source_offset")
                .expect("offset")
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert!(offsets.contains(&(after_offset as i64)), "{offsets:?}");
}

/// A 2 MB gzip that inflates to 2 GB of blanks is rejected quickly as a whole (copied to the quarantine with
/// the reason); a file over `--max-file-bytes` too; the other files of the batch land.
#[test]
fn decompression_bombs_and_oversized_files_are_rejected_whole() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    // 2048 gzip members of 1 MiB of blanks each: ~2 MB that inflate to 2 GiB with no newline.
    let member = gzip(&vec![b' '; 1 << 20]);
    let mut bomb = Vec::with_capacity(member.len() * 2048);
    for _ in 0..2048 {
        bomb.extend_from_slice(&member);
    }
    w.land_bytes("gharchive", "2015-01-01-9.json.gz", &bomb);
    w.land(
        &gharchive("2011-02-15-0.json.gz"),
        "gharchive",
        "2011-02-15-0.json.gz",
    );
    let started = std::time::Instant::now();
    let (stdout, stderr) = run_once_ok(&w, &[]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(stdout.contains("1 failed file(s)"), "{stdout}");
    assert!(stderr.contains("max_decompression_ratio"), "{stderr}");
    assert_eq!(
        count_rows(&w.bronze().join("gharchive")),
        hour_events(&["2011-02-15-0.json.gz"])
    );
    let copied = quarantined_copy(
        &w.bronze(),
        "gharchive",
        1,
        "gharchive/2015-01-01-9.json.gz",
    );
    assert_eq!(std::fs::read(&copied).expect("copied").len(), bomb.len());
    let q = quarantine(&w, "gharchive");
    assert_eq!(q.len(), 1);
    assert!(
        q[0].reason.contains("whole file rejected"),
        "{}",
        q[0].reason
    );
    assert!(
        q[0].reason
            .contains("beyond max_decompression_ratio (100:1)"),
        "{}",
        q[0].reason
    );
    let files = checkpoint_files(&w);
    let failed = &files["gharchive/2015-01-01-9.json.gz"];
    assert_eq!(failed["status"], "failed");
    assert!(failed["reason"]
        .as_str()
        .expect("reason")
        .contains("max_decompression_ratio"));

    // max_file_bytes: the big CSV is rejected whole, the small one lands.
    w.land_bytes(
        "sales",
        "big.csv",
        format!("{SALES_HEADER}{}", SALES_ROW.repeat(50)).as_bytes(),
    );
    w.land_bytes(
        "sales",
        "small.csv",
        format!("{SALES_HEADER}{}", SALES_ROW.replacen('1', "2", 1)).as_bytes(),
    );
    let (stdout, _) = run_once_ok(&w, &["--max-file-bytes", "1000"]);
    assert!(stdout.contains("1 failed file(s)"), "{stdout}");
    assert_eq!(count_rows(&w.bronze().join("sales")), 1);
    let files = checkpoint_files(&w);
    assert!(files["sales/big.csv"]["reason"]
        .as_str()
        .expect("reason")
        .contains("over max_file_bytes (1000 bytes)"));
}

/// Event times before the floor or too far in the future are quarantined with the reason; the other records
/// of the same files land, and no `year=2999` partition appears.
#[test]
fn event_times_out_of_range_are_quarantined() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let mut lines = sample_lines("2015-01-01-0.json.gz", 4);
    let swap = |l: &[u8], to: &str| {
        String::from_utf8(l.to_vec())
            .expect("utf8")
            .replace("2015-01-01T", to)
            .into_bytes()
    };
    lines[1] = swap(&lines[1], "2999-01-01T");
    lines[2] = swap(&lines[2], "1999-12-31T");
    w.land_bytes("gharchive", "times.json", &ndjson(&lines));
    w.land_bytes(
        "sales",
        "times.csv",
        format!(
            "{SALES_HEADER}{SALES_ROW}{}",
            SALES_ROW
                .replacen('1', "2", 1)
                .replace("2025-10-25", "2999-10-25")
        )
        .as_bytes(),
    );
    let (stdout, _) = run_once_ok(&w, &[]);
    assert!(
        stdout.contains("2 rows written, 0 duplicates dropped, 2 quarantined"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 rows written, 0 duplicates dropped, 1 quarantined"),
        "{stdout}"
    );
    let q = quarantine(&w, "gharchive");
    assert_eq!(q.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 3]);
    assert!(
        q[0].reason.contains("created_at 2999-01-01T") && q[0].reason.contains("in the future"),
        "{}",
        q[0].reason
    );
    assert!(
        q[1].reason
            .contains("before the earliest accepted event time 2000-01-01T00:00:00Z"),
        "{}",
        q[1].reason
    );
    let s = quarantine(&w, "sales");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].line, 3);
    assert!(s[0].reason.contains("in the future"), "{}", s[0].reason);
    for p in parquet_files(&w.bronze()) {
        assert!(
            !p.display().to_string().contains("year=2999"),
            "{}",
            p.display()
        );
        assert!(
            !p.display().to_string().contains("year=1999"),
            "{}",
            p.display()
        );
    }
    // The floor is configurable: 1999 is accepted with an earlier one (a new file, same records).
    w.land_bytes("gharchive", "times2.json", &ndjson(&lines[2..3]));
    let (stdout, _) = run_once_ok(&w, &["--event-time-min", "1990-01-01"]);
    assert!(stdout.contains("1 rows written"), "{stdout}");
}

/// Empty, non-gzip and malformed files get clear, distinct outcomes.
#[test]
fn empty_non_gzip_and_malformed_records_have_clear_reasons() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let good = sample_lines("2015-01-01-0.json.gz", 2);
    w.land_bytes("gharchive", "empty.json.gz", b"");
    w.land_bytes("gharchive", "plain.json.gz", &ndjson(&good));
    let mut mixed = good.clone();
    mixed.insert(1, b"[1, 2, 3]".to_vec());
    mixed.insert(2, b"\"just a string\"".to_vec());
    mixed.insert(
        3,
        b"{\"id\": \"9\", \"type\": \"X\", \"caf\xe9\": 1}".to_vec(),
    );
    w.land_bytes("gharchive", "mixed.json.gz", &gzip(&ndjson(&mixed)));
    w.land_bytes(
        "sales",
        "bad.csv",
        format!(
            "{SALES_HEADER}{SALES_ROW}2,2025-10-25 19:07:27,8961\n3,2025-10-25 19:07:27,8961,79973,Deportes,7,160.74,1125.18,Transferencia,Cancelada,extra\n4,2025-10-25 19:07:27,8961,79973,\"Deportes,7,160.74,1125.18,Transferencia,Cancelada\n5,2025-10-25 19:07:27,8961,79973,Deportes,7,160.74,1125.18,Transferencia,Cancelada\n"
        )
        .as_bytes(),
    );
    let (stdout, stderr) = run_once_ok(&w, &[]);
    assert!(stderr.contains("empty file: nothing to ingest"), "{stderr}");
    let files = checkpoint_files(&w);
    assert_eq!(files["gharchive/empty.json.gz"]["status"], "ok");
    assert_eq!(files["gharchive/plain.json.gz"]["status"], "failed");
    let reason = files["gharchive/plain.json.gz"]["reason"]
        .as_str()
        .expect("reason");
    assert!(
        reason.contains("is not gzip: it is named .gz but starts with 7b"),
        "{reason}"
    );
    assert_eq!(files["gharchive/mixed.json.gz"]["status"], "ok");
    assert_eq!(count_rows(&w.bronze().join("gharchive")), 2);
    let q = quarantine(&w, "gharchive");
    let by_file: Vec<_> = q
        .iter()
        .filter(|r| r.source_file == "gharchive/mixed.json.gz")
        .collect();
    assert_eq!(by_file.len(), 3, "{q:?}");
    assert_eq!(by_file[0].reason, "not a JSON object: the line is an array");
    assert_eq!(by_file[1].reason, "not a JSON object: the line is a string");
    assert!(
        by_file[2].reason.contains("not valid UTF-8"),
        "{}",
        by_file[2].reason
    );
    assert_eq!(by_file[2].raw, mixed[3]);
    assert!(!q.iter().any(|r| r.source_file == "gharchive/empty.json.gz"));
    assert!(stdout.contains("sales: batch 1 committed"), "{stdout}");

    // CSV: too few, too many, and an unbalanced quote in row 4: only its own line is quarantined, so
    // rows 1 and 5 land.
    assert_eq!(count_rows(&w.bronze().join("sales")), 2);
    let s = quarantine(&w, "sales");
    assert_eq!(s.len(), 3, "{s:?}");
    assert!(
        s[0].reason
            .contains("expected 10 fields, found 3 (too few)"),
        "{}",
        s[0].reason
    );
    assert!(
        s[1].reason
            .contains("expected 10 fields, found 11 (too many)"),
        "{}",
        s[1].reason
    );
    assert!(s[2].reason.contains("unbalanced quote"), "{}", s[2].reason);
    assert_eq!(s[2].line, 5);
    assert_eq!(
        s[2].raw,
        b"4,2025-10-25 19:07:27,8961,79973,\"Deportes,7,160.74,1125.18,Transferencia,Cancelada"
    );
}

const DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// A writer that pauses mid-line for longer than the settle time: `micro-batch` waits for the newline instead
/// of quarantining the two halves; with a short `--partial-line-timeout`, `continuous` takes a line that never
/// ends as a record (here: invalid JSON, so quarantined) once the file has been quiet that long.
#[test]
fn tailing_waits_for_a_paused_writer_to_finish_its_line() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let lines = sample_lines("2015-01-01-0.json.gz", 6);
    std::fs::create_dir_all(w.landing().join("gharchive")).expect("mkdir");
    let d = Daemon::start(
        &w,
        "micro-batch",
        &[
            "--interval",
            "200ms",
            "--settle-time",
            "300ms",
            "--partial-line-timeout",
            "60s",
        ],
    );
    let path = w.landing().join("gharchive/stream.json");
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(&ndjson(&lines[..3])).expect("w");
    let half = lines[3].len() / 2;
    f.write_all(&lines[3][..half]).expect("w");
    f.flush().expect("flush");
    let gh = w.bronze().join("gharchive");
    assert!(
        wait_until(DEADLINE, || count_rows(&gh) == 3),
        "first 3 lines"
    );
    // The writer pauses far longer than the settle time.
    std::thread::sleep(std::time::Duration::from_millis(2000));
    assert_eq!(count_rows(&gh), 3, "the half line must wait");
    assert!(
        quarantine(&w, "gharchive").is_empty(),
        "nothing quarantined while the writer pauses"
    );
    f.write_all(&lines[3][half..]).expect("w");
    f.write_all(b"\n").expect("w");
    f.write_all(&ndjson(&lines[4..])).expect("w");
    f.flush().expect("flush");
    assert!(
        wait_until(DEADLINE, || count_rows(&gh) == 6),
        "the completed line and the rest"
    );
    let (status, _, stderr) = d.stop();
    assert!(status.success(), "{stderr}");
    assert!(quarantine(&w, "gharchive").is_empty());
    let keys = string_column(&gh, "event_key");
    assert_eq!(
        keys.iter().collect::<std::collections::HashSet<_>>().len(),
        6,
        "every event once"
    );

    // A line that never ends is a record after the partial-line timeout.
    let d = Daemon::start(
        &w,
        "continuous",
        &[
            "--settle-time",
            "200ms",
            "--poll-interval",
            "200ms",
            "--partial-line-timeout",
            "1s",
        ],
    );
    let mut g = std::fs::File::create(w.landing().join("gharchive/cut.json")).expect("create");
    g.write_all(&lines[0]).expect("w");
    g.write_all(b"\n{\"id\": \"cut").expect("w");
    g.flush().expect("flush");
    assert!(
        wait_until(DEADLINE, || quarantine(&w, "gharchive").len() == 1),
        "the unterminated line is quarantined after the timeout"
    );
    let (status, _, stderr) = d.stop();
    assert!(status.success(), "{stderr}");
    let q = quarantine(&w, "gharchive");
    assert_eq!(q[0].source_file, "gharchive/cut.json");
    assert_eq!(q[0].line, 2);
    assert_eq!(q[0].raw, b"{\"id\": \"cut");
    assert!(q[0].reason.contains("invalid JSON"), "{}", q[0].reason);
}

/// The rest of the matrix: corrupt bytes inside a gzip stream reject the file whole; Windows-1252 text in a
/// UTF-8 dataset is quarantined per row; a file rewritten shorter after it was processed is read again as a new
/// version, with a warning, and dedup keeps bronze free of duplicates.
#[test]
fn corrupt_gzip_wrong_encoding_and_rewritten_files() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let mut bytes = std::fs::read(gharchive("2015-01-01-0.json.gz")).expect("read");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    w.land_bytes("gharchive", "2015-01-01-0.json.gz", &bytes);
    w.land(
        &gharchive("2011-02-15-0.json.gz"),
        "gharchive",
        "2011-02-15-0.json.gz",
    );
    let row2 = SALES_ROW.replacen('1', "2", 1);
    let latin = SALES_ROW
        .replacen('1', "3", 1)
        .replace("Deportes", "Electr\u{f3}nica");
    let mut csv = format!("{SALES_HEADER}{SALES_ROW}{row2}").into_bytes();
    // "Electrónica" in Windows-1252: ó is the single byte 0xf3, invalid in UTF-8.
    csv.extend(latin.replace('\u{f3}', "\u{0}").as_bytes());
    let zero = csv.iter().position(|b| *b == 0).expect("marker");
    csv[zero] = 0xf3;
    w.land_bytes("sales", "day.csv", &csv);
    let (stdout, stderr) = run_once_ok(&w, &[]);
    assert!(stdout.contains("1 failed file(s)"), "{stdout}");
    assert_eq!(
        count_rows(&w.bronze().join("gharchive")),
        hour_events(&["2011-02-15-0.json.gz"])
    );
    let files = checkpoint_files(&w);
    let reason = files["gharchive/2015-01-01-0.json.gz"]["reason"]
        .as_str()
        .expect("reason");
    assert!(
        reason.contains("corrupt") || reason.contains("invalid gzip"),
        "{reason}\n{stderr}"
    );
    assert_eq!(count_rows(&w.bronze().join("sales")), 2);
    let q = quarantine(&w, "sales");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].line, 4);
    assert!(
        q[0].reason.contains("column \"category\": invalid UTF-8"),
        "{}",
        q[0].reason
    );
    assert!(q[0].raw.contains(&0xf3), "raw bytes are kept as they were");

    // Rewritten shorter, with one new row: a new version; only the new row is new to bronze.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let row4 = SALES_ROW.replacen('1', "4", 1);
    w.land_bytes(
        "sales",
        "day.csv",
        format!("{SALES_HEADER}{row2}{row4}").as_bytes(),
    );
    let (stdout, stderr) = run_once_ok(&w, &[]);
    assert!(
        stderr.contains("file rewritten after it was processed"),
        "{stderr}"
    );
    assert!(
        stdout.contains("1 rows written, 1 duplicates dropped, 0 quarantined"),
        "{stdout}"
    );
    assert_eq!(count_rows(&w.bronze().join("sales")), 3);
}

/// A settled file's unterminated last line is committed as a record (`once`); when the file then grows, the
/// bytes up to the next newline are that line's continuation: a warning says so, they are quarantined as such
/// (not as a garbage "line 3"), and the lines after them land with their true line numbers.
#[test]
fn growth_after_a_committed_unterminated_line_is_its_continuation() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let lines = sample_lines("2015-01-01-0.json.gz", 3);
    let cut = 40;
    let mut first = ndjson(&lines[..1]);
    first.extend_from_slice(&lines[1][..cut]);
    let path = w.land_bytes("gharchive", "grow.json", &first);
    let (stdout, _) = run_once_ok(&w, &[]);
    assert!(
        stdout.contains("1 rows written, 0 duplicates dropped, 1 quarantined"),
        "{stdout}"
    );

    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    f.write_all(&lines[1][cut..]).expect("w");
    f.write_all(b"\n").expect("w");
    f.write_all(&lines[2]).expect("w");
    f.write_all(b"\n").expect("w");
    drop(f);
    let (stdout, stderr) = run_once_ok(&w, &[]);
    assert!(
        stderr.contains("file grew after its last line, which had no newline"),
        "{stderr}"
    );
    assert!(
        stdout.contains("1 rows written, 0 duplicates dropped, 1 quarantined"),
        "{stdout}"
    );
    let q = quarantine(&w, "gharchive");
    assert_eq!(q.len(), 2, "{q:?}");
    let cont = q
        .iter()
        .find(|r| r.reason.starts_with("continuation"))
        .expect("continuation row");
    assert_eq!(cont.line, 2);
    assert_eq!(cont.offset, first.len() as i64);
    assert_eq!(cont.raw, lines[1][cut..].to_vec());
    let gh = w.bronze().join("gharchive");
    let mut source_lines: Vec<i64> = parquet_files(&gh)
        .iter()
        .flat_map(|p| read_parquet(p))
        .flat_map(|b| {
            b.column_by_name("_source_line")
                .expect("line")
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    source_lines.sort();
    assert_eq!(source_lines, vec![1, 3]);
    // The checkpoint says which committed line was continued.
    let rec = &checkpoint_files(&w)["gharchive/grow.json"];
    assert_eq!(rec["continued_lines"], serde_json::json!([2]), "{rec}");
}
