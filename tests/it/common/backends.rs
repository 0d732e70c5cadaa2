//! The storage backends the conformance suite runs against: the local filesystem, a real HDFS (Hadoop's
//! `MiniDFSCluster`, one NameNode + one DataNode in one JVM, from the Maven project in `tests/minidfs/`) and a
//! real S3 server (`moto[server]` from PyPI).
//!
//! One cluster and one moto server serve the whole test binary: each starts on first use (a `OnceLock`) and
//! stops when the binary exits, because both watch their stdin and the pipe closes with this process. Each test
//! gets its own root (`/t/<n>` on HDFS, `s3://lander-it/<n>` on S3), so tests run in parallel.
//!
//! A missing tool is a test failure, never a skip: CI (`.ci/run` = `scripts/test`) installs Maven's artifacts and moto.
//!
//! The tests read and write the backends with `object_store` clients built here from the raw endpoints (not
//! through lander's `store` module), so a test checks lander's output independently of lander's own URL handling.

use std::io::{BufRead, BufReader};
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::common::*;

/// The bucket every S3 test writes below (each under its own prefix).
pub const BUCKET: &str = "lander-it";

/// The environment of lander on HDFS, as in `docker/docker-compose.yml` (`x-lander-env`), except the store timeout:
/// 30 s there, 120 s here, because a MiniDFSCluster JVM starved by a loaded 2-core machine once took over 30 s to
/// start an upload (`conformance::hdfs::every_name_is_ingested`, test suite at load 8).
pub const HDFS_ENV: [(&str, &str); 2] = [
    ("HADOOP_USER_NAME", "lander"),
    ("LANDER_STORE_TIMEOUT", "120s"),
];

/// Dummy credentials moto accepts.
const S3_KEY: &str = "lander-test";

/// How long the cluster or moto may take to come up (the first MiniDFSCluster start also warms the JVM).
const START_DEADLINE: Duration = Duration::from_secs(120);

/// Which backend a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Local,
    Hdfs,
    /// The same MiniDFSCluster through `hdfs+jni://` (libhdfs over JNI, cargo feature `hdrs`).
    #[cfg(feature = "hdrs")]
    HdfsJni,
    S3,
}

/// A running MiniDFSCluster.
pub struct MiniDfs {
    pub namenode_port: u16,
    /// WebHDFS (`curl http://127.0.0.1:<port>/webhdfs/v1/<path>?op=LISTSTATUS`), for debugging by hand.
    #[allow(dead_code)]
    pub http_port: u16,
    /// Held so that the JVM's stdin stays open for as long as this process runs.
    _child: Mutex<Child>,
}

/// A running moto server with the test bucket created.
pub struct Moto {
    pub endpoint: String,
    _child: Mutex<Child>,
}

static MINIDFS: OnceLock<MiniDfs> = OnceLock::new();
static MOTO: OnceLock<Moto> = OnceLock::new();
static NEXT_ROOT: AtomicUsize = AtomicUsize::new(0);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn newer(a: &FsPath, than: &[PathBuf]) -> bool {
    let Ok(t) = std::fs::metadata(a).and_then(|m| m.modified()) else {
        return false;
    };
    than.iter().all(|p| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m <= t)
    })
}

/// Builds `tests/minidfs` (and its classpath file) unless both are newer than its sources.
fn build_minidfs() -> (PathBuf, String) {
    let project = repo().join("tests/minidfs");
    let classes = project.join("target/classes");
    let cp_file = project.join("target/classpath.txt");
    let sources = [
        project.join("pom.xml"),
        project.join("src/main/java/Main.java"),
    ];
    if !(newer(&classes.join("Main.class"), &sources) && newer(&cp_file, &sources)) {
        let out = Command::new("mvn")
            .args(["-q", "-B", "-f"])
            .arg(project.join("pom.xml"))
            .args([
                "package",
                "dependency:build-classpath",
                "-Dmdep.outputFile=target/classpath.txt",
            ])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "the HDFS tests need Maven (`mvn`) and Java 17 to start a MiniDFSCluster: {e}"
                )
            });
        assert!(
            out.status.success(),
            "mvn package in {} failed:\n{}\n{}",
            project.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cp = std::fs::read_to_string(&cp_file).expect("classpath.txt written by mvn");
    (classes, cp.trim().to_string())
}

/// The shared MiniDFSCluster, started on first use.
pub fn minidfs() -> &'static MiniDfs {
    MINIDFS.get_or_init(|| {
        let started = Instant::now();
        let (classes, cp) = build_minidfs();
        remove_stale("minidfs-");
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("minidfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).expect("mkdir minidfs base");
        let log = std::fs::File::create(base.join("jvm.log")).expect("jvm log");
        let mut child = Command::new("java")
            .arg("-cp")
            .arg(format!("{}:{cp}", classes.display()))
            .arg("Main")
            .arg(base.join("data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("the HDFS tests need `java` (17) on PATH: {e}"));
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("READY ") {
                    let _ = tx.send(line);
                }
            }
        });
        let Ok(line) = rx.recv_timeout(START_DEADLINE) else {
            let _ = child.kill();
            panic!(
                "MiniDFSCluster did not print READY within {START_DEADLINE:?}; its log:\n{}",
                std::fs::read_to_string(base.join("jvm.log")).unwrap_or_default()
            );
        };
        let port = |key: &str| -> u16 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key))
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        };
        let dfs = MiniDfs {
            namenode_port: port("namenode="),
            http_port: port("http="),
            _child: Mutex::new(child),
        };
        eprintln!(
            "MiniDFSCluster ready on 127.0.0.1:{} in {:.1}s",
            dfs.namenode_port,
            started.elapsed().as_secs_f64()
        );
        dfs
    })
}

/// Removes `<prefix><pid>*` entries of earlier test runs (whose process is gone) from the target's tmp dir.
fn remove_stale(prefix: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(prefix) else {
            continue;
        };
        let pid: String = pid.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !FsPath::new("/proc").join(&pid).exists() {
            let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
        }
    }
}

/// Where the shared moto server's request recorder writes (see `s3_bytes`).
pub fn recording_path() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("moto-recording-{}.jsonl", std::process::id()))
}

/// The shared moto server, started on first use, with [`BUCKET`] created.
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(|| {
        let started = Instant::now();
        let port = crate::common::serve::free_port();
        remove_stale("moto-");
        let log_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(&log_dir).expect("mkdir");
        let log_path = log_dir.join(format!("moto-{}.log", std::process::id()));
        let log = std::fs::File::create(&log_path).expect("moto log");
        // moto's server ignores stdin, so a shell keeps it tied to ours: EOF (our exit) kills it. It runs through
        // `tests/moto/server.py`, which makes moto's conditional writes atomic as S3's are (see there).
        let launcher = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto/server.py");
        let child = Command::new("sh")
            .args([
                "-c",
                "python3 \"$2\" -H 127.0.0.1 -p \"$1\" & pid=$!; cat >/dev/null; kill $pid",
                "sh",
            ])
            .arg(port.to_string())
            .arg(launcher)
            // `POST /moto-api/recorder/start-recording` appends requests here (`s3_bytes`), not to the cwd.
            .env("MOTO_RECORDER_FILEPATH", recording_path())
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn sh for moto");
        let endpoint = format!("http://127.0.0.1:{port}");
        let up = wait_until(Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(
            up,
            "moto did not listen on {endpoint} within 30s (the S3 tests need `pip install 'moto[server]'`); its log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        // Bucket creation needs a signed request: boto3 comes with moto.
        let out = Command::new("python3")
            .args([
                "-c",
                "import sys, boto3; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', \
                 aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[2]).create_bucket(Bucket=sys.argv[3])",
            ])
            .args([&endpoint, S3_KEY, BUCKET])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "creating bucket {BUCKET} on moto failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "moto ready on {endpoint} in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Moto {
            endpoint,
            _child: Mutex::new(child),
        }
    })
}

/// A verification client on the shared MiniDFSCluster, its URL, the test root and lander's environment.
#[allow(clippy::type_complexity)]
fn hdfs(
    rt: &tokio::runtime::Runtime,
    root: String,
) -> (Arc<dyn ObjectStore>, String, String, Vec<(String, String)>) {
    let dfs = minidfs();
    let url = format!("hdfs://127.0.0.1:{}", dfs.namenode_port);
    // The client spawns its connection tasks on the runtime it is built in.
    let store = rt.block_on(async {
        hdfs_native_object_store::HdfsObjectStoreBuilder::new()
            .with_url(url.clone())
            .build()
            .expect("hdfs store")
    });
    let env = HDFS_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (Arc::new(store), url, root, env)
}

/// The Hadoop client jars (`hadoop-client-api`, `hadoop-client-runtime` and their few unshaded dependencies) from
/// the MiniDFSCluster project's Maven classpath, one by one as libhdfs needs them: what an `hdfs+jni://` lander
/// runs with. The cluster's own jars (minicluster, JUnit) are left out, so they cannot stand in for a missing
/// client jar.
#[cfg(feature = "hdrs")]
pub fn hadoop_client_classpath() -> String {
    let (_, cp) = build_minidfs();
    cp.split(':')
        .filter(|j| {
            !["minicluster", "junit", "hamcrest"]
                .iter()
                .any(|x| j.contains(x))
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// A client of [`BUCKET`] on the shared moto server.
pub fn s3_store() -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&moto().endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(BUCKET)
        .with_access_key_id(S3_KEY)
        .with_secret_access_key(S3_KEY)
        .build()
        .expect("s3 store")
}

/// The environment lander needs to reach the shared moto server (the usual `AWS_*` variables).
pub fn s3_env() -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), moto().endpoint.clone()),
        ("AWS_ALLOW_HTTP".into(), "true".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), S3_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), S3_KEY.into()),
    ]
}

/// `racers` concurrent put-if-absent writes (`PutMode::Create`, the Delta commit's put) of `{"writer":<i>}` to
/// `path`: how many won. Panics on any error but losing (`AlreadyExists`).
pub async fn racing_creates(
    store: Arc<dyn ObjectStore>,
    path: &object_store::path::Path,
    racers: usize,
) -> usize {
    let puts = (0..racers).map(|i| {
        let (store, path) = (store.clone(), path.clone());
        tokio::spawn(async move {
            let opts = object_store::PutOptions {
                mode: object_store::PutMode::Create,
                ..Default::default()
            };
            let body = format!("{{\"writer\":{i}}}\n").into_bytes();
            store.put_opts(&path, body.into(), opts).await
        })
    });
    let mut won = 0;
    for p in futures::future::join_all(puts).await {
        match p.expect("join") {
            Ok(_) => won += 1,
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => panic!("a put of {path} failed otherwise than losing: {e}"),
        }
    }
    won
}

/// A fresh prefix in [`BUCKET`] for test input.
pub fn unique_prefix(tag: &str) -> String {
    let n = NEXT_ROOT.fetch_add(1, Ordering::Relaxed);
    format!("{tag}{}-{n}", std::process::id())
}

/// One test's landing and bronze on one backend, with a local workdir for the checkpoint (and, for
/// [`Kind::Local`], for landing and bronze too).
pub struct Target {
    pub wd: Workdir,
    /// `--landing` / `--bronze` as given to lander.
    pub landing_url: String,
    pub bronze_url: String,
    store: Arc<dyn ObjectStore>,
    landing: Path,
    bronze: Path,
    env: Vec<(String, String)>,
    rt: tokio::runtime::Runtime,
}

impl Target {
    pub fn new(kind: Kind) -> Self {
        let wd = Workdir::new();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let n = NEXT_ROOT.fetch_add(1, Ordering::Relaxed);
        let root = format!("t{}-{n}", std::process::id());
        let (store, base, prefix, env): (Arc<dyn ObjectStore>, String, String, Vec<_>) = match kind
        {
            Kind::Local => {
                let fs = object_store::local::LocalFileSystem::new_with_prefix(wd.path())
                    .expect("local store");
                (
                    Arc::new(fs),
                    wd.path().display().to_string(),
                    String::new(),
                    vec![],
                )
            }
            Kind::Hdfs => hdfs(&rt, root.clone()),
            #[cfg(feature = "hdrs")]
            Kind::HdfsJni => {
                let (store, url, root, mut env) = hdfs(&rt, root.clone());
                env.push(("CLASSPATH".into(), hadoop_client_classpath()));
                let jni = url.replacen("hdfs://", "hdfs+jni://", 1);
                (store, jni, root, env)
            }
            Kind::S3 => (
                Arc::new(s3_store()),
                format!("s3://{BUCKET}"),
                root.clone(),
                s3_env(),
            ),
        };
        let join = |leaf: &str| {
            if prefix.is_empty() {
                leaf.to_string()
            } else {
                format!("{prefix}/{leaf}")
            }
        };
        let url = |leaf: &str| match kind {
            Kind::Local => wd.path().join(leaf).display().to_string(),
            _ => format!("{base}/{}", join(leaf)),
        };
        Self {
            landing_url: url("landing"),
            bronze_url: url("bronze"),
            landing: Path::from(join("landing")),
            bronze: Path::from(join("bronze")),
            store,
            env,
            rt,
            wd,
        }
    }

    /// A `lander` command with this backend's environment.
    pub fn cmd(&self) -> Command {
        let mut c = self.wd.cmd();
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// `--landing`, `--bronze`, `--checkpoint`.
    pub fn location_args(&self) -> Vec<String> {
        vec![
            "--landing".into(),
            self.landing_url.clone(),
            "--bronze".into(),
            self.bronze_url.clone(),
            "--checkpoint".into(),
            self.wd.checkpoint().display().to_string(),
        ]
    }

    /// Runs `lander <args>` with this backend's environment.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd().args(args).output().expect("spawn lander")
    }

    /// Runs `lander <args>`, panics unless it exits 0, returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_success(&out, args, self.wd.path());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The arguments of `lander fetch s3 s3://<test bucket>/<src> --dataset sales` into this target's landing.
    pub fn fetch_s3_args(&self, src: &str) -> Vec<String> {
        let url = format!("s3://{BUCKET}/{src}");
        [
            "fetch",
            "s3",
            &url,
            "--dataset",
            "sales",
            "--landing",
            &self.landing_url,
        ]
        .map(String::from)
        .to_vec()
    }

    /// `lander fetch s3 s3://<test bucket>/<src> --dataset sales` into this target's landing (with moto's
    /// credentials in the environment); panics unless it exits 0, returns stdout.
    pub fn fetch_s3(&self, src: &str) -> String {
        let args = self.fetch_s3_args(src);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self
            .cmd()
            .envs(s3_env())
            .args(&args)
            .output()
            .expect("spawn");
        assert_success(&out, &args, self.wd.path());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `run --mode once --settle-time 0s` with this target's locations plus `extra`.
    pub fn once_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["run", "--mode", "once", "--settle-time", "0s"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(self.location_args());
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// `lander run --mode once` (must succeed); returns stdout.
    pub fn run_once(&self, extra: &[&str]) -> String {
        let args = self.once_args(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run_ok(&refs)
    }

    fn landing_path(&self, rel: &str) -> Path {
        Path::from(format!("{}/{rel}", self.landing).trim_start_matches('/'))
    }

    fn bronze_path(&self, rel: &str) -> Path {
        Path::from(format!("{}/{rel}", self.bronze).trim_start_matches('/'))
    }

    /// Writes `landing/<dataset>/<name>` in one atomic put (a hidden temporary name + rename on HDFS and local).
    pub fn land_bytes(&self, dataset: &str, name: &str, bytes: Vec<u8>) {
        let path = self.landing_path(&format!("{dataset}/{name}"));
        self.rt
            .block_on(self.store.put(&path, Bytes::from(bytes).into()))
            .unwrap_or_else(|e| panic!("put {path}: {e}"));
    }

    /// Writes `landing/<dataset>/<name>` under exactly that name: on local with `std::fs` (a file name, not an
    /// object path), elsewhere under the object path whose segments are the names verbatim (as `hdfs dfs -put`
    /// or `aws s3 cp` name them), never percent-encoded.
    pub fn land_exact(&self, dataset: &str, name: &str, bytes: &[u8]) {
        if !self.landing_url.contains("://") {
            let dest = FsPath::new(&self.landing_url).join(dataset).join(name);
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
            std::fs::write(&dest, bytes)
                .unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
            return;
        }
        let raw = format!("{}/{dataset}/{name}", self.landing);
        let path = Path::parse(raw.trim_start_matches('/')).expect("a valid object path");
        self.rt
            .block_on(self.store.put(&path, Bytes::copy_from_slice(bytes).into()))
            .unwrap_or_else(|e| panic!("put {path}: {e}"));
    }

    /// Puts `landing/<rel>` on moto through boto3, under exactly that key: any key S3 holds, control characters
    /// included, which no object path can name.
    pub fn s3_put_raw(&self, rel: &str, bytes: &[u8]) {
        let file = self.wd.path().join("s3-body");
        std::fs::write(&file, bytes).expect("write body");
        let out = Command::new("python3")
            .args([
                "-c",
                "import sys, boto3; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', \
                 aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[2]).put_object(Bucket=sys.argv[3], \
                 Key=sys.argv[4], Body=open(sys.argv[5], 'rb').read())",
            ])
            .args([&moto().endpoint, S3_KEY, BUCKET])
            .arg(format!("{}/{rel}", self.landing))
            .arg(&file)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "boto3 put_object {rel:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates `landing/<rel>` on the shared MiniDFSCluster through WebHDFS (`curl`), which takes names that no
    /// object path can hold (a newline); `rel_encoded` is `rel` percent-encoded for the URL.
    pub fn webhdfs_create(&self, rel_encoded: &str, bytes: &[u8]) {
        let url = format!(
            "http://127.0.0.1:{}/webhdfs/v1/{}/{rel_encoded}?op=CREATE&overwrite=true&user.name={}",
            minidfs().http_port,
            self.landing,
            HDFS_ENV[0].1
        );
        let file = self.wd.path().join("webhdfs-body");
        std::fs::write(&file, bytes).expect("write body");
        let out = Command::new("curl")
            .args(["-sS", "-f", "-L", "-X", "PUT", "--data-binary"])
            .arg(format!("@{}", file.display()))
            .arg(&url)
            .output()
            .expect("the HDFS tests need curl");
        assert!(
            out.status.success(),
            "curl PUT {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Rows per `_source_file` over every visible `*.parquet` below `bronze/<rel>`.
    pub fn rows_by_source(&self, rel: &str) -> std::collections::BTreeMap<String, usize> {
        use arrow::array::AsArray;
        let mut out = std::collections::BTreeMap::new();
        for p in self.visible_parts(rel) {
            let path = self.bronze_path(&p);
            let bytes = self
                .rt
                .block_on(async { self.store.get(&path).await?.bytes().await })
                .unwrap_or_else(|e| panic!("get {path}: {e}"));
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .unwrap_or_else(|e| panic!("parquet {p}: {e}"))
                    .build()
                    .expect("reader");
            for b in reader {
                let b = b.expect("batch");
                let col = b.column_by_name("_source_file").expect("_source_file");
                for v in col.as_string::<i32>().iter() {
                    *out.entry(v.expect("set").to_string()).or_default() += 1;
                }
            }
        }
        out
    }

    /// Starts a multipart upload of `landing/<rel>` (or `bronze/<rel>`), writes one part and abandons it the way a
    /// killed writer does: on HDFS the client's hidden temporary (`.<name>.tmp.<n>`) stays behind, still open.
    pub fn interrupted_put(&self, in_bronze: bool, rel: &str) {
        let path = if in_bronze {
            self.bronze_path(rel)
        } else {
            self.landing_path(rel)
        };
        self.rt.block_on(async {
            let mut upload = self
                .store
                .put_multipart(&path)
                .await
                .unwrap_or_else(|e| panic!("start upload of {path}: {e}"));
            upload
                .put_part(Bytes::from_static(b"a,b\n1,2\n").into())
                .await
                .unwrap_or_else(|e| panic!("write a part of {path}: {e}"));
            // Dropped without complete() or abort().
        });
    }

    /// Writes `bronze/<rel>` (one put, as the test store's client does it).
    pub fn put_bronze(&self, rel: &str, bytes: &[u8]) {
        let path = self.bronze_path(rel);
        self.rt
            .block_on(self.store.put(&path, Bytes::copy_from_slice(bytes).into()))
            .unwrap_or_else(|e| panic!("put {path}: {e}"));
    }

    /// Sets the modification time of `bronze/<rel>` on the shared MiniDFSCluster through WebHDFS (`curl`): `age`
    /// in the past.
    pub fn webhdfs_age_bronze(&self, rel: &str, age: Duration) {
        let mtime = std::time::SystemTime::now() - age;
        let ms = mtime
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after the epoch")
            .as_millis();
        let url = format!(
            "http://127.0.0.1:{}/webhdfs/v1/{}/{rel}?op=SETTIMES&modificationtime={ms}&user.name={}",
            minidfs().http_port,
            self.bronze,
            HDFS_ENV[0].1
        );
        let out = Command::new("curl")
            .args(["-sS", "-f", "-X", "PUT"])
            .arg(&url)
            .output()
            .expect("the HDFS tests need curl");
        assert!(
            out.status.success(),
            "curl PUT {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Copies a local file into `landing/<dataset>/<name>`.
    pub fn land(&self, src: &FsPath, dataset: &str, name: &str) {
        let bytes = std::fs::read(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
        self.land_bytes(dataset, name, bytes);
    }

    fn list(&self, root: &Path, rel: &str) -> Vec<(String, u64)> {
        let prefix = Path::from(format!("{root}/{rel}").trim_start_matches('/'));
        let mut out: Vec<(String, u64)> = self
            .rt
            .block_on(async {
                match self.store.list(Some(&prefix)).try_collect::<Vec<_>>().await {
                    Ok(v) => v,
                    Err(object_store::Error::NotFound { .. }) => Vec::new(),
                    Err(e) => panic!("list {prefix}: {e}"),
                }
            })
            .into_iter()
            .map(|m| {
                let rel = m
                    .location
                    .prefix_match(root)
                    .map(|parts| {
                        parts
                            .map(|p| p.as_ref().to_string())
                            .collect::<Vec<_>>()
                            .join("/")
                    })
                    .unwrap_or_else(|| m.location.to_string());
                (rel, m.size)
            })
            .collect();
        out.sort();
        out
    }

    /// Objects below `bronze/<rel>`: (path relative to bronze, size), sorted.
    pub fn bronze_objects(&self, rel: &str) -> Vec<(String, u64)> {
        self.list(&self.bronze, rel)
    }

    /// Objects below `landing/<rel>`, sorted.
    pub fn landing_objects(&self, rel: &str) -> Vec<(String, u64)> {
        self.list(&self.landing, rel)
    }

    /// The bytes of `landing/<rel>`.
    pub fn landing_bytes(&self, rel: &str) -> Bytes {
        self.get(&self.landing_path(rel))
    }

    /// The bytes of `bronze/<rel>`.
    pub fn bronze_bytes(&self, rel: &str) -> Bytes {
        self.get(&self.bronze_path(rel))
    }

    fn get(&self, path: &Path) -> Bytes {
        self.rt
            .block_on(async { self.store.get(path).await?.bytes().await })
            .unwrap_or_else(|e| panic!("get {path}: {e}"))
    }

    /// Deletes `bronze/<rel>`.
    pub fn delete_bronze(&self, rel: &str) {
        let path = self.bronze_path(rel);
        self.rt
            .block_on(self.store.delete(&path))
            .unwrap_or_else(|e| panic!("delete {path}: {e}"));
    }

    /// Row count of every visible `*.parquet` below `bronze/<rel>` (hidden `_`/`.` segments skipped), by path
    /// relative to bronze.
    pub fn rows_by_file(&self, rel: &str) -> std::collections::BTreeMap<String, usize> {
        self.visible_parts(rel)
            .into_iter()
            .map(|p| {
                let path = self.bronze_path(&p);
                let bytes = self
                    .rt
                    .block_on(async { self.store.get(&path).await?.bytes().await })
                    .unwrap_or_else(|e| panic!("get {path}: {e}"));
                let rows =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                        .unwrap_or_else(|e| panic!("parquet {p}: {e}"))
                        .build()
                        .expect("reader")
                        .map(|b| b.expect("batch").num_rows())
                        .sum();
                (crate::common::canonical_part_path(&p), rows)
            })
            .collect()
    }

    /// The stored paths of every visible `*.parquet` below `bronze/<rel>` (none under a `_` or `.` directory).
    pub fn visible_parts(&self, rel: &str) -> Vec<String> {
        self.bronze_objects(rel)
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| {
                p.ends_with(".parquet")
                    && !p
                        .split('/')
                        .any(|s| s.starts_with('_') || s.starts_with('.'))
            })
            .collect()
    }

    /// Writes `n` small files `landing/<dataset>/f<i>.csv`, `concurrency` at a time.
    pub fn land_many(&self, dataset: &str, n: usize, concurrency: usize) {
        use futures::StreamExt;
        self.rt.block_on(async {
            futures::stream::iter(0..n)
                .map(|i| {
                    let path = self.landing_path(&format!("{dataset}/f{i:05}.csv"));
                    let store = self.store.clone();
                    async move {
                        store
                            .put(&path, Bytes::from_static(b"a,b\n1,2\n").into())
                            .await
                            .unwrap_or_else(|e| panic!("put {path}: {e}"))
                    }
                })
                .buffer_unordered(concurrency)
                .collect::<Vec<_>>()
                .await
        });
    }

    /// Lists `landing/<rel>` recursively the way lander's planner does; returns (objects, elapsed).
    pub fn time_landing_listing(&self, rel: &str) -> (usize, Duration) {
        let prefix = self.landing_path(rel);
        let started = Instant::now();
        let n = self.rt.block_on(async {
            self.store
                .list(Some(&prefix))
                .try_fold(0usize, |n, _| async move { Ok(n + 1) })
                .await
                .unwrap_or_else(|e| panic!("list {prefix}: {e}"))
        });
        (n, started.elapsed())
    }

    /// Total rows below `bronze/<rel>`.
    pub fn count_rows(&self, rel: &str) -> usize {
        self.rows_by_file(rel).values().sum()
    }
}
