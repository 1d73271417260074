//! The emitter handle and emitting.

use crate::error::{SuitexResult, code_of, fail, set_last_error};
use crate::panic::ffi_boundary;
use parking_lot::Mutex;
use sdk::BlockingEmitter;
use sdk::Config;
use sdk::envelope::exact;
use sdk::{Event, PayloadLocation};
use std::collections::HashMap;
use std::ffi::c_char;
use std::sync::{Arc, OnceLock};

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

/// Room for the error message in a `suitex_emit_receipt`, NUL included (a longer message is cut
/// at a character boundary; `suitex_last_error_message` has it whole for a single emit).
pub const SUITEX_ERROR_SIZE: usize = 512;

/// What `suitex_emit_event` and `suitex_emit_events` report for one event. Caller-owned (on the
/// stack, or an array of them for a batch).
#[repr(C)]
pub struct suitex_emit_receipt {
    /// `SUITEX_OK` when the event was published; otherwise why not (see `error`).
    pub result: SuitexResult,
    /// The event's id (UUID, NUL-terminated), also when it failed.
    pub event_id: [c_char; SUITEX_EVENT_ID_SIZE],
    /// The Pub/Sub message id (NUL-terminated); empty when the event failed.
    pub message_id: [c_char; SUITEX_MESSAGE_ID_SIZE],
    /// Where the payload travelled (spool mode: where it will travel).
    pub payload_location: SuitexPayloadLocation,
    /// Spool mode: true when the event was appended to the local spool (the relay publishes
    /// it; `message_id` is empty then). False when it was published, and when it failed.
    pub spooled: bool,
    /// Why the event failed (NUL-terminated); empty on success.
    pub error: [c_char; SUITEX_ERROR_SIZE],
}

/// What the deprecated `suitex_emit` fills in for a published event. Caller-owned.
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
    registry().lock().get(&(handle as usize)).cloned()
}

fn register(config: Config, out: *mut *mut suitex_emitter) -> SuitexResult {
    // The emits' `create` and `publish` spans, exported when the OTEL_* variables ask for it;
    // installed once per process (sdk::telemetry).
    if let Err(e) = sdk::telemetry::export_from_this_process(&service_name()) {
        return fail(&sdk::Error::Config(e));
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let handle = Box::into_raw(Box::new(suitex_emitter { _id: id }));
    registry().lock().insert(handle as usize, Arc::new(BlockingEmitter::new(config)));
    // SAFETY: `out` was checked non-NULL by the caller.
    unsafe { *out = handle };
    SuitexResult::SUITEX_OK
}

/// The service name of this process's spans when `OTEL_SERVICE_NAME` is not set: what the
/// OpenTelemetry SDKs default to, `unknown_service:` and the executable's name.
fn service_name() -> String {
    let exe = std::env::current_exe().ok();
    let name = exe.as_deref().and_then(std::path::Path::file_name).map(|n| n.to_string_lossy().into_owned());
    format!("unknown_service:{}", name.unwrap_or_else(|| "suitex_events".into()))
}

fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], SuitexResult> {
    if ptr.is_null() {
        return Err(set_last_error(SuitexResult::SUITEX_ERR_NULL_ARGUMENT, format!("{what} is NULL")));
    }
    // SAFETY: the caller passes `len` readable bytes at `ptr`.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Parses JSON text after holding it to what the ledger stores exactly (`check`, on the text:
/// its numbers and keys are judged as written, which the parsed value no longer shows). The
/// outer `Err` is text that is not UTF-8 JSON; the inner one a value the ledger would alter.
fn json(
    bytes: &[u8],
    what: &str,
    check: fn(&str) -> Result<(), sdk::ValidationError>,
) -> Result<Result<serde_json::Value, sdk::ValidationError>, SuitexResult> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        set_last_error(SuitexResult::SUITEX_ERR_INVALID_UTF8, format!("{what} is not valid UTF-8: {e}"))
    })?;
    if let Err(e) = check(text) {
        return Ok(Err(e));
    }
    serde_json::from_str(text).map(Ok).map_err(|e| {
        set_last_error(SuitexResult::SUITEX_ERR_INVALID_JSON, format!("{what} is not valid JSON: {e}"))
    })
}

/// Creates an emitter configured from the environment (`SUITEX_EVENTS_*`,
/// `PUBSUB_EMULATOR_HOST`, `STORAGE_EMULATOR_HOST`; see the README). No connection is made
/// until the first emit. On success `*out` holds the handle; free it with `suitex_emitter_free`.
///
/// Spans: when the standard `OTEL_*` variables ask for it (`OTEL_EXPORTER_OTLP_ENDPOINT` …),
/// each emit's `create` and `publish` spans are exported with OTLP — http/protobuf, or gRPC with
/// `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` — from a thread of the library's own, for either
/// constructor (docs/architecture.md §2.8); a value the SDK cannot use
/// (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`) fails the call with `SUITEX_ERR_CONFIG`, naming it.
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
/// Settings not given take their defaults (the environment is not read, except the `OTEL_*`
/// variables of spans, as for `suitex_emitter_new_from_env`). Values are strings or
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
        let settings =
            match bytes(config_json, len, "config_json").and_then(|b| json(b, "config_json", |_| Ok(()))) {
                Ok(Ok(serde_json::Value::Object(m))) => m,
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
/// on other threads finish first; the handle is invalid as soon as this returns. When spans are
/// exported (the `OTEL_*` variables), the spans still buffered are sent before it returns.
///
/// # Safety
/// `emitter` must be NULL or a value `suitex_emitter_new_*` produced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn suitex_emitter_free(emitter: *mut suitex_emitter) -> SuitexResult {
    ffi_boundary(|| {
        if emitter.is_null() {
            return SuitexResult::SUITEX_OK;
        }
        let removed = registry().lock().remove(&(emitter as usize));
        match removed {
            Some(inner) => {
                // SAFETY: the handle was live, so it is the Box `register` leaked.
                drop(unsafe { Box::from_raw(emitter) });
                drop(inner);
                // Its emits' spans are sent now, before a program that exits next loses them.
                sdk::telemetry::flush_this_process();
                SuitexResult::SUITEX_OK
            }
            None => set_last_error(
                SuitexResult::SUITEX_ERR_INVALID_HANDLE,
                "the emitter is not live (already freed?)",
            ),
        }
    })
}

/// Copies `s` NUL-terminated into `dst`, cut at a character boundary when it does not fit.
fn copy_str(dst: &mut [c_char], s: &str) {
    let mut n = s.len().min(dst.len() - 1);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    for (d, b) in dst.iter_mut().zip(s.as_bytes()[..n].iter()) {
        *d = *b as c_char;
    }
    dst[n] = 0;
}

fn location(l: PayloadLocation) -> SuitexPayloadLocation {
    match l {
        PayloadLocation::Inline => SuitexPayloadLocation::SUITEX_PAYLOAD_INLINE,
        PayloadLocation::ClaimCheck => SuitexPayloadLocation::SUITEX_PAYLOAD_GCS,
    }
}

/// Fills `receipt` with one event's outcome; returns its result code.
fn fill(
    receipt: &mut suitex_emit_receipt,
    event_id: &str,
    outcome: &sdk::Result<sdk::EmitReceipt>,
) -> SuitexResult {
    copy_str(&mut receipt.event_id, event_id);
    match outcome {
        Ok(r) => {
            receipt.result = SuitexResult::SUITEX_OK;
            copy_str(&mut receipt.message_id, &r.message_id);
            receipt.payload_location = location(r.payload_location);
            receipt.spooled = r.spooled;
            copy_str(&mut receipt.error, "");
        }
        Err(e) => {
            receipt.result = code_of(e);
            copy_str(&mut receipt.message_id, "");
            receipt.payload_location = SuitexPayloadLocation::SUITEX_PAYLOAD_INLINE;
            receipt.spooled = false;
            copy_str(&mut receipt.error, &e.to_string());
        }
    }
    receipt.result
}

/// The live emitter behind `emitter`, or the code to return.
fn live(emitter: *const suitex_emitter) -> Result<Arc<BlockingEmitter>, SuitexResult> {
    if emitter.is_null() {
        return Err(set_last_error(SuitexResult::SUITEX_ERR_NULL_ARGUMENT, "emitter is NULL"));
    }
    lookup(emitter).ok_or_else(|| {
        set_last_error(SuitexResult::SUITEX_ERR_INVALID_HANDLE, "the emitter is not live (already freed?)")
    })
}

/// Emits one event given as JSON (`event_json`, `len` bytes): the fields of the envelope
/// (`account_id`, `aggregate_type`, `aggregate_id`, `event_type`, `payload`; optional
/// `event_id`, `occurred_at`, `metadata`). Blocks until the event is published or the
/// configured deadline passes. Fills `*receipt` (its `result` is the returned code) except when
/// an argument is NULL or not JSON; on failure `suitex_last_error_message` has the message too.
///
/// # Safety
/// `emitter` must be NULL or a handle from `suitex_emitter_new_*` (a freed one is detected);
/// `event_json` NULL or `len` readable bytes; `receipt` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn suitex_emit_event(
    emitter: *const suitex_emitter,
    event_json: *const u8,
    len: usize,
    receipt: *mut suitex_emit_receipt,
) -> SuitexResult {
    ffi_boundary(|| {
        let inner = match live(emitter) {
            Ok(inner) => inner,
            Err(code) => return code,
        };
        if receipt.is_null() {
            return set_last_error(SuitexResult::SUITEX_ERR_NULL_ARGUMENT, "receipt is NULL");
        }
        let raw = match bytes(event_json, len, "event_json") {
            Ok(raw) => raw,
            Err(code) => return code,
        };
        let value = match json(raw, "event_json", exact::check_event_json) {
            Ok(v) => v,
            Err(code) => return code,
        };
        // SAFETY: `receipt` is non-NULL and valid per the contract.
        let receipt = unsafe { &mut *receipt };
        let outcome = value.and_then(Event::from_input).map_err(sdk::Error::Invalid);
        let (event_id, outcome) = match outcome {
            Ok(event) => (event.event_id().to_string(), inner.emit_event(event)),
            Err(e) => (String::new(), Err(e)),
        };
        let code = fill(receipt, &event_id, &outcome);
        if let Err(e) = &outcome {
            fail(e);
        }
        code
    })
}

/// Emits several events given as a JSON array (`events_json`, `len` bytes), in order per
/// aggregate, with one deadline for all. Every event is checked first: one that breaks a rule
/// refuses the whole batch (`SUITEX_ERR_VALIDATION`, naming `events[i]`), and nothing is sent.
/// Otherwise `receipts[i]` is filled for every event `i` — its own `result` says whether it was
/// published — `*count` is set to the number of events, and `SUITEX_OK` is returned even when
/// some events failed (a failed event stops the later events of its aggregate). When
/// `receipts_len` is smaller than the number of events nothing is sent: the call returns
/// `SUITEX_ERR_BUFFER_TOO_SMALL` with `*count` set to the number needed.
///
/// # Safety
/// `emitter` must be NULL or a handle from `suitex_emitter_new_*`; `events_json` NULL or `len`
/// readable bytes; `receipts` NULL or `receipts_len` writable receipts; `count` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn suitex_emit_events(
    emitter: *const suitex_emitter,
    events_json: *const u8,
    len: usize,
    receipts: *mut suitex_emit_receipt,
    receipts_len: usize,
    count: *mut usize,
) -> SuitexResult {
    ffi_boundary(|| {
        let inner = match live(emitter) {
            Ok(inner) => inner,
            Err(code) => return code,
        };
        if count.is_null() {
            return set_last_error(SuitexResult::SUITEX_ERR_NULL_ARGUMENT, "count is NULL");
        }
        let raw = match bytes(events_json, len, "events_json") {
            Ok(raw) => raw,
            Err(code) => return code,
        };
        let items = match json(raw, "events_json", exact::check_events_json) {
            Ok(Ok(serde_json::Value::Array(items))) => items,
            Ok(Err(e)) => return fail(&sdk::Error::Invalid(e)),
            Ok(_) => {
                return set_last_error(
                    SuitexResult::SUITEX_ERR_INVALID_JSON,
                    "events_json must be a JSON array",
                );
            }
            Err(code) => return code,
        };
        // SAFETY: `count` is non-NULL and valid per the contract.
        unsafe { *count = items.len() };
        if receipts_len < items.len() {
            return set_last_error(
                SuitexResult::SUITEX_ERR_BUFFER_TOO_SMALL,
                format!("receipts holds {receipts_len} receipts; the batch has {} events", items.len()),
            );
        }
        if receipts.is_null() && !items.is_empty() {
            return set_last_error(SuitexResult::SUITEX_ERR_NULL_ARGUMENT, "receipts is NULL");
        }
        let events = match items
            .into_iter()
            .enumerate()
            .map(|(i, v)| Event::from_input(v).map_err(|e| e.within(&format!("events[{i}]"))))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(events) => events,
            Err(e) => return fail(&sdk::Error::Invalid(e)),
        };
        let ids: Vec<String> = events.iter().map(|e| e.event_id().to_string()).collect();
        let outcomes = match inner.emit_events(events) {
            Ok(outcomes) => outcomes,
            Err(e) => return fail(&e),
        };
        for (i, (id, outcome)) in ids.iter().zip(&outcomes).enumerate() {
            // SAFETY: `receipts` holds at least `receipts_len >= outcomes.len()` receipts.
            let receipt = unsafe { &mut *receipts.add(i) };
            fill(receipt, id, outcome);
        }
        SuitexResult::SUITEX_OK
    })
}

/// Deprecated: `suitex_emit_event` is this with the receipt every emit call shares. Emits one
/// event given as JSON; on success fills `*receipt`; on failure returns the code, leaves the
/// message for `suitex_last_error_message` and `*receipt` untouched.
///
/// # Safety
/// `emitter` must be NULL or a handle from `suitex_emitter_new_*` (a freed one is detected);
/// `event_json` NULL or `len` readable bytes; `receipt` NULL or valid.
#[deprecated(note = "use suitex_emit_event")]
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
        let raw = match bytes(event_json, len, "event_json") {
            Ok(raw) => raw,
            Err(code) => return code,
        };
        let value = match json(raw, "event_json", exact::check_event_json) {
            Ok(v) => v,
            Err(code) => return code,
        };
        let event = match value.and_then(Event::from_input) {
            Ok(e) => e,
            Err(e) => return fail(&sdk::Error::Invalid(e)),
        };
        match inner.emit_event(event) {
            Ok(r) => {
                // SAFETY: `receipt` is non-NULL and valid per the contract.
                let receipt = unsafe { &mut *receipt };
                copy_str(&mut receipt.event_id, &r.event_id.to_string());
                copy_str(&mut receipt.message_id, &r.message_id);
                receipt.payload_location = location(r.payload_location);
                SuitexResult::SUITEX_OK
            }
            Err(e) => fail(&e),
        }
    })
}
