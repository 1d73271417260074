//! Worker metrics and the Prometheus text endpoint that serves them.
//!
//! The endpoint is deliberately small: one listener answering `GET /metrics` (and `/healthz`)
//! in the Prometheus text exposition format, so scraping needs no extra framework.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counters and gauges of one worker process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events written as new rows.
    pub appended: AtomicU64,
    /// Events already stored (acked without a second row).
    pub duplicates: AtomicU64,
    /// Messages nacked as poison (they dead-letter after 5 attempts).
    pub poison: AtomicU64,
    /// Batches retried after a transient failure (database, Cloud Storage, Pub/Sub).
    pub transient_retries: AtomicU64,
    /// Messages received and not yet acked or nacked.
    pub in_flight: AtomicI64,
    /// Unix time, in microseconds, of the last commit (0: none yet).
    pub last_commit_micros: AtomicU64,
    /// Events re-published to events.merged.
    pub merged_published: AtomicU64,
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

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n");
        };
        counter(
            "suitex_events_appended_total",
            "Events written to event_store as new rows.",
            self.appended.load(Ordering::Relaxed),
        );
        counter(
            "suitex_events_duplicates_total",
            "Events already in event_store, acked without a second row.",
            self.duplicates.load(Ordering::Relaxed),
        );
        counter(
            "suitex_events_poison_total",
            "Messages nacked as poison (dead-lettered after 5 delivery attempts).",
            self.poison.load(Ordering::Relaxed),
        );
        counter(
            "suitex_events_transient_retries_total",
            "Batches retried after a transient failure.",
            self.transient_retries.load(Ordering::Relaxed),
        );
        counter(
            "suitex_events_merged_published_total",
            "Stored events re-published to events.merged.",
            self.merged_published.load(Ordering::Relaxed),
        );
        let _ = write!(
            out,
            "# HELP suitex_events_in_flight Messages received and not yet acked or nacked.\n# TYPE suitex_events_in_flight gauge\nsuitex_events_in_flight {}\n",
            self.in_flight.load(Ordering::Relaxed)
        );
        let age = self.last_commit_age_seconds().map_or("NaN".to_string(), |a| format!("{a:.3}"));
        let _ = write!(
            out,
            "# HELP suitex_events_last_commit_age_seconds Seconds since the last commit to event_store (NaN before the first).\n# TYPE suitex_events_last_commit_age_seconds gauge\nsuitex_events_last_commit_age_seconds {age}\n"
        );
        out
    }
}

/// Serves `metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut len = 0;
            // Read the request head (enough for the request line).
            while len < buf.len() {
                match tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut buf[len..]))
                    .await
                {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => {
                        len += n;
                        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let (status, content_type, body) = match (head.starts_with("GET "), path) {
                (true, "/metrics") => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
                (true, "/healthz") => ("200 OK", "text/plain", "ok\n".to_string()),
                (true, _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
                (false, _) => ("405 Method Not Allowed", "text/plain", "GET only\n".to_string()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(resp.as_bytes()).await;
            let _ = socket.shutdown().await;
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

    #[tokio::test]
    async fn endpoint_serves_prometheus_text() {
        let m = Arc::new(Metrics::default());
        m.appended.fetch_add(3, Ordering::Relaxed);
        m.committed();
        let addr = spawn("127.0.0.1:0".parse().unwrap(), m).await.unwrap();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("\nsuitex_events_appended_total 3\n"), "{body}");
        assert!(body.contains("# TYPE suitex_events_in_flight gauge"), "{body}");
        let age_line =
            body.lines().find(|l| l.starts_with("suitex_events_last_commit_age_seconds ")).unwrap();
        let age: f64 = age_line.split(' ').nth(1).unwrap().parse().unwrap();
        assert!((0.0..60.0).contains(&age), "{age_line}");
    }
}
