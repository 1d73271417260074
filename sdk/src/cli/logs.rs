//! `SUITEX_LOG_FORMAT=json`: one JSON object a line, in the shape Cloud Logging reads from a
//! container's stderr — `severity` (its names: `DEBUG`, `INFO`, `WARNING`, `ERROR`),
//! `message`, `time` (RFC 3339) — with the event's fields beside them (`event_id`, `account_id`,
//! `error` …) and the module as `target`, so an operator can query `jsonPayload.event_id`. When
//! spans are exported (`OTEL_*`, `suitex_events::telemetry`), a line logged inside one carries
//! its trace under Cloud Logging's names — `logging.googleapis.com/trace`
//! (`projects/<project>/traces/<trace id>`), `logging.googleapis.com/spanId`,
//! `logging.googleapis.com/trace_sampled` — so the log and the trace open each other.

use serde_json::{Map, Value};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the process's `tracing` subscriber: logs on stderr (`SUITEX_LOG_FORMAT`, filtered by
/// `RUST_LOG`, else `default_level`) and, when the `OTEL_*` variables ask for it, the SDK's spans
/// exported with OTLP (at their own level, whatever `RUST_LOG` says of the logs). Returns the
/// exporter, to be dropped (flushing it) when the process ends.
pub fn init(
    default_level: &str,
    service: &str,
) -> Result<Option<suitex_events::telemetry::Telemetry>, suitex_events::ConfigError> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let telemetry = suitex_events::telemetry::Telemetry::from_env(service)?;
    // One global filter for logs and spans alike (no per-layer filter: see
    // `suitex_events::telemetry::SdkSpans`). Exporting spans needs the SDK's INFO spans: without
    // `RUST_LOG`, they are let through even where only warnings are logged.
    let filter = match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) if telemetry.is_some() => {
            tracing_subscriber::EnvFilter::new(format!("{default_level},suitex_events=info"))
        }
        Err(_) => tracing_subscriber::EnvFilter::new(default_level),
    };
    let json =
        std::env::var(suitex_events::settings::LOG_FORMAT.name).is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if json { logs.event_format(CloudLogging).boxed() } else { logs.boxed() };
    let spans = telemetry.as_ref().map(|t| t.layer());
    tracing_subscriber::registry().with(filter).with(logs).with(spans).init();
    if telemetry.is_some() {
        tracing::dispatcher::get_default(|d| {
            let _ = SPANS.set(Spans { dispatch: d.downgrade(), project: project() });
        });
    }
    Ok(telemetry)
}

/// Where log lines find the OpenTelemetry context of their span (set when spans are recorded).
static SPANS: std::sync::OnceLock<Spans> = std::sync::OnceLock::new();

struct Spans {
    /// The process's subscriber: a log line is formatted while it dispatches, when
    /// `dispatcher::get_default` would answer "none".
    dispatch: tracing::dispatcher::WeakDispatch,
    /// For Cloud Logging's trace name, `projects/<project>/traces/<trace id>`.
    project: Option<String>,
}

fn project() -> Option<String> {
    [suitex_events::settings::PROJECT.name, suitex_events::settings::GOOGLE_CLOUD_PROJECT.name]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// Cloud Logging's fields for the trace of the span a line was logged in:
/// `logging.googleapis.com/trace`, `…/spanId`, `…/trace_sampled`.
fn trace_fields(span: &tracing::span::Id, line: &mut Map<String, Value>) {
    use opentelemetry::trace::TraceContextExt as _;
    let Some(spans) = SPANS.get() else { return };
    let Some(dispatch) = spans.dispatch.upgrade() else { return };
    let Some(cx) = tracing_opentelemetry::get_otel_context(span, &dispatch) else { return };
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return;
    }
    let trace = match &spans.project {
        Some(p) => format!("projects/{p}/traces/{:032x}", sc.trace_id()),
        None => format!("{:032x}", sc.trace_id()),
    };
    line.insert("logging.googleapis.com/trace".into(), trace.into());
    line.insert("logging.googleapis.com/spanId".into(), format!("{:016x}", sc.span_id()).into());
    line.insert("logging.googleapis.com/trace_sampled".into(), sc.is_sampled().into());
}

/// The formatter (see the module's documentation).
pub struct CloudLogging;

/// Cloud Logging's name for a level.
fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

/// Collects an event's fields as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(
            field.name().into(),
            serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
        );
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}

impl<S, N> FormatEvent<S, N> for CloudLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Map::new();
        event.record(&mut Fields(&mut fields));
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("severity".into(), severity(meta.level()).into());
        line.insert("message".into(), fields.remove("message").unwrap_or(Value::String(String::new())));
        line.insert("time".into(), crate_time().into());
        line.insert("target".into(), meta.target().into());
        if let Some(parent) = ctx.parent_span() {
            trace_fields(&parent.id(), &mut line);
        }
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<Value> = scope.from_root().map(|s| Value::String(s.name().into())).collect();
            if !spans.is_empty() {
                line.insert("spans".into(), spans.into());
            }
        }
        for (k, v) in fields {
            line.entry(k).or_insert(v);
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

fn crate_time() -> String {
    suitex_events::envelope::format_occurred_at(time::OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_line_is_one_object_with_cloud_loggings_fields_and_the_events() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(CloudLogging)
            .with_writer(move || writer.clone())
            .with_max_level(Level::DEBUG)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("batch", messages = 3);
            let _in = span.enter();
            tracing::warn!(
                event_id = "0190a7f2-4c1e-7b3a-9d2e-000000000001",
                delivery_attempt = 5u64,
                "poison message nacked"
            );
            tracing::error!(error = %"the database refused the row", "storing failed");
            tracing::info!(ratio = 0.5, ok = true, "multi\nline \"quoted\"");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0]["severity"], "WARNING");
        assert_eq!(lines[0]["message"], "poison message nacked");
        assert_eq!(lines[0]["event_id"], "0190a7f2-4c1e-7b3a-9d2e-000000000001");
        assert_eq!(lines[0]["delivery_attempt"], 5);
        assert_eq!(lines[0]["spans"], serde_json::json!(["batch"]));
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            (lines[1]["severity"].as_str(), lines[1]["error"].as_str()),
            (Some("ERROR"), Some("the database refused the row"))
        );
        assert_eq!(
            (lines[2]["message"].as_str(), lines[2]["ratio"].as_f64()),
            (Some("multi\nline \"quoted\""), Some(0.5))
        );
    }
}
