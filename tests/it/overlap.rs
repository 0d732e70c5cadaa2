//! lander's own state never sits inside landing: `run` refuses landing, bronze and checkpoint
//! locations that overlap (one inside another, or equal) with exit 2 and a message naming both, before it
//! writes anything; separate locations that merely share a name prefix are fine.

use crate::common::*;

/// Runs `run --mode once` with these locations (relative to the workdir); returns the output.
fn run_with(w: &Workdir, landing: &str, bronze: &str, checkpoint: &str) -> std::process::Output {
    w.run(&[
        "run",
        "--mode",
        "once",
        "--settle-time",
        "0s",
        "--landing",
        landing,
        "--bronze",
        bronze,
        "--checkpoint",
        checkpoint,
    ])
}

#[test]
fn overlapping_locations_are_refused_with_exit_2_naming_both() {
    let w = Workdir::new();
    w.land_bytes(
        "sales",
        "a.csv",
        b"transaction_id,timestamp,customer_id,product_id,category,quantity,unit_price,total,payment_method,status\n\
          1,2025-10-25 19:07:27,8961,79973,Deportes,7,160.74,1125.18,Transferencia,Cancelada\n",
    );
    std::fs::create_dir_all(w.path().join("other")).expect("mkdir");
    // (landing, bronze, checkpoint, the two named, how)
    let cases = [
        (
            "landing",
            "landing/bronze",
            "state",
            ["landing", "landing/bronze"],
            "inside",
        ),
        (
            "landing",
            "bronze",
            "landing/state",
            ["landing", "landing/state"],
            "inside",
        ),
        (
            "other/landing",
            "other",
            "state",
            ["other/landing", "other"],
            "inside",
        ),
        (
            "landing",
            "landing",
            "state",
            ["landing", "landing"],
            "same location",
        ),
        (
            "landing",
            "./bronze/../landing",
            "state",
            ["landing", "bronze/../landing"],
            "same location",
        ),
        (
            "landing",
            "bronze",
            "bronze/state",
            ["bronze", "bronze/state"],
            "inside",
        ),
    ];
    for (landing, bronze, checkpoint, named, how) in cases {
        let out = run_with(&w, landing, bronze, checkpoint);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{landing} {bronze} {checkpoint}: {err}"
        );
        for n in named {
            assert!(
                err.contains(n),
                "{landing} {bronze} {checkpoint}: lacks {n:?}: {err}"
            );
        }
        assert!(err.contains(how), "{err}");
        assert!(err.contains("must not overlap"), "{err}");
    }
    // Nothing was written into landing by the refused runs.
    let mut entries: Vec<String> = std::fs::read_dir(w.landing())
        .expect("landing")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, vec!["sales"]);
    // A symlink to landing is the same place.
    std::os::unix::fs::symlink(w.landing(), w.path().join("alias")).expect("symlink");
    let out = run_with(&w, "landing", "alias/bronze", "state");
    assert_eq!(out.status.code(), Some(2));
    // Apart (a shared name prefix is not containment): accepted.
    let out = run_with(&w, "landing", "landing2", "landing3");
    assert_success(&out, &["run"], w.path());
    assert_eq!(count_rows(&w.path().join("landing2/sales")), 1);
}
