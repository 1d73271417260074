//! # `suitex_events`: the SuiteX event backbone for PHP
//!
//! A thin binding over the SDK (`suitex-events`): it converts PHP values to the envelope and
//! back, and maps SDK errors onto exceptions. Validation, claim-checks and publishing are the
//! SDK's.
//!
//! * `SuiteX\Events\emit_event(array $event): array` and `emit_events(array $events): array`
//!   use a per-process emitter configured from php.ini with the environment as fallback.
//! * `new SuiteX\Events\Emitter(array $options = [])` for explicit configuration.
//! * `SuiteX\Events\Inbox` — **CLI only** — pulls `events.raw-sub` for queue workers that
//!   store events themselves (`Consumer` is its deprecated old name). Under php-fpm and other web
//!   SAPIs the class does not exist: the web tier only emits. It is behind the crate's `inbox`
//!   feature (default on), the one reason the extension links the SDK's consume side; the
//!   extension never links a database driver.
//!
//! Nothing is created at module startup: php-fpm forks its workers after it, and a runtime
//! created before a fork has no threads in the child. Runtimes and clients are made on first
//! use per process (`sdk::blocking`), so php-fpm workers and `pcntl_fork()` children work.

#![cfg_attr(windows, feature(abi_vectorcall))]

mod convert;
mod emitter;
mod exceptions;
#[cfg(feature = "inbox")]
mod inbox;
mod settings;
mod trace_context;

use ext_php_rs::prelude::*;
use ext_php_rs::zend::IniEntryDef;

/// The SAPIs that get the inbox (everything else is a web SAPI and only emits).
#[cfg(feature = "inbox")]
const INBOX_SAPIS: [&str; 2] = ["cli", "phpdbg"];

/// Emits one event and returns its receipt: `['event_id' => …, 'message_id' => …,
/// 'payload_location' => 'inline'|'gcs']`. Keys: `account_id`, `aggregate_type`, `aggregate_id`,
/// `event_type`, `payload` (or `payload_json`, a JSON document as a string), and optionally
/// `event_id`, `occurred_at` (RFC 3339 UTC string or a DateTimeInterface), `metadata`.
/// `$options`: `traceparent` (and `tracestate`), the W3C trace context the event continues;
/// without it, under php-fpm, the request's `traceparent` header.
/// Throws ValidationException, ConfigurationException or PublishException.
#[php_function]
#[php(name = "SuiteX\\Events\\emit_event")]
pub fn emit_event(
    event: &ext_php_rs::types::ZendHashTable,
    options: Option<&ext_php_rs::types::ZendHashTable>,
) -> PhpResult<ext_php_rs::boxed::ZBox<ext_php_rs::types::ZendHashTable>> {
    emitter::emit_with_default(event, options)
}

/// Emits several events, in order per aggregate. Every event is checked first (one invalid
/// event throws ValidationException and nothing is sent). Returns one receipt per event; a
/// failed event has `message_id` null and `error` set (later events of its aggregate are not
/// sent). `$options` as for `emit_event()`, for every event of the call.
#[php_function]
#[php(name = "SuiteX\\Events\\emit_events")]
pub fn emit_events(
    events: &ext_php_rs::types::ZendHashTable,
    options: Option<&ext_php_rs::types::ZendHashTable>,
) -> PhpResult<ext_php_rs::boxed::ZBox<ext_php_rs::types::ZendHashTable>> {
    emitter::emit_batch_with_default(events, options)
}

/// Module startup (MINIT): the php.ini directives and the exception classes. Nothing else:
/// runtimes and connections are made per process on first use.
pub extern "C" fn startup(_ty: i32, module_number: i32) -> i32 {
    IniEntryDef::register(settings::ini_entries(), module_number);
    match exceptions::register() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("suitex_events: registering the exception classes failed: {e}");
            -1
        }
    }
}

/// Module shutdown (MSHUTDOWN, a php-fpm worker's or a CLI script's end): spans still buffered
/// are sent.
pub extern "C" fn shutdown(_ty: i32, _module_number: i32) -> i32 {
    trace_context::flush();
    0
}

/// The `phpinfo()` section (also `php --ri suitex_events`): version, mode, and each setting's
/// effective value with where it comes from.
pub extern "C" fn info(_module: *mut ext_php_rs::zend::ModuleEntry) {
    // A value with a NUL (impossible in php.ini or the environment) is shown cut there.
    let text = |s: &str| s.split('\0').next().unwrap_or_default().to_string();
    ext_php_rs::info_table_start!();
    ext_php_rs::info_table_row!("suitex_events support", "enabled");
    ext_php_rs::info_table_row!("Version", env!("CARGO_PKG_VERSION"));
    let (from, spool) = settings::effective(sdk::settings::SPOOL.name);
    let mode = if from == "default" {
        "direct: emit_event() publishes to Pub/Sub before it returns (no local spool)".to_string()
    } else {
        format!("spool: emit_event() appends durably to {spool} and returns; suitex-events relay publishes")
    };
    ext_php_rs::info_table_row!("Mode", text(&mode));
    let sapi = ext_php_rs::zend::php_sapi_name().unwrap_or_default();
    let inbox = if cfg!(feature = "inbox") && INBOX_SAPIS.contains(&sapi.as_str()) {
        "available (CLI)"
    } else {
        "not in this SAPI (web SAPIs only emit)"
    };
    ext_php_rs::info_table_row!("Inbox (consuming API)", inbox);
    ext_php_rs::info_table_end!();
    ext_php_rs::info_table_start!();
    ext_php_rs::info_table_header!("Setting", "Effective value", "From");
    for name in settings::names() {
        let (from, value) = settings::effective(name);
        ext_php_rs::info_table_row!(text(name), text(&value), from);
    }
    ext_php_rs::info_table_end!();
}

#[php_module]
#[php(startup = "startup")]
pub fn get_module(module: ModuleBuilder) -> ModuleBuilder {
    let module = module
        .info_function(info)
        .shutdown_function(shutdown)
        .class::<emitter::Emitter>()
        .function(wrap_function!(emit_event))
        .function(wrap_function!(emit_events));
    #[cfg(feature = "inbox")]
    let module = {
        let sapi = ext_php_rs::zend::php_sapi_name().unwrap_or_default();
        if INBOX_SAPIS.contains(&sapi.as_str()) {
            module.class::<inbox::Inbox>().class::<inbox::AppendSpan>().class::<inbox::Consumer>()
        } else {
            module
        }
    };
    module
}
