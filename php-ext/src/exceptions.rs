//! The extension's exception classes, and how SDK errors map onto them.
//!
//! `SuiteX\Events\Exception` (an `\Exception`) is the base of:
//! * `ValidationException` — the event (or a value in it) broke a rule; nothing was sent;
//! * `ConfigurationException` — a setting is missing or out of range;
//! * `PublishException` — uploading or publishing failed or timed out (emitting the same event
//!   again is safe: `event_id` is the idempotency key); in spool mode, the spool is full (the
//!   message names `SUITEX_EVENTS_SPOOL_MAX_BYTES`) or cannot be written — nothing was spooled;
//! * `ConsumeException` — pulling or settling through `Inbox` failed (Pub/Sub or the claim-check
//!   bucket unreachable): nothing was lost, the deliveries come again.
//!
//! Messages are the SDK's, naming the field and the limit.
//!
//! They are plain subclasses of `\Exception` (registered at module startup, with no native
//! object behind them), so PHP code can construct, extend and serialize them like any other
//! exception: `new ValidationException($message, $code, $previous)`.

use crate::convert::Refused;
use ext_php_rs::builders::ClassBuilder;
use ext_php_rs::exception::PhpException;
use ext_php_rs::zend::{ClassEntry, ce};
use std::sync::atomic::{AtomicPtr, Ordering};

/// The PHP class names.
pub const BASE: &str = "SuiteX\\Events\\Exception";
pub const VALIDATION: &str = "SuiteX\\Events\\ValidationException";
pub const CONFIGURATION: &str = "SuiteX\\Events\\ConfigurationException";
pub const PUBLISH: &str = "SuiteX\\Events\\PublishException";
pub const CONSUME: &str = "SuiteX\\Events\\ConsumeException";

/// Class entries, set once at module startup.
static BASE_CE: AtomicPtr<ClassEntry> = AtomicPtr::new(std::ptr::null_mut());
static VALIDATION_CE: AtomicPtr<ClassEntry> = AtomicPtr::new(std::ptr::null_mut());
static CONFIGURATION_CE: AtomicPtr<ClassEntry> = AtomicPtr::new(std::ptr::null_mut());
static PUBLISH_CE: AtomicPtr<ClassEntry> = AtomicPtr::new(std::ptr::null_mut());
static CONSUME_CE: AtomicPtr<ClassEntry> = AtomicPtr::new(std::ptr::null_mut());

/// The class entry registered into `slot`; `\Exception` if startup has not run (it always
/// has by the time PHP code can call the extension).
fn class(slot: &AtomicPtr<ClassEntry>) -> &'static ClassEntry {
    // SAFETY: only ever set to class entries the engine owns for the life of the process.
    unsafe { slot.load(Ordering::Acquire).as_ref() }.unwrap_or_else(ce::exception)
}

/// Registers the five classes. Called from the module's startup (MINIT) function.
pub fn register() -> ext_php_rs::error::Result<()> {
    ClassBuilder::new(BASE)
        .extends((ce::exception, "\\Exception"))
        .registration(|ce, _| BASE_CE.store(ce, Ordering::Release))
        .register()?;
    let base = || class(&BASE_CE);
    ClassBuilder::new(VALIDATION)
        .extends((base, BASE))
        .registration(|ce, _| VALIDATION_CE.store(ce, Ordering::Release))
        .register()?;
    ClassBuilder::new(CONFIGURATION)
        .extends((base, BASE))
        .registration(|ce, _| CONFIGURATION_CE.store(ce, Ordering::Release))
        .register()?;
    ClassBuilder::new(PUBLISH)
        .extends((base, BASE))
        .registration(|ce, _| PUBLISH_CE.store(ce, Ordering::Release))
        .register()?;
    ClassBuilder::new(CONSUME)
        .extends((base, BASE))
        .registration(|ce, _| CONSUME_CE.store(ce, Ordering::Release))
        .register()
}

/// The exception for an SDK error of an emit (everything that is not the caller's input or
/// configuration failed to be uploaded or published).
pub fn from_sdk(e: &sdk::Error) -> PhpException {
    caller_error(e).unwrap_or_else(|| PhpException::new(e.to_string(), 0, class(&PUBLISH_CE)))
}

/// The exception for an SDK error while consuming (pulling or settling through `Inbox`).
#[cfg(feature = "inbox")]
pub fn from_consume(e: &sdk::Error) -> PhpException {
    caller_error(e).unwrap_or_else(|| PhpException::new(e.to_string(), 0, class(&CONSUME_CE)))
}

/// The exception for an error in what the caller gave: the event or the configuration.
fn caller_error(e: &sdk::Error) -> Option<PhpException> {
    if e.is_validation() {
        Some(PhpException::new(e.to_string(), 0, class(&VALIDATION_CE)))
    } else if e.is_config() {
        Some(PhpException::new(e.to_string(), 0, class(&CONFIGURATION_CE)))
    } else {
        None
    }
}

/// The exception for a PHP value that cannot become JSON.
pub fn from_refused(r: Refused) -> PhpException {
    PhpException::new(format!("{} {}", r.path, r.problem), 0, class(&VALIDATION_CE))
}

/// A validation failure with the SDK's wording.
pub fn invalid(field: &str, problem: &str) -> PhpException {
    from_sdk(&sdk::Error::Invalid(sdk::ValidationError::new(field, problem)))
}
