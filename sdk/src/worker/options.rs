//! [`WorkerOptions`]: the worker's tuning (read from `SUITEX_WORKER_*` in [`crate::settings`]).

use std::time::Duration;

/// Tuning of the worker; every field has a production default.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    /// Most messages in one batch (`SUITEX_WORKER_BATCH_SIZE`, default 500).
    pub batch_size: usize,
    /// Most bytes of resolved payloads one batch holds (`SUITEX_WORKER_BATCH_MAX_BYTES`, default
    /// 32 MiB: with the event store's statement buffers a batch then needs about three times
    /// this, well inside a small pod). A message larger than this still makes a batch of its own.
    pub batch_max_bytes: usize,
    /// Longest wait for more messages once a batch's first arrived (`SUITEX_WORKER_BATCH_WAIT`,
    /// default 0: take what the subscriber holds and go — under load the next batch fills while
    /// this one is stored, so waiting adds latency without adding throughput).
    pub batch_wait: Duration,
    /// Longest one claim-check download may take before the batch is retried
    /// (`SUITEX_WORKER_FETCH_DEADLINE`, default 60s).
    pub fetch_deadline: Duration,
    /// Delivery attempts after which Pub/Sub dead-letters a message
    /// (`SUITEX_WORKER_MAX_DELIVERY_ATTEMPTS`, default 5, as the subscription's policy; the
    /// policy itself wins when the worker may read it). On a message's last attempt the later
    /// messages of its key are no longer held back behind it.
    pub max_delivery_attempts: i32,
    /// Flow control: messages the subscriber may hold (`SUITEX_WORKER_MAX_OUTSTANDING`,
    /// default 1000).
    pub max_outstanding: i64,
    /// First back-off after a transient failure (`SUITEX_WORKER_BACKOFF_MIN`, default 200ms).
    pub backoff_min: Duration,
    /// Longest back-off (`SUITEX_WORKER_BACKOFF_MAX`, default 30s).
    pub backoff_max: Duration,
    /// After SIGTERM/SIGINT, how long in-flight work may take before it is released
    /// (`SUITEX_WORKER_SHUTDOWN_DEADLINE`, default 30s).
    pub shutdown_deadline: Duration,
    /// How long a message's lease is kept alive while its batch retries (default 12h, so a
    /// long database outage does not turn into expired leases and burnt delivery attempts).
    pub max_lease: Duration,
    /// How far each lease extension reaches (`SUITEX_WORKER_LEASE_EXTENSION`, 10s–600s,
    /// default 60s): after a crash, the messages the worker held are redelivered this long
    /// after its last extension.
    pub lease_extension: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            batch_size: 500,
            batch_max_bytes: 32 * 1024 * 1024,
            batch_wait: Duration::ZERO,
            fetch_deadline: Duration::from_secs(60),
            max_delivery_attempts: 5,
            max_outstanding: 1000,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            shutdown_deadline: Duration::from_secs(30),
            max_lease: Duration::from_secs(12 * 3600),
            lease_extension: Duration::from_secs(60),
        }
    }
}

impl WorkerOptions {
    /// The retry back-off after transient failures: exponential from `backoff_min` to
    /// `backoff_max`, with jitter so that workers that failed together do not retry together.
    pub fn backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.backoff_min)
            .with_max_delay(self.backoff_max)
            .with_jitter()
            .without_max_times()
    }
}
