//! `lander run --metrics-addr ADDR`: a small HTTP endpoint beside the pipeline.
//!
//! - `/metrics`: every [`crate::metrics`] series in the Prometheus text format.
//! - `/healthz`: 200 while the process serves requests (liveness).
//! - `/readyz`: 200 when the checkpoint is open, landing and bronze answer a listing within
//!   [`PROBE_TIMEOUT`], and no dataset's last batch attempt failed; 503 with the failing checks otherwise.
//!
//! It listens only where asked (off by default); bind it to 127.0.0.1 unless a scraper on another host needs it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::store::StoreLocation;

/// How long `/readyz` waits for a storage listing before calling it unreachable.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What `/readyz` checks.
pub(crate) struct Readiness {
    /// Landing location.
    pub(crate) landing: StoreLocation,
    /// Bronze location.
    pub(crate) bronze: StoreLocation,
    /// Datasets the run serves.
    pub(crate) datasets: Vec<String>,
}

/// Binds `addr` and serves until `cancel` fires; returns the bound address (port 0 picks a free one).
///
/// # Errors
/// The address cannot be bound.
pub(crate) async fn start(
    addr: SocketAddr,
    ready: Arc<Readiness>,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let ready = ready.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(req, ready.clone()));
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %e, "metrics endpoint: connection ended with an error");
                }
            });
        }
    });
    Ok(bound)
}

async fn handle(
    req: Request<Incoming>,
    ready: Arc<Readiness>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match req.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            crate::metrics::encode(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" => {
            let failing = readiness_failures(&ready).await;
            if failing.is_empty() {
                (StatusCode::OK, "text/plain", "ready\n".to_string())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("not ready:\n{}\n", failing.join("\n")),
                )
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /healthz or /readyz\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

/// The failing readiness checks, one line each (empty when ready). The checkpoint is open: the endpoint
/// starts only after it was.
async fn readiness_failures(ready: &Readiness) -> Vec<String> {
    let mut out = Vec::new();
    for (name, loc) in [("landing", &ready.landing), ("bronze", &ready.bronze)] {
        match tokio::time::timeout(
            PROBE_TIMEOUT,
            loc.store.list_with_delimiter(Some(&loc.prefix)),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => out.push(format!("{name} {} unreachable: {e}", loc.display)),
            Err(_) => out.push(format!(
                "{name} {} did not answer a listing within {}s",
                loc.display,
                PROBE_TIMEOUT.as_secs()
            )),
        }
    }
    let m = crate::metrics::get();
    for ds in &ready.datasets {
        if m.dataset_failing
            .get_or_create(&crate::metrics::ds(ds))
            .get()
            != 0
        {
            out.push(format!(
                "dataset {ds}: the last batch failed on storage and is being retried (see the log)"
            ));
        }
    }
    out
}
