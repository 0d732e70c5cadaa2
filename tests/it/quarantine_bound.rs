//! The quarantine of one batch does not grow memory with the input: a file that is mostly garbage is written
//! out in quarantine parts of bounded size while it is read, and its good records still land.

use std::io::Write as _;

use crate::common::data::quarantine;
use crate::common::*;

#[test]
fn a_file_of_garbage_is_quarantined_in_bounded_parts_and_its_good_lines_land() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let w = Workdir::new();
    let dir = w.landing().join("gharchive");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let good = crate::common::data::sample_lines("2015-01-01-0.json.gz", 3);
    const GARBAGE: usize = 600_000;
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(dir.join("mostly-garbage.json")).expect("create"),
    );
    let pad = "x".repeat(100);
    for i in 0..GARBAGE {
        if i % 200_000 == 0 {
            f.write_all(&good[i / 200_000]).expect("w");
            f.write_all(b"\n").expect("w");
        }
        writeln!(f, "not json {i} {pad}").expect("w");
    }
    f.into_inner().expect("flush").sync_all().expect("sync");
    let input = std::fs::metadata(dir.join("mostly-garbage.json"))
        .expect("stat")
        .len();

    let args = w.once_args();
    let (out, peak_kib) = run_measured(&w, &args);
    assert_success(&out, &[], w.path());
    eprintln!("peak RSS {peak_kib} KiB for {GARBAGE} garbage lines ({input} bytes)");

    assert_eq!(count_rows(&w.bronze().join("gharchive")), 3);
    let q = quarantine(&w, "gharchive");
    assert_eq!(q.len(), GARBAGE);
    // Every garbage line exactly once, with its line number.
    let mut lines: Vec<i64> = q.iter().map(|r| r.line).collect();
    lines.sort_unstable();
    lines.dedup();
    assert_eq!(lines.len(), GARBAGE);
    let parts = parquet_files(&w.bronze().join("_quarantine/gharchive"));
    assert!(parts.len() >= 3, "quarantine parts: {parts:?}");
    assert!(
        peak_kib > 0 && peak_kib < 160 * 1024,
        "peak RSS {peak_kib} KiB for {input} bytes of garbage"
    );
    let mut verify = vec!["checkpoint".to_string(), "verify".into()];
    verify.extend(w.location_args());
    let refs: Vec<&str> = verify.iter().map(String::as_str).collect();
    assert!(w.run_ok(&refs).starts_with("ok:"));
}
