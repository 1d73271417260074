//! `SUITEX_LOG_FORMAT=json`: one JSON object a line, in the shape Cloud Logging reads from a
//! container's stderr — `severity` (its names: `DEBUG`, `INFO`, `WARNING`, `ERROR`),
//! `message`, `time` (RFC 3339) — with the event's fields beside them (`event_id`, `account_id`,
//! `error` …) and the module as `target`, so an operator can query `jsonPayload.event_id`.

use serde_json::{Map, Value};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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
