//! One conformance suite, run against every storage backend: the local filesystem, HDFS (a real
//! MiniDFSCluster) and S3 (a real moto server); see `common/backends.rs`.
//!
//! With the cargo feature `hdrs` the suite also runs on the same cluster through `hdfs+jni://` (libhdfs over
//! JNI) as `conformance::hdfs_jni::<behaviour>`.
//!
//! Each behaviour is a function taking the backend; the `conformance!` macro instantiates it once per backend as
//! `conformance::<backend>::<behaviour>`, so `cargo test conformance::hdfs` runs the HDFS group alone.
//! Expected row counts come from a run of the same input on a local directory (the spine's own tests pin those
//! to counts computed independently from the raw files).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use crate::common::backends::{Kind, Target};
use crate::common::data::sales_lines;
use crate::common::*;

const G2011: &str = "2011-02-15-0.json.gz";
const G2013: &str = "2013-02-15-0.json.gz";

/// The flags `continuous` runs with here and in the lander service of `docker/docker-compose.yml`.
const CONTINUOUS_FLAGS: [&str; 4] = ["--settle-time", "1s", "--poll-interval", "1s"];

/// Deadline for a daemon to pick up a file.
const DEADLINE: Duration = Duration::from_secs(30);

/// The first `n` data lines of `transacciones_ventas.csv` with its header (unique transaction ids).
fn sales_slice(n: usize) -> Vec<u8> {
    sales_lines(0, n)
}

/// Lands the suite's standard input: two GH Archive shapes and a sales CSV slice.
fn land_standard(t: &Target) {
    t.land(&gharchive(G2011), "gharchive", G2011);
    t.land(&gharchive(G2013), "gharchive", G2013);
    t.land_bytes("sales", "ventas-1.csv", sales_slice(500));
}

/// Rows per bronze file after a clean local run of the standard input (computed once per test binary).
fn expected() -> &'static BTreeMap<String, usize> {
    static EXPECTED: std::sync::OnceLock<BTreeMap<String, usize>> = std::sync::OnceLock::new();
    EXPECTED.get_or_init(|| {
        let t = Target::new(Kind::Local);
        land_standard(&t);
        t.run_once(&[]);
        let rows = t.rows_by_file("");
        assert_eq!(
            rows.iter()
                .filter(|(p, _)| p.starts_with("sales/"))
                .map(|(_, n)| n)
                .sum::<usize>(),
            500
        );
        rows
    })
}

fn verify(t: &Target) -> std::process::Output {
    let mut args = vec!["checkpoint".to_string(), "verify".into()];
    args.extend(t.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    t.run(&refs)
}

/// Once: bronze equals the local expectation file by file; a rerun adds nothing; `checkpoint verify` passes,
/// then catches a deleted part.
fn once_rerun_and_verify(kind: Kind) {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let t = Target::new(kind);
    land_standard(&t);
    let out = t.run_once(&[]);
    assert!(out.contains("gharchive: batch 1 committed"), "{out}");
    assert_eq!(&t.rows_by_file(""), expected());
    assert!(
        t.bronze_objects("_staging").is_empty(),
        "no staging objects left"
    );

    let before = t.bronze_objects("");
    let out = t.run_once(&[]);
    assert!(out.contains("nothing new"), "{out}");
    assert_eq!(t.bronze_objects(""), before, "a rerun writes nothing");

    let ok = verify(&t);
    assert_success(&ok, &["checkpoint", "verify"], t.wd.path());
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(text.starts_with("ok: "), "{text}");

    let victim = t
        .bronze_objects("gharchive")
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| p.ends_with(".parquet") && !p.contains("/_"))
        .expect("a gharchive part");
    t.delete_bronze(&victim);
    let bad = verify(&t);
    assert_eq!(bad.status.code(), Some(1), "verify must fail");
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(
        text.contains(&format!("problem: {victim}: missing from bronze")),
        "{text}"
    );
}

/// A crash at each failpoint in turn (each run recovers the previous one first), then a clean run: bronze equals
/// the local expectation, no staging is left, verify passes and a rerun adds nothing.
#[cfg(feature = "failpoints")]
fn crash_at_every_failpoint_recovers(kind: Kind) {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let t = Target::new(kind);
    land_standard(&t);
    let mut last = String::new();
    for step in ["intent", "staged", "publishing", "published"] {
        let args = t.once_args(&[]);
        let out = t
            .cmd()
            .args(&args)
            .env("LANDER_FAIL_AFTER", step)
            .output()
            .expect("spawn");
        // At the failpoint, not on some other error (which would leave the steps below nothing to recover).
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(&format!("failpoint: aborting after {step}")),
            "failpoint {step} should abort there: {stderr}"
        );
        last = stderr.into_owned();
    }
    // Datasets run concurrently: the first one to publish aborts the process with its parts visible.
    assert!(
        t.count_rows("") > 0,
        "the crash after publishing left visible parts behind; its log:\n{last}"
    );
    // This run recovers, commits a batch, then dies: that commit must stand, the rest is done by the next run.
    let args = t.once_args(&[]);
    let out = t
        .cmd()
        .args(&args)
        .env("LANDER_FAIL_AFTER", "committed")
        .output()
        .expect("spawn");
    assert!(!out.status.success(), "failpoint committed should abort");
    t.run_once(&[]);
    assert_eq!(&t.rows_by_file(""), expected());
    let out = t.run_once(&[]);
    assert!(out.contains("nothing new"), "{out}");
    assert!(t.bronze_objects("_staging").is_empty(), "staging cleaned");
    let ok = verify(&t);
    assert_success(&ok, &["checkpoint", "verify"], t.wd.path());
}

/// `continuous` on a backend without filesystem events: the periodic listing picks up a file landed after start,
/// and SIGTERM stops it cleanly.
fn continuous_picks_up_a_new_file(kind: Kind) {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let t = Target::new(kind);
    t.land_bytes("sales", "ventas-1.csv", sales_slice(50));
    let mut args = vec!["run".to_string(), "--mode".into(), "continuous".into()];
    args.extend(t.location_args());
    args.extend(CONTINUOUS_FLAGS.iter().map(|s| s.to_string()));
    let child = t
        .cmd()
        .args(&args)
        .env("RUST_LOG", "lander=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn daemon");
    let mut daemon = KillOnDrop(Some(child));
    assert!(
        wait_until(DEADLINE, || t.count_rows("sales") == 50),
        "the file present at start"
    );
    t.land(&gharchive(G2011), "gharchive", G2011);
    assert!(
        wait_until(DEADLINE, || t.count_rows("gharchive")
            == expected_rows("gharchive/year=2011")),
        "a file landed after start"
    );
    let child = daemon.0.take().expect("running");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = t.run_once(&[]);
    assert!(again.contains("nothing new"), "{again}");
}

fn expected_rows(prefix: &str) -> usize {
    expected()
        .iter()
        .filter(|(p, _)| p.starts_with(prefix))
        .map(|(_, n)| n)
        .sum()
}

struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `fetch gharchive --landing <backend>` lands the served hour byte for byte through the staged put; a rerun
/// skips it; `run` ingests it.
fn fetch_into_the_backend(kind: Kind) {
    let t = Target::new(kind);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(crate::common::fetch_server::Server::start());
    let served = server.serve_fixture("2015-01-01-0.json.gz");
    let fetch = |t: &Target| {
        let mut args = server.gharchive_args(&t.landing_url);
        args.extend(["--retry-backoff".into(), "10ms".into()]);
        t.run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = fetch(&t);
    assert!(out.contains("fetched 1"), "{out}");
    assert_eq!(
        t.landing_objects("gharchive"),
        [(
            "gharchive/2015-01-01-0.json.gz".to_string(),
            served.len() as u64
        )],
        "only the final name is left in landing"
    );
    assert_eq!(
        t.landing_bytes("gharchive/2015-01-01-0.json.gz").as_ref(),
        served.as_slice()
    );
    let out = fetch(&t);
    assert!(
        out.contains("fetched 0") && out.contains("skipped 1"),
        "{out}"
    );
    let out = t.run_once(&[]);
    assert!(out.contains("1 file(s)"), "{out}");
    assert!(t.count_rows("gharchive") > 0);
}

/// `fetch s3 s3://bucket/prefix --dataset sales --landing <backend>` copies the new objects (keeping their
/// sub-paths, skipping hidden ones) through the staged put; a rerun copies nothing; `run` ingests them.
fn fetch_s3_into_the_backend(kind: Kind) {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    use object_store::ObjectStoreExt;
    let t = Target::new(kind);
    let src = crate::common::backends::unique_prefix("src");
    let s3 = crate::common::backends::s3_store();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (name, bytes) in [
        ("2025/ventas-1.csv", sales_lines(0, 100)),
        ("ventas-2.csv", sales_lines(100, 100)),
        ("_SUCCESS", Vec::new()),
    ] {
        let path = object_store::path::Path::from(format!("{src}/{name}"));
        rt.block_on(s3.put(&path, bytes.into()))
            .expect("put source");
    }
    let fetch = || t.fetch_s3(&src);
    let out = fetch();
    assert!(
        out.contains("fetched 2") && out.contains("skipped 0"),
        "{out}"
    );
    let names: Vec<String> = t
        .landing_objects("sales")
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(names, ["sales/2025/ventas-1.csv", "sales/ventas-2.csv"]);
    let out = fetch();
    assert!(
        out.contains("fetched 0") && out.contains("skipped 2"),
        "{out}"
    );
    t.run_once(&[]);
    assert_eq!(t.count_rows("sales"), 200);
}

/// `generate sales --landing <backend>` publishes its files through the no-clobber rename (copy + delete on S3),
/// refuses to overwrite them on a rerun, and `run` ingests them.
fn generate_into_the_backend(kind: Kind) {
    let t = Target::new(kind);
    let args = [
        "generate",
        "sales",
        "--rows",
        "300",
        "--files",
        "2",
        "--seed",
        "7",
        "--duplicate-share",
        "0",
        "--landing",
        &t.landing_url,
    ];
    let out = t.run_ok(&args);
    assert!(out.contains("generated 300 rows in 2 files"), "{out}");
    let names: Vec<String> = t
        .landing_objects("sales")
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().all(|n| !n.contains("/.")),
        "no temporary left: {names:?}"
    );
    let again = t.run(&args);
    assert!(!again.status.success(), "a rerun must refuse to overwrite");
    t.run_once(&[]);
    assert_eq!(t.count_rows("sales"), 300);
}

/// Every name a backend can store is ingested under its own name: accents, spaces, `%`, `#`, `*`,
/// `?`, `\`, `|`, `<`, `>`, `"`, emoji, text that is already percent-encoded and long names, each file a
/// disjoint slice of the sales CSV whose rows are counted from its lines; a rerun reads nothing again.
fn every_name_is_ingested(kind: Kind) {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let t = Target::new(kind);
    let long = if matches!(kind, Kind::Local | Kind::S3) {
        250
    } else {
        248
    };
    let mut expected = BTreeMap::new();
    for (i, name) in crate::common::data::hard_names(long).iter().enumerate() {
        let (bytes, rows) = crate::common::data::content_for(i);
        t.land_exact("sales", name, &bytes);
        expected.insert(format!("sales/{name}"), rows);
    }
    let args = t.once_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = t.run(&args);
    assert_success(&out, &args, t.wd.path());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains("sales: batch 1 committed"),
        "{stdout}\n{stderr}"
    );
    assert_eq!(t.rows_by_source("sales"), expected, "rows per source file");
    let out = t.run_once(&[]);
    assert!(out.contains("nothing new"), "{out}");
    // A file rejected whole, below a directory whose name has a character beyond U+FFFF, is copied to the
    // quarantine under its own name (on `hdfs+jni://` its temporary cannot sit in that directory).
    let broken = b"not gzip at all\n".repeat(50);
    t.land_exact("sales", "four-byte 🚀 dir/broken 📦.csv.gz", &broken);
    t.run_once(&[]);
    let copies = t.bronze_objects("_quarantine/sales/files");
    assert!(
        copies.iter().any(
            |(p, size)| p.ends_with("/sales/four-byte 🚀 dir/broken 📦.csv.gz")
                && *size == broken.len() as u64
        ),
        "{copies:?}"
    );
}

/// On HDFS a name can hold a newline, which no object path can: that file is a warning naming it and is listed
/// by `checkpoint pending`, and the files listed after it are still ingested.
#[test]
fn hdfs_a_name_no_store_path_can_hold_is_reported_and_the_rest_lands() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let t = Target::new(Kind::Hdfs);
    let (bad, _) = crate::common::data::content_for(3);
    t.webhdfs_create("sales/a%0Abad.csv", &bad);
    let (good, rows) = crate::common::data::content_for(4);
    t.land_exact("sales", "b_good.csv", &good);
    let (more, more_rows) = crate::common::data::content_for(5);
    t.land_exact("sales", "c_more.csv", &more);
    let args = t.once_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = t.run(&args);
    assert_success(&out, &args, t.wd.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("sales/a\\nbad.csv")),
        "{stderr}"
    );
    assert_eq!(t.count_rows("sales"), rows + more_rows);
    let mut args = vec!["checkpoint".to_string(), "pending".into(), "--json".into()];
    args.extend(t.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let pending: serde_json::Value =
        serde_json::from_str(&t.run_ok(&refs)).expect("pending --json");
    let pending = pending.as_array().expect("array");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["change"], "skipped");
    assert_eq!(pending[0]["path"], "sales/a\nbad.csv");
}

/// On S3 a key can hold control characters, which no object path can, and object_store fails the whole listing
/// page that holds one. Such keys (sorting before every other key, between two good ones, in a sub-directory)
/// are each a warning naming them, listed by `checkpoint pending` and explained by `explain`, and every other
/// file lands, those listed before and after them included.
#[test]
fn s3_a_key_no_store_path_can_hold_is_reported_and_the_rest_lands() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let t = Target::new(Kind::S3);
    // (moto answers 404 to a key with a newline, which real S3 takes: ESC and TAB stand in for it.)
    let bad = [
        "sales/\u{1}first.csv",
        "sales/m\u{1b}middle.csv",
        "sales/sub/\u{7f}del\tx.csv",
    ];
    for (i, key) in bad.iter().enumerate() {
        let (bytes, _) = crate::common::data::content_for(10 + i);
        t.s3_put_raw(key, &bytes);
    }
    let mut rows = 0;
    for (i, name) in [
        "a_before.csv",
        "b_good.csv",
        "z_after.csv",
        "sub/c_more.csv",
    ]
    .iter()
    .enumerate()
    {
        let (bytes, n) = crate::common::data::content_for(20 + i);
        t.land_exact("sales", name, &bytes);
        rows += n;
    }
    let args = t.once_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = t.run(&args);
    assert_success(&out, &args, t.wd.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in bad {
        let shown = key.escape_debug().to_string();
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("WARN") && l.contains(&shown)),
            "no warning naming {shown}:\n{stderr}"
        );
    }
    assert_eq!(t.count_rows("sales"), rows);
    let mut args = vec!["checkpoint".to_string(), "pending".into(), "--json".into()];
    args.extend(t.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let pending: serde_json::Value =
        serde_json::from_str(&t.run_ok(&refs)).expect("pending --json");
    let mut listed: Vec<&str> = pending
        .as_array()
        .expect("array")
        .iter()
        .inspect(|p| assert_eq!(p["change"], "skipped", "{p}"))
        .map(|p| p["path"].as_str().expect("path"))
        .collect();
    listed.sort_unstable();
    let mut want = bad.to_vec();
    want.sort_unstable();
    assert_eq!(listed, want);
    for key in bad {
        let mut args = vec!["explain".to_string(), key.to_string(), "--json".into()];
        args.extend(t.location_args());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let x: serde_json::Value = serde_json::from_str(&t.run_ok(&refs)).expect("explain --json");
        let verdict = x["verdict"].as_str().expect("verdict");
        assert!(verdict.contains("control character"), "{key:?}: {x}");
    }
}

macro_rules! conformance {
    ($($(#[$meta:meta])* $name:ident),* $(,)?) => {
        mod local {
            $( $(#[$meta])* #[test] fn $name() { super::$name(super::Kind::Local) } )*
        }
        mod hdfs {
            $( $(#[$meta])* #[test] fn $name() { super::$name(super::Kind::Hdfs) } )*
        }
        mod s3 {
            $( $(#[$meta])* #[test] fn $name() { super::$name(super::Kind::S3) } )*
        }
        /// The same cluster through `hdfs+jni://` (libhdfs over JNI): `cargo test --features hdrs`.
        #[cfg(feature = "hdrs")]
        mod hdfs_jni {
            $( $(#[$meta])* #[test] fn $name() { super::$name(super::Kind::HdfsJni) } )*
        }
    };
}

conformance!(
    once_rerun_and_verify,
    #[cfg(feature = "failpoints")]
    crash_at_every_failpoint_recovers,
    continuous_picks_up_a_new_file,
    fetch_into_the_backend,
    fetch_s3_into_the_backend,
    generate_into_the_backend,
    every_name_is_ingested,
);

/// The compose stack runs lander the way the HDFS tests do: `continuous` with [`CONTINUOUS_FLAGS`], landing and
/// bronze on HDFS, the checkpoint on local disk, and the same environment (`backends::HDFS_ENV`).
#[test]
fn the_compose_lander_service_runs_as_the_hdfs_tests_do() {
    let compose = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/docker-compose.yml"),
    )
    .expect("docker/docker-compose.yml");
    let service = compose
        .split("\n  lander:\n")
        .nth(1)
        .expect("a lander service")
        .split("\n\n")
        .next()
        .expect("its block");
    let command = service
        .lines()
        .find_map(|l| l.trim().strip_prefix("command: "))
        .expect("a command");
    let command: Vec<String> = serde_json::from_str(command).expect("command is a flow sequence");
    let nn = "hdfs://namenode:8020/proyecto/spark/streaming";
    let mut expected: Vec<String> = [
        "run",
        "--mode",
        "continuous",
        "--landing",
        &format!("{nn}/landing"),
        "--bronze",
        &format!("{nn}/bronze"),
        "--checkpoint",
        "/var/lib/lander/checkpoint",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    expected.extend(CONTINUOUS_FLAGS.iter().map(|s| s.to_string()));
    // Plus the metrics endpoint the `monitoring` profile's Prometheus scrapes (tests/it/dashboard.rs).
    expected.extend(["--metrics-addr".to_string(), "0.0.0.0:9464".to_string()]);
    assert_eq!(command, expected);
    let env = compose
        .split("x-lander-env: &lander-env\n")
        .nth(1)
        .expect("x-lander-env")
        .split("\n\n")
        .next()
        .expect("its block");
    for (k, v) in crate::common::backends::HDFS_ENV {
        // The tests allow a starved MiniDFSCluster more time than a real cluster gets (`HDFS_ENV`'s doc).
        let v = if k == "LANDER_STORE_TIMEOUT" {
            "30s"
        } else {
            v
        };
        assert!(
            env.lines().any(|l| l.trim() == format!("{k}: {v}")),
            "x-lander-env lacks {k}: {v}:\n{env}"
        );
    }
}

/// Writes `lander.toml` in the workdir with the moto endpoint and credentials in `[storage]`; returns its path.
fn write_s3_storage_toml(t: &Target) -> std::path::PathBuf {
    let env: std::collections::HashMap<String, String> =
        crate::common::backends::s3_env().into_iter().collect();
    let config = t.wd.path().join("lander.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\naws_endpoint = \"{}\"\naws_allow_http = \"true\"\naws_region = \"us-east-1\"\n\
             aws_access_key_id = \"{}\"\naws_secret_access_key = \"{}\"\n",
            env["AWS_ENDPOINT_URL"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        ),
    )
    .expect("write lander.toml");
    config
}

/// A lander command in the workdir with no `AWS_*` variable in its environment.
fn cmd_without_aws_env(t: &Target) -> std::process::Command {
    let mut cmd = t.wd.cmd();
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        cmd.env_remove(k);
    }
    cmd
}

/// S3 configured in `lander.toml` (`[storage]`) alone, with no `AWS_*` variable in lander's environment.
#[test]
fn s3_configured_in_lander_toml() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let t = Target::new(Kind::S3);
    t.land_bytes("sales", "ventas-1.csv", sales_slice(20));
    let config = write_s3_storage_toml(&t);
    let mut args = t.once_args(&["--config"]);
    args.push(config.display().to_string());
    let out = cmd_without_aws_env(&t).args(&args).output().expect("spawn");
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_success(&out, &refs, t.wd.path());
    assert_eq!(t.count_rows("sales"), 20);
}

/// `fetch` opens its S3 source and its landing with the `[storage]` options of `lander.toml`, as `run` does:
/// `fetch s3` with `--config`, `fetch gharchive` with the default `./lander.toml`, no `AWS_*` variable set.
/// Without the file the same fetch fails, so nothing else supplied the credentials.
#[test]
fn fetch_takes_storage_options_from_lander_toml() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    use object_store::ObjectStoreExt;
    let t = Target::new(Kind::S3);
    let src = crate::common::backends::unique_prefix("cfgsrc");
    let s3 = crate::common::backends::s3_store();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let source_rows = sales_lines(0, 40);
    rt.block_on(s3.put(
        &object_store::path::Path::from(format!("{src}/ventas-1.csv")),
        source_rows.clone().into(),
    ))
    .expect("put source");
    let fetch_s3 = |config: Option<&std::path::Path>| {
        let mut cmd = cmd_without_aws_env(&t);
        cmd.args(t.fetch_s3_args(&src));
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.output().expect("spawn")
    };

    let without = fetch_s3(None);
    assert!(
        !without.status.success(),
        "without lander.toml nor AWS_* the fetch must fail: {}",
        String::from_utf8_lossy(&without.stdout)
    );

    // Outside the workdir, so only --config can point at it.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let config = elsewhere.path().join("s3.toml");
    std::fs::rename(write_s3_storage_toml(&t), &config).expect("move lander.toml");
    let out = fetch_s3(Some(&config));
    assert_success(&out, &["fetch", "s3", "--config"], t.wd.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fetched 1"), "{text}");
    assert_eq!(
        t.landing_bytes("sales/ventas-1.csv").as_ref(),
        source_rows.as_slice()
    );

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = server_rt.block_on(crate::common::fetch_server::Server::start());
    let served = server.serve_fixture("2015-01-01-0.json.gz");
    write_s3_storage_toml(&t);
    let args = server.gharchive_args(&t.landing_url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cmd_without_aws_env(&t).args(&args).output().expect("spawn");
    assert_success(&out, &args, t.wd.path());
    assert_eq!(
        t.landing_bytes("gharchive/2015-01-01-0.json.gz").as_ref(),
        served.as_slice()
    );
}

/// `$HADOOP_CONF_DIR` is honoured: landing named through an HA name service (`hdfs://lns/...`, resolved by
/// `hdfs-site.xml`) and bronze through `fs.defaultFS` (`hdfs:///...`, from `core-site.xml`), on the real cluster.
#[test]
fn hdfs_name_service_and_default_fs_from_hadoop_conf_dir() {
    if !require_samples(&STANDARD_SAMPLES) {
        return;
    }
    let t = Target::new(Kind::Hdfs);
    t.land_bytes("sales", "ventas-1.csv", sales_slice(30));
    let port = crate::common::backends::minidfs().namenode_port;
    let authority = format!("hdfs://127.0.0.1:{port}/");
    let landing = t.landing_url.replace(&authority, "hdfs://lns/");
    let bronze = t.bronze_url.replace(&authority, "hdfs:///");
    assert!(landing.starts_with("hdfs://lns/") && bronze.starts_with("hdfs:///"));
    let conf = t.wd.path().join("hadoop-conf");
    std::fs::create_dir_all(&conf).expect("mkdir");
    let site = |props: &[(&str, String)]| {
        let mut x = String::from("<?xml version=\"1.0\"?>\n<configuration>\n");
        for (k, v) in props {
            x.push_str(&format!(
                "  <property><name>{k}</name><value>{v}</value></property>\n"
            ));
        }
        x.push_str("</configuration>\n");
        x
    };
    std::fs::write(
        conf.join("core-site.xml"),
        site(&[("fs.defaultFS", "hdfs://lns".to_string())]),
    )
    .expect("core-site.xml");
    std::fs::write(
        conf.join("hdfs-site.xml"),
        site(&[
            ("dfs.nameservices", "lns".to_string()),
            ("dfs.ha.namenodes.lns", "nn1".to_string()),
            (
                "dfs.namenode.rpc-address.lns.nn1",
                format!("127.0.0.1:{port}"),
            ),
        ]),
    )
    .expect("hdfs-site.xml");
    let args = [
        "run",
        "--mode",
        "once",
        "--settle-time",
        "0s",
        "--landing",
        &landing,
        "--bronze",
        &bronze,
        "--checkpoint",
        &t.wd.checkpoint().display().to_string(),
    ];
    let out = t
        .cmd()
        .env("HADOOP_CONF_DIR", &conf)
        .args(args)
        .output()
        .expect("spawn");
    assert_success(&out, &args, t.wd.path());
    assert_eq!(t.count_rows("sales"), 30);
}

/// An unreachable NameNode fails a run within seconds with a message naming the timeout, instead of hanging.
#[test]
fn an_unreachable_namenode_is_a_clear_error_in_seconds() {
    let w = Workdir::new();
    let started = std::time::Instant::now();
    let out = w
        .cmd()
        .env("LANDER_STORE_TIMEOUT", "2s")
        .args([
            "run",
            "--mode",
            "once",
            "--landing",
            "hdfs://127.0.0.1:1/landing",
            "--bronze",
            "hdfs://127.0.0.1:1/bronze",
            "--checkpoint",
        ])
        .arg(w.checkpoint())
        .output()
        .expect("spawn");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timed out after 2s"), "{err}");
}
