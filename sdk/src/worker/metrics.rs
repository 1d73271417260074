//! Worker metrics (a [`prometheus_client`] registry) and the HTTP endpoint that serves them.
//!
//! `GET /metrics` answers in the OpenMetrics text format Prometheus scrapes; `GET /healthz`
//! answers `ok`. The endpoint is a plain [`hyper`] HTTP/1 server: one request per connection.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

/// Counters and gauges of one worker process.
#[derive(Debug)]
pub struct Metrics {
    /// Events written as new rows.
    pub appended: Counter,
    /// Events already stored (acked without a second row).
    pub duplicates: Counter,
    /// Messages nacked as poison (they dead-letter after 5 attempts).
    pub poison: Counter,
    /// Batches retried after a transient failure (database, Cloud Storage, Pub/Sub).
    pub transient_retries: Counter,
    /// Events re-published to events.merged.
    pub merged_published: Counter,
    /// Messages received and not yet acked or nacked.
    pub in_flight: Gauge,
    last_commit_age: Gauge<f64, AtomicU64>,
    /// Unix time, in microseconds, of the last commit (0: none yet).
    last_commit_micros: AtomicU64,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            appended: Counter::default(),
            duplicates: Counter::default(),
            poison: Counter::default(),
            transient_retries: Counter::default(),
            merged_published: Counter::default(),
            in_flight: Gauge::<i64, AtomicI64>::default(),
            last_commit_age: Gauge::default(),
            last_commit_micros: AtomicU64::new(0),
            registry: Registry::with_prefix("suitex_events"),
        };
        let mut registry = Registry::with_prefix("suitex_events");
        registry.register("appended", "Events written to event_store as new rows", m.appended.clone());
        registry.register(
            "duplicates",
            "Events already in event_store, acked without a second row",
            m.duplicates.clone(),
        );
        registry.register(
            "poison",
            "Messages nacked as poison (dead-lettered after their last delivery attempt)",
            m.poison.clone(),
        );
        registry.register("transient_retries", "Batches retried after a transient failure", m.transient_retries.clone());
        registry.register(
            "merged_published",
            "Stored events re-published to events.merged",
            m.merged_published.clone(),
        );
        registry.register("in_flight", "Messages received and not yet acked or nacked", m.in_flight.clone());
        registry.register(
            "last_commit_age_seconds",
            "Seconds since the last commit to event_store (NaN before the first)",
            m.last_commit_age.clone(),
        );
        Metrics { registry, ..m }
    }
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

impl Metrics {
    /// Records a commit now.
    pub fn committed(&self) {
        self.last_commit_micros.store(now_micros(), Ordering::Relaxed);
    }

    /// Seconds since the last commit, if any.
    pub fn last_commit_age_seconds(&self) -> Option<f64> {
        match self.last_commit_micros.load(Ordering::Relaxed) {
            0 => None,
            at => Some(now_micros().saturating_sub(at) as f64 / 1e6),
        }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        self.last_commit_age.set(self.last_commit_age_seconds().unwrap_or(f64::NAN));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Longest a client may take to send its request and read the answer.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

fn respond(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => (StatusCode::OK, OPENMETRICS, metrics.render()),
        (&hyper::Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        (&hyper::Method::GET, _) => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_string()),
        _ => (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n".to_string()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    resp
}

/// Serves `metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let resp = respond(&req, &metrics);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
        });
    }
}

/// Binds `addr` and serves `metrics` in a background task; returns the bound address.
pub async fn spawn(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener, metrics));
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn endpoint_serves_prometheus_text() {
        let m = Arc::new(Metrics::default());
        m.appended.inc_by(3);
        m.in_flight.set(2);
        m.committed();
        let addr = spawn("127.0.0.1:0".parse().unwrap(), m).await.unwrap();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("\nsuitex_events_appended_total 3\n"), "{body}");
        assert!(body.contains("# TYPE suitex_events_in_flight gauge"), "{body}");
        assert!(body.contains("\nsuitex_events_in_flight 2\n"), "{body}");
        let age_line = body.lines().find(|l| l.starts_with("suitex_events_last_commit_age_seconds ")).unwrap();
        let age: f64 = age_line.split(' ').nth(1).unwrap().parse().unwrap();
        assert!((0.0..60.0).contains(&age), "{age_line}");
    }
}
