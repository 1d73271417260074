//! The trace context an emit continues, and the span exporter of this process.
//!
//! Where the context comes from, first found wins: the event's own `metadata.traceparent`;
//! the call's `$options['traceparent']` (and `tracestate`); in a web SAPI (php-fpm …), the
//! request's `traceparent` / `tracestate` headers. The SDK puts it in the event's metadata and
//! the message attributes (`sdk::trace`). Spans are exported only when the `OTEL_*` variables
//! ask for it (`sdk::telemetry`), by a per-process exporter made on first emit — after php-fpm
//! forked the worker, like the emitter's runtime.

use crate::exceptions::{from_sdk, invalid};
use ext_php_rs::exception::PhpException;
use ext_php_rs::types::ZendHashTable;
use sdk::Event;
use sdk::trace::TraceContext;

/// The option keys of an emit call.
const OPTIONS: [&str; 2] = ["traceparent", "tracestate"];

/// The context of an emit call: its options, else the web request's headers.
pub fn of_call(options: Option<&ZendHashTable>) -> Result<Option<TraceContext>, PhpException> {
    if let Some(options) = options {
        let mut given = [None, None];
        for (key, value) in options.iter() {
            let name = key.to_string();
            let Some(slot) = OPTIONS.iter().position(|o| *o == name) else {
                return Err(invalid(
                    &format!("options.{name}"),
                    &format!("is not an emit option; the options are {}", OPTIONS.join(", ")),
                ));
            };
            let text = value.str().ok_or_else(|| invalid(&format!("options.{name}"), "must be a string"))?;
            given[slot] = Some(text.to_string());
        }
        match given {
            [Some(parent), state] => {
                return TraceContext::parse("options.traceparent", &parent, state.as_deref())
                    .map(Some)
                    .map_err(|e| from_sdk(&sdk::Error::Invalid(e)));
            }
            [None, Some(_)] => {
                return Err(invalid("options.tracestate", "is given without options.traceparent"));
            }
            [None, None] => {}
        }
    }
    Ok(of_request())
}

/// A web request's `traceparent` header, when it is a valid W3C one; a malformed header is
/// ignored (W3C Trace Context: start a new trace), never an error for the emit. Read as PHP's
/// `getenv('HTTP_TRACEPARENT')` reads it — from the SAPI's request variables (php-fpm's FastCGI
/// parameters) — which needs no `$_SERVER` (PHP fills that only for scripts that name it).
fn of_request() -> Option<TraceContext> {
    let sapi = ext_php_rs::zend::php_sapi_name().unwrap_or_default();
    if matches!(sapi.as_str(), "cli" | "phpdbg" | "embed") {
        return None;
    }
    let parent = request_variable("HTTP_TRACEPARENT")?;
    let state = request_variable("HTTP_TRACESTATE");
    TraceContext::parse("traceparent", &parent, state.as_deref())
        .or_else(|_| TraceContext::parse("traceparent", &parent, None))
        .ok()
}

/// `getenv($name)` of the current request, trimmed; `None` when unset or empty.
fn request_variable(name: &str) -> Option<String> {
    let getenv = ext_php_rs::types::ZendCallable::try_from_name("getenv").ok()?;
    let value = getenv.try_call(vec![&name]).ok()?;
    let text = value.str()?.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// `event` continuing `cx`, unless it carries a context of its own.
pub fn continuing(event: Event, cx: Option<&TraceContext>) -> Event {
    match cx {
        Some(cx) if event.trace_context().is_none() => event.with_trace_context(cx.clone()),
        _ => event,
    }
}

/// Installs the span exporter the `OTEL_*` variables ask for, once per process.
pub fn export_spans() -> Result<(), PhpException> {
    sdk::telemetry::export_from_this_process(&service_name()).map_err(|e| from_sdk(&sdk::Error::Config(e)))
}

/// Sends the spans still buffered (module shutdown).
pub fn flush() {
    sdk::telemetry::flush_this_process();
}

fn service_name() -> String {
    let sapi = ext_php_rs::zend::php_sapi_name().unwrap_or_default();
    if matches!(sapi.as_str(), "cli" | "phpdbg") { "suitex-php-cli".into() } else { "suitex-web".into() }
}
