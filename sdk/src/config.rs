//! Settings for talking to Pub/Sub and Cloud Storage, from the environment or a builder.
//!
//! Every setting has a production default except the project. [`Config::from_env`] reads the
//! `SUITEX_EVENTS_*` variables documented in the README; [`Config::from_lookup`] does the same
//! from any key → value source (the PHP extension layers php.ini directives over the environment
//! this way). Both live in [`crate::settings`], beside every other setting. `PUBSUB_EMULATOR_HOST` / `STORAGE_EMULATOR_HOST` switch the clients to plain-text
//! emulator endpoints with anonymous credentials; otherwise Application Default Credentials are
//! used.
//!
//! ```
//! use suitex_events::Config;
//! use std::time::Duration;
//!
//! let config = Config::builder("my-project")
//!     .offload_threshold(128 * 1024)
//!     .publish_deadline(Duration::from_secs(5))
//!     .build()?;
//! assert_eq!(config.raw_topic_path(), "projects/my-project/topics/events.raw");
//! # Ok::<(), suitex_events::ConfigError>(())
//! ```

use crate::error::ConfigError;
use crate::settings::{self, Pairs, Source};
use std::time::Duration;

/// Pub/Sub's hard limit on one message (and one publish request), in bytes.
pub const PUBSUB_MESSAGE_MAX_BYTES: usize = 10_000_000;
/// Room kept for the envelope around an inline payload when checking the offload threshold.
const ENVELOPE_HEADROOM_BYTES: usize = 512 * 1024;
/// MySQL's largest possible `max_allowed_packet`; a payload must fit in one INSERT.
const MYSQL_MAX_PACKET_BYTES: usize = 1024 * 1024 * 1024;

// The defaults are the settings list's (`crate::settings`), where each is written once.
/// Default offload threshold: payloads larger than this go to the claim-check bucket.
pub const DEFAULT_OFFLOAD_THRESHOLD: usize = settings::OFFLOAD_THRESHOLD.default.bytes() as usize;
/// Default hard maximum payload size: larger payloads are rejected.
pub const DEFAULT_MAX_PAYLOAD: usize = settings::MAX_PAYLOAD.default.bytes() as usize;
/// Default deadline for one `emit` (upload + publish).
pub const DEFAULT_PUBLISH_DEADLINE: Duration = settings::PUBLISH_DEADLINE.default.duration();
/// Default number of distinct ordering keys one publisher generation serves before it is
/// replaced (the client keeps a worker per key for the publisher's lifetime).
pub const DEFAULT_MAX_ORDERING_KEYS: usize = settings::MAX_ORDERING_KEYS.default.count() as usize;
/// Default limit on the bytes of events waiting in a spool.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = settings::SPOOL_MAX_BYTES.default.bytes();

/// Names of the topics, subscriptions and bucket (docs/architecture.md §2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
/// Each defaults to its setting's default (`SUITEX_EVENTS_RAW_TOPIC` … in the settings list).
pub struct Names {
    /// Topic the web tier emits to (`SUITEX_EVENTS_RAW_TOPIC`).
    pub raw_topic: String,
    /// Topic the ledger is fed to (`SUITEX_EVENTS_MERGED_TOPIC`).
    pub merged_topic: String,
    /// Dead-letter topic (`SUITEX_EVENTS_DLQ_TOPIC`).
    pub dlq_topic: String,
    /// The worker's subscription on the raw topic (`SUITEX_EVENTS_RAW_SUBSCRIPTION`).
    pub raw_subscription: String,
    /// Subscription that retains dead letters (`SUITEX_EVENTS_DLQ_SUBSCRIPTION`).
    pub dlq_subscription: String,
    /// Claim-check bucket (`SUITEX_EVENTS_PAYLOAD_BUCKET`).
    pub payload_bucket: String,
}

impl Names {
    /// The workers' own subscription on the dead-letter topic, `<dlq_topic>-watch` (the
    /// dead-letter watch, `SUITEX_WORKER_DLQ_WATCH`); the operators' is `dlq_subscription`.
    pub fn dlq_watch_subscription(&self) -> String {
        format!("{}-watch", self.dlq_topic)
    }
}

impl Default for Names {
    fn default() -> Self {
        Names {
            raw_topic: settings::RAW_TOPIC.default.text().into(),
            merged_topic: settings::MERGED_TOPIC.default.text().into(),
            dlq_topic: settings::DLQ_TOPIC.default.text().into(),
            raw_subscription: settings::RAW_SUBSCRIPTION.default.text().into(),
            dlq_subscription: settings::DLQ_SUBSCRIPTION.default.text().into(),
            payload_bucket: settings::PAYLOAD_BUCKET.default.text().into(),
        }
    }
}

/// Publisher batching (`SUITEX_EVENTS_BATCH_MAX_*`; by default no delay).
///
/// No delay (the official client's default is 10 ms): ordering allows one batch in flight per
/// key, so a key's batch goes out at once when nothing of that key is in flight, and messages
/// arriving meanwhile collect into the next one. Under load that batches as much as a timer
/// would (`cargo bench -p suitex_events --bench compare` shows the same throughput), and a
/// synchronous emit is not held back for a timer (p50 ≈ 1.4 ms instead of ≈ 12 ms on the
/// emulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Send a batch when it holds this many messages.
    pub max_messages: u32,
    /// Send a batch when it holds this many bytes.
    pub max_bytes: u32,
    /// Send a batch at the latest this long after its first message.
    pub max_delay: Duration,
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            max_messages: settings::BATCH_MAX_MESSAGES.default.count() as u32,
            max_bytes: settings::BATCH_MAX_BYTES.default.bytes() as u32,
            max_delay: settings::BATCH_MAX_DELAY.default.duration(),
        }
    }
}

/// Where the Google clients connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The production service with Application Default Credentials.
    Google,
    /// A local emulator: plain text, anonymous credentials. Holds `http://host:port`.
    Emulator(String),
}

impl Endpoint {
    /// `http://host:port` for an emulator host given as `host:port` or a URL.
    pub fn emulator(host: &str) -> Endpoint {
        let host = host.trim().trim_end_matches('/');
        if host.starts_with("http://") || host.starts_with("https://") {
            Endpoint::Emulator(host.to_string())
        } else {
            Endpoint::Emulator(format!("http://{host}"))
        }
    }

    /// Whether this is an emulator.
    pub fn is_emulator(&self) -> bool {
        matches!(self, Endpoint::Emulator(_))
    }
}

/// Everything the emitter and the tools need to reach Pub/Sub and Cloud Storage.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    project: String,
    names: Names,
    offload_threshold: usize,
    max_payload: usize,
    publish_deadline: Duration,
    batching: Batching,
    max_ordering_keys: usize,
    pubsub: Endpoint,
    storage: Endpoint,
    spool: Option<std::path::PathBuf>,
    spool_max_bytes: u64,
    spool_group: Option<String>,
}

impl Config {
    /// A builder with production defaults for `project`.
    pub fn builder(project: impl Into<String>) -> ConfigBuilder {
        ConfigBuilder {
            config: Config {
                project: project.into(),
                names: Names::default(),
                offload_threshold: DEFAULT_OFFLOAD_THRESHOLD,
                max_payload: DEFAULT_MAX_PAYLOAD,
                publish_deadline: DEFAULT_PUBLISH_DEADLINE,
                batching: Batching::default(),
                max_ordering_keys: DEFAULT_MAX_ORDERING_KEYS,
                pubsub: Endpoint::Google,
                storage: Endpoint::Google,
                spool: None,
                spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
                spool_group: None,
            },
        }
    }

    /// Spool mode: the spool directory (`SUITEX_EVENTS_SPOOL`). `None` (the default) is direct
    /// mode: emits publish to Pub/Sub before they return.
    pub fn spool(&self) -> Option<&std::path::Path> {
        self.spool.as_deref()
    }

    /// Spool mode: most bytes of events waiting in the spool (`SUITEX_EVENTS_SPOOL_MAX_BYTES`).
    pub fn spool_max_bytes(&self) -> u64 {
        self.spool_max_bytes
    }

    /// Spool mode: the group that shares the spool (`SUITEX_EVENTS_SPOOL_GROUP`); `None` (the
    /// default) keeps it private to its owner. See [`crate::emit::spool_privacy`].
    pub fn spool_group(&self) -> Option<&str> {
        self.spool_group.as_deref()
    }

    /// This configuration in direct mode (what the relay publishes with).
    pub fn without_spool(&self) -> Config {
        Config { spool: None, ..self.clone() }
    }

    /// The GCP project.
    pub fn project(&self) -> &str {
        &self.project
    }
    /// Topic, subscription and bucket names.
    pub fn names(&self) -> &Names {
        &self.names
    }
    /// Payloads strictly larger than this many bytes go to the claim-check bucket.
    pub fn offload_threshold(&self) -> usize {
        self.offload_threshold
    }
    /// Payloads strictly larger than this many bytes are rejected.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }
    /// Deadline for one emit call (upload + publish).
    pub fn publish_deadline(&self) -> Duration {
        self.publish_deadline
    }
    /// Publisher batching.
    pub fn batching(&self) -> Batching {
        self.batching
    }
    /// Distinct ordering keys one publisher generation serves before it is replaced.
    pub fn max_ordering_keys(&self) -> usize {
        self.max_ordering_keys
    }
    /// Where Pub/Sub is.
    pub fn pubsub_endpoint(&self) -> &Endpoint {
        &self.pubsub
    }
    /// Where Cloud Storage is.
    pub fn storage_endpoint(&self) -> &Endpoint {
        &self.storage
    }
    /// `projects/{project}/topics/{name}`.
    pub fn topic_path(&self, name: &str) -> String {
        format!("projects/{}/topics/{name}", self.project)
    }
    /// `projects/{project}/subscriptions/{name}`.
    pub fn subscription_path(&self, name: &str) -> String {
        format!("projects/{}/subscriptions/{name}", self.project)
    }
    /// The full path of `events.raw`.
    pub fn raw_topic_path(&self) -> String {
        self.topic_path(&self.names.raw_topic)
    }
    /// `projects/_/buckets/{bucket}`, the form the storage client takes.
    pub fn bucket_path(&self) -> String {
        format!("projects/_/buckets/{}", self.names.payload_bucket)
    }
}

/// Builds a [`Config`]; [`ConfigBuilder::build`] checks the limits against each other.
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Spool mode: emits append durably to the spool in `dir` and return; `suitex-events relay`
    /// publishes them (see [`crate::emit::spool`]).
    pub fn spool(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config.spool = Some(dir.into());
        self
    }

    /// Spool mode: most bytes of events waiting in the spool (default 1 GiB).
    pub fn spool_max_bytes(mut self, bytes: u64) -> Self {
        self.config.spool_max_bytes = bytes;
        self
    }

    /// Spool mode: share the spool with `group` (a name or a numeric gid) — directory `2770`,
    /// files `0660` — so a relay running as another member of it can drain the spool. Unset (the
    /// default), the spool is private to its owner (`0700` / `0600`).
    pub fn spool_group(mut self, group: impl Into<String>) -> Self {
        self.config.spool_group = Some(group.into());
        self
    }
    /// Topic, subscription and bucket names.
    pub fn names(mut self, names: Names) -> Self {
        self.config.names = names;
        self
    }
    /// Payloads larger than this go to the claim-check bucket (`SUITEX_EVENTS_OFFLOAD_THRESHOLD`);
    /// at most 10 MB minus 512 KiB of envelope headroom (the Pub/Sub message limit).
    pub fn offload_threshold(mut self, bytes: usize) -> Self {
        self.config.offload_threshold = bytes;
        self
    }
    /// Payloads larger than this are rejected before anything is uploaded or published.
    /// (`SUITEX_EVENTS_MAX_PAYLOAD`); must be at least the offload threshold and fit MySQL's
    /// `max_allowed_packet` (at most 1 GiB).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.config.max_payload = bytes;
        self
    }
    /// Deadline for one emit call (`SUITEX_EVENTS_PUBLISH_DEADLINE`).
    pub fn publish_deadline(mut self, deadline: Duration) -> Self {
        self.config.publish_deadline = deadline;
        self
    }
    /// Publisher batching (`SUITEX_EVENTS_BATCH_MAX_*`).
    pub fn batching(mut self, batching: Batching) -> Self {
        self.config.batching = batching;
        self
    }
    /// Distinct ordering keys per publisher generation. Default 1024.
    pub fn max_ordering_keys(mut self, keys: usize) -> Self {
        self.config.max_ordering_keys = keys;
        self
    }
    /// Pub/Sub endpoint. Default Google.
    pub fn pubsub_endpoint(mut self, endpoint: Endpoint) -> Self {
        self.config.pubsub = endpoint;
        self
    }
    /// Cloud Storage endpoint. Default Google.
    pub fn storage_endpoint(mut self, endpoint: Endpoint) -> Self {
        self.config.storage = endpoint;
        self
    }
    /// Both endpoints to emulators at `pubsub_host` and `storage_host` (`host:port`).
    pub fn emulators(self, pubsub_host: &str, storage_host: &str) -> Self {
        self.pubsub_endpoint(Endpoint::emulator(pubsub_host))
            .storage_endpoint(Endpoint::emulator(storage_host))
    }

    /// Checks the settings and returns the config.
    pub fn build(self) -> Result<Config, ConfigError> {
        let c = self.config;
        let project_ok = (6..=30).contains(&c.project.len())
            && c.project.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
        if !project_ok {
            return Err(ConfigError::new(
                "project",
                format!("{:?} is not a GCP project id (6 to 30 of a-z, 0-9, '-')", c.project),
            ));
        }
        for (setting, name) in [
            ("raw_topic", &c.names.raw_topic),
            ("merged_topic", &c.names.merged_topic),
            ("dlq_topic", &c.names.dlq_topic),
            ("raw_subscription", &c.names.raw_subscription),
            ("dlq_subscription", &c.names.dlq_subscription),
        ] {
            let ok = (3..=255).contains(&name.len())
                && name.starts_with(|ch: char| ch.is_ascii_alphabetic())
                && !name.starts_with("goog")
                && name.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.~+%".contains(ch));
            if !ok {
                return Err(ConfigError::new(
                    setting,
                    format!("{name:?} is not a Pub/Sub name (3 to 255 characters, starting with a letter)"),
                ));
            }
        }
        let bucket = &c.names.payload_bucket;
        if !(3..=63).contains(&bucket.len())
            || !bucket.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "-_.".contains(ch))
        {
            return Err(ConfigError::new(
                "payload_bucket",
                format!("{bucket:?} is not a bucket name (3 to 63 of a-z, 0-9, '-', '_', '.')"),
            ));
        }
        let threshold_limit = PUBSUB_MESSAGE_MAX_BYTES - ENVELOPE_HEADROOM_BYTES;
        if c.offload_threshold > threshold_limit {
            return Err(ConfigError::new(
                "offload_threshold",
                format!(
                    "is {} bytes; the limit is {threshold_limit} (Pub/Sub's 10 MB message limit less envelope headroom)",
                    c.offload_threshold
                ),
            ));
        }
        if c.max_payload < c.offload_threshold {
            return Err(ConfigError::new(
                "max_payload",
                format!(
                    "is {} bytes, below the offload threshold of {} bytes",
                    c.max_payload, c.offload_threshold
                ),
            ));
        }
        if c.max_payload > MYSQL_MAX_PACKET_BYTES {
            return Err(ConfigError::new(
                "max_payload",
                format!(
                    "is {} bytes; the limit is {MYSQL_MAX_PACKET_BYTES} (MySQL's largest max_allowed_packet)",
                    c.max_payload
                ),
            ));
        }
        if c.publish_deadline.is_zero() {
            return Err(ConfigError::new("publish_deadline", "must be greater than zero"));
        }
        if c.batching.max_messages == 0 || c.batching.max_messages > 1000 {
            return Err(ConfigError::new(
                "batch_max_messages",
                format!("is {}; it must be 1 to 1000 (Pub/Sub's per-request limit)", c.batching.max_messages),
            ));
        }
        if c.batching.max_bytes == 0 || c.batching.max_bytes as usize > PUBSUB_MESSAGE_MAX_BYTES {
            return Err(ConfigError::new(
                "batch_max_bytes",
                format!("is {}; it must be 1 to {PUBSUB_MESSAGE_MAX_BYTES}", c.batching.max_bytes),
            ));
        }
        if c.max_ordering_keys == 0 {
            return Err(ConfigError::new("max_ordering_keys", "must be at least 1"));
        }
        if c.spool_max_bytes < 64 * 1024 {
            return Err(ConfigError::new(
                "spool_max_bytes",
                format!("is {} bytes; the spool needs at least 64 KiB", c.spool_max_bytes),
            ));
        }
        Ok(c)
    }
}

impl Config {
    /// Reads the process environment (see the README for every variable).
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup`, which returns the value of a variable name or `None`.
    /// The variables are the emit-side ones of [`crate::settings::ALL`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let src = Source::new(&lookup);
        let pubsub = src
            .text(&crate::settings::PUBSUB_EMULATOR_HOST)
            .map_or(Endpoint::Google, |h| Endpoint::emulator(&h));
        let storage = src
            .text(&crate::settings::STORAGE_EMULATOR_HOST)
            .map_or(Endpoint::Google, |h| Endpoint::emulator(&h));
        let project = match src
            .text(&crate::settings::PROJECT)
            .or_else(|| src.text(&crate::settings::GOOGLE_CLOUD_PROJECT))
        {
            Some(p) => p,
            None if pubsub.is_emulator() => "suitex-local".to_string(),
            None => {
                return Err(ConfigError::new(
                    crate::settings::PROJECT.name,
                    "is not set (nor GOOGLE_CLOUD_PROJECT); it names the GCP project of the topics",
                ));
            }
        };
        let mut b = Config::builder(project).pubsub_endpoint(pubsub).storage_endpoint(storage);
        let mut names = Names::default();
        for (setting, slot) in [
            (&crate::settings::RAW_TOPIC, &mut names.raw_topic),
            (&crate::settings::MERGED_TOPIC, &mut names.merged_topic),
            (&crate::settings::DLQ_TOPIC, &mut names.dlq_topic),
            (&crate::settings::RAW_SUBSCRIPTION, &mut names.raw_subscription),
            (&crate::settings::DLQ_SUBSCRIPTION, &mut names.dlq_subscription),
            (&crate::settings::PAYLOAD_BUCKET, &mut names.payload_bucket),
        ] {
            if let Some(v) = src.text(setting) {
                *slot = v;
            }
        }
        b = b.names(names);
        if let Some(v) = src.bytes(&crate::settings::OFFLOAD_THRESHOLD)? {
            b = b.offload_threshold(usize_of(&crate::settings::OFFLOAD_THRESHOLD, v)?);
        }
        if let Some(v) = src.bytes(&crate::settings::MAX_PAYLOAD)? {
            b = b.max_payload(usize_of(&crate::settings::MAX_PAYLOAD, v)?);
        }
        if let Some(v) = src.duration(&crate::settings::PUBLISH_DEADLINE)? {
            b = b.publish_deadline(v);
        }
        let mut batching = Batching::default();
        if let Some(v) = src.number(&crate::settings::BATCH_MAX_MESSAGES)? {
            batching.max_messages = v;
        }
        if let Some(v) = src.bytes(&crate::settings::BATCH_MAX_BYTES)? {
            batching.max_bytes = v.try_into().map_err(|_| {
                ConfigError::new(crate::settings::BATCH_MAX_BYTES.name, "is larger than 4 GiB")
            })?;
        }
        if let Some(v) = src.duration(&crate::settings::BATCH_MAX_DELAY)? {
            batching.max_delay = v;
        }
        b = b.batching(batching);
        if let Some(v) = src.number(&crate::settings::MAX_ORDERING_KEYS)? {
            b = b.max_ordering_keys(v);
        }
        if let Some(v) = src.text(&crate::settings::SPOOL) {
            b = b.spool(v);
        }
        if let Some(v) = src.bytes(&crate::settings::SPOOL_MAX_BYTES)? {
            b = b.spool_max_bytes(v);
        }
        if let Some(v) = src.text(&crate::settings::SPOOL_GROUP) {
            b = b.spool_group(v);
        }
        b.build()
    }

    /// The settings that [`Config::from_lookup`] reads back into this same configuration: for a
    /// child process's environment, a PHP `Emitter` options array, or a C JSON configuration.
    pub fn to_settings(&self) -> Pairs {
        let n = self.names();
        let mut out: Pairs = vec![
            (crate::settings::PROJECT.name, self.project().to_string()),
            (crate::settings::RAW_TOPIC.name, n.raw_topic.clone()),
            (crate::settings::MERGED_TOPIC.name, n.merged_topic.clone()),
            (crate::settings::DLQ_TOPIC.name, n.dlq_topic.clone()),
            (crate::settings::RAW_SUBSCRIPTION.name, n.raw_subscription.clone()),
            (crate::settings::DLQ_SUBSCRIPTION.name, n.dlq_subscription.clone()),
            (crate::settings::PAYLOAD_BUCKET.name, n.payload_bucket.clone()),
            (crate::settings::OFFLOAD_THRESHOLD.name, self.offload_threshold().to_string()),
            (crate::settings::MAX_PAYLOAD.name, self.max_payload().to_string()),
            (crate::settings::PUBLISH_DEADLINE.name, format!("{}ms", self.publish_deadline().as_millis())),
            (crate::settings::BATCH_MAX_MESSAGES.name, self.batching().max_messages.to_string()),
            (crate::settings::BATCH_MAX_BYTES.name, self.batching().max_bytes.to_string()),
            (crate::settings::BATCH_MAX_DELAY.name, format!("{}ms", self.batching().max_delay.as_millis())),
            (crate::settings::MAX_ORDERING_KEYS.name, self.max_ordering_keys().to_string()),
            (crate::settings::SPOOL_MAX_BYTES.name, self.spool_max_bytes().to_string()),
        ];
        if let Some(dir) = self.spool() {
            out.push((crate::settings::SPOOL.name, dir.display().to_string()));
        }
        if let Some(group) = self.spool_group() {
            out.push((crate::settings::SPOOL_GROUP.name, group.to_owned()));
        }
        for (setting, endpoint) in [
            (&crate::settings::PUBSUB_EMULATOR_HOST, self.pubsub_endpoint()),
            (&crate::settings::STORAGE_EMULATOR_HOST, self.storage_endpoint()),
        ] {
            if let Endpoint::Emulator(url) = endpoint {
                out.push((setting.name, url.clone()));
            }
        }
        out
    }
}

fn usize_of(setting: &crate::settings::Setting, v: u64) -> Result<usize, ConfigError> {
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
