//! The event envelope: the one JSON document every part of the backbone agrees on.
//!
//! An [`Event`] can only be obtained valid — from [`Event::builder`], from [`Event::from_input`]
//! (what the web tier, PHP and C hand in) or from [`Event::decode`] (the strict wire form read by
//! the worker) — so code holding an `Event` never re-checks it. This file holds the types and
//! their wire form; every rule of the contract lives in `rules.rs` beside it, and every broken
//! rule is reported as a [`ValidationError`] naming the field, what is wrong with the value, and
//! the limit.
//!
//! ```
//! use suitex_events::envelope::Event;
//! use serde_json::json;
//!
//! let event = Event::builder()
//!     .account_id(42)
//!     .aggregate("customer", "C-1001")
//!     .event_type("customer.updated")
//!     .payload(json!({"name": "Ada"}))
//!     .build()?;
//! assert_eq!(event.ordering_key(), "42:customer:C-1001");
//!
//! let err = Event::builder()
//!     .account_id(42)
//!     .aggregate("customer", "x".repeat(240))
//!     .event_type("customer.updated")
//!     .payload(json!(null))
//!     .build()
//!     .unwrap_err();
//! assert_eq!(err.to_string(), "aggregate_id is 240 bytes; the limit is 191");
//! # Ok::<(), suitex_events::ValidationError>(())
//! ```

pub mod exact;
mod rules;

use rules::{
    Form, assemble, check_account_id, check_aggregate_id, check_aggregate_type, check_event_id,
    check_event_type, check_metadata, check_occurred_at, missing, parse, parse_json,
};

use crate::error::ValidationError;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt::Write as _;
use time::{OffsetDateTime, UtcOffset, format_description::BorrowedFormatItem, macros::format_description};
use uuid::Uuid;

/// The envelope version this SDK writes and the only one it reads.
pub const SCHEMA_VERSION: u32 = 1;
/// `aggregate_type` length limit, in characters.
pub const AGGREGATE_TYPE_MAX_CHARS: usize = 128;
/// `aggregate_id` length limit, in bytes (the store's `VARCHAR(191)` utf8mb4 index limit).
pub const AGGREGATE_ID_MAX_BYTES: usize = 191;
/// `event_type` length limit, in characters.
pub const EVENT_TYPE_MAX_CHARS: usize = 128;
/// Pub/Sub's limit on an ordering key, in bytes.
pub const ORDERING_KEY_MAX_BYTES: usize = 1024;
/// Limit on the serialized `metadata` object, in bytes.
pub const METADATA_MAX_BYTES: usize = 64 * 1024;
/// Limit on each well-known string in `metadata`, in bytes.
pub const METADATA_STRING_MAX_BYTES: usize = 255;
/// Metadata keys that, when present, must be strings.
pub const METADATA_STRING_KEYS: [&str; 4] = ["correlation_id", "causation_id", "actor", "source"];

const OCCURRED_AT_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
const FIELDS: [&str; 10] = [
    "event_id",
    "account_id",
    "aggregate_type",
    "aggregate_id",
    "event_type",
    "occurred_at",
    "payload",
    "payload_ref",
    "metadata",
    "schema_version",
];

/// Where an event's payload travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadLocation {
    /// Inside the Pub/Sub message.
    Inline,
    /// As a claim-check: in the bucket, the message carries a [`ClaimCheckRef`]. Written `gcs`
    /// in receipts and in the `payload_location` attribute (the wire value since 0.1).
    #[serde(rename = "gcs")]
    ClaimCheck,
}

impl PayloadLocation {
    /// The value of the `payload_location` message attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadLocation::Inline => "inline",
            PayloadLocation::ClaimCheck => "gcs",
        }
    }
}

impl std::fmt::Display for PayloadLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A claim-check's reference (`payload_ref` on the wire): where the payload lives and how to
/// verify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ClaimCheckRef {
    /// Bucket name (not the `projects/_/buckets/` path).
    pub bucket: String,
    /// Object name, `{account_id}/{yyyy}/{mm}/{dd}/{event_id}/{sha256}.json`.
    pub object: String,
    /// The object generation written for this event; 0 when the writer found the object already
    /// written (an earlier attempt of the same emit, or the `events.merged` feeder offloading a
    /// stored payload again): the name and sha256 prove the bytes, and reading the generation
    /// would need a right a create-only account does not have. Readers accept 0.
    pub generation: i64,
    /// Lowercase hex sha256 of the object's bytes (the payload's JSON).
    pub sha256: String,
    /// Size of the object's bytes.
    pub size: u64,
}

/// The 0.3 name of [`ClaimCheckRef`].
#[deprecated(
    since = "0.4.0",
    note = "use ClaimCheckRef: one word, claim-check, for the payload that travels by reference"
)]
pub type PayloadRef = ClaimCheckRef;

/// An event's payload: inline JSON, or a reference to the claim-check object holding it.
#[derive(Debug, Clone)]
pub enum Payload {
    /// The payload travels in the message.
    Inline(Value),
    /// The payload inline, held as the JSON text it arrived as (verified to be JSON, never
    /// parsed into a tree): a resolved claim-check passing through the worker is stored and
    /// hashed as these bytes, without the memory and time a parse and re-serialization cost.
    Raw(Box<RawValue>),
    /// The payload travels as a claim-check: in the bucket, referenced by `payload_ref`.
    ClaimCheck(ClaimCheckRef),
}

impl Payload {
    /// The payload as a JSON value (parsing a [`Payload::Raw`]); `None` when offloaded.
    pub fn to_value(&self) -> Option<Value> {
        match self {
            Payload::Inline(v) => Some(v.clone()),
            Payload::Raw(raw) => Some(serde_json::from_str(raw.get()).expect("a RawValue is valid JSON")),
            Payload::ClaimCheck(_) => None,
        }
    }

    /// The payload's JSON text (serializing a [`Payload::Inline`]); `None` when offloaded.
    pub fn json_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Payload::Inline(v) => Some(std::borrow::Cow::Owned(
                serde_json::to_string(v).expect("a JSON value always serializes"),
            )),
            Payload::Raw(raw) => Some(std::borrow::Cow::Borrowed(raw.get())),
            Payload::ClaimCheck(_) => None,
        }
    }
}

impl PartialEq for Payload {
    /// Payloads are equal when they are the same JSON (a raw text equals its parsed value).
    fn eq(&self, other: &Payload) -> bool {
        match (self, other) {
            (Payload::ClaimCheck(a), Payload::ClaimCheck(b)) => a == b,
            (Payload::ClaimCheck(_), _) | (_, Payload::ClaimCheck(_)) => false,
            (Payload::Raw(a), Payload::Raw(b)) if a.get() == b.get() => true,
            (a, b) => a.to_value() == b.to_value(),
        }
    }
}

/// A valid event envelope (docs/architecture.md §2.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    event_id: Uuid,
    account_id: u64,
    aggregate_type: String,
    aggregate_id: String,
    event_type: String,
    occurred_at: OffsetDateTime,
    payload: Payload,
    metadata: Option<Map<String, Value>>,
}

impl Event {
    /// Starts building an event; `event_id` (UUID v7) and `occurred_at` (now) are generated
    /// when not given.
    pub fn builder() -> EventBuilder {
        EventBuilder::default()
    }

    /// Reads an event as a producer hands it in (a JSON object, or a PHP array converted to one).
    ///
    /// Required: `account_id`, `aggregate_type`, `aggregate_id`, `event_type`, `payload`.
    /// Optional: `event_id`, `occurred_at`, `metadata`, `schema_version` (must be 1).
    /// `payload_ref` is refused: offloading is the SDK's job. Unknown fields are refused.
    pub fn from_input(value: Value) -> Result<Event, ValidationError> {
        parse(value, Form::Input)
    }

    /// [`Event::from_input`] for JSON text. The text is held to what the ledger stores exactly
    /// ([`exact`]): a number it would alter or a duplicate key is refused, naming its path.
    pub fn from_input_json(bytes: &[u8]) -> Result<Event, ValidationError> {
        parse(parse_json(bytes)?, Form::Input)
    }

    /// Strictly decodes the wire form (the `data` of a message on `events.raw`): every field
    /// present, exactly one of `payload` / `payload_ref`, `schema_version` known, and nothing
    /// the ledger would store altered ([`exact`]).
    pub fn decode(bytes: &[u8]) -> Result<Event, ValidationError> {
        parse(parse_json(bytes)?, Form::Wire)
    }

    /// [`Event::decode`] for an already parsed JSON value.
    pub fn decode_value(value: Value) -> Result<Event, ValidationError> {
        parse(value, Form::Wire)
    }

    /// Serializes the wire form. Field order is stable; `occurred_at` has microseconds.
    pub fn to_wire_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.wire(None)).expect("a JSON value always serializes")
    }

    /// [`Event::to_wire_json`] with the inline payload already serialized (`payload_json` must be
    /// this event's payload as JSON): the emitter serializes each payload once, for both the
    /// size check and the message.
    pub(crate) fn to_wire_json_with(&self, payload_json: &RawValue) -> Vec<u8> {
        serde_json::to_vec(&self.wire(Some(payload_json))).expect("a JSON value always serializes")
    }

    /// The wire form as a JSON value.
    pub fn to_wire_value(&self) -> Value {
        serde_json::to_value(self.wire(None)).expect("a JSON value always serializes")
    }

    fn wire<'a>(&'a self, raw: Option<&'a RawValue>) -> Wire<'a> {
        let (payload, payload_ref) = match (&self.payload, raw) {
            (Payload::Inline(_), Some(raw)) => (Some(WirePayload::Raw(raw)), None),
            (Payload::Inline(v), None) => (Some(WirePayload::Value(v)), None),
            (Payload::Raw(raw), _) => (Some(WirePayload::Raw(raw)), None),
            (Payload::ClaimCheck(r), _) => (None, Some(r)),
        };
        Wire {
            event_id: self.event_id.hyphenated(),
            account_id: self.account_id,
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            event_type: &self.event_type,
            occurred_at: self.occurred_at_rfc3339(),
            payload,
            payload_ref,
            metadata: self.metadata.as_ref(),
            schema_version: SCHEMA_VERSION,
        }
    }

    /// The Pub/Sub ordering key, `{account_id}:{aggregate_type}:{aggregate_id}`.
    pub fn ordering_key(&self) -> String {
        ordering_key(self.account_id, &self.aggregate_type, &self.aggregate_id)
    }

    /// The message attributes: `event_id`, `account_id`, `aggregate_type`, `event_type`,
    /// `schema_version`, `payload_location`, and — when the event carries a trace context —
    /// `googclient_traceparent` / `googclient_tracestate` ([`crate::trace`]).
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut attributes = vec![
            ("event_id", self.event_id.to_string()),
            ("account_id", self.account_id.to_string()),
            ("aggregate_type", self.aggregate_type.clone()),
            ("event_type", self.event_type.clone()),
            ("schema_version", SCHEMA_VERSION.to_string()),
            ("payload_location", self.payload_location().as_str().to_string()),
        ];
        if let Some(cx) = self.trace_context() {
            attributes.push((crate::trace::TRACEPARENT_ATTRIBUTE, cx.traceparent));
            if let Some(state) = cx.tracestate {
                attributes.push((crate::trace::TRACESTATE_ATTRIBUTE, state));
            }
        }
        attributes
    }

    /// The trace context the event carries (`metadata.traceparent`, `metadata.tracestate`;
    /// checked when the event was built or decoded).
    pub fn trace_context(&self) -> Option<crate::trace::TraceContext> {
        let m = self.metadata.as_ref()?;
        let traceparent = m.get(crate::trace::TRACEPARENT)?.as_str()?.to_string();
        let tracestate = m.get(crate::trace::TRACESTATE).and_then(Value::as_str).map(str::to_string);
        Some(crate::trace::TraceContext { traceparent, tracestate })
    }

    /// The event carrying `cx` as its trace context (replacing the one it had).
    pub fn with_trace_context(mut self, cx: crate::trace::TraceContext) -> Event {
        let m = self.metadata.get_or_insert_with(Map::new);
        m.insert(crate::trace::TRACEPARENT.into(), cx.traceparent.into());
        match cx.tracestate {
            Some(state) => m.insert(crate::trace::TRACESTATE.into(), state.into()),
            None => m.remove(crate::trace::TRACESTATE),
        };
        self
    }

    /// The idempotency key.
    pub fn event_id(&self) -> Uuid {
        self.event_id
    }
    /// The tenant.
    pub fn account_id(&self) -> u64 {
        self.account_id
    }
    /// E.g. `customer`.
    pub fn aggregate_type(&self) -> &str {
        &self.aggregate_type
    }
    /// E.g. `C-1001`.
    pub fn aggregate_id(&self) -> &str {
        &self.aggregate_id
    }
    /// E.g. `customer.updated`.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }
    /// When it happened, UTC, microsecond precision.
    pub fn occurred_at(&self) -> OffsetDateTime {
        self.occurred_at
    }
    /// `occurred_at` in the wire format, e.g. `2026-11-26T15:24:00.123456Z`.
    pub fn occurred_at_rfc3339(&self) -> String {
        self.occurred_at.format(OCCURRED_AT_FORMAT).expect("years 1000-9999 always format")
    }
    /// The payload, inline or offloaded.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }
    /// Optional metadata (correlation_id, causation_id, actor, source, …).
    pub fn metadata(&self) -> Option<&Map<String, Value>> {
        self.metadata.as_ref()
    }
    /// Always [`SCHEMA_VERSION`].
    pub fn schema_version(&self) -> u32 {
        SCHEMA_VERSION
    }
    /// Where the payload travels.
    pub fn payload_location(&self) -> PayloadLocation {
        match self.payload {
            Payload::Inline(_) | Payload::Raw(_) => PayloadLocation::Inline,
            Payload::ClaimCheck(_) => PayloadLocation::ClaimCheck,
        }
    }

    /// The same event with its payload replaced (claim-check offload, or its resolution).
    pub fn with_payload(mut self, payload: Payload) -> Event {
        self.payload = payload;
        self
    }

    /// A copy with a `null` payload: everything that names, dates and describes the event,
    /// without cloning a large payload.
    pub(crate) fn clone_without_payload(&self) -> Event {
        Event {
            event_id: self.event_id,
            account_id: self.account_id,
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
            event_type: self.event_type.clone(),
            occurred_at: self.occurred_at,
            payload: Payload::Inline(Value::Null),
            metadata: self.metadata.clone(),
        }
    }

    /// Replaces the payload in place, returning the old one.
    pub(crate) fn replace_payload(&mut self, payload: Payload) -> Payload {
        std::mem::replace(&mut self.payload, payload)
    }

    /// Consumes the event, returning its payload.
    pub fn into_payload(self) -> Payload {
        self.payload
    }
}

/// A UTC time in the wire format, e.g. `2026-11-26T15:24:00.123456Z` (sub-microseconds dropped).
pub fn format_occurred_at(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC).format(OCCURRED_AT_FORMAT).expect("years 1000-9999 always format")
}

/// The ordering key for an aggregate: `{account_id}:{aggregate_type}:{aggregate_id}`.
pub fn ordering_key(account_id: u64, aggregate_type: &str, aggregate_id: &str) -> String {
    let mut key = String::with_capacity(22 + aggregate_type.len() + aggregate_id.len());
    let _ = write!(key, "{account_id}:{aggregate_type}:{aggregate_id}");
    key
}

#[derive(Serialize)]
struct Wire<'a> {
    event_id: uuid::fmt::Hyphenated,
    account_id: u64,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    event_type: &'a str,
    occurred_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<WirePayload<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_ref: Option<&'a ClaimCheckRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Map<String, Value>>,
    schema_version: u32,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WirePayload<'a> {
    Value(&'a Value),
    Raw(&'a RawValue),
}

/// Builds an [`Event`]; [`EventBuilder::build`] checks every rule.
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct EventBuilder {
    event_id: Option<Uuid>,
    account_id: Option<u64>,
    aggregate_type: Option<String>,
    aggregate_id: Option<String>,
    event_type: Option<String>,
    occurred_at: Option<OffsetDateTime>,
    payload: Option<Value>,
    metadata: Option<Map<String, Value>>,
}

impl EventBuilder {
    /// The idempotency key. Default: a new UUID v7.
    pub fn event_id(mut self, id: Uuid) -> Self {
        self.event_id = Some(id);
        self
    }
    /// The tenant, 1 to 2^64-1.
    pub fn account_id(mut self, id: u64) -> Self {
        self.account_id = Some(id);
        self
    }
    /// Sets `aggregate_type` and `aggregate_id`.
    pub fn aggregate(self, aggregate_type: impl Into<String>, aggregate_id: impl Into<String>) -> Self {
        self.aggregate_type(aggregate_type).aggregate_id(aggregate_id)
    }
    /// 1–128 characters of `[a-z0-9_.-]`.
    pub fn aggregate_type(mut self, v: impl Into<String>) -> Self {
        self.aggregate_type = Some(v.into());
        self
    }
    /// 1–191 bytes, no control characters.
    pub fn aggregate_id(mut self, v: impl Into<String>) -> Self {
        self.aggregate_id = Some(v.into());
        self
    }
    /// 1–128 characters of `[a-zA-Z0-9_.-]`.
    pub fn event_type(mut self, v: impl Into<String>) -> Self {
        self.event_type = Some(v.into());
        self
    }
    /// When it happened. Converted to UTC and truncated to microseconds. Default: now.
    pub fn occurred_at(mut self, at: OffsetDateTime) -> Self {
        self.occurred_at = Some(at);
        self
    }
    /// Any JSON value.
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = Some(payload);
        self
    }
    /// Optional metadata object.
    pub fn metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Checks every rule and returns the event.
    pub fn build(self) -> Result<Event, ValidationError> {
        let account_id = check_account_id(self.account_id.ok_or_else(|| missing("account_id"))?)?;
        let aggregate_type =
            check_aggregate_type(self.aggregate_type.ok_or_else(|| missing("aggregate_type"))?)?;
        let aggregate_id = check_aggregate_id(self.aggregate_id.ok_or_else(|| missing("aggregate_id"))?)?;
        let event_type = check_event_type(self.event_type.ok_or_else(|| missing("event_type"))?)?;
        let event_id = match self.event_id {
            Some(id) => check_event_id(id)?,
            None => Uuid::now_v7(),
        };
        let occurred_at = check_occurred_at(self.occurred_at.unwrap_or_else(OffsetDateTime::now_utc))?;
        let payload = self.payload.ok_or_else(|| missing("payload"))?;
        let metadata = self.metadata.map(check_metadata).transpose()?;
        assemble(
            event_id,
            account_id,
            aggregate_type,
            aggregate_id,
            event_type,
            occurred_at,
            Payload::Inline(payload),
            metadata,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "account_id": 42,
            "aggregate_type": "customer",
            "aggregate_id": "C-1001",
            "event_type": "customer.updated",
            "payload": {"name": "Zoë", "n": 1.5, "tags": [], "empty": {}},
        })
    }

    #[test]
    fn input_generates_v7_event_id_and_microsecond_utc_time() {
        let e = Event::from_input(valid()).unwrap();
        assert_eq!(e.event_id().get_version_num(), 7);
        assert_eq!(e.occurred_at().offset(), UtcOffset::UTC);
        assert_eq!(e.occurred_at().nanosecond() % 1000, 0);
        let text = e.occurred_at_rfc3339();
        assert_eq!(text.len(), "2026-11-26T15:24:00.123456Z".len(), "{text}");
    }

    #[test]
    fn wire_round_trip_is_lossless_and_field_order_is_stable() {
        let mut input = valid();
        input["event_id"] = json!("0190a7f2-4c1e-7b3a-9d2e-1f2a3b4c5d6e");
        input["occurred_at"] = json!("2026-11-26T15:24:00.123456Z");
        input["metadata"] = json!({"correlation_id": "abc", "source": "suitex-web"});
        let e = Event::from_input(input).unwrap();
        let wire = e.to_wire_json();
        let text = String::from_utf8(wire.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"event_id":"0190a7f2-4c1e-7b3a-9d2e-1f2a3b4c5d6e","account_id":42,"aggregate_type":"customer","aggregate_id":"C-1001","event_type":"customer.updated","occurred_at":"2026-11-26T15:24:00.123456Z","payload":{"name":"Zoë","n":1.5,"tags":[],"empty":{}},"metadata":"#),
            "{text}"
        );
        assert!(text.ends_with(r#","schema_version":1}"#), "{text}");
        assert_eq!(Event::decode(&wire).unwrap(), e);
    }

    #[test]
    fn offloaded_event_round_trips_without_inline_payload() {
        let r = ClaimCheckRef {
            bucket: "suitex-payload-snapshots".into(),
            object: "42/2026/11/26/x.json".into(),
            generation: 7,
            sha256: "a".repeat(64),
            size: 300_000,
        };
        let e = Event::from_input(valid()).unwrap().with_payload(Payload::ClaimCheck(r.clone()));
        let v: Value = serde_json::from_slice(&e.to_wire_json()).unwrap();
        assert!(v.get("payload").is_none());
        assert_eq!(v["payload_ref"]["size"], 300_000);
        assert_eq!(e.payload_location(), PayloadLocation::ClaimCheck);
        let back = Event::decode(&e.to_wire_json()).unwrap();
        assert_eq!(back.payload(), &Payload::ClaimCheck(r));
    }

    #[test]
    fn a_reference_whose_generation_the_writer_could_not_read_round_trips() {
        // A create-only emitter that finds its object written by an earlier attempt (412), and
        // the feeder re-offloading a stored payload, write generation 0: "not known".
        let r = ClaimCheckRef {
            bucket: "suitex-payload-snapshots".into(),
            object: "42/2026/11/26/x.json".into(),
            generation: 0,
            sha256: "b".repeat(64),
            size: 300_000,
        };
        let e = Event::from_input(valid()).unwrap().with_payload(Payload::ClaimCheck(r.clone()));
        assert_eq!(Event::decode(&e.to_wire_json()).unwrap().payload(), &Payload::ClaimCheck(r));
        let mut v: Value = serde_json::from_slice(&e.to_wire_json()).unwrap();
        v["payload_ref"]["generation"] = (-1).into();
        let refused = Event::decode(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(refused.field(), "payload_ref.generation");
    }

    #[test]
    fn null_payload_is_kept_distinct_from_absent() {
        let mut input = valid();
        input["payload"] = Value::Null;
        let e = Event::from_input(input).unwrap();
        let v: Value = serde_json::from_slice(&e.to_wire_json()).unwrap();
        assert_eq!(v.get("payload"), Some(&Value::Null));
    }

    #[test]
    fn ordering_key_and_attributes() {
        let e = Event::from_input(valid()).unwrap();
        assert_eq!(e.ordering_key(), "42:customer:C-1001");
        let attrs: std::collections::HashMap<_, _> = e.attributes().into_iter().collect();
        assert_eq!(attrs["account_id"], "42");
        assert_eq!(attrs["aggregate_type"], "customer");
        assert_eq!(attrs["event_type"], "customer.updated");
        assert_eq!(attrs["schema_version"], "1");
        assert_eq!(attrs["payload_location"], "inline");
        assert_eq!(attrs["event_id"], e.event_id().to_string());
    }

    #[test]
    fn builder_truncates_to_microseconds_and_converts_to_utc() {
        let at = time::macros::datetime!(2026-11-26 17:24:00.123456789 +02:00);
        let e = Event::builder()
            .account_id(1)
            .aggregate("a", "b")
            .event_type("c")
            .occurred_at(at)
            .payload(json!(1))
            .build()
            .unwrap();
        assert_eq!(e.occurred_at_rfc3339(), "2026-11-26T15:24:00.123456Z");
    }

    #[test]
    fn decode_accepts_plus_zero_offset_and_fewer_fraction_digits() {
        let mut input = valid();
        input["occurred_at"] = json!("2026-11-26T15:24:00.5+00:00");
        let e = Event::from_input(input).unwrap();
        assert_eq!(e.occurred_at_rfc3339(), "2026-11-26T15:24:00.500000Z");
    }

    #[test]
    fn wire_decoding_requires_every_field() {
        let e = Event::from_input(valid()).unwrap();
        for field in ["event_id", "occurred_at", "schema_version", "account_id"] {
            let mut v = e.to_wire_value();
            v.as_object_mut().unwrap().remove(field);
            let err = Event::decode_value(v).unwrap_err();
            assert_eq!(err.field(), field);
            assert_eq!(err.problem(), "is missing");
        }
    }

    #[test]
    fn unknown_schema_version_is_refused_by_decode() {
        let mut v = Event::from_input(valid()).unwrap().to_wire_value();
        v["schema_version"] = json!(2);
        let err = Event::decode_value(v).unwrap_err();
        assert_eq!(err.to_string(), "schema_version 2 is not supported; this SDK reads version 1");
    }
}
