//! Temporaries of interrupted uploads on HDFS: the store client writes a hidden `.<name>.tmp.<n>` and renames it
//! when the file is closed, so a put cut short (crash, kill, timeout) leaves that temporary behind. `fetch`
//! removes the stale ones of its own temporaries in landing; `run` removes those in bronze's staging on start.
//! Each is abandoned here through the same pure-Rust client lander uses, mid-upload, so it is still open.

use std::time::Duration;

use crate::common::backends::{Kind, Target};
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

    let src = crate::common::backends::unique_prefix("tmpsrc");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(crate::common::backends::s3_store().put(
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

/// Hidden names in `bronze/<dir>`, sorted.
fn hidden_in(t: &Target, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = t
        .bronze_objects(dir)
        .into_iter()
        .filter_map(|(p, _)| {
            let name = p.rsplit('/').next().expect("name").to_string();
            name.starts_with('.').then_some(name)
        })
        .collect();
    v.sort();
    v
}

/// Temporaries of log entries left in a Delta table's `_delta_log` on HDFS (by a killed put, or by a client that
/// lost the race for a version and did not clean up): `run` removes, when it starts, those whose version exists
/// and that are older than a few minutes, in every naming (the client's `.<v>.json.tmp.<n>`, lander's
/// `.<v>.json.lander-<r>.tmp` and the client's temporary of that), and keeps a young one (a writer may still be
/// writing it), one of a version nobody has taken (a commit in flight) and other writers' files.
#[test]
fn run_removes_stale_temporaries_of_taken_versions_from_an_hdfs_delta_log() {
    let t = Target::new(Kind::Hdfs);
    let csv =
        std::fs::read_to_string(fixtures_landing().join("sales/transacciones_ventas-sample.csv"))
            .expect("sales csv");
    let lines: Vec<&str> = csv.lines().collect();
    let slice = |from: usize| -> Vec<u8> {
        let mut s = format!("{}\n", lines[0]);
        for l in &lines[from..from + 10] {
            s += &format!("{l}\n");
        }
        s.into_bytes()
    };
    t.land_bytes("sales", "ventas-1.csv", slice(1));
    t.run_once(&["--table-format", "delta"]);
    let v = |n: u64| format!("{n:020}.json");
    let hour = Duration::from_secs(3600);
    // (name, age, removed)
    let planted = [
        (format!(".{}.tmp.3", v(1)), hour, true),
        (format!(".{}.lander-0123456789abcdef.tmp", v(0)), hour, true),
        (
            format!("..{}.lander-0123456789abcdef.tmp.tmp.1", v(1)),
            hour,
            true,
        ),
        (format!(".{}.tmp.4", v(1)), Duration::ZERO, false),
        (format!(".{}.tmp.1", v(7)), hour, false),
        (".other-writer.json.tmp.1".to_string(), hour, false),
    ];
    for (name, age, _) in &planted {
        let rel = format!("sales/_delta_log/{name}");
        t.put_bronze(&rel, b"{}");
        if !age.is_zero() {
            t.webhdfs_age_bronze(&rel, *age);
        }
    }
    let mut all: Vec<String> = planted.iter().map(|(n, _, _)| n.clone()).collect();
    all.sort();
    assert_eq!(hidden_in(&t, "sales/_delta_log"), all);

    t.land_bytes("sales", "ventas-2.csv", slice(11));
    t.run_once(&["--table-format", "delta"]);
    let mut kept: Vec<String> = planted
        .iter()
        .filter(|(_, _, removed)| !removed)
        .map(|(n, _, _)| n.clone())
        .collect();
    kept.sort();
    assert_eq!(hidden_in(&t, "sales/_delta_log"), kept);
    assert_eq!(t.count_rows("sales"), 20);
    let mut verify = vec!["checkpoint".to_string(), "verify".into()];
    verify.extend(t.location_args());
    let refs: Vec<&str> = verify.iter().map(String::as_str).collect();
    assert!(t.run_ok(&refs).starts_with("ok:"));
}

/// The put-if-absent lander writes log entries with on HDFS (`lander::store::create_put`): writers racing for
/// the same names (8 at once, for each of 20 names) get exactly one winner per name, every loser gets
/// `AlreadyExists`, and no temporary is left in the directory, whoever lost and at which step.
#[test]
fn put_if_absent_on_hdfs_leaves_no_temporary_when_it_loses() {
    use lander::store::create_put::CreateByRename;
    use object_store::{ObjectStore, ObjectStoreExt};
    let t = Target::new(Kind::Hdfs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!(
        "hdfs://127.0.0.1:{}",
        crate::common::backends::minidfs().namenode_port
    );
    let dir = t
        .bronze_url
        .strip_prefix(&url)
        .expect("an hdfs bronze")
        .trim_start_matches('/')
        .to_string()
        + "/race/_delta_log";
    let (wins, losses) = rt.block_on(async {
        let raw = hdfs_native_object_store::HdfsObjectStoreBuilder::new()
            .with_url(url.clone())
            .build()
            .expect("hdfs store");
        let store: std::sync::Arc<dyn ObjectStore> =
            std::sync::Arc::new(CreateByRename::new(std::sync::Arc::new(raw)));
        let (mut wins, mut losses) = (0, 0);
        for version in 0..20u64 {
            let path = object_store::path::Path::from(format!("{dir}/{version:020}.json"));
            let won = crate::common::backends::racing_creates(store.clone(), &path, 8).await;
            losses += 8 - won;
            assert_eq!(won, 1, "version {version}: one winner");
            wins += won;
            let body = store
                .get(&path)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("bytes");
            assert!(body.starts_with(b"{\"writer\":"), "a whole entry");
        }
        (wins, losses)
    });
    assert_eq!((wins, losses), (20, 20 * 7));
    let names: Vec<String> = t
        .bronze_objects("race/_delta_log")
        .into_iter()
        .map(|(p, _)| p.rsplit('/').next().expect("name").to_string())
        .collect();
    assert_eq!(names.len(), 20, "only the entries, no temporary: {names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}
