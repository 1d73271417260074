//! Configuration: php.ini directives, with the environment as fallback.
//!
//! The directives are made from the SDK's one list of settings ([`sdk::settings::ALL`]): every
//! emit-side setting has a directive named after its environment variable
//! (`SUITEX_EVENTS_PUBLISH_DEADLINE` ↔ `suitex_events.publish_deadline`, `PUBSUB_EMULATOR_HOST`
//! ↔ `suitex_events.pubsub_emulator_host`), so a setting cannot exist in the SDK and be missing
//! here. A non-empty directive wins; otherwise the environment variable is read. Directives are
//! `PHP_INI_SYSTEM`: only php.ini (or a php-fpm pool's `php_admin_value`) sets them.
//! `new Emitter([...])` options (keyed by the environment variables' names) win over both.

use ext_php_rs::flags::IniEntryPermission;
use ext_php_rs::zend::{ExecutorGlobals, IniEntryDef};
use std::collections::HashMap;
use std::ffi::CString;

/// The settings the extension reads (environment variable names), in the SDK's order.
pub fn names() -> impl Iterator<Item = &'static str> {
    sdk::settings::php_settings().map(|s| s.name)
}

/// The php.ini directive of a setting's environment variable name.
fn directive(name: &str) -> Option<String> {
    sdk::settings::find(name).and_then(|s| s.php_directive())
}

/// The directive table, registered at module startup (empty defaults: the environment applies).
///
/// The engine keeps the table for the life of the process, so it is built once and leaked, like
/// a C extension's static `zend_ini_entry_def[]`.
pub fn ini_entries() -> &'static [IniEntryDef] {
    struct Table(&'static [IniEntryDef]);
    // SAFETY: the table is never changed after it is built, and every pointer in it is to a
    // leaked string that lives as long as the process.
    unsafe impl Sync for Table {}
    unsafe impl Send for Table {}
    static TABLE: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
    TABLE
        .get_or_init(|| {
            let leak = |s: String| -> &'static std::ffi::CStr {
                Box::leak(CString::new(s).expect("directive names hold no NUL").into_boxed_c_str())
            };
            let mut entries: Vec<IniEntryDef> = sdk::settings::php_settings()
                .filter_map(|s| s.php_directive())
                // PHP_INI_SYSTEM: endpoints, credentials, topics and the bucket are the
                // operator's, set in php.ini (or a pool's php_admin_value); a request cannot
                // ini_set() them to point the extension somewhere else.
                .map(|d| IniEntryDef::new(leak(d), c"", IniEntryPermission::System))
                .collect();
            entries.push(IniEntryDef::end());
            Table(Box::leak(entries.into_boxed_slice()))
        })
        .0
}

/// Where a setting's effective value comes from, and the value (for `phpinfo()`).
pub fn effective(name: &str) -> (&'static str, String) {
    let ini = ExecutorGlobals::get().ini_values();
    if let Some(v) =
        directive(name).and_then(|d| ini.get(&d).cloned().flatten()).filter(|v| !v.trim().is_empty())
    {
        return ("php.ini", v);
    }
    match std::env::var(name) {
        Ok(v) => ("environment", v),
        Err(_) => {
            let default = sdk::settings::find(name).map(|s| s.default.plain()).unwrap_or_default();
            ("default", if default.is_empty() { "(unset)".to_string() } else { default })
        }
    }
}

/// Reads php.ini, then the environment, with `options` on top.
pub fn lookup(options: HashMap<String, String>) -> impl Fn(&str) -> Option<String> {
    let ini = ExecutorGlobals::get().ini_values();
    move |k: &str| {
        options
            .get(k)
            .cloned()
            .or_else(|| {
                directive(k).and_then(|d| ini.get(&d).cloned().flatten()).filter(|v| !v.trim().is_empty())
            })
            .or_else(|| std::env::var(k).ok())
    }
}

/// The SDK configuration from php.ini, the environment and `options`.
pub fn config(options: HashMap<String, String>) -> Result<sdk::Config, sdk::ConfigError> {
    sdk::Config::from_lookup(lookup(options))
}
