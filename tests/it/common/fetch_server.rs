//! The HTTP server of the fetch tests: hyper (HTTP/1.1, one request per connection) on 127.0.0.1:0, serving files
//! from memory under their paths, with `Range` support and faults injected per path. It records every request.
//!
//! Every fault but one is a plain hyper response: an error status, 429 with `Retry-After`, a body stream that fails
//! after a prefix (truncated), a stream with pauses (slow), corrupt bytes. Only the connection reset reaches below
//! hyper, to the socket, because hyper can only close a connection cleanly (see [`Connection`]).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A fault served instead of (or while serving) the file, once per request, in queue order.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// An empty response with this status.
    Status(u16),
    /// 429 with `Retry-After: <secs>`.
    TooMany { retry_after_secs: u64 },
    /// Full `Content-Length`, `after` body bytes, then a TCP reset.
    Reset { after: usize },
    /// Full `Content-Length`, `after` body bytes, then a clean close.
    Truncate { after: usize },
    /// The body in `chunk`-byte pieces, `delay` apart.
    Slow { chunk: usize, delay: Duration },
    /// The body with one byte flipped in the middle.
    Corrupt,
}

#[derive(Debug, Clone)]
pub(crate) struct Logged {
    pub(crate) path: String,
    pub(crate) range_start: Option<u64>,
    pub(crate) at: Instant,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Arc<Vec<u8>>>,
    faults: HashMap<String, VecDeque<Fault>>,
    headers: HashMap<String, Vec<(String, String)>>,
    log: Vec<Logged>,
    ranges: bool,
    /// A status for every request without a fault of its own (a source that is down).
    fail_all: Option<u16>,
}

/// The test server; stops when dropped.
pub(crate) struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            ranges: true,
            ..State::default()
        }));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve_connection(stream, Arc::clone(&shared)));
            }
        });
        Self { addr, state, task }
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `lander fetch gharchive` of the hours 2015-01-01T00 and T01 from this server into `landing`.
    pub(crate) fn gharchive_args(&self, landing: &str) -> Vec<String> {
        let base = self.base_url();
        let args = [
            "fetch",
            "gharchive",
            "--from",
            "2015-01-01T00",
            "--to",
            "2015-01-01T01",
        ];
        let mut args: Vec<String> = args.map(String::from).to_vec();
        args.extend(["--base-url", &base, "--landing", landing].map(String::from));
        args
    }

    pub(crate) fn serve(&self, path: &str, content: Arc<Vec<u8>>) {
        self.lock().files.insert(path.to_string(), content);
    }

    pub(crate) fn serve_fixture(&self, name: &str) -> Arc<Vec<u8>> {
        let content = fixture(name);
        self.serve(&format!("/{name}"), Arc::clone(&content));
        content
    }

    pub(crate) fn fault(&self, path: &str, fault: Fault) {
        self.lock()
            .faults
            .entry(path.to_string())
            .or_default()
            .push_back(fault);
    }

    /// Answers `code` to every request that has no fault of its own.
    pub(crate) fn fail_everything(&self, code: u16) {
        self.lock().fail_all = Some(code);
    }

    pub(crate) fn header(&self, path: &str, name: &str, value: &str) {
        self.lock()
            .headers
            .entry(path.to_string())
            .or_default()
            .push((name.to_string(), value.to_string()));
    }

    pub(crate) fn requests(&self, path: &str) -> Vec<Logged> {
        self.lock()
            .log
            .iter()
            .filter(|l| l.path == path)
            .cloned()
            .collect()
    }

    pub(crate) fn total_requests(&self) -> usize {
        self.lock().log.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("server state lock")
    }
}

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// How long a body that is cut short waits after its last bytes before it fails, so that hyper has flushed them.
const FLUSH_GRACE: Duration = Duration::from_millis(20);

/// Serves one request on `stream` with hyper (no keep-alive: a fault must not outlive its response).
async fn serve_connection(stream: TcpStream, state: Arc<Mutex<State>>) {
    let reset = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(Connection {
        stream,
        reset: Arc::clone(&reset),
    });
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(&request, &state, &reset);
        async move { Ok::<_, Infallible>(response) }
    });
    // A body cut short ends the connection with an error: that is the fault.
    let _ = http1::Builder::new()
        .keep_alive(false)
        // The smallest buffer hyper allows: a body chunk larger than this is flushed in full before the body is
        // polled again, so the bytes sent before an injected error always reach the client.
        .max_buf_size(8192)
        .serve_connection(io, service)
        .await;
}

/// The response to one request: the file (or the requested range of it), or the next queued fault.
fn respond(
    request: &Request<Incoming>,
    state: &Mutex<State>,
    reset: &AtomicBool,
) -> Response<Body> {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let range_start = request
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.trim()
                .strip_prefix("bytes=")?
                .strip_suffix('-')?
                .parse::<u64>()
                .ok()
        });
    let (content, fault, extra, ranges) = {
        let mut s = state.lock().expect("server state lock");
        s.log.push(Logged {
            path: path.clone(),
            range_start,
            at: Instant::now(),
        });
        let fault = s
            .faults
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
            .or(s.fail_all.map(Fault::Status));
        (
            s.files.get(&path).cloned(),
            fault,
            s.headers.get(&path).cloned().unwrap_or_default(),
            s.ranges,
        )
    };
    let empty = |status: StatusCode| Response::builder().status(status);
    let content = match (&fault, content) {
        (Some(Fault::Status(code)), _) => {
            let status = StatusCode::from_u16(*code).expect("a valid injected status");
            return empty(status).body(full(Bytes::new())).expect("response");
        }
        (Some(Fault::TooMany { retry_after_secs }), _) => {
            return empty(StatusCode::TOO_MANY_REQUESTS)
                .header(header::RETRY_AFTER, retry_after_secs.to_string())
                .body(full(Bytes::new()))
                .expect("response");
        }
        (_, None) => {
            return empty(StatusCode::NOT_FOUND)
                .body(full(Bytes::new()))
                .expect("response")
        }
        (_, Some(content)) => content,
    };
    let total = content.len() as u64;
    let start = match range_start {
        Some(s) if ranges && s < total => s,
        _ => 0,
    };
    let body = Bytes::copy_from_slice(&content[usize::try_from(start).expect("small")..]);
    let mut response = Response::builder();
    if start > 0 {
        response = response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{total}", total - 1),
        );
    }
    // Always the full length, also for a body that is cut short.
    response = response
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if ranges {
        response = response
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::ETAG, "\"fixture-v1\"");
    }
    for (k, v) in &extra {
        response = response.header(k.as_str(), v.as_str());
    }
    let body = match fault {
        Some(Fault::Reset { after }) => {
            reset.store(true, Ordering::Relaxed);
            cut_short(body.slice(..after.min(body.len())))
        }
        Some(Fault::Truncate { after }) => cut_short(body.slice(..after.min(body.len()))),
        Some(Fault::Slow { chunk, delay }) => slow(body, chunk, delay),
        Some(Fault::Corrupt) => {
            let mut corrupt = body.to_vec();
            let middle = corrupt.len() / 2;
            corrupt[middle] ^= 0x55;
            full(corrupt.into())
        }
        _ => full(body),
    };
    response.body(body).expect("response")
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// `part`, then an error once hyper has flushed it: hyper aborts the response short of its Content-Length.
fn cut_short(part: Bytes) -> Body {
    let frames =
        futures::stream::iter([Ok(Frame::data(part))]).chain(futures::stream::once(async {
            tokio::time::sleep(FLUSH_GRACE).await;
            Err(std::io::Error::other("injected fault: body cut short"))
        }));
    StreamBody::new(frames).boxed_unsync()
}

/// `body` in `chunk`-byte frames, `delay` apart.
fn slow(body: Bytes, chunk: usize, delay: Duration) -> Body {
    let pieces: Vec<Bytes> = (0..body.len())
        .step_by(chunk)
        .map(|at| body.slice(at..(at + chunk).min(body.len())))
        .collect();
    let frames = futures::stream::iter(pieces)
        .enumerate()
        .then(move |(index, piece)| async move {
            if index > 0 {
                tokio::time::sleep(delay).await;
            }
            Ok(Frame::data(piece))
        });
    StreamBody::new(frames).boxed_unsync()
}

/// The server side of one connection. hyper only ever closes a connection cleanly (FIN); for the `Reset` fault
/// the response flags the connection, and dropping it then sets SO_LINGER to zero, so that close() sends a TCP
/// reset instead (and the FIN of hyper's shutdown is skipped).
struct Connection {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.reset.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The served content of a GH Archive hour: the genuine sample of that name from the full samples when they are
/// present, else (a plain clone) a stand-in of the same scale built from the bundled 2015 fixture, so that the
/// fetch tests run everywhere: its gzip members repeated to about 2.5 MB (the faults inject at 300 kB and 1 MB), a
/// multi-member gzip like some real archive hours. The tests compare what lands with what was served, never with
/// fixed counts.
pub(crate) fn fixture(name: &str) -> Arc<Vec<u8>> {
    let genuine = crate::common::shared_data().join("gharchive").join(name);
    if genuine.is_file() {
        return Arc::new(std::fs::read(&genuine).expect("read fixture"));
    }
    let bundled = crate::common::fixtures_landing().join("gharchive/2015-01-01-0.json.gz");
    let member = std::fs::read(&bundled).expect("read the bundled fixture");
    // Hours differ in size (7 or 8 members), so a mix-up of two hours cannot pass a byte comparison.
    let members = if name.ends_with("-0.json.gz") { 7 } else { 8 };
    Arc::new(member.repeat(members))
}
