//! [`WorkerOptions`]: the worker's tuning (read from `SUITEX_WORKER_*` in [`crate::settings`]).

use crate::error::ConfigError;
use crate::settings::Source;
use std::time::Duration;

/// How long a message's lease is kept alive while its batch retries (not a setting).
const MAX_LEASE: Duration = Duration::from_secs(12 * 3600);

/// Tuning of the worker; every field has a production default, the settings list's
/// (`suitex-events settings` prints them; the README's configuration table too).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    /// Most messages in one batch (`SUITEX_WORKER_BATCH_SIZE`).
    pub batch_size: usize,
    /// Most bytes of resolved payloads one batch holds (`SUITEX_WORKER_BATCH_MAX_BYTES`; with the
    /// event store's statement buffers a batch needs about three times this). A message larger
    /// than this still makes a batch of its own.
    pub batch_max_bytes: usize,
    /// Longest wait for more messages once a batch's first arrived (`SUITEX_WORKER_BATCH_WAIT`;
    /// by default none: take what the subscriber holds and go — under load the next batch fills
    /// while this one is stored, so waiting adds latency without adding throughput).
    pub batch_wait: Duration,
    /// Longest one claim-check download may take before the batch is retried
    /// (`SUITEX_WORKER_FETCH_DEADLINE`).
    pub fetch_deadline: Duration,
    /// Delivery attempts after which Pub/Sub dead-letters a message
    /// (`SUITEX_WORKER_MAX_DELIVERY_ATTEMPTS`). On a message's last attempt the later
    /// messages of its key are no longer held back behind it.
    pub max_delivery_attempts: i32,
    /// Flow control: messages the subscriber may hold (`SUITEX_WORKER_MAX_OUTSTANDING`).
    pub max_outstanding: i64,
    /// First back-off after a transient failure (`SUITEX_WORKER_BACKOFF_MIN`).
    pub backoff_min: Duration,
    /// Longest back-off (`SUITEX_WORKER_BACKOFF_MAX`).
    pub backoff_max: Duration,
    /// After SIGTERM/SIGINT, how long in-flight work may take before it is released
    /// (`SUITEX_WORKER_SHUTDOWN_DEADLINE`).
    pub shutdown_deadline: Duration,
    /// How long a message's lease is kept alive while its batch retries (12 h, so a long
    /// database outage does not turn into expired leases and burnt delivery attempts).
    pub max_lease: Duration,
    /// How far each lease extension reaches (`SUITEX_WORKER_LEASE_EXTENSION`, 10s–600s): after a
    /// crash, the messages the worker held are redelivered this long after its last extension.
    pub lease_extension: Duration,
    /// Whether this worker runs the `events.merged` feeder beside storing
    /// (`SUITEX_WORKER_FEED_MERGED`): of all the workers that run it, one leads at
    /// a time (see [`super::feeder`]).
    pub feed_merged: bool,
    /// Whether the worker watches the dead-letter topic, through its own subscription
    /// ([`crate::config::Names::dlq_watch_subscription`]), to park the key of a dead letter it
    /// did not park itself (`SUITEX_WORKER_DLQ_WATCH`). See [`super::dlq_watch`].
    pub dlq_watch: bool,
    /// The feeder's tuning.
    pub feeder: super::feeder::FeederOptions,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        // Each default is the settings list's (`crate::settings`), written there once.
        use crate::settings as s;
        WorkerOptions {
            batch_size: s::WORKER_BATCH_SIZE.default.count() as usize,
            batch_max_bytes: s::WORKER_BATCH_MAX_BYTES.default.bytes() as usize,
            batch_wait: s::WORKER_BATCH_WAIT.default.duration(),
            fetch_deadline: s::WORKER_FETCH_DEADLINE.default.duration(),
            max_delivery_attempts: s::WORKER_MAX_DELIVERY_ATTEMPTS.default.count() as i32,
            max_outstanding: s::WORKER_MAX_OUTSTANDING.default.count() as i64,
            backoff_min: s::WORKER_BACKOFF_MIN.default.duration(),
            backoff_max: s::WORKER_BACKOFF_MAX.default.duration(),
            shutdown_deadline: s::WORKER_SHUTDOWN_DEADLINE.default.duration(),
            max_lease: MAX_LEASE,
            lease_extension: s::WORKER_LEASE_EXTENSION.default.duration(),
            feed_merged: s::WORKER_FEED_MERGED.default.flag(),
            dlq_watch: s::WORKER_DLQ_WATCH.default.flag(),
            feeder: super::feeder::FeederOptions::default(),
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

impl WorkerOptions {
    /// Reads the `SUITEX_WORKER_*` variables.
    pub fn from_env() -> Result<WorkerOptions, ConfigError> {
        WorkerOptions::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the `SUITEX_WORKER_*` settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<WorkerOptions, ConfigError> {
        let src = Source::new(&lookup);
        let mut o = WorkerOptions::default();
        if let Some(v) = src.positive(&crate::settings::WORKER_BATCH_SIZE)? {
            o.batch_size = v;
        }
        if let Some(v) = src.positive(&crate::settings::WORKER_MAX_OUTSTANDING)? {
            o.max_outstanding = v;
        }
        if let Some(v) = src.bytes(&crate::settings::WORKER_BATCH_MAX_BYTES)? {
            o.batch_max_bytes = usize::try_from(v).ok().filter(|b| *b > 0).ok_or_else(|| {
                ConfigError::new(
                    crate::settings::WORKER_BATCH_MAX_BYTES.name,
                    format!("is {v} bytes; it must be above zero"),
                )
            })?;
        }
        if let Some(v) = src.parsed(&crate::settings::WORKER_MAX_DELIVERY_ATTEMPTS, |v| {
            v.parse::<i32>()
                .ok()
                .filter(|n| (5..=100).contains(n))
                .ok_or_else(|| "expected 5 to 100 (Pub/Sub's range)".to_string())
        })? {
            o.max_delivery_attempts = v;
        }
        for (setting, slot) in [
            (&crate::settings::WORKER_BATCH_WAIT, &mut o.batch_wait),
            (&crate::settings::WORKER_FETCH_DEADLINE, &mut o.fetch_deadline),
            (&crate::settings::WORKER_BACKOFF_MIN, &mut o.backoff_min),
            (&crate::settings::WORKER_BACKOFF_MAX, &mut o.backoff_max),
            (&crate::settings::WORKER_SHUTDOWN_DEADLINE, &mut o.shutdown_deadline),
            (&crate::settings::WORKER_LEASE_EXTENSION, &mut o.lease_extension),
        ] {
            if let Some(v) = src.duration(setting)? {
                *slot = v;
            }
        }
        if let Some(v) = src.parsed(&crate::settings::WORKER_FEED_MERGED, on_off)? {
            o.feed_merged = v;
        }
        if let Some(v) = src.parsed(&crate::settings::WORKER_DLQ_WATCH, on_off)? {
            o.dlq_watch = v;
        }
        match src.text(&crate::settings::WORKER_DIGEST_BUCKET).as_deref() {
            Some("off") => o.feeder.digests = None,
            Some(bucket) => o.feeder.digests.get_or_insert_with(Default::default).bucket = bucket.to_string(),
            None => {}
        }
        if let Some(digests) = o.feeder.digests.as_mut() {
            if let Some(v) = src.positive(&crate::settings::WORKER_DIGEST_EVERY)? {
                digests.every_rows = v;
            }
            if let Some(v) = src.duration(&crate::settings::WORKER_DIGEST_INTERVAL)? {
                digests.interval = v;
            }
        }
        if o.fetch_deadline.is_zero() {
            return Err(ConfigError::new(
                crate::settings::WORKER_FETCH_DEADLINE.name,
                "must be greater than zero",
            ));
        }
        if o.max_outstanding < o.batch_size as i64 {
            return Err(ConfigError::new(
                crate::settings::WORKER_MAX_OUTSTANDING.name,
                format!("is {}, below the batch size of {}", o.max_outstanding, o.batch_size),
            ));
        }
        Ok(o)
    }
}

/// An on/off switch's value.
fn on_off(v: &str) -> Result<bool, String> {
    match v {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err("expected on or off".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use crate::worker::WorkerOptions;
    use std::time::Duration;

    #[test]
    fn worker_options_read_their_variables_and_check_each_other() {
        let o = WorkerOptions::from_lookup(|k| match k {
            "SUITEX_WORKER_BATCH_SIZE" => Some("50".into()),
            "SUITEX_WORKER_BATCH_WAIT" => Some("5ms".into()),
            "SUITEX_WORKER_BACKOFF_MAX" => Some("1m".into()),
            "SUITEX_WORKER_BATCH_MAX_BYTES" => Some("8MiB".into()),
            "SUITEX_WORKER_FETCH_DEADLINE" => Some("15s".into()),
            "SUITEX_WORKER_MAX_DELIVERY_ATTEMPTS" => Some("10".into()),
            "SUITEX_WORKER_FEED_MERGED" => Some("off".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(o.batch_max_bytes, 8 << 20);
        assert_eq!(o.fetch_deadline, Duration::from_secs(15));
        assert_eq!(o.max_delivery_attempts, 10);
        assert!(!o.feed_merged && WorkerOptions::default().feed_merged);
        let defaults = WorkerOptions::default();
        assert_eq!(defaults.batch_wait, Duration::ZERO, "take what is there, do not wait");
        assert_eq!(defaults.batch_max_bytes, 32 << 20);
        assert_eq!(o.batch_size, 50);
        assert_eq!(o.batch_wait, Duration::from_millis(5));
        assert_eq!(o.backoff_max, Duration::from_secs(60));
        let e = WorkerOptions::from_lookup(|k| (k == "SUITEX_WORKER_BATCH_SIZE").then(|| "5000".into()))
            .unwrap_err();
        assert_eq!(e.setting(), "SUITEX_WORKER_MAX_OUTSTANDING");
        let e = WorkerOptions::from_lookup(|k| (k == "SUITEX_WORKER_BATCH_SIZE").then(|| "-1".into()))
            .unwrap_err();
        assert_eq!(e.setting(), "SUITEX_WORKER_BATCH_SIZE");
    }

    #[test]
    fn the_dead_letter_watch_is_on_by_default_and_can_be_turned_off() {
        assert!(WorkerOptions::default().dlq_watch);
        let env = |v: &'static str| move |k: &str| (k == "SUITEX_WORKER_DLQ_WATCH").then(|| v.to_string());
        assert!(!WorkerOptions::from_lookup(env("off")).unwrap().dlq_watch);
        let e = WorkerOptions::from_lookup(env("maybe")).unwrap_err().to_string();
        assert!(e.contains("SUITEX_WORKER_DLQ_WATCH"), "{e}");
    }

    #[test]
    fn digests_are_on_by_default_tunable_and_can_be_turned_off() {
        let d = WorkerOptions::default().feeder.digests.expect("digests are on by default");
        assert_eq!(
            (d.bucket.as_str(), d.every_rows, d.interval),
            ("suitex-ledger-digests", 10_000, Duration::from_secs(60))
        );
        let o = WorkerOptions::from_lookup(|k| match k {
            "SUITEX_WORKER_DIGEST_BUCKET" => Some("audit-digests".into()),
            "SUITEX_WORKER_DIGEST_EVERY" => Some("500".into()),
            "SUITEX_WORKER_DIGEST_INTERVAL" => Some("5m".into()),
            _ => None,
        })
        .unwrap();
        let d = o.feeder.digests.unwrap();
        assert_eq!(
            (d.bucket.as_str(), d.every_rows, d.interval),
            ("audit-digests", 500, Duration::from_secs(300))
        );
        let off = WorkerOptions::from_lookup(|k| (k == "SUITEX_WORKER_DIGEST_BUCKET").then(|| "off".into()))
            .unwrap();
        assert_eq!(off.feeder.digests, None);
        let e = WorkerOptions::from_lookup(|k| (k == "SUITEX_WORKER_DIGEST_EVERY").then(|| "0".into()))
            .unwrap_err();
        assert_eq!(e.setting(), "SUITEX_WORKER_DIGEST_EVERY");
    }
}
