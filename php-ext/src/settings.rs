//! Configuration: php.ini directives, with the environment as fallback.
//!
//! Each setting of the SDK has a php.ini directive named after its environment variable:
//! `SUITEX_EVENTS_PUBLISH_DEADLINE` ↔ `suitex_events.publish_deadline`,
//! `PUBSUB_EMULATOR_HOST` ↔ `suitex_events.pubsub_emulator_host`. A non-empty directive wins;
//! otherwise the environment variable is read. `new Emitter([...])` options (keyed by the
//! environment variables' names) win over both.

use ext_php_rs::flags::IniEntryPermission;
use ext_php_rs::zend::{ExecutorGlobals, IniEntryDef, IniEntryDefs};
use std::collections::HashMap;

/// Every setting, by environment variable name.
pub const SETTINGS: [&str; 18] = [
    "SUITEX_EVENTS_PROJECT",
    "SUITEX_EVENTS_RAW_TOPIC",
    "SUITEX_EVENTS_MERGED_TOPIC",
    "SUITEX_EVENTS_DLQ_TOPIC",
    "SUITEX_EVENTS_RAW_SUBSCRIPTION",
    "SUITEX_EVENTS_DLQ_SUBSCRIPTION",
    "SUITEX_EVENTS_PAYLOAD_BUCKET",
    "SUITEX_EVENTS_OFFLOAD_THRESHOLD",
    "SUITEX_EVENTS_MAX_PAYLOAD",
    "SUITEX_EVENTS_PUBLISH_DEADLINE",
    "SUITEX_EVENTS_BATCH_MAX_MESSAGES",
    "SUITEX_EVENTS_BATCH_MAX_BYTES",
    "SUITEX_EVENTS_BATCH_MAX_DELAY",
    "SUITEX_EVENTS_MAX_ORDERING_KEYS",
    "PUBSUB_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_APPLICATION_CREDENTIALS",
];

/// `SUITEX_EVENTS_PUBLISH_DEADLINE` → `suitex_events.publish_deadline`.
pub fn directive(setting: &str) -> String {
    let name = setting.strip_prefix("SUITEX_EVENTS_").unwrap_or(setting);
    format!("suitex_events.{}", name.to_ascii_lowercase())
}

macro_rules! ini {
    ($($name:literal),* $(,)?) => {
        IniEntryDefs::new([
            $(IniEntryDef::new($name, c"", IniEntryPermission::All),)*
            IniEntryDef::end(),
        ])
    };
}

/// The directives, registered at module startup (empty by default: the environment applies).
pub static INI_ENTRIES: IniEntryDefs<19> = ini!(
    c"suitex_events.project",
    c"suitex_events.raw_topic",
    c"suitex_events.merged_topic",
    c"suitex_events.dlq_topic",
    c"suitex_events.raw_subscription",
    c"suitex_events.dlq_subscription",
    c"suitex_events.payload_bucket",
    c"suitex_events.offload_threshold",
    c"suitex_events.max_payload",
    c"suitex_events.publish_deadline",
    c"suitex_events.batch_max_messages",
    c"suitex_events.batch_max_bytes",
    c"suitex_events.batch_max_delay",
    c"suitex_events.max_ordering_keys",
    c"suitex_events.pubsub_emulator_host",
    c"suitex_events.storage_emulator_host",
    c"suitex_events.google_cloud_project",
    c"suitex_events.google_application_credentials",
);

/// Reads php.ini, then the environment, with `options` on top.
pub fn lookup(options: HashMap<String, String>) -> impl Fn(&str) -> Option<String> {
    let ini = ExecutorGlobals::get().ini_values();
    move |k: &str| {
        options
            .get(k)
            .cloned()
            .or_else(|| ini.get(&directive(k)).cloned().flatten().filter(|v| !v.trim().is_empty()))
            .or_else(|| std::env::var(k).ok())
    }
}

/// The SDK configuration from php.ini, the environment and `options`.
pub fn config(options: HashMap<String, String>) -> Result<sdk::Config, sdk::ConfigError> {
    sdk::Config::from_lookup(lookup(options))
}
