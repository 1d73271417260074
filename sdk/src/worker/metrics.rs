//! Worker metrics (a [`prometheus_client`] registry), served with the worker's health by the
//! endpoint of [`crate::serve`]: `GET /metrics` in the OpenMetrics text format Prometheus
//! scrapes; `GET /healthz` (liveness) and `GET /readyz` (readiness) answer 200 or 503 with the
//! reasons (see [`super::health`]).

use super::health::Health;
use crate::store::FailureClass;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Counters and gauges of one worker process.
#[derive(Debug)]
pub struct Metrics {
    /// Events written as new rows.
    pub appended: Counter,
    /// Events already stored (acked without a second row).
    pub duplicates: Counter,
    /// Messages nacked as poison (they dead-letter after the subscription's maximum delivery
    /// attempts, `SUITEX_WORKER_MAX_DELIVERY_ATTEMPTS`).
    pub poison: Counter,
    /// Batches retried after a transient failure (database, Cloud Storage, Pub/Sub).
    pub transient_retries: Counter,
    /// Ledger rows published to events.merged by this process's feeder.
    pub merged_published: Counter,
    /// The `seq` up to which this process's feeder has published the ledger.
    pub merged_seq: Gauge,
    /// Ledger rows not yet on events.merged, as the leading feeder last saw it.
    pub merged_lag: Gauge,
    /// The `seq` of the last digest this process's feeder wrote outside the database.
    pub digest_seq: Gauge,
    /// 1 while the worker can store (its stream open, its last batch stored, not shutting
    /// down), as of the scrape; `/readyz` also asks the database.
    pub ready: Gauge,
    /// Digests this process's feeder could not write.
    pub digest_failures: Counter,
    /// 1 while this process leads the events.merged feeder.
    pub feeder_leading: Gauge,
    /// Messages nacked without being stored because an earlier message of their ordering key
    /// failed and will be delivered again.
    pub held_back: Counter,
    /// Messages received and not yet acked or nacked.
    pub in_flight: Gauge,
    /// Ordering keys parked behind a dead letter, as the worker last read them.
    pub parked_keys: Gauge,
    /// Events kept aside behind parked keys, as the worker last read them.
    pub parked_events: Gauge,
    /// Seconds since the oldest open park began (0: none).
    pub parked_oldest_age: Gauge,
    /// Events this process kept aside because their key was parked (acked, never appended
    /// until the key is released).
    pub kept_aside: Counter,
    /// Parked keys this process released (their dead letter came back and was appended).
    pub releases: Counter,
    /// Keys this process's dead-letter watch parked (dead letters made without its nack).
    pub watch_parks: Counter,
    /// Failed attempts at the batch in hand since its last success (0: storing works).
    pub consecutive_failed_attempts: Gauge,
    /// 1 for the class of the failure being waited out, 0 for the others.
    failure: Family<Vec<(String, String)>, Gauge>,
    last_commit_age: Gauge<f64, AtomicU64>,
    batch_payload_bytes: Gauge,
    peak_batch_payload_bytes: AtomicU64,
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
            merged_seq: Gauge::default(),
            digest_seq: Gauge::default(),
            ready: Gauge::default(),
            digest_failures: Counter::default(),
            merged_lag: Gauge::default(),
            feeder_leading: Gauge::default(),
            held_back: Counter::default(),
            in_flight: Gauge::<i64, AtomicI64>::default(),
            parked_keys: Gauge::default(),
            parked_events: Gauge::default(),
            parked_oldest_age: Gauge::default(),
            kept_aside: Counter::default(),
            releases: Counter::default(),
            watch_parks: Counter::default(),
            consecutive_failed_attempts: Gauge::default(),
            failure: Family::default(),
            batch_payload_bytes: Gauge::default(),
            peak_batch_payload_bytes: AtomicU64::new(0),
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
        registry.register(
            "transient_retries",
            "Batches retried after a transient failure",
            m.transient_retries.clone(),
        );
        registry.register(
            "merged_published",
            "Ledger rows published to events.merged by this process's feeder",
            m.merged_published.clone(),
        );
        registry.register(
            "ready",
            "1 while the worker can store: its subscriber stream is open, its last batch was stored and it is not shutting down (/readyz also asks the database)",
            m.ready.clone(),
        );
        registry.register(
            "ledger_digest_seq",
            "The seq of the last digest of the ledger this process's feeder wrote to the digest bucket",
            m.digest_seq.clone(),
        );
        registry.register(
            "ledger_digest_failures",
            "Digests of the ledger this process's feeder could not write (retried at the next interval)",
            m.digest_failures.clone(),
        );
        registry.register(
            "merged_seq",
            "The seq up to which this process's feeder has published the ledger to events.merged",
            m.merged_seq.clone(),
        );
        registry.register(
            "merged_lag",
            "Ledger rows not yet on events.merged, as the leading feeder last saw it",
            m.merged_lag.clone(),
        );
        registry.register(
            "feeder_leading",
            "1 while this process leads the events.merged feeder (exactly one process of all the workers should)",
            m.feeder_leading.clone(),
        );
        registry.register(
            "parked_keys",
            "Ordering keys parked behind a dead letter: their later events are kept aside until it is redriven or skipped",
            m.parked_keys.clone(),
        );
        registry.register("parked_events", "Events kept aside behind parked keys", m.parked_events.clone());
        registry.register(
            "parked_oldest_age_seconds",
            "Seconds since the oldest open park began (0: no key is parked)",
            m.parked_oldest_age.clone(),
        );
        registry.register(
            "kept_aside",
            "Events this process kept aside because their key was parked",
            m.kept_aside.clone(),
        );
        registry.register(
            "park_releases",
            "Parked keys this process released when their dead letter came back",
            m.releases.clone(),
        );
        registry.register(
            "dlq_watch_parks",
            "Keys this process's dead-letter watch parked: dead letters Pub/Sub made without the worker's last-attempt nack",
            m.watch_parks.clone(),
        );
        registry.register(
            "held_back",
            "Messages nacked unstored behind a failed earlier message of their ordering key",
            m.held_back.clone(),
        );
        registry.register("in_flight", "Messages received and not yet acked or nacked", m.in_flight.clone());
        registry.register(
            "consecutive_failed_attempts",
            "Failed attempts at the batch in hand since storing last worked (0: it works)",
            m.consecutive_failed_attempts.clone(),
        );
        registry.register(
            "store_failure",
            "1 for the class of failure the worker is waiting out (access, authentication, read_only, connection_limit, connection_lost, database, service), 0 for the others",
            m.failure.clone(),
        );
        m.set_failure(None);
        registry.register(
            "batch_payload_bytes",
            "Bytes of resolved payloads the batch in hand holds (bounded by SUITEX_WORKER_BATCH_MAX_BYTES)",
            m.batch_payload_bytes.clone(),
        );
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
    fn set_failure(&self, current: Option<FailureClass>) {
        for class in FailureClass::ALL {
            let labels = vec![("class".to_string(), class.name().to_string())];
            self.failure.get_or_create(&labels).set(i64::from(current == Some(class)));
        }
    }

    /// Records a failed attempt of class `class`; returns how many attempts in a row failed.
    pub fn attempt_failed(&self, class: FailureClass) -> u64 {
        self.set_failure(Some(class));
        (self.consecutive_failed_attempts.inc() + 1) as u64
    }

    /// Records a successful attempt; returns how many attempts in a row had failed before it.
    pub fn attempt_succeeded(&self) -> u64 {
        let failed = self.consecutive_failed_attempts.set(0);
        if failed != 0 {
            self.set_failure(None);
        }
        failed.max(0) as u64
    }

    /// Records a commit now.
    pub fn committed(&self) {
        self.last_commit_micros.store(now_micros(), Ordering::Relaxed);
    }

    /// Sets the parking gauges from the open parks.
    pub fn observe_parks<'a>(&self, parks: impl IntoIterator<Item = &'a crate::store::Park>) {
        let (mut keys, mut events, mut oldest) = (std::collections::HashSet::new(), 0i64, 0i64);
        for p in parks {
            keys.insert(&p.ordering_key);
            events += p.parked_events as i64;
            oldest = oldest.max(p.age_seconds as i64);
        }
        self.parked_keys.set(keys.len() as i64);
        self.parked_events.set(events);
        self.parked_oldest_age.set(oldest);
    }

    /// Records the resolved payload bytes of the batch in hand.
    pub fn observe_batch_payload_bytes(&self, bytes: u64) {
        self.batch_payload_bytes.set(bytes as i64);
        self.peak_batch_payload_bytes.fetch_max(bytes, Ordering::Relaxed);
    }

    /// The most resolved payload bytes any batch has held.
    pub fn peak_batch_payload_bytes(&self) -> u64 {
        self.peak_batch_payload_bytes.load(Ordering::Relaxed)
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
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

pub use crate::serve::{Accept, CONNECTION_DEADLINE, MAX_CONNECTIONS};

/// The worker's endpoint: its metrics, and its health for `/healthz` and `/readyz`.
struct WorkerEndpoint {
    metrics: Arc<Metrics>,
    health: Option<Arc<Health>>,
}

impl crate::serve::Exposition for WorkerEndpoint {
    fn metrics(&self) -> String {
        if let Some(h) = &self.health {
            self.metrics.ready.set(i64::from(h.can_store()));
        }
        self.metrics.render()
    }

    fn live(&self) -> Result<String, String> {
        self.health.as_ref().map_or(Ok("ok\n".into()), |h| h.live().map(|s| s + "\n"))
    }

    async fn ready(&self) -> Option<Result<String, String>> {
        match &self.health {
            Some(h) => Some(h.ready().await),
            None => None,
        }
    }
}

/// Serves `metrics` (and `health`, for a worker) on connections from `acceptor` until the task
/// is dropped (see [`crate::serve`]).
pub async fn serve<A: Accept>(acceptor: A, metrics: Arc<Metrics>, health: Option<Arc<Health>>) {
    crate::serve::serve(acceptor, Arc::new(WorkerEndpoint { metrics, health })).await
}

/// Binds `addr` and serves `metrics` (and `health`) in a background task; returns the bound
/// address.
pub async fn spawn(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Option<Arc<Health>>,
) -> std::io::Result<SocketAddr> {
    crate::serve::spawn(addr, Arc::new(WorkerEndpoint { metrics, health })).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn endpoint_serves_prometheus_text() {
        let m = Arc::new(Metrics::default());
        m.appended.inc_by(3);
        m.in_flight.set(2);
        m.committed();
        let addr = spawn("127.0.0.1:0".parse().unwrap(), m, None).await.unwrap();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("\nsuitex_events_appended_total 3\n"), "{body}");
        assert!(body.contains("# TYPE suitex_events_in_flight gauge"), "{body}");
        assert!(body.contains("\nsuitex_events_in_flight 2\n"), "{body}");
        let age_line =
            body.lines().find(|l| l.starts_with("suitex_events_last_commit_age_seconds ")).unwrap();
        let age: f64 = age_line.split(' ').nth(1).unwrap().parse().unwrap();
        assert!((0.0..60.0).contains(&age), "{age_line}");
    }

    /// An acceptor that yields `errors` accept errors, then the given connections, then waits
    /// forever; it counts how often it is asked.
    struct Scripted {
        errors: usize,
        conns: VecDeque<tokio::io::DuplexStream>,
        asked: Arc<Mutex<Vec<tokio::time::Instant>>>,
    }

    impl Accept for Scripted {
        type Io = tokio::io::DuplexStream;
        async fn accept(&mut self) -> std::io::Result<Self::Io> {
            self.asked.lock().unwrap().push(tokio::time::Instant::now());
            if self.errors > 0 {
                self.errors -= 1;
                return Err(std::io::Error::from_raw_os_error(24)); // EMFILE
            }
            match self.conns.pop_front() {
                Some(c) => Ok(c),
                None => std::future::pending().await,
            }
        }
    }

    #[tokio::test]
    async fn accept_errors_are_waited_out_not_spun_on() {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let acceptor = Scripted { errors: 100, conns: VecDeque::new(), asked: asked.clone() };
        let server = tokio::spawn(serve(acceptor, Arc::new(Metrics::default()), None));
        // A loop that spun on accept errors would take all 100 at once. Waiting out each one,
        // doubling from 10 ms, it takes six or seven in this time — fewer on a slow machine,
        // never more: a timer never fires early.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let calls = asked.lock().unwrap().clone();
        server.abort();
        assert!((2..=10).contains(&calls.len()), "{} accept calls in 700 ms", calls.len());
        for (i, pair) in calls.windows(2).enumerate() {
            let least = Duration::from_millis(10 << i).min(Duration::from_secs(1));
            assert!(
                pair[1] - pair[0] >= least,
                "wait {i} after an accept error was {:?}, not {least:?}",
                pair[1] - pair[0]
            );
        }
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_free_slot() {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let mut clients = Vec::new();
        let mut conns = VecDeque::new();
        for _ in 0..MAX_CONNECTIONS + 8 {
            let (client, server) = tokio::io::duplex(1024);
            clients.push(client); // idle clients: they never send a request
            conns.push_back(server);
        }
        let acceptor = Scripted { errors: 0, conns, asked: asked.clone() };
        let server = tokio::spawn(serve(acceptor, Arc::new(Metrics::default()), None));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let accepted = asked.lock().unwrap().len();
        assert_eq!(
            accepted, MAX_CONNECTIONS,
            "no more connections are taken while {MAX_CONNECTIONS} are open"
        );
        // One client hangs up: its slot frees and one more is taken.
        drop(clients.remove(0));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(asked.lock().unwrap().len(), MAX_CONNECTIONS + 1);
        server.abort();
    }
}
