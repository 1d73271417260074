//! Every setting of the backbone, in one list, and the parsers that read them.
//!
//! A setting is an environment variable name with its default and meaning ([`Setting`]);
//! [`ALL`] lists every one of them. Each type that is configured reads its own variables next
//! to its definition — [`Config::from_lookup`](crate::config::Config::from_lookup) for the emit
//! side, `StoreSettings::from_lookup` (`store::settings`) for the event store,
//! `WorkerOptions::from_lookup` (`worker::options`) for the worker — through the constants
//! defined here and the parsers of [`Source`], so a setting that is read is necessarily listed. The PHP extension registers its php.ini directives from this list
//! ([`Setting::php_directive`]), and the README's configuration table is generated from it
//! ([`markdown_table`]; a test fails when the README has drifted), so a setting cannot exist
//! in one place and be missing in another.
//!
//! Values: durations are [`humantime`] durations (`500ms`, `10s`, `2m`, `1h 30m`); a bare number
//! is milliseconds. Sizes are [`bytesize`] sizes: `262144`, `256KiB`, `32MiB` (binary), or
//! `256KB`, `32MB` (decimal).

use crate::error::ConfigError;
use std::time::Duration;

/// Which part of the system reads a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// The emit side: every emitter (Rust, PHP, C), the relay, the worker's own publishing.
    Emit,
    /// Whatever touches the event store database (worker, migrate, grants, replay).
    Store,
    /// The `suitex-events worker` process.
    Worker,
    /// The `suitex-events` command line.
    Cli,
}

impl Reader {
    /// A short label for docs.
    pub fn label(self) -> &'static str {
        match self {
            Reader::Emit => "every process (`Config`)",
            Reader::Store => "event store tools (`StoreSettings`)",
            Reader::Worker => "worker (`WorkerOptions`)",
            Reader::Cli => "command line",
        }
    }
}

/// One setting: an environment variable, its default and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable, e.g. `SUITEX_EVENTS_PUBLISH_DEADLINE`.
    pub name: &'static str,
    /// The default: the value the code uses when the setting is unset (written only here), or
    /// words where it depends on other settings.
    pub default: DefaultValue,
    /// What it means, as Markdown for the docs.
    pub meaning: &'static str,
    /// Who reads it.
    pub reader: Reader,
    /// Whether the PHP extension offers it as a php.ini directive (see [`Setting::php_directive`]).
    pub php_ini: bool,
}

impl Setting {
    /// The php.ini directive: `SUITEX_EVENTS_PUBLISH_DEADLINE` → `suitex_events.publish_deadline`,
    /// `PUBSUB_EMULATOR_HOST` → `suitex_events.pubsub_emulator_host`. `None` for settings the
    /// extension does not read.
    pub fn php_directive(&self) -> Option<String> {
        self.php_ini.then(|| {
            let name = self.name.strip_prefix("SUITEX_EVENTS_").unwrap_or(self.name);
            format!("suitex_events.{}", name.to_ascii_lowercase())
        })
    }
}

/// A setting's default. The types that read settings take their defaults from here
/// (`Config`, `StoreSettings`, `WorkerOptions`), and the docs render them from here, so each
/// default is written once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// Nothing is assumed.
    Unset,
    /// Explained in words (it depends on other settings); Markdown.
    Prose(&'static str),
    /// A text value.
    Text(&'static str),
    /// A number.
    Count(u64),
    /// A size in bytes.
    Bytes(u64),
    /// A duration.
    Time(Duration),
    /// `true` / `false`.
    Flag(bool),
    /// `on` / `off`.
    Switch(bool),
}

impl DefaultValue {
    /// The text of a [`DefaultValue::Text`] default.
    pub const fn text(self) -> &'static str {
        match self {
            DefaultValue::Text(t) => t,
            _ => panic!("this setting's default is not a text"),
        }
    }

    /// The number of a [`DefaultValue::Count`] default.
    pub const fn count(self) -> u64 {
        match self {
            DefaultValue::Count(n) => n,
            _ => panic!("this setting's default is not a number"),
        }
    }

    /// The size of a [`DefaultValue::Bytes`] default.
    pub const fn bytes(self) -> u64 {
        match self {
            DefaultValue::Bytes(n) => n,
            _ => panic!("this setting's default is not a size"),
        }
    }

    /// The duration of a [`DefaultValue::Time`] default.
    pub const fn duration(self) -> Duration {
        match self {
            DefaultValue::Time(d) => d,
            _ => panic!("this setting's default is not a duration"),
        }
    }

    /// The value of a [`DefaultValue::Flag`] or [`DefaultValue::Switch`] default.
    pub const fn flag(self) -> bool {
        match self {
            DefaultValue::Flag(b) | DefaultValue::Switch(b) => b,
            _ => panic!("this setting's default is not a flag"),
        }
    }

    /// As one would write it in the variable (`10s`, `256KiB`, `events.raw`); empty when
    /// unset; the words of a [`DefaultValue::Prose`] default as they are.
    pub fn plain(&self) -> String {
        match *self {
            DefaultValue::Unset => String::new(),
            DefaultValue::Prose(p) | DefaultValue::Text(p) => p.to_string(),
            DefaultValue::Count(n) => n.to_string(),
            DefaultValue::Bytes(n) => bytes_text(n),
            DefaultValue::Time(d) => duration_text(d),
            DefaultValue::Flag(b) => b.to_string(),
            DefaultValue::Switch(b) => if b { "on" } else { "off" }.to_string(),
        }
    }

    /// For the docs (Markdown): a value in backticks, words as they are, `unset`.
    pub fn markdown(&self) -> String {
        match self {
            DefaultValue::Unset => "unset".to_string(),
            DefaultValue::Prose(p) => p.to_string(),
            value => format!("`{}`", value.plain()),
        }
    }
}

/// A duration as the settings write it: `200ms`, `30s`, `15m`, `1h`.
fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 || !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) && s >= 120 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// A size as the settings write it: binary units where it is a whole number of them
/// (`256KiB`, `32MiB`, `1GiB`), else decimal ones (`1MB`), else bytes.
fn bytes_text(n: u64) -> String {
    let units: [(&str, u64); 6] = [
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
    ];
    units
        .iter()
        .find(|(_, size)| n >= *size && n.is_multiple_of(*size))
        .map_or_else(|| n.to_string(), |(unit, size)| format!("{}{unit}", n / size))
}

use DefaultValue::{Bytes, Count, Flag, Prose, Switch, Text, Time, Unset};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

macro_rules! settings {
    ($($(#[$doc:meta])* $id:ident = $name:literal, $reader:ident, php: $php:literal, default: $default:expr, $meaning:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $id: Setting = Setting {
                name: $name,
                default: $default,
                meaning: $meaning,
                reader: Reader::$reader,
                php_ini: $php,
            };
        )*
        /// Every setting, in the order of the README's table.
        pub const ALL: &[Setting] = &[$($id),*];
    };
}

settings! {
    /// The GCP project of the topics.
    PROJECT = "SUITEX_EVENTS_PROJECT", Emit, php: true,
        default: Prose("`GOOGLE_CLOUD_PROJECT`; `suitex-local` with emulators"),
        "GCP project of the topics";
    /// The project when `SUITEX_EVENTS_PROJECT` is unset (Google's own variable).
    GOOGLE_CLOUD_PROJECT = "GOOGLE_CLOUD_PROJECT", Emit, php: true, default: Unset,
        "Google's project variable, read when `SUITEX_EVENTS_PROJECT` is unset";
    /// Topic the web tier emits to.
    RAW_TOPIC = "SUITEX_EVENTS_RAW_TOPIC", Emit, php: true, default: Text("events.raw"),
        "topic the web tier emits to";
    /// Topic the worker re-publishes stored events to.
    MERGED_TOPIC = "SUITEX_EVENTS_MERGED_TOPIC", Emit, php: true, default: Text("events.merged"),
        "topic the worker re-publishes stored events to";
    /// Dead-letter topic.
    DLQ_TOPIC = "SUITEX_EVENTS_DLQ_TOPIC", Emit, php: true, default: Text("events.dlq"),
        "dead-letter topic";
    /// The worker's subscription.
    RAW_SUBSCRIPTION = "SUITEX_EVENTS_RAW_SUBSCRIPTION", Emit, php: true, default: Text("events.raw-sub"),
        "the worker's subscription";
    /// The subscription that keeps dead letters.
    DLQ_SUBSCRIPTION = "SUITEX_EVENTS_DLQ_SUBSCRIPTION", Emit, php: true, default: Text("events.dlq-sub"),
        "keeps dead letters";
    /// The claim-check bucket.
    PAYLOAD_BUCKET = "SUITEX_EVENTS_PAYLOAD_BUCKET", Emit, php: true, default: Text("suitex-payload-snapshots"),
        "claim-check bucket";
    /// Payloads larger than this go to the bucket.
    OFFLOAD_THRESHOLD = "SUITEX_EVENTS_OFFLOAD_THRESHOLD", Emit, php: true, default: Bytes(256 << 10),
        "payloads larger than this go to the bucket (≤ 10 MB − 512 KiB)";
    /// Payloads larger than this are refused.
    MAX_PAYLOAD = "SUITEX_EVENTS_MAX_PAYLOAD", Emit, php: true, default: Bytes(32 << 20),
        "payloads larger than this are refused before anything is sent (≤ 1 GiB; must fit the database's `max_allowed_packet`)";
    /// Deadline of one emit call.
    PUBLISH_DEADLINE = "SUITEX_EVENTS_PUBLISH_DEADLINE", Emit, php: true, default: Time(secs(10)),
        "deadline of one emit call (upload + publish)";
    /// Publisher batching: messages per request.
    BATCH_MAX_MESSAGES = "SUITEX_EVENTS_BATCH_MAX_MESSAGES", Emit, php: true, default: Count(100),
        "publisher batching: messages per request";
    /// Publisher batching: bytes per request.
    BATCH_MAX_BYTES = "SUITEX_EVENTS_BATCH_MAX_BYTES", Emit, php: true, default: Bytes(1_000_000),
        "publisher batching: bytes per request";
    /// Publisher batching: longest wait for more messages of a key.
    BATCH_MAX_DELAY = "SUITEX_EVENTS_BATCH_MAX_DELAY", Emit, php: true, default: Time(ms(0)),
        "publisher batching: longest wait for more messages of a key (none: ordering allows one batch in flight per key, and what arrives meanwhile forms the next batch)";
    /// Distinct ordering keys per publisher generation.
    MAX_ORDERING_KEYS = "SUITEX_EVENTS_MAX_ORDERING_KEYS", Emit, php: true, default: Count(1024),
        "distinct ordering keys per publisher generation";
    /// Spool mode: the spool directory.
    SPOOL = "SUITEX_EVENTS_SPOOL", Emit, php: true, default: Prose("unset: direct mode"),
        "spool mode: a directory on persistent disk; emits append there durably and return without waiting on Pub/Sub, and `suitex-events relay` publishes";
    /// Spool mode: the group that shares the spool with a relay running as another user.
    SPOOL_GROUP = "SUITEX_EVENTS_SPOOL_GROUP", Emit, php: true, default: Prose("unset: owner only"),
        "spool mode: a group (name or gid) that shares the spool — directory `2770`, files `0660` — so a relay running as another member can drain it; unset, the spool is `0700`/`0600`, private to its owner";
    /// Spool mode: the size limit.
    SPOOL_MAX_BYTES = "SUITEX_EVENTS_SPOOL_MAX_BYTES", Emit, php: true, default: Bytes(1 << 30),
        "spool mode: most bytes of events waiting in the spool; an emit that would pass it fails at once";
    /// The Pub/Sub emulator.
    PUBSUB_EMULATOR_HOST = "PUBSUB_EMULATOR_HOST", Emit, php: true, default: Unset,
        "`host:port` of the Pub/Sub emulator: plain text, anonymous credentials";
    /// The Cloud Storage emulator.
    STORAGE_EMULATOR_HOST = "STORAGE_EMULATOR_HOST", Emit, php: true, default: Unset,
        "`host:port` of fake-gcs-server: plain text, anonymous credentials";
    /// A service account key file for Application Default Credentials. Not a php.ini
    /// directive: the credentials library reads the environment only. Under php-fpm with
    /// `clear_env = yes`, the pool passes it (`env[GOOGLE_APPLICATION_CREDENTIALS] = …`); on
    /// GKE or GCE prefer the metadata server (no key file at all).
    GOOGLE_APPLICATION_CREDENTIALS = "GOOGLE_APPLICATION_CREDENTIALS", Emit, php: false, default: Unset,
        "a service account key file, read from the environment by Google's Application Default Credentials (php-fpm: the pool's `env[GOOGLE_APPLICATION_CREDENTIALS]`)";
    /// The event store's host.
    DB_HOST = "DB_EVENT_STORE_HOST", Store, php: false, default: Text("127.0.0.1"),
        "the event store's host (same variables as Laravel's `event_store` connection)";
    /// The event store's port.
    DB_PORT = "DB_EVENT_STORE_PORT", Store, php: false, default: Count(3306), "its port";
    /// The event store's database.
    DB_DATABASE = "DB_EVENT_STORE_DATABASE", Store, php: false, default: Text("event_store"), "its database";
    /// The event store account.
    DB_USERNAME = "DB_EVENT_STORE_USERNAME", Store, php: false, default: Text("root"),
        "its account (the worker's: INSERT + SELECT only)";
    /// The event store account's password.
    DB_PASSWORD = "DB_EVENT_STORE_PASSWORD", Store, php: false, default: Prose("empty"),
        "the account's password (taken verbatim)";
    /// A file holding the password, read again whenever connections are renewed.
    DB_PASSWORD_FILE = "DB_EVENT_STORE_PASSWORD_FILE", Store, php: false, default: Unset,
        "a file holding the account's password (a mounted secret, an IAM token a sidecar refreshes); wins over `DB_EVENT_STORE_PASSWORD` and is read again each time connections are renewed, so a rotation needs no restart";
    /// A Unix socket instead of host and port.
    DB_SOCKET = "DB_EVENT_STORE_SOCKET", Store, php: false, default: Unset,
        "Unix socket (e.g. the Cloud SQL Auth Proxy); wins over host";
    /// TLS mode.
    DB_SSL_MODE = "DB_EVENT_STORE_SSL_MODE", Store, php: false,
        default: Prose("`verify_ca` with a CA, else `required`; `preferred` on a socket or loopback"),
        "`disabled`, `preferred`, `required`, `verify_ca`, `verify_identity`; plain text towards a non-local host is refused";
    /// Development only: allow plain text towards a non-local database host.
    DB_ALLOW_PLAINTEXT = "DB_EVENT_STORE_ALLOW_PLAINTEXT", Store, php: false, default: Flag(false),
        "development only: allow `disabled`/`preferred` towards a non-local host";
    /// TLS: the server CA.
    DB_SSL_CA = "DB_EVENT_STORE_SSL_CA", Store, php: false, default: Unset, "PEM file: the server CA";
    /// TLS: the client certificate.
    DB_SSL_CERT = "DB_EVENT_STORE_SSL_CERT", Store, php: false, default: Unset, "PEM file: client certificate";
    /// TLS: the client key.
    DB_SSL_KEY = "DB_EVENT_STORE_SSL_KEY", Store, php: false, default: Unset, "PEM file: the client certificate's key";
    /// Connections per worker.
    DB_POOL_SIZE = "DB_EVENT_STORE_POOL_SIZE", Store, php: false, default: Count(4), "connections per process";
    /// Longest a connection is used before it is replaced.
    DB_CONNECTION_MAX_LIFETIME = "DB_EVENT_STORE_CONNECTION_MAX_LIFETIME", Store, php: false, default: Time(secs(15 * 60)),
        "longest a pooled connection is used before a fresh one replaces it, so changed grants, passwords, IAM tokens (valid 1 h) and primaries are picked up without a restart";
    /// Longest one SQL statement may take.
    DB_STATEMENT_TIMEOUT = "DB_EVENT_STORE_STATEMENT_TIMEOUT", Store, php: false, default: Time(secs(30)),
        "longest one SQL statement may take; a hung statement is abandoned and its batch retried";
    /// Most messages in one worker batch.
    WORKER_BATCH_SIZE = "SUITEX_WORKER_BATCH_SIZE", Worker, php: false, default: Count(500),
        "most messages in one worker batch";
    /// Most payload bytes in one worker batch.
    WORKER_BATCH_MAX_BYTES = "SUITEX_WORKER_BATCH_MAX_BYTES", Worker, php: false, default: Bytes(32 << 20),
        "most bytes of resolved payloads one batch holds (a larger single message makes a batch of its own); a batch needs about 3× this in memory";
    /// Longest wait to fill a worker batch.
    WORKER_BATCH_WAIT = "SUITEX_WORKER_BATCH_WAIT", Worker, php: false, default: Time(ms(0)),
        "longest wait for more messages once a batch's first arrived (0: take what the subscriber holds)";
    /// Longest one claim-check download may take.
    WORKER_FETCH_DEADLINE = "SUITEX_WORKER_FETCH_DEADLINE", Worker, php: false, default: Time(secs(60)),
        "longest one claim-check download may take before the batch is retried";
    /// Delivery attempts before Pub/Sub dead-letters a message.
    WORKER_MAX_DELIVERY_ATTEMPTS = "SUITEX_WORKER_MAX_DELIVERY_ATTEMPTS", Worker, php: false, default: Count(5),
        "the subscription's dead-letter attempts (its own policy wins when the worker may read it): a key's later events wait behind a failed one; on its last attempt the worker parks the key (`php artisan events:work` reads it too)";
    /// Messages the worker's subscriber may hold.
    WORKER_MAX_OUTSTANDING = "SUITEX_WORKER_MAX_OUTSTANDING", Worker, php: false, default: Count(1000),
        "messages the worker's subscriber may hold";
    /// First back-off after a transient failure.
    WORKER_BACKOFF_MIN = "SUITEX_WORKER_BACKOFF_MIN", Worker, php: false, default: Time(ms(200)),
        "first retry back-off after a transient failure (`php artisan events:work` reads it too)";
    /// Longest back-off.
    WORKER_BACKOFF_MAX = "SUITEX_WORKER_BACKOFF_MAX", Worker, php: false, default: Time(secs(30)),
        "longest retry back-off (`php artisan events:work` reads it too)";
    /// How long in-flight work may take after SIGTERM.
    WORKER_SHUTDOWN_DEADLINE = "SUITEX_WORKER_SHUTDOWN_DEADLINE", Worker, php: false, default: Time(secs(30)),
        "how long in-flight work may take after SIGTERM";
    /// How far each lease extension reaches.
    WORKER_LEASE_EXTENSION = "SUITEX_WORKER_LEASE_EXTENSION", Worker, php: false, default: Time(secs(60)),
        "how far each lease extension reaches (after a crash, redelivery follows within this; 10s–600s)";
    /// Whether this worker takes part in feeding `events.merged`.
    WORKER_FEED_MERGED = "SUITEX_WORKER_FEED_MERGED", Worker, php: false, default: Switch(true),
        "`off`: this worker only stores; the `events.merged` feeder runs in the workers that have it on (one of them leads at a time)";
    /// Whether the worker watches the dead-letter topic.
    WORKER_DLQ_WATCH = "SUITEX_WORKER_DLQ_WATCH", Worker, php: false, default: Switch(true),
        "the workers (and `suitex-events feed`) watch the dead-letter topic through their own subscription (`<dlq topic>-watch`, e.g. `events.dlq-watch`): a dead letter Pub/Sub made without the worker's last-attempt nack (the worker stopped during that attempt, acks lost) parks its key from there; `off`: only the worker's own nacks park";
    /// Where the leading feeder writes the ledger's digests.
    WORKER_DIGEST_BUCKET = "SUITEX_WORKER_DIGEST_BUCKET", Worker, php: false, default: Text("suitex-ledger-digests"),
        "the bucket (locked retention, create-only for the worker) the leading feeder writes the ledger's digests to, and `suitex-events verify --digests` reads; `off`: no digests";
    /// Rows between two digests.
    WORKER_DIGEST_EVERY = "SUITEX_WORKER_DIGEST_EVERY", Worker, php: false, default: Count(10_000),
        "a digest after at most this many new rows";
    /// Longest time between two digests while rows are appended.
    WORKER_DIGEST_INTERVAL = "SUITEX_WORKER_DIGEST_INTERVAL", Worker, php: false, default: Time(secs(60)),
        "a digest at least this often while rows are appended";
    /// The Prometheus and health endpoint.
    WORKER_METRICS_ADDR = "SUITEX_WORKER_METRICS_ADDR", Worker, php: false, default: Text("127.0.0.1:9464"),
        "Prometheus `/metrics`, liveness `/healthz` and readiness `/readyz`; `off` disables";
    /// The relay's metrics endpoint.
    RELAY_METRICS_ADDR = "SUITEX_RELAY_METRICS_ADDR", Cli, php: false, default: Text("127.0.0.1:9465"),
        "`suitex-events relay`: Prometheus `/metrics` (spool depth, bytes, oldest age, published, retries, dead) and `/healthz`; `off` disables";
    /// Log format of the command line.
    LOG_FORMAT = "SUITEX_LOG_FORMAT", Cli, php: false, default: Text("text"),
        "`json`: one JSON object a line on stderr, in Cloud Logging's shape (`severity`, `message`, `time`, then the event's fields such as `event_id`); levels: `RUST_LOG`";
}

/// The setting named `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Setting> {
    ALL.iter().find(|s| s.name == name)
}

/// The settings the PHP extension offers as php.ini directives.
pub fn php_settings() -> impl Iterator<Item = &'static Setting> {
    ALL.iter().filter(|s| s.php_ini)
}

/// The README's configuration table (Markdown), generated from [`ALL`].
pub fn markdown_table() -> String {
    let mut out = String::from("| variable | read by | default | meaning |\n|---|---|---|---|\n");
    for s in ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            s.name,
            s.reader.label(),
            s.default.markdown(),
            s.meaning
        ));
    }
    out
}

/// Reads settings through a lookup function (the environment, php.ini, a JSON object …).
pub(crate) struct Source<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Source<'a> {
    pub(crate) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Source { lookup }
    }

    /// The value, trimmed; `None` when unset or blank.
    pub(crate) fn text(&self, s: &Setting) -> Option<String> {
        (self.lookup)(s.name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    /// The value exactly as given (passwords), `None` when unset.
    #[cfg(feature = "store")]
    pub(crate) fn verbatim(&self, s: &Setting) -> Option<String> {
        (self.lookup)(s.name)
    }

    /// The value parsed with `parse`, whose error continues "`NAME` is "…"; ".
    pub(crate) fn parsed<T>(
        &self,
        s: &Setting,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.text(s) {
            None => Ok(None),
            Some(v) => {
                parse(&v).map(Some).map_err(|why| ConfigError::new(s.name, format!("is {v:?}; {why}")))
            }
        }
    }

    /// A duration (see the module docs).
    pub(crate) fn duration(&self, s: &Setting) -> Result<Option<Duration>, ConfigError> {
        self.parsed(s, parse_duration)
    }

    /// A size in bytes (see the module docs).
    pub(crate) fn bytes(&self, s: &Setting) -> Result<Option<u64>, ConfigError> {
        self.parsed(s, parse_bytes)
    }

    /// A whole number.
    pub(crate) fn number<T: std::str::FromStr>(&self, s: &Setting) -> Result<Option<T>, ConfigError> {
        self.parsed(s, |v| v.parse().map_err(|_| "expected a whole number".to_string()))
    }

    /// A whole number above zero.
    #[cfg(feature = "store")]
    pub(crate) fn positive<T: std::str::FromStr + PartialOrd + Default>(
        &self,
        s: &Setting,
    ) -> Result<Option<T>, ConfigError> {
        self.parsed(s, |v| {
            v.parse()
                .ok()
                .filter(|n| *n > T::default())
                .ok_or_else(|| "expected a positive whole number".to_string())
        })
    }
}

/// `500ms`, `10s`, `2m`, `1h 30m` ([`humantime`]), or a bare number of milliseconds.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse().map(Duration::from_millis).map_err(|_| "the number is too large".to_string());
    }
    humantime::parse_duration(v).map_err(|e| format!("expected a duration such as 500ms, 10s or 2m ({e})"))
}

/// `262144`, `256KiB`, `32MiB` (binary units) or `256KB`, `32MB` (decimal), as [`bytesize`] reads
/// them.
pub fn parse_bytes(v: &str) -> Result<u64, String> {
    v.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("expected a size such as 262144, 256KiB or 32MiB ({e})"))
}

/// Settings as `(variable, value)` pairs, for a child process's environment or a PHP options
/// array: the inverse of the `from_lookup` readers.
pub type Pairs = Vec<(&'static str, String)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_directives_follow_the_names() {
        let mut names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a setting is listed twice");
        assert_eq!(PUBLISH_DEADLINE.php_directive().as_deref(), Some("suitex_events.publish_deadline"));
        assert_eq!(
            PUBSUB_EMULATOR_HOST.php_directive().as_deref(),
            Some("suitex_events.pubsub_emulator_host")
        );
        assert_eq!(DB_PASSWORD.php_directive(), None, "the web tier never gets database settings");
        assert!(php_settings().all(|s| s.reader == Reader::Emit), "only emit-side settings reach PHP");
    }

    #[test]
    fn durations_and_sizes_parse_with_units() {
        assert_eq!(parse_duration("2500"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_bytes("256KiB"), Ok(256 * 1024));
        assert_eq!(parse_bytes("32MiB"), Ok(32 << 20));
        assert_eq!(parse_bytes("1MB"), Ok(1_000_000));
        assert_eq!(parse_bytes("262144"), Ok(262_144));
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn errors_name_the_variable_and_the_value() {
        let lookup = |k: &str| (k == "SUITEX_EVENTS_PUBLISH_DEADLINE").then(|| "soon".to_string());
        let e = Source::new(&lookup).duration(&PUBLISH_DEADLINE).unwrap_err();
        assert_eq!(e.setting(), "SUITEX_EVENTS_PUBLISH_DEADLINE");
        assert!(
            e.to_string().starts_with("SUITEX_EVENTS_PUBLISH_DEADLINE is \"soon\"; expected a duration"),
            "{e}"
        );
    }

    #[test]
    fn every_default_reads_back_through_its_own_parser() {
        for s in ALL {
            let plain = s.default.plain();
            match s.default {
                DefaultValue::Time(d) => assert_eq!(parse_duration(&plain), Ok(d), "{}: {plain}", s.name),
                DefaultValue::Bytes(n) => assert_eq!(parse_bytes(&plain), Ok(n), "{}: {plain}", s.name),
                DefaultValue::Count(n) => assert_eq!(plain.parse::<u64>(), Ok(n), "{}", s.name),
                DefaultValue::Unset => assert!(plain.is_empty(), "{}", s.name),
                _ => assert!(!plain.is_empty(), "{}", s.name),
            }
        }
    }

    #[test]
    fn defaults_are_written_as_the_settings_write_values() {
        assert_eq!(DefaultValue::Time(ms(0)).markdown(), "`0ms`");
        assert_eq!(DefaultValue::Time(ms(200)).plain(), "200ms");
        assert_eq!(DefaultValue::Time(secs(60)).plain(), "60s");
        assert_eq!(DefaultValue::Time(secs(900)).plain(), "15m");
        assert_eq!(DefaultValue::Time(secs(7200)).plain(), "2h");
        assert_eq!(DefaultValue::Bytes(256 << 10).plain(), "256KiB");
        assert_eq!(DefaultValue::Bytes(1_000_000).plain(), "1MB");
        assert_eq!(DefaultValue::Bytes(1000 << 10).plain(), "1000KiB");
        assert_eq!(DefaultValue::Bytes(12345).plain(), "12345");
        assert_eq!(DefaultValue::Switch(true).markdown(), "`on`");
        assert_eq!(DefaultValue::Unset.markdown(), "unset");
        assert_eq!(DefaultValue::Prose("empty").markdown(), "empty");
    }
}
