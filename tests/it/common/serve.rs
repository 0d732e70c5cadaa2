//! The `/metrics` endpoint seen from a test: a free port, a plain HTTP GET, a series value, the dashboard's metric names.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A plain HTTP/1.1 GET over a socket (the daemon's server is hyper; no client library needed for this).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// The value of the sample line `series` (exact name and labels) in a text exposition, 0 when absent.
pub fn series_value(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

/// The histograms of [`EXPORTED_METRICS`]: a PromQL name `<histogram>_bucket|_sum|_count` refers to one of them.
pub const HISTOGRAMS: [&str; 2] = [
    "lander_batch_duration_seconds",
    "lander_land_to_commit_seconds",
];

pub fn docker_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docker")
}

/// Every PromQL string of a Grafana dashboard: panel targets' `expr` and template variables' `query`/`definition`.
pub fn promql_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match v {
                    serde_json::Value::String(s)
                        if matches!(k.as_str(), "expr" | "query" | "definition") =>
                    {
                        out.push(s.clone())
                    }
                    _ => promql_strings(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| promql_strings(v, out)),
        _ => {}
    }
}

/// Every `lander_*` metric name the dashboard queries, with a histogram's `_bucket`/`_sum`/`_count` series mapped
/// to the histogram's base name.
pub fn dashboard_metric_names() -> BTreeSet<String> {
    let path = docker_dir().join("grafana/dashboards/lander.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut exprs = Vec::new();
    promql_strings(&json, &mut exprs);
    let mut names = BTreeSet::new();
    for expr in exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("lander_") {
            // A metric name starts the token: not the tail of a longer identifier.
            let preceded = rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            if !preceded {
                let name = &tail[..len];
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| HISTOGRAMS.contains(b)))
                    .unwrap_or(name);
                names.insert(base.to_string());
            }
            rest = &tail[len..];
        }
    }
    names
}

/// `run --mode <mode>` over `locations` with no settle time and a 200 ms poll interval: a daemon that sees a landed
/// file at once.
pub fn run_args(mode: &str, locations: Vec<String>) -> Vec<String> {
    let mut args: Vec<String> = vec!["run".into(), "--mode".into(), mode.into()];
    args.extend(locations);
    args.extend(["--settle-time", "0s", "--poll-interval", "200ms"].map(String::from));
    args
}

/// A `lander` daemon serving `/metrics` on a free port, its stderr in a file (a pipe nobody reads would block
/// it), killed on drop.
pub struct Served {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
}

impl Served {
    /// Spawns `cmd` with `args`, `--metrics-addr` on a free port and `env`, its log in `<dir>/daemon-<port>.log`;
    /// returns once `/healthz` answers 200 (panics with the log after two minutes).
    pub fn spawn(
        mut cmd: std::process::Command,
        args: &[String],
        dir: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let log = dir.join(format!("daemon-{port}.log"));
        cmd.args(args)
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let s = Self {
            child: cmd.spawn().expect("spawn daemon"),
            port,
            log,
        };
        assert!(
            crate::common::wait_until(Duration::from_secs(120), || s
                .get("/healthz")
                .is_some_and(|(c, _)| c == 200)),
            "no /healthz on port {port}; log:\n{}",
            s.log()
        );
        s
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path`: (status, body), or None when nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }

    /// The value of one series in `/metrics`, exact name and labels (0 when absent).
    pub fn value(&self, series: &str) -> f64 {
        let (_, body) = self.get("/metrics").expect("metrics answer");
        series_value(&body, series)
    }

    /// The value of `lander_<name>{dataset="<dataset>"}` (0 when absent).
    pub fn metric_of(&self, dataset: &str, name: &str) -> f64 {
        self.value(&format!("lander_{name}{{dataset=\"{dataset}\"}}"))
    }

    /// Waits until `lander_<name>` of `dataset` reaches `at_least`; panics with the log otherwise.
    pub fn wait_metric_of(&self, dataset: &str, name: &str, at_least: f64, timeout: Duration) {
        if !crate::common::wait_until(timeout, || self.metric_of(dataset, name) >= at_least) {
            panic!(
                "lander_{name} of {dataset} stayed at {} (< {at_least}) for {timeout:?}; log:\n{}",
                self.metric_of(dataset, name),
                self.log()
            );
        }
    }

    /// SIGTERM, then the exit status and the log.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("wait");
        (status, self.log())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
