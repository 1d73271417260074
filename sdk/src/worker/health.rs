//! Liveness and readiness of a worker, for Kubernetes probes.
//!
//! * **live** (`/healthz`): the run loop has shown it is alive within [`STALL`] — every wait of
//!   the worker has a deadline, so a loop silent that long is wedged and the process should be
//!   restarted.
//! * **ready** (`/readyz`): the event store answers a trivial query (within [`PING_DEADLINE`];
//!   the answer is kept for [`PING_CACHE`] so probes do not load the database), the last attempt
//!   to store a batch did not fail (a database that answers `SELECT 1` may still refuse every
//!   INSERT: a revoked grant, a read-only primary), the StreamingPull stream on the subscription
//!   is open, and the worker is not shutting down. A worker that is not ready cannot store; it
//!   keeps its leases and retries on its own, and the probe says why, with the failure's class.
//!
//! Pub/Sub connectivity itself is not probed: the official subscriber reconnects on its own,
//! and a probe call would need rights (reading the subscription) the worker's account does not
//! otherwise need.

use crate::store::EventStore;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// A run loop silent for this long is wedged.
pub const STALL: Duration = Duration::from_secs(300);
/// How long the readiness check waits for the database.
pub const PING_DEADLINE: Duration = Duration::from_secs(2);
/// How long a database answer is reused.
pub const PING_CACHE: Duration = Duration::from_secs(2);

/// The health of one worker.
#[derive(Debug)]
pub struct Health {
    store: EventStore,
    subscribed: AtomicBool,
    draining: AtomicBool,
    /// Unix time (ms) the run loop last showed it was alive.
    beat_ms: AtomicU64,
    /// The last database check: when, and its error if it failed.
    ping: tokio::sync::Mutex<Option<(Instant, Option<String>)>>,
    /// Why the worker is not ready, as last reported (for logs).
    last: Mutex<String>,
    /// The failure the worker is waiting out, with the count of attempts in a row it failed.
    failing: Mutex<Option<String>>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Health {
    /// The health of a worker storing into `store`.
    pub fn new(store: EventStore) -> Health {
        Health {
            store,
            subscribed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            beat_ms: AtomicU64::new(now_ms()),
            ping: tokio::sync::Mutex::new(None),
            last: Mutex::new(String::new()),
            failing: Mutex::new(None),
        }
    }

    /// The run loop is alive.
    pub fn beat(&self) {
        self.beat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Whether the StreamingPull stream is open.
    pub fn set_subscribed(&self, open: bool) {
        self.subscribed.store(open, Ordering::Relaxed);
    }

    /// Shutdown has been asked for: the worker finishes what it holds and takes nothing new.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Storing failed `attempts` times in a row, the last time with `error` of `class`: not
    /// ready until an attempt succeeds (a database that answers `SELECT 1` may still refuse
    /// every INSERT).
    pub fn store_failed(
        &self,
        class: crate::store::FailureClass,
        error: &crate::error::Error,
        attempts: u64,
    ) {
        *self.failing.lock() =
            Some(format!("storing fails ({}, {attempts} attempts in a row): {error}", class.name()));
    }

    /// Storing works again.
    pub fn store_recovered(&self) {
        *self.failing.lock() = None;
    }

    /// Whether the worker can store as far as it knows without asking the database: the stream
    /// is open, the last attempt to store did not fail, and it is not shutting down.
    pub fn can_store(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
            && self.failing.lock().is_none()
            && !self.draining.load(Ordering::Relaxed)
    }

    /// `Ok(description)` while the run loop is alive, else why not.
    pub fn live(&self) -> Result<String, String> {
        let silent = Duration::from_millis(now_ms().saturating_sub(self.beat_ms.load(Ordering::Relaxed)));
        if silent > STALL {
            Err(format!("the run loop has been silent for {}s", silent.as_secs()))
        } else {
            Ok("ok".to_string())
        }
    }

    /// `Ok(description)` when the worker can store, else what is missing. Each line of the text
    /// names one check.
    pub async fn ready(&self) -> Result<String, String> {
        let database = self.database().await;
        let mut lines = vec![match &database {
            None => "database ok".to_string(),
            Some(e) => format!("database unavailable: {e}"),
        }];
        let failing = self.failing.lock().clone();
        if let Some(failing) = &failing {
            lines.push(failing.clone());
        }
        let subscribed = self.subscribed.load(Ordering::Relaxed);
        lines.push(if subscribed { "subscriber ok" } else { "subscriber not connected" }.to_string());
        let draining = self.draining.load(Ordering::Relaxed);
        if draining {
            lines.push("shutting down".to_string());
        }
        let text = lines.join("\n") + "\n";
        if database.is_none() && failing.is_none() && subscribed && !draining {
            Ok(text)
        } else {
            let mut last = self.last.lock();
            if *last != text {
                tracing::info!(reason = %text.trim().replace('\n', "; "), "worker not ready");
                *last = text.clone();
            }
            Err(text)
        }
    }

    /// `None` when the database answered within the deadline (checked at most every
    /// [`PING_CACHE`]), else its error.
    async fn database(&self) -> Option<String> {
        let mut cached = self.ping.lock().await;
        if let Some((at, result)) = cached.as_ref()
            && at.elapsed() < PING_CACHE
        {
            return result.clone();
        }
        let result = match tokio::time::timeout(PING_DEADLINE, self.store.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {PING_DEADLINE:?}")),
        };
        *cached = Some((Instant::now(), result.clone()));
        result
    }
}
