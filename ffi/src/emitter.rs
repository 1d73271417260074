//! The emitter handle and emitting.

use crate::error::{SuitexResult, fail, set_last_error};
use crate::panic::ffi_boundary;
use sdk::Config;
use sdk::blocking::BlockingEmitter;
use sdk::envelope::{Event, PayloadLocation};
use std::collections::HashMap;
use std::ffi::c_char;
use std::sync::{Arc, Mutex, OnceLock};

/// An emitter: Pub/Sub and Cloud Storage clients for one configuration.
///
/// Opaque. Create it with `suitex_emitter_new_from_env` or `suitex_emitter_new_from_json`,
/// release it with `suitex_emitter_free`. **Thread safety:** one handle may be shared by any
/// number of threads calling `suitex_emit` at the same time. It is also safe across `fork()`:
/// a child process builds its own connections on its first call. A handle that was freed (or
/// never created) is reported as `SUITEX_ERR_INVALID_HANDLE`, never dereferenced.
pub struct suitex_emitter {
    _id: u64,
}

/// Where an event's payload travelled.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuitexPayloadLocation {
    /// Inside the Pub/Sub message.
    SUITEX_PAYLOAD_INLINE = 0,
    /// In the claim-check bucket (the payload was above the offload threshold).
    SUITEX_PAYLOAD_GCS = 1,
}

/// Room for an event id: 36 characters and the NUL.
pub const SUITEX_EVENT_ID_SIZE: usize = 37;
/// Room for a Pub/Sub message id and the NUL.
pub const SUITEX_MESSAGE_ID_SIZE: usize = 128;

/// What `suitex_emit` fills in for a published event. Caller-owned (e.g. on the stack).
#[repr(C)]
pub struct suitex_receipt {
    /// The event's id (UUID, NUL-terminated).
    pub event_id: [c_char; SUITEX_EVENT_ID_SIZE],
    /// The Pub/Sub message id (NUL-terminated).
    pub message_id: [c_char; SUITEX_MESSAGE_ID_SIZE],
    /// Where the payload travelled.
    pub payload_location: SuitexPayloadLocation,
}

/// Live handles: address → emitter. Calls look handles up here instead of dereferencing them,
/// which is how a freed handle is detected.
fn registry() -> &'static Mutex<HashMap<usize, Arc<BlockingEmitter>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<usize, Arc<BlockingEmitter>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn lookup(handle: *const suitex_emitter) -> Option<Arc<BlockingEmitter>> {
    registry().lock().unwrap_or_else(|p| p.into_inner()).get(&(handle as usize)).cloned()
}

fn register(config: Config, out: *mut *mut suitex_emitter) -> SuitexResult {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let handle = Box::into_raw(Box::new(suitex_emitter { _id: id }));
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(handle as usize, Arc::new(BlockingEmitter::new(config)));
    // SAFETY: `out` was checked non-NULL by the caller.
    unsafe { *out = handle };
    SuitexResult::SUITEX_OK
}

fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], SuitexResult> {
    if ptr.is_null() {
        return Err(set_last_error(SuitexResult::SUITEX_ERR_NULL_ARGUMENT, format!("{what} is NULL")));
    }
    // SAFETY: the caller passes `len` readable bytes at `ptr`.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

fn json(bytes: &[u8], what: &str) -> Result<serde_json::Value, SuitexResult> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        set_last_error(SuitexResult::SUITEX_ERR_INVALID_UTF8, format!("{what} is not valid UTF-8: {e}"))
    })?;
    serde_json::from_str(text).map_err(|e| {
        set_last_error(SuitexResult::SUITEX_ERR_INVALID_JSON, format!("{what} is not valid JSON: {e}"))
    })
}

/// Creates an emitter configured from the environment (`SUITEX_EVENTS_*`,
/// `PUBSUB_EMULATOR_HOST`, `STORAGE_EMULATOR_HOST`; see the README). No connection is made
/// until the first emit. On success `*out` holds the handle; free it with `suitex_emitter_free`.
///
/// # Safety
/// `out` must be NULL or a valid pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn suitex_emitter_new_from_env(out: *mut *mut suitex_emitter) -> SuitexResult {
    ffi_boundary(|| {
        if out.is_null() {
            return set_last_error(SuitexResult::SUITEX_ERR_NULL_ARGUMENT, "out is NULL");
        }
        match Config::from_env() {
            Ok(config) => register(config, out),
            Err(e) => fail(&sdk::Error::Config(e)),
        }
    })
}

/// Creates an emitter from a JSON object of settings (`config_json`, `len` bytes) whose keys
/// are the environment variables' names, e.g.
/// `{"SUITEX_EVENTS_PROJECT": "suitex-prod", "SUITEX_EVENTS_PUBLISH_DEADLINE": "5s"}`.
/// Settings not given take their defaults (the environment is not read). Values are strings or
/// numbers. On success `*out` holds the handle; free it with `suitex_emitter_free`.
///
/// # Safety
/// `config_json` must be NULL or point to `len` readable bytes; `out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn suitex_emitter_new_from_json(
    config_json: *const u8,
    len: usize,
    out: *mut *mut suitex_emitter,
) -> SuitexResult {
    ffi_boundary(|| {
        if out.is_null() {
            return set_last_error(SuitexResult::SUITEX_ERR_NULL_ARGUMENT, "out is NULL");
        }
        let settings = match bytes(config_json, len, "config_json").and_then(|b| json(b, "config_json")) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(_) => {
                return set_last_error(
                    SuitexResult::SUITEX_ERR_INVALID_JSON,
                    "config_json must be a JSON object",
                );
            }
            Err(code) => return code,
        };
        let mut values = HashMap::new();
        for (k, v) in settings {
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                other => {
                    return set_last_error(
                        SuitexResult::SUITEX_ERR_CONFIG,
                        format!("config_json: {k} must be a string or a number, not {other}"),
                    );
                }
            };
            values.insert(k, text);
        }
        match Config::from_lookup(|k| values.get(k).cloned()) {
            Ok(config) => register(config, out),
            Err(e) => fail(&sdk::Error::Config(e)),
        }
    })
}

/// Releases an emitter. NULL is ignored (`SUITEX_OK`); a handle that is not live (freed
/// twice, never created) returns `SUITEX_ERR_INVALID_HANDLE` and is left alone. Emits running
/// on other threads finish first; the handle is invalid as soon as this returns.
///
/// # Safety
/// `emitter` must be NULL or a value `suitex_emitter_new_*` produced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn suitex_emitter_free(emitter: *mut suitex_emitter) -> SuitexResult {
    ffi_boundary(|| {
        if emitter.is_null() {
            return SuitexResult::SUITEX_OK;
        }
        let removed = registry().lock().unwrap_or_else(|p| p.into_inner()).remove(&(emitter as usize));
        match removed {
            Some(inner) => {
                // SAFETY: the handle was live, so it is the Box `register` leaked.
                drop(unsafe { Box::from_raw(emitter) });
                drop(inner);
                SuitexResult::SUITEX_OK
            }
            None => set_last_error(
                SuitexResult::SUITEX_ERR_INVALID_HANDLE,
                "the emitter is not live (already freed?)",
            ),
        }
    })
}

fn copy_str(dst: &mut [c_char], s: &str) {
    let n = s.len().min(dst.len() - 1);
    for (d, b) in dst.iter_mut().zip(s.as_bytes()[..n].iter()) {
        *d = *b as c_char;
    }
    dst[n] = 0;
}

/// Emits one event given as JSON (`event_json`, `len` bytes): the fields of the envelope
/// (`account_id`, `aggregate_type`, `aggregate_id`, `event_type`, `payload`; optional
/// `event_id`, `occurred_at`, `metadata`). Blocks until the event is published or the
/// configured deadline passes. On success fills `*receipt`. On failure returns the code and
/// leaves the message for `suitex_last_error_message`; `*receipt` is left untouched.
///
/// # Safety
/// `emitter` must be NULL or a handle from `suitex_emitter_new_*` (a freed one is detected);
/// `event_json` NULL or `len` readable bytes; `receipt` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn suitex_emit(
    emitter: *const suitex_emitter,
    event_json: *const u8,
    len: usize,
    receipt: *mut suitex_receipt,
) -> SuitexResult {
    ffi_boundary(|| {
        if emitter.is_null() {
            return set_last_error(SuitexResult::SUITEX_ERR_NULL_ARGUMENT, "emitter is NULL");
        }
        if receipt.is_null() {
            return set_last_error(SuitexResult::SUITEX_ERR_NULL_ARGUMENT, "receipt is NULL");
        }
        let Some(inner) = lookup(emitter) else {
            return set_last_error(
                SuitexResult::SUITEX_ERR_INVALID_HANDLE,
                "the emitter is not live (already freed?)",
            );
        };
        let value = match bytes(event_json, len, "event_json").and_then(|b| json(b, "event_json")) {
            Ok(v) => v,
            Err(code) => return code,
        };
        let event = match Event::from_input(value) {
            Ok(e) => e,
            Err(e) => return fail(&sdk::Error::Invalid(e)),
        };
        match inner.emit(event) {
            Ok(r) => {
                // SAFETY: `receipt` is non-NULL and valid per the contract.
                let receipt = unsafe { &mut *receipt };
                copy_str(&mut receipt.event_id, &r.event_id.to_string());
                copy_str(&mut receipt.message_id, &r.message_id);
                receipt.payload_location = match r.payload_location {
                    PayloadLocation::Inline => SuitexPayloadLocation::SUITEX_PAYLOAD_INLINE,
                    PayloadLocation::Gcs => SuitexPayloadLocation::SUITEX_PAYLOAD_GCS,
                };
                SuitexResult::SUITEX_OK
            }
            Err(e) => fail(&e),
        }
    })
}
