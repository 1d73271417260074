//! [`WorkerOptions`] from the `SUITEX_WORKER_*` variables.

use super::Source;
use crate::error::ConfigError;
use crate::worker::WorkerOptions;

impl WorkerOptions {
    /// Reads the `SUITEX_WORKER_*` variables.
    pub fn from_env() -> Result<WorkerOptions, ConfigError> {
        WorkerOptions::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the `SUITEX_WORKER_*` settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<WorkerOptions, ConfigError> {
        let src = Source::new(&lookup);
        let mut o = WorkerOptions::default();
        if let Some(v) = src.positive(&super::WORKER_BATCH_SIZE)? {
            o.batch_size = v;
        }
        if let Some(v) = src.positive(&super::WORKER_MAX_OUTSTANDING)? {
            o.max_outstanding = v;
        }
        if let Some(v) = src.bytes(&super::WORKER_BATCH_MAX_BYTES)? {
            o.batch_max_bytes = usize::try_from(v).ok().filter(|b| *b > 0).ok_or_else(|| {
                ConfigError::new(
                    super::WORKER_BATCH_MAX_BYTES.name,
                    format!("is {v} bytes; it must be above zero"),
                )
            })?;
        }
        if let Some(v) = src.parsed(&super::WORKER_MAX_DELIVERY_ATTEMPTS, |v| {
            v.parse::<i32>()
                .ok()
                .filter(|n| (5..=100).contains(n))
                .ok_or_else(|| "expected 5 to 100 (Pub/Sub's range)".to_string())
        })? {
            o.max_delivery_attempts = v;
        }
        for (setting, slot) in [
            (&super::WORKER_BATCH_WAIT, &mut o.batch_wait),
            (&super::WORKER_FETCH_DEADLINE, &mut o.fetch_deadline),
            (&super::WORKER_BACKOFF_MIN, &mut o.backoff_min),
            (&super::WORKER_BACKOFF_MAX, &mut o.backoff_max),
            (&super::WORKER_SHUTDOWN_DEADLINE, &mut o.shutdown_deadline),
            (&super::WORKER_LEASE_EXTENSION, &mut o.lease_extension),
        ] {
            if let Some(v) = src.duration(setting)? {
                *slot = v;
            }
        }
        if o.fetch_deadline.is_zero() {
            return Err(ConfigError::new(super::WORKER_FETCH_DEADLINE.name, "must be greater than zero"));
        }
        if o.max_outstanding < o.batch_size as i64 {
            return Err(ConfigError::new(
                super::WORKER_MAX_OUTSTANDING.name,
                format!("is {}, below the batch size of {}", o.max_outstanding, o.batch_size),
            ));
        }
        Ok(o)
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
            _ => None,
        })
        .unwrap();
        assert_eq!(o.batch_max_bytes, 8 << 20);
        assert_eq!(o.fetch_deadline, Duration::from_secs(15));
        assert_eq!(o.max_delivery_attempts, 10);
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
}
