//! Temporaries of interrupted uploads on HDFS: the store client writes a hidden `.<name>.tmp.<n>` and renames it
//! when the file is closed, so a put cut short (crash, kill, timeout) leaves that temporary behind. `fetch`
//! removes the stale ones of its own temporaries in landing; `run` removes those in bronze's staging on start.
//! Each is abandoned here through the same pure-Rust client lander uses, mid-upload, so it is still open.

use crate::backends::{Kind, Target};
use crate::common::*;

/// The names in landing below `sales/`.
fn landing_names(t: &Target) -> Vec<String> {
    t.landing_objects("sales")
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// `fetch s3` into an HDFS landing removes the client temporaries of fetch temporaries whose file is in landing,
/// keeps a young one whose file is not (it may be a concurrent fetch's live upload) and never touches other
/// writers' temporaries.
#[test]
fn fetch_removes_stale_client_temporaries_from_an_hdfs_landing() {
    use object_store::ObjectStoreExt;
    let t = Target::new(Kind::Hdfs);
    // A fetch of ventas-0.csv was interrupted mid-upload, then a later fetch published the file.
    t.interrupted_put(false, "sales/.ventas-0.csv.tmp");
    t.land_bytes("sales", "ventas-0.csv", b"a,b\n1,2\n".to_vec());
    // A fetch of ventas-9.csv is interrupted (or still running): its file is not in landing.
    t.interrupted_put(false, "sales/.ventas-9.csv.tmp");
    // Someone else's upload, not a fetch temporary.
    t.interrupted_put(false, "sales/other.csv");
    let before = landing_names(&t);
    for name in [
        "sales/..ventas-0.csv.tmp.tmp.1",
        "sales/..ventas-9.csv.tmp.tmp.1",
        "sales/.other.csv.tmp.1",
    ] {
        assert!(
            before.iter().any(|n| n == name),
            "{name} left by the interrupted put: {before:?}"
        );
    }

    let src = crate::backends::unique_prefix("tmpsrc");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(crate::backends::s3_store().put(
        &object_store::path::Path::from(format!("{src}/ventas-1.csv")),
        b"a,b\n3,4\n".to_vec().into(),
    ))
    .expect("put source");
    assert!(t.fetch_s3(&src).contains("fetched 1"));
    assert_eq!(
        landing_names(&t),
        [
            "sales/..ventas-9.csv.tmp.tmp.1",
            "sales/.other.csv.tmp.1",
            "sales/ventas-0.csv",
            "sales/ventas-1.csv",
        ]
    );
}

/// A bronze upload cut short leaves a client temporary in `_staging/`; the next `run` removes it with the rest of
/// the uncommitted staging before it ingests.
#[test]
fn run_removes_client_temporaries_from_hdfs_staging_on_start() {
    let t = Target::new(Kind::Hdfs);
    t.interrupted_put(true, "_staging/sales/b00000001/part-b00000001-0.parquet");
    assert_eq!(
        t.bronze_objects("_staging")
            .into_iter()
            .map(|(p, _)| p)
            .collect::<Vec<_>>(),
        ["_staging/sales/b00000001/.part-b00000001-0.parquet.tmp.1"]
    );
    // The bundled sample, so this runs on a plain clone too.
    let csv =
        std::fs::read_to_string(fixtures_landing().join("sales/transacciones_ventas-sample.csv"))
            .expect("sales csv");
    let slice: String = csv.lines().take(11).map(|l| format!("{l}\n")).collect();
    t.land_bytes("sales", "ventas-1.csv", slice.into_bytes());
    t.run_once(&[]);
    assert_eq!(t.count_rows("sales"), 10);
    assert!(
        t.bronze_objects("_staging").is_empty(),
        "{:?}",
        t.bronze_objects("_staging")
    );
}
