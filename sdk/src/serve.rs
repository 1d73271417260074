//! The HTTP endpoint of the long-running processes (`suitex-events worker`, `suitex-events
//! relay`): `GET /metrics` for Prometheus, `GET /healthz` and `GET /readyz` for probes.
//!
//! A plain [`hyper`] HTTP/1 server, one request per connection, at most [`MAX_CONNECTIONS`] at
//! once, each bounded by [`CONNECTION_DEADLINE`]; an accept error (out of file descriptors, say)
//! is logged and waited out instead of spun on. What it answers comes from an [`Exposition`].

use backon::BackoffBuilder;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Longest a client may take to send its request and read the answer.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);
/// Connections served at once; further clients wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 32;
/// Wait after a failed accept (e.g. EMFILE), doubling up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What an endpoint answers.
pub trait Exposition: Send + Sync + 'static {
    /// `/metrics`: the OpenMetrics text exposition.
    fn metrics(&self) -> String;

    /// `/healthz`: `Ok(body)` for 200, `Err(reasons)` for 503.
    fn live(&self) -> Result<String, String> {
        Ok("ok\n".into())
    }

    /// `/readyz`: `None` when the process has no readiness check (404).
    fn ready(&self) -> impl std::future::Future<Output = Option<Result<String, String>>> + Send {
        async { None }
    }
}

async fn respond<E: Exposition>(req: &Request<Incoming>, exposition: &E) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| (status, "text/plain; charset=utf-8", body);
    let verdict = |r: Result<String, String>| match r {
        Ok(body) => text(StatusCode::OK, body),
        Err(body) => text(StatusCode::SERVICE_UNAVAILABLE, body),
    };
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => (StatusCode::OK, OPENMETRICS, exposition.metrics()),
        (&hyper::Method::GET, "/healthz") => verdict(exposition.live()),
        (&hyper::Method::GET, "/readyz") => match exposition.ready().await {
            Some(r) => verdict(r),
            None => text(StatusCode::NOT_FOUND, "no readiness check here\n".into()),
        },
        (&hyper::Method::GET, _) => text(StatusCode::NOT_FOUND, "not found\n".into()),
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    resp
}

/// Where connections come from: a TCP listener, or (in tests) anything that yields streams.
pub trait Accept: Send + 'static {
    /// The connection type.
    type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    /// The next connection, or the error accepting it.
    fn accept(&mut self) -> impl std::future::Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Accept for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&mut self) -> std::io::Result<Self::Io> {
        TcpListener::accept(self).await.map(|(s, _)| s)
    }
}

/// Serves `exposition` on connections from `acceptor` until the task is dropped.
pub async fn serve<A: Accept, E: Exposition>(mut acceptor: A, exposition: Arc<E>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let accept_backoff = backon::ExponentialBuilder::default()
        .with_min_delay(ACCEPT_BACKOFF_MIN)
        .with_max_delay(ACCEPT_BACKOFF_MAX)
        .without_max_times();
    let mut backoff = accept_backoff.build();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let stream = match acceptor.accept().await {
            Ok(stream) => {
                backoff = accept_backoff.build();
                stream
            }
            Err(e) => {
                let wait = backoff.next().unwrap_or(ACCEPT_BACKOFF_MAX);
                tracing::warn!(error = %e, retry_in = ?wait, "the metrics endpoint cannot accept a connection");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        let exposition = exposition.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let exposition = exposition.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&req, &*exposition).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
            drop(slot);
        });
    }
}

/// Binds `addr` and serves `exposition` in a background task; returns the bound address.
pub async fn spawn<E: Exposition>(addr: SocketAddr, exposition: Arc<E>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener, exposition));
    Ok(bound)
}
