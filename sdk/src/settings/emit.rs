//! [`Config`] from the environment (or any lookup), and back.

use super::{Pairs, Source};
use crate::config::{Batching, Config, Endpoint, Names};
use crate::error::ConfigError;

impl Config {
    /// Reads the process environment (see the README for every variable).
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup`, which returns the value of a variable name or `None`.
    /// The variables are the emit-side ones of [`crate::settings::ALL`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let src = Source::new(&lookup);
        let pubsub =
            src.text(&super::PUBSUB_EMULATOR_HOST).map_or(Endpoint::Google, |h| Endpoint::emulator(&h));
        let storage =
            src.text(&super::STORAGE_EMULATOR_HOST).map_or(Endpoint::Google, |h| Endpoint::emulator(&h));
        let project = match src.text(&super::PROJECT).or_else(|| src.text(&super::GOOGLE_CLOUD_PROJECT)) {
            Some(p) => p,
            None if pubsub.is_emulator() => "suitex-local".to_string(),
            None => {
                return Err(ConfigError::new(
                    super::PROJECT.name,
                    "is not set (nor GOOGLE_CLOUD_PROJECT); it names the GCP project of the topics",
                ));
            }
        };
        let mut b = Config::builder(project).pubsub_endpoint(pubsub).storage_endpoint(storage);
        let mut names = Names::default();
        for (setting, slot) in [
            (&super::RAW_TOPIC, &mut names.raw_topic),
            (&super::MERGED_TOPIC, &mut names.merged_topic),
            (&super::DLQ_TOPIC, &mut names.dlq_topic),
            (&super::RAW_SUBSCRIPTION, &mut names.raw_subscription),
            (&super::DLQ_SUBSCRIPTION, &mut names.dlq_subscription),
            (&super::PAYLOAD_BUCKET, &mut names.payload_bucket),
        ] {
            if let Some(v) = src.text(setting) {
                *slot = v;
            }
        }
        b = b.names(names);
        if let Some(v) = src.bytes(&super::OFFLOAD_THRESHOLD)? {
            b = b.offload_threshold(usize_of(&super::OFFLOAD_THRESHOLD, v)?);
        }
        if let Some(v) = src.bytes(&super::MAX_PAYLOAD)? {
            b = b.max_payload(usize_of(&super::MAX_PAYLOAD, v)?);
        }
        if let Some(v) = src.duration(&super::PUBLISH_DEADLINE)? {
            b = b.publish_deadline(v);
        }
        let mut batching = Batching::default();
        if let Some(v) = src.number(&super::BATCH_MAX_MESSAGES)? {
            batching.max_messages = v;
        }
        if let Some(v) = src.bytes(&super::BATCH_MAX_BYTES)? {
            batching.max_bytes = v
                .try_into()
                .map_err(|_| ConfigError::new(super::BATCH_MAX_BYTES.name, "is larger than 4 GiB"))?;
        }
        if let Some(v) = src.duration(&super::BATCH_MAX_DELAY)? {
            batching.max_delay = v;
        }
        b = b.batching(batching);
        if let Some(v) = src.number(&super::MAX_ORDERING_KEYS)? {
            b = b.max_ordering_keys(v);
        }
        if let Some(v) = src.text(&super::SPOOL) {
            b = b.spool(v);
        }
        if let Some(v) = src.bytes(&super::SPOOL_MAX_BYTES)? {
            b = b.spool_max_bytes(v);
        }
        if let Some(v) = src.text(&super::SPOOL_GROUP) {
            b = b.spool_group(v);
        }
        b.build()
    }

    /// The settings that [`Config::from_lookup`] reads back into this same configuration: for a
    /// child process's environment, a PHP `Emitter` options array, or a C JSON configuration.
    pub fn to_settings(&self) -> Pairs {
        let n = self.names();
        let mut out: Pairs = vec![
            (super::PROJECT.name, self.project().to_string()),
            (super::RAW_TOPIC.name, n.raw_topic.clone()),
            (super::MERGED_TOPIC.name, n.merged_topic.clone()),
            (super::DLQ_TOPIC.name, n.dlq_topic.clone()),
            (super::RAW_SUBSCRIPTION.name, n.raw_subscription.clone()),
            (super::DLQ_SUBSCRIPTION.name, n.dlq_subscription.clone()),
            (super::PAYLOAD_BUCKET.name, n.payload_bucket.clone()),
            (super::OFFLOAD_THRESHOLD.name, self.offload_threshold().to_string()),
            (super::MAX_PAYLOAD.name, self.max_payload().to_string()),
            (super::PUBLISH_DEADLINE.name, format!("{}ms", self.publish_deadline().as_millis())),
            (super::BATCH_MAX_MESSAGES.name, self.batching().max_messages.to_string()),
            (super::BATCH_MAX_BYTES.name, self.batching().max_bytes.to_string()),
            (super::BATCH_MAX_DELAY.name, format!("{}ms", self.batching().max_delay.as_millis())),
            (super::MAX_ORDERING_KEYS.name, self.max_ordering_keys().to_string()),
            (super::SPOOL_MAX_BYTES.name, self.spool_max_bytes().to_string()),
        ];
        if let Some(dir) = self.spool() {
            out.push((super::SPOOL.name, dir.display().to_string()));
        }
        if let Some(group) = self.spool_group() {
            out.push((super::SPOOL_GROUP.name, group.to_owned()));
        }
        for (setting, endpoint) in [
            (&super::PUBSUB_EMULATOR_HOST, self.pubsub_endpoint()),
            (&super::STORAGE_EMULATOR_HOST, self.storage_endpoint()),
        ] {
            if let Endpoint::Emulator(url) = endpoint {
                out.push((setting.name, url.clone()));
            }
        }
        out
    }
}

fn usize_of(setting: &super::Setting, v: u64) -> Result<usize, ConfigError> {
    usize::try_from(v)
        .map_err(|_| ConfigError::new(setting.name, format!("is {v} bytes, which is too large")))
}

#[cfg(test)]
mod tests {
    use crate::config::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_match_production() {
        let c = Config::from_lookup(lookup(&[("SUITEX_EVENTS_PROJECT", "suitex-prod")])).unwrap();
        assert_eq!(c.names(), &Names::default());
        assert_eq!(c.offload_threshold(), 256 * 1024);
        assert_eq!(c.max_payload(), 32 * 1024 * 1024);
        assert_eq!(c.publish_deadline(), Duration::from_secs(10));
        assert_eq!(c.batching(), Batching::default());
        assert_eq!(c.pubsub_endpoint(), &Endpoint::Google);
        assert_eq!(c.storage_endpoint(), &Endpoint::Google);
    }

    #[test]
    fn emulator_hosts_become_plain_http_endpoints() {
        let c = Config::from_lookup(lookup(&[
            ("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085"),
            ("STORAGE_EMULATOR_HOST", "http://127.0.0.1:4443/"),
        ]))
        .unwrap();
        assert_eq!(c.project(), "suitex-local");
        assert_eq!(c.pubsub_endpoint(), &Endpoint::Emulator("http://127.0.0.1:8085".into()));
        assert_eq!(c.storage_endpoint(), &Endpoint::Emulator("http://127.0.0.1:4443".into()));
    }

    #[test]
    fn every_variable_is_read() {
        let c = Config::from_lookup(lookup(&[
            ("GOOGLE_CLOUD_PROJECT", "other-project"),
            ("SUITEX_EVENTS_RAW_TOPIC", "raw2"),
            ("SUITEX_EVENTS_MERGED_TOPIC", "merged2"),
            ("SUITEX_EVENTS_DLQ_TOPIC", "dlq2"),
            ("SUITEX_EVENTS_RAW_SUBSCRIPTION", "raw2-sub"),
            ("SUITEX_EVENTS_DLQ_SUBSCRIPTION", "dlq2-sub"),
            ("SUITEX_EVENTS_PAYLOAD_BUCKET", "bucket-2"),
            ("SUITEX_EVENTS_OFFLOAD_THRESHOLD", "128KiB"),
            ("SUITEX_EVENTS_MAX_PAYLOAD", "16MiB"),
            ("SUITEX_EVENTS_PUBLISH_DEADLINE", "2500ms"),
            ("SUITEX_EVENTS_BATCH_MAX_MESSAGES", "50"),
            ("SUITEX_EVENTS_BATCH_MAX_BYTES", "512KiB"),
            ("SUITEX_EVENTS_BATCH_MAX_DELAY", "5ms"),
            ("SUITEX_EVENTS_MAX_ORDERING_KEYS", "64"),
        ]))
        .unwrap();
        assert_eq!(c.project(), "other-project");
        assert_eq!(c.names().raw_topic, "raw2");
        assert_eq!(c.names().merged_topic, "merged2");
        assert_eq!(c.names().dlq_topic, "dlq2");
        assert_eq!(c.names().raw_subscription, "raw2-sub");
        assert_eq!(c.names().dlq_subscription, "dlq2-sub");
        assert_eq!(c.names().payload_bucket, "bucket-2");
        assert_eq!(c.offload_threshold(), 128 * 1024);
        assert_eq!(c.max_payload(), 16 * 1024 * 1024);
        assert_eq!(c.publish_deadline(), Duration::from_millis(2500));
        assert_eq!(c.batching().max_messages, 50);
        assert_eq!(c.batching().max_bytes, 512 * 1024);
        assert_eq!(c.batching().max_delay, Duration::from_millis(5));
        assert_eq!(c.max_ordering_keys(), 64);
    }

    #[test]
    fn to_settings_reads_back_into_the_same_config() {
        let c = Config::builder("suitex-prod")
            .offload_threshold(100_000)
            .publish_deadline(Duration::from_millis(1234))
            .batching(Batching { max_messages: 7, max_bytes: 70_000, max_delay: Duration::from_millis(3) })
            .max_ordering_keys(9)
            .emulators("127.0.0.1:1", "127.0.0.1:2")
            .build()
            .unwrap();
        let pairs: HashMap<String, String> =
            c.to_settings().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(Config::from_lookup(|k| pairs.get(k).cloned()).unwrap(), c);
        for (k, _) in c.to_settings() {
            assert!(crate::settings::find(k).is_some(), "{k} is not a listed setting");
        }
    }

    #[test]
    fn missing_project_without_emulator_is_a_clear_error() {
        let err = Config::from_lookup(lookup(&[])).unwrap_err();
        assert_eq!(err.setting(), "SUITEX_EVENTS_PROJECT");
    }

    #[test]
    fn limits_are_checked_against_each_other() {
        let err = Config::builder("suitex-prod").offload_threshold(11_000_000).build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "offload_threshold is 11000000 bytes; the limit is 9475712 (Pub/Sub's 10 MB message limit less envelope headroom)"
        );
        let err = Config::builder("suitex-prod").max_payload(1024).build().unwrap_err();
        assert_eq!(err.to_string(), "max_payload is 1024 bytes, below the offload threshold of 262144 bytes");
        let err = Config::builder("suitex-prod").max_payload(2 << 30).build().unwrap_err();
        assert_eq!(err.setting(), "max_payload");
        let err = Config::builder("x").build().unwrap_err();
        assert_eq!(err.setting(), "project");
    }

    #[test]
    fn malformed_numbers_name_the_variable() {
        let err = Config::from_lookup(lookup(&[
            ("SUITEX_EVENTS_PROJECT", "suitex-prod"),
            ("SUITEX_EVENTS_OFFLOAD_THRESHOLD", "lots"),
        ]))
        .unwrap_err();
        assert_eq!(err.setting(), "SUITEX_EVENTS_OFFLOAD_THRESHOLD");
        let err = Config::from_lookup(lookup(&[
            ("SUITEX_EVENTS_PROJECT", "suitex-prod"),
            ("SUITEX_EVENTS_PUBLISH_DEADLINE", "soon"),
        ]))
        .unwrap_err();
        assert_eq!(err.setting(), "SUITEX_EVENTS_PUBLISH_DEADLINE");
    }
}
