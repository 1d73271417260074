//! Trace context: following one event from the web request to the ledger row
//! (docs/architecture.md §2.8).
//!
//! An event carries the [W3C trace context](https://www.w3.org/TR/trace-context/) of the code that
//! emitted it in two places:
//!
//! * **the message attributes `googclient_traceparent` and `googclient_tracestate`** — the names
//!   the official Pub/Sub clients use (their OpenTelemetry propagators write each W3C header
//!   under the prefix `googclient_`), so a subscriber written with Google's Go, Java, Node or
//!   Python client continues the trace without any SuiteX code;
//! * **the envelope's `metadata.traceparent` / `metadata.tracestate`**, so the ledger row,
//!   `events.merged`, replays and the spool keep it. The attributes are always derived from the
//!   metadata ([`crate::Event::attributes`]), so they cannot disagree.
//!
//! Where the context comes from: the caller's explicit `traceparent` (the envelope's metadata —
//! PHP's `traceparent` option or the php-fpm request's `traceparent` header, a C caller's event
//! JSON), or else the current [`tracing`] span when an OpenTelemetry layer is installed (a Rust
//! caller inside an instrumented request). When spans are exported (see `telemetry`), the emitter
//! records a `create` span for each event, a child of that context, and the event carries the
//! `create` span's context instead — the link a consumer's spans hang from.
//!
//! Spans are [`tracing`] spans with the OpenTelemetry semantic conventions' attributes as fields
//! (`otel.name`, `otel.kind`, `messaging.system = "gcp_pubsub"`, …); with no subscriber that
//! wants them — no `OTEL_*` settings — creating one costs a branch.

use crate::error::ValidationError;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The message attribute that carries the W3C `traceparent` (the official clients' name).
pub const TRACEPARENT_ATTRIBUTE: &str = "googclient_traceparent";
/// The message attribute that carries the W3C `tracestate` (the official clients' name).
pub const TRACESTATE_ATTRIBUTE: &str = "googclient_tracestate";
/// The metadata key of the W3C `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// The metadata key of the W3C `tracestate`.
pub const TRACESTATE: &str = "tracestate";
/// `messaging.system` of the semantic conventions for Pub/Sub.
pub const MESSAGING_SYSTEM: &str = "gcp_pubsub";
/// Limit on a `tracestate`, in bytes (the W3C limit is 32 members of at most 256 + 1 bytes; 512
/// is what the W3C recommends propagating).
pub const TRACESTATE_MAX_BYTES: usize = 512;

/// A W3C trace context as text: the `traceparent` and an optional `tracestate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
    pub traceparent: String,
    /// Vendor data, carried unchanged.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// Checks `traceparent` (and `tracestate`); the error names `field` and what a valid value is.
    pub fn parse(
        field: &str,
        traceparent: &str,
        tracestate: Option<&str>,
    ) -> Result<TraceContext, ValidationError> {
        check_traceparent(field, traceparent)?;
        if let Some(state) = tracestate {
            check_tracestate(&state_field(field), state)?;
        }
        Ok(TraceContext { traceparent: traceparent.to_string(), tracestate: tracestate.map(str::to_string) })
    }

    /// The OpenTelemetry context whose remote parent this is.
    pub fn to_context(&self) -> opentelemetry::Context {
        let mut carrier = HashMap::with_capacity(2);
        carrier.insert(TRACEPARENT.to_string(), self.traceparent.clone());
        if let Some(state) = &self.tracestate {
            carrier.insert(TRACESTATE.to_string(), state.clone());
        }
        TraceContextPropagator::new().extract(&carrier)
    }

    /// The span context it names (the remote parent), for a link.
    pub fn span_context(&self) -> SpanContext {
        self.to_context().span().span_context().clone()
    }

    /// The context of `span`, when it is recorded by an OpenTelemetry layer.
    pub fn of_span(span: &tracing::Span) -> Option<TraceContext> {
        if span.is_disabled() {
            return None;
        }
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = HashMap::with_capacity(2);
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        let traceparent = carrier.remove(TRACEPARENT)?;
        Some(TraceContext { traceparent, tracestate: carrier.remove(TRACESTATE).filter(|s| !s.is_empty()) })
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        &self.traceparent[3..35]
    }
}

/// `metadata.tracestate` beside `metadata.traceparent`, `X.tracestate` beside `X.traceparent`.
fn state_field(field: &str) -> String {
    match field.strip_suffix(TRACEPARENT) {
        Some(prefix) => format!("{prefix}{TRACESTATE}"),
        None => format!("{field} tracestate"),
    }
}

/// A `traceparent` as W3C Trace Context level 1 writes it (version 00): lowercase hex, a trace id
/// and a parent id that are not all zeros.
pub fn check_traceparent(field: &str, value: &str) -> Result<(), ValidationError> {
    let bad = |why: &str| {
        ValidationError::new(
            field,
            format!(
                "{why}; a W3C traceparent is 00-<32 lowercase hex trace id>-<16 lowercase hex parent id>-<2 hex flags>, e.g. 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            ),
        )
    };
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    match parts.as_slice() {
        [version, trace, parent, flags] => {
            if *version != "00" {
                return Err(bad(&format!("has version {version:?}; this SDK writes and reads version 00")));
            }
            if trace.len() != 32 || !hex(trace) {
                return Err(bad("has a trace id that is not 32 lowercase hex digits"));
            }
            if trace.bytes().all(|b| b == b'0') {
                return Err(bad("has an all-zero trace id, which W3C Trace Context forbids"));
            }
            if parent.len() != 16 || !hex(parent) {
                return Err(bad("has a parent id that is not 16 lowercase hex digits"));
            }
            if parent.bytes().all(|b| b == b'0') {
                return Err(bad("has an all-zero parent id, which W3C Trace Context forbids"));
            }
            if flags.len() != 2 || !hex(flags) {
                return Err(bad("has flags that are not 2 lowercase hex digits"));
            }
            Ok(())
        }
        _ => Err(bad(&format!("is {} bytes with {} dash-separated parts, not 4", value.len(), parts.len()))),
    }
}

/// A `tracestate`: at most [`TRACESTATE_MAX_BYTES`], printable ASCII.
pub fn check_tracestate(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.len() > TRACESTATE_MAX_BYTES {
        return Err(ValidationError::new(
            field,
            format!("is {} bytes; the limit is {TRACESTATE_MAX_BYTES}", value.len()),
        ));
    }
    if let Some(c) = value.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(ValidationError::new(
            field,
            format!(
                "holds {c:?}; a W3C tracestate is printable ASCII (list-members key=value, comma-separated)"
            ),
        ));
    }
    Ok(())
}

/// Whether the SDK's spans are recorded in this process (an exporter is installed): a caller
/// reads trace contexts only for spans that will be recorded.
pub(crate) fn recording() -> bool {
    tracing::span_enabled!(tracing::Level::INFO)
}

/// Makes `span` a child of `parent` (a remote context) where the span is recorded.
pub(crate) fn continue_from(span: &tracing::Span, parent: Option<&TraceContext>) {
    if let (false, Some(parent)) = (span.is_disabled(), parent) {
        // Fails only for a span already started, which a new span is not.
        let _ = span.set_parent(parent.to_context());
    }
}

/// Links `span` to `context` where the span is recorded.
pub(crate) fn link(span: &tracing::Span, context: Option<&TraceContext>) {
    if let (false, Some(cx)) = (span.is_disabled(), context) {
        let sc = cx.span_context();
        if sc.is_valid() {
            span.add_link(sc);
        }
    }
}

/// Where a batch's `publish` span hangs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Publishing<'a> {
    /// In the caller's emit: a child of its context (`Some`, else the current span), a `client`
    /// span beside the events' `create` spans.
    Caller(Option<&'a TraceContext>),
    /// On behalf of earlier producers (the relay, the feeder): a root `producer` span.
    OnBehalf,
}

/// The `publish` span of one batch to `topic` (OpenTelemetry's messaging conventions), linked
/// to the trace context of each message (`contexts`). `ledger.seq.first` / `.last` are left to
/// the feeder to record.
pub(crate) fn publish_span(
    topic: &str,
    messages: usize,
    publishing: Publishing<'_>,
    contexts: impl IntoIterator<Item = Option<TraceContext>>,
) -> tracing::Span {
    let (parent, kind) = match publishing {
        Publishing::Caller(_) => (tracing::Span::current().id(), "client"),
        Publishing::OnBehalf => (None, "producer"),
    };
    let span = tracing::info_span!(
        parent: parent,
        "publish",
        otel.name = format!("{topic} publish"),
        otel.kind = kind,
        messaging.system = MESSAGING_SYSTEM,
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.destination.name = %topic,
        messaging.batch.message_count = messages,
        ledger.seq.first = tracing::field::Empty,
        ledger.seq.last = tracing::field::Empty,
    );
    if !span.is_disabled() {
        if let Publishing::Caller(ambient) = publishing {
            continue_from(&span, ambient);
        }
        for cx in contexts {
            link(&span, cx.as_ref());
        }
    }
    span
}

/// A message as its consumer received it, for its `receive` span.
#[cfg(feature = "consume")]
pub(crate) struct Received<'a> {
    /// The subscription's id (not its path).
    pub subscription: &'a str,
    pub message_id: &'a str,
    pub ordering_key: &'a str,
    pub attributes: &'a std::collections::HashMap<String, String>,
    /// The decoded event, when the body is one.
    pub event: Option<&'a crate::envelope::Event>,
    pub delivery_attempt: Option<i32>,
}

/// The `receive` span of a message (OpenTelemetry's messaging conventions for Pub/Sub): a child
/// of the context its producer sent — the `googclient_traceparent` attribute, else the
/// envelope's `metadata.traceparent`. It lasts until the message is settled.
#[cfg(feature = "consume")]
pub(crate) fn receive_span(m: Received<'_>) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "receive",
        otel.name = format!("{} receive", m.subscription),
        otel.kind = "consumer",
        messaging.system = MESSAGING_SYSTEM,
        messaging.operation.type = "receive",
        messaging.operation.name = "receive",
        messaging.destination.subscription.name = m.subscription,
        messaging.message.id = m.message_id,
        messaging.gcp_pubsub.message.ordering_key = m.ordering_key,
        messaging.gcp_pubsub.message.delivery_attempt = tracing::field::Empty,
        event_id = tracing::field::Empty,
        account_id = tracing::field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let attribute = m.attributes.get(TRACEPARENT_ATTRIBUTE).and_then(|p| {
        let state = m.attributes.get(TRACESTATE_ATTRIBUTE).map(String::as_str);
        TraceContext::parse(TRACEPARENT_ATTRIBUTE, p, state).ok()
    });
    continue_from(
        &span,
        attribute.or_else(|| m.event.and_then(crate::envelope::Event::trace_context)).as_ref(),
    );
    if let Some(e) = m.event {
        span.record("event_id", tracing::field::display(e.event_id()));
        span.record("account_id", e.account_id());
    }
    if let Some(attempt) = m.delivery_attempt.filter(|a| *a > 0) {
        span.record("messaging.gcp_pubsub.message.delivery_attempt", attempt);
    }
    span
}

/// The `ack` / `nack` span of a message, a child of its `receive` span.
#[cfg(feature = "consume")]
pub(crate) fn settle_span(
    receive: &tracing::Span,
    subscription: &str,
    message_id: &str,
    ack: bool,
) -> tracing::Span {
    let operation = if ack { "ack" } else { "nack" };
    tracing::info_span!(
        parent: receive,
        "settle",
        otel.name = format!("{subscription} {operation}"),
        otel.kind = "client",
        messaging.system = MESSAGING_SYSTEM,
        messaging.operation.type = "settle",
        messaging.operation.name = operation,
        messaging.message.id = message_id,
        ledger.store_id = tracing::field::Empty,
    )
}

/// The database span of one INSERT into the ledger (OpenTelemetry's database conventions): a
/// root span linked to the `receive` span of every message whose event it stores (one statement
/// stores many messages' events, so it is the child of none of them).
#[cfg(feature = "consume")]
pub(crate) fn append_span<'a>(
    receives: impl IntoIterator<Item = &'a tracing::Span>,
    rows: usize,
) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "append",
        otel.name = "INSERT event_store",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        db.system = "mysql",
        db.system.name = "mysql",
        db.operation.name = "INSERT",
        db.collection.name = "event_store",
        db.operation.batch.size = rows,
        error.type = tracing::field::Empty,
    );
    if !span.is_disabled() {
        for receive in receives {
            let cx = receive.context();
            let sc = cx.span().span_context().clone();
            if sc.is_valid() {
                span.add_link(sc);
            }
        }
    }
    span
}

/// Records on `span` that its operation failed: `error.type` (the semantic conventions' short
/// class of the error) and the status, with `why` as its message.
#[cfg(feature = "consume")]
pub(crate) fn failed(span: &tracing::Span, error_type: &str, why: &dyn std::fmt::Display) {
    if !span.is_disabled() {
        span.record("otel.status_code", "error");
        span.record("otel.status_description", tracing::field::display(why));
        span.record("error.type", error_type);
    }
}

/// The database span of an INSERT into the ledger that the caller runs itself (`php artisan
/// events:work`'s `EventStore::create()`), from [`crate::consume::Inbox::append_span`]. It ends
/// when dropped, or at [`AppendSpan::end`]; [`AppendSpan::fail`] first records a failure.
#[cfg(feature = "consume")]
#[derive(Debug)]
pub struct AppendSpan(tracing::Span);

#[cfg(feature = "consume")]
impl AppendSpan {
    pub(crate) fn new(span: tracing::Span) -> AppendSpan {
        AppendSpan(span)
    }

    /// Records that the INSERT failed, with `why` (the database's error) as the status message.
    pub fn fail(&self, why: &str) {
        failed(&self.0, "database", &why);
    }

    /// Ends the span (as dropping it does).
    pub fn end(self) {}

    /// Whether the span is recorded (spans are exported).
    pub fn is_recorded(&self) -> bool {
        !self.0.is_disabled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_w3c_traceparent_is_accepted_and_its_trace_id_read() {
        let cx = TraceContext::parse("metadata.traceparent", VALID, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(cx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let sc = cx.span_context();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(format!("{:032x}", sc.trace_id()), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(format!("{:016x}", sc.span_id()), "00f067aa0ba902b7");
        assert_eq!(sc.trace_state().header(), "congo=t61rcWkgMzE");
    }

    #[test]
    fn each_malformed_traceparent_is_refused_naming_the_field_and_the_form() {
        for (value, says) in [
            ("", "1 dash-separated parts"),
            ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version \"01\""),
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "trace id that is not"),
            ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", "trace id that is not"),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "all-zero trace id"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "all-zero parent id"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01", "parent id that is not"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", "flags"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", "5 dash-separated parts"),
        ] {
            let e = TraceContext::parse("metadata.traceparent", value, None).unwrap_err();
            assert_eq!(e.field(), "metadata.traceparent", "{value}");
            assert!(e.problem().contains(says), "{value}: {}", e.problem());
            assert!(e.problem().contains("00-<32 lowercase hex trace id>"), "{}", e.problem());
        }
    }

    #[test]
    fn a_tracestate_over_the_limit_or_not_ascii_is_refused_by_name() {
        let long = "a=".to_string() + &"b".repeat(TRACESTATE_MAX_BYTES);
        let e = TraceContext::parse("metadata.traceparent", VALID, Some(&long)).unwrap_err();
        assert_eq!(e.field(), "metadata.tracestate");
        assert!(e.problem().contains("the limit is 512"), "{}", e.problem());
        let e = TraceContext::parse("traceparent", VALID, Some("a=é")).unwrap_err();
        assert_eq!(e.field(), "tracestate");
    }

    #[test]
    fn without_an_opentelemetry_layer_a_span_has_no_context_and_continuing_it_is_a_no_op() {
        let span = tracing::info_span!("create");
        let parent = TraceContext::parse("traceparent", VALID, None).unwrap();
        continue_from(&span, Some(&parent));
        link(&span, Some(&parent));
        assert_eq!(TraceContext::of_span(&span), None);
    }
}
