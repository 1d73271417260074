//! One event followed from the caller's trace to the ledger row (docs/architecture.md §2.8): the
//! emitting command, the relay and the worker as processes exporting their spans with OTLP to a
//! real receiver (`tests/otlp-receiver.py`, decoding with the OpenTelemetry protobuf
//! definitions), on the emulators and MariaDB.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use suitex_events::Config;
use suitex_test_support::otlp::Receiver;
use suitex_test_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_suitex-events");
/// The web request's context: trace 4bf9…4736, its span 00f0…02b7.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const REQUEST_SPAN: &str = "00f067aa0ba902b7";

fn request_traceparent() -> String {
    format!("00-{TRACE}-{REQUEST_SPAN}-01")
}

fn command(config: &Config, args: &[&str], extra: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SUITEX_RELAY_METRICS_ADDR", "off")
        .envs(config.to_settings())
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// `suitex-events emit` of `event`; its receipt.
fn emit(config: &Config, event: &Value, extra: &[(&str, String)]) -> Value {
    let mut child = command(config, &["emit"], extra).spawn().expect("run suitex-events emit");
    child.stdin.take().unwrap().write_all(event.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "emit: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the receipt is JSON")
}

fn order_event(id: &str, traceparent: Option<String>) -> Value {
    let mut e = json!({
        "account_id": 77, "aggregate_type": "sales_order", "aggregate_id": id,
        "event_type": "sales_order.approved", "payload": {"total": "1250.00"},
        "metadata": {"source": "suitex-web"},
    });
    if let Some(tp) = traceparent {
        e["metadata"]["traceparent"] = tp.into();
        e["metadata"]["tracestate"] = "suitex=web".into();
    }
    e
}

/// A child process killed however the test ends.
struct Process(Option<Child>);

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The worker as a process, its stderr (JSON logs) kept.
fn worker(config: &Config, db: &TestDb, extra: &[(&str, String)], log: &Path) -> Process {
    let mut env: Vec<(&str, String)> = vec![
        ("SUITEX_WORKER_METRICS_ADDR", "off".into()),
        ("SUITEX_WORKER_BATCH_WAIT", "10ms".into()),
        ("SUITEX_LOG_FORMAT", "json".into()),
        ("RUST_LOG", "suitex_events=debug".into()),
    ];
    env.extend(extra.iter().cloned());
    command(config, &["worker"], &env)
        .envs(db.settings.to_settings())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .map(|c| Process(Some(c)))
        .expect("start suitex-events worker")
}

fn stop(mut process: Process) {
    let mut child = process.0.take().unwrap();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success(), "the process exits 0 on SIGTERM");
}

/// The stored row's metadata.
async fn stored_metadata(db: &TestDb, event_id: &str) -> Value {
    let text: String =
        sqlx::query_scalar("SELECT CAST(metadata AS CHAR) FROM event_store WHERE event_id = ?")
            .bind(event_id)
            .fetch_one(db.store.pool())
            .await
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

fn links_to(span: &Value, other: &Value) -> bool {
    span["links"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["trace_id"] == other["trace_id"] && l["span_id"] == other["span_id"])
}

/// `00-<trace>-<span>-01` of a span.
fn traceparent_of(span: &Value) -> String {
    format!("00-{}-{}-01", span["trace_id"].as_str().unwrap(), span["span_id"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emitted_event_is_one_trace_from_the_callers_context_to_the_ledger_and_events_merged() {
    let receiver = Receiver::start();
    let config = emulator_config("trace").build().unwrap();
    let merged_sub = format!("{}-trace", config.names().merged_topic);
    provision_for_tests(&config, Topology::OrderedWithoutDeadLetters, &[&merged_sub]).await;
    let db = TestDb::new("trace").await;
    let log = std::env::temp_dir().join(format!("suitex-trace-worker-{}.log", unique()));
    let w = worker(&config, &db, &receiver.env(), &log);

    let receipt = emit(&config, &order_event("SO-1", Some(request_traceparent())), &receiver.env());
    let event_id = receipt["event_id"].as_str().unwrap().to_string();
    let merged = receive(&config, &config.subscription_path(&merged_sub), 1, Duration::from_secs(60)).await;
    assert_eq!(merged.len(), 1, "the event reached events.merged");

    // The emitting process: create (a child of the caller's span), publish (a child of the
    // caller's span too, linked to the create span).
    let create = receiver.span("suitex-events", &format!("{} create", config.names().raw_topic)).await;
    assert_eq!(
        (create["trace_id"].as_str(), create["parent_span_id"].as_str()),
        (Some(TRACE), Some(REQUEST_SPAN))
    );
    assert_eq!(create["kind"], "producer");
    assert_eq!(attr(&create, "messaging.system"), "gcp_pubsub");
    assert_eq!(attr(&create, "messaging.destination.name"), config.names().raw_topic.as_str());
    assert_eq!(attr(&create, "messaging.gcp_pubsub.message.ordering_key"), "77:sales_order:SO-1");
    assert_eq!(attr(&create, "event_id"), event_id.as_str());
    // Unsigned integers travel as their decimal text (OTLP attributes are signed).
    assert_eq!(attr(&create, "account_id"), "77");
    let publish = receiver.span("suitex-events", &format!("{} publish", config.names().raw_topic)).await;
    assert_eq!(
        (publish["trace_id"].as_str(), publish["parent_span_id"].as_str()),
        (Some(TRACE), Some(REQUEST_SPAN))
    );
    assert_eq!(publish["kind"], "client");
    assert!(links_to(&publish, &create), "publish is linked to its create span: {publish}");

    // The worker: receive (a child of the create span), the INSERT (linked to the receive span),
    // settle (a child of receive).
    let receive_span =
        receiver.span("suitex-events-worker", &format!("{} receive", config.names().raw_subscription)).await;
    assert_eq!(receive_span["trace_id"], TRACE);
    assert_eq!(receive_span["parent_span_id"], create["span_id"]);
    assert_eq!(receive_span["kind"], "consumer");
    assert_eq!(attr(&receive_span, "messaging.message.id"), &receipt["message_id"]);
    assert_eq!(attr(&receive_span, "event_id"), event_id.as_str());
    let insert = receiver.span("suitex-events-worker", "INSERT event_store").await;
    assert_eq!(
        (attr(&insert, "db.system"), attr(&insert, "db.collection.name")),
        (&json!("mysql"), &json!("event_store"))
    );
    assert!(links_to(&insert, &receive_span), "the INSERT is linked to the receive span: {insert}");
    let ack =
        receiver.span("suitex-events-worker", &format!("{} ack", config.names().raw_subscription)).await;
    assert_eq!(
        (ack["trace_id"].as_str(), ack["parent_span_id"].as_str()),
        (Some(TRACE), receive_span["span_id"].as_str())
    );
    assert_eq!(attr(&ack, "messaging.operation.type"), "settle");

    // The feeder: its publish to events.merged is linked to the create span.
    let merged_publish =
        receiver.span("suitex-events-worker", &format!("{} publish", config.names().merged_topic)).await;
    assert!(
        links_to(&merged_publish, &create),
        "the events.merged publish is linked to the create span: {merged_publish}"
    );
    assert_eq!(merged_publish["kind"], "producer");
    assert_eq!(
        (attr(&merged_publish, "ledger.seq.first"), attr(&merged_publish, "ledger.seq.last")),
        (&json!(1), &json!(1))
    );

    // The context the event carries — in the ledger row, on events.merged, in its attributes:
    // the create span's, beside the caller's tracestate.
    let metadata = stored_metadata(&db, &event_id).await;
    assert_eq!(
        metadata["traceparent"],
        traceparent_of(&create),
        "the ledger row holds the create span's context"
    );
    assert_eq!(metadata["tracestate"], "suitex=web");
    assert_eq!(metadata["source"], "suitex-web");
    let m = &merged[0];
    assert_eq!(attr_of(m, "googclient_traceparent"), traceparent_of(&create));
    assert_eq!(attr_of(m, "googclient_tracestate"), "suitex=web");
    let body: Value = serde_json::from_slice(&m.data).unwrap();
    assert_eq!(body["metadata"]["traceparent"], traceparent_of(&create));

    // The worker's JSON logs: one object a line, the event's line under its trace.
    stop(w);
    let logs = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = logs.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    let acked = lines
        .iter()
        .find(|l| l["event_id"] == event_id.as_str() && l["message"] == "stored and acked")
        .unwrap_or_else(|| panic!("the worker logged the event's ack: {logs}"));
    assert_eq!(acked["logging.googleapis.com/trace"], format!("projects/suitex-local/traces/{TRACE}"));
    assert_eq!(acked["logging.googleapis.com/spanId"], ack["span_id"]);
    assert_eq!(acked["logging.googleapis.com/trace_sampled"], true);
    // And as an operator reads them: jq, line by line.
    let jq = Command::new("jq")
        .args(["-r", r#"select(.message == "stored and acked") | ."logging.googleapis.com/trace""#])
        .arg(&log)
        .output()
        .expect("jq (scripts/setup --test installs it)");
    assert!(jq.status.success(), "jq reads every line: {}", String::from_utf8_lossy(&jq.stderr));
    assert_eq!(String::from_utf8_lossy(&jq.stdout).trim(), format!("projects/suitex-local/traces/{TRACE}"));
    let _ = std::fs::remove_file(&log);
}

fn attr_of<'a>(m: &'a google_cloud_pubsub::model::Message, key: &str) -> &'a str {
    m.attributes.get(key).map(String::as_str).unwrap_or_else(|| panic!("attribute {key} on {m:?}"))
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`: the same spans reach an OTLP/gRPC receiver, from a
/// short-lived command (which sends them before it exits) and from the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_otlp_over_grpc_the_emit_and_worker_spans_reach_a_grpc_receiver() {
    let receiver = Receiver::start_grpc();
    assert!(receiver.env().contains(&("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into())));
    let config = emulator_config("tracegrpc").build().unwrap();
    provision_for_tests(&config, Topology::OrderedWithoutDeadLetters, &[]).await;
    let db = TestDb::new("tracegrpc").await;
    let log = std::env::temp_dir().join(format!("suitex-trace-grpc-worker-{}.log", unique()));
    let w = worker(&config, &db, &receiver.env(), &log);

    let receipt = emit(&config, &order_event("SO-G", Some(request_traceparent())), &receiver.env());
    let event_id = receipt["event_id"].as_str().unwrap().to_string();
    let create = receiver.span("suitex-events", &format!("{} create", config.names().raw_topic)).await;
    assert_eq!(create["protocol"], "grpc");
    assert_eq!(
        (create["trace_id"].as_str(), create["parent_span_id"].as_str()),
        (Some(TRACE), Some(REQUEST_SPAN))
    );
    assert_eq!(attr(&create, "event_id"), event_id.as_str());
    let receive_span =
        receiver.span("suitex-events-worker", &format!("{} receive", config.names().raw_subscription)).await;
    assert_eq!(receive_span["protocol"], "grpc");
    assert_eq!(receive_span["parent_span_id"], create["span_id"]);
    let insert = receiver.span("suitex-events-worker", "INSERT event_store").await;
    assert!(links_to(&insert, &receive_span), "the INSERT is linked to the receive span: {insert}");
    stop(w);
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_spool_the_relay_carries_the_context_unchanged_and_links_its_publish() {
    let receiver = Receiver::start();
    let config = emulator_config("trace-spool").build().unwrap();
    provision_for_tests(&config, Topology::OrderedWithoutDeadLetters, &[]).await;
    let db = TestDb::new("trace_spool").await;
    let spool = std::env::temp_dir().join(format!("suitex-trace-spool-{}", unique()));
    let mut spooled = receiver.env();
    spooled.push(("SUITEX_EVENTS_SPOOL", spool.display().to_string()));

    let receipt = emit(&config, &order_event("SO-2", Some(request_traceparent())), &spooled);
    assert_eq!(receipt["spooled"], true);
    let event_id = receipt["event_id"].as_str().unwrap().to_string();
    let create = receiver.span("suitex-events", &format!("{} create", config.names().raw_topic)).await;
    assert_eq!(
        (create["trace_id"].as_str(), create["parent_span_id"].as_str()),
        (Some(TRACE), Some(REQUEST_SPAN))
    );

    let out = command(&config, &["relay", "--until-empty"], &spooled).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "relay: {}", String::from_utf8_lossy(&out.stderr));
    let relayed =
        receiver.span("suitex-events-relay", &format!("{} publish", config.names().raw_topic)).await;
    assert!(links_to(&relayed, &create), "the relay's publish is linked to the create span: {relayed}");
    assert_eq!(relayed["kind"], "producer");
    assert_ne!(relayed["trace_id"], TRACE, "a root span: the relay publishes for many requests at once");

    let log = std::env::temp_dir().join(format!("suitex-trace-spool-worker-{}.log", unique()));
    let w = worker(&config, &db, &receiver.env(), &log);
    let receive_span =
        receiver.span("suitex-events-worker", &format!("{} receive", config.names().raw_subscription)).await;
    stop(w);
    assert_eq!(
        receive_span["parent_span_id"], create["span_id"],
        "the worker continues the web tier's create span"
    );
    let metadata = stored_metadata(&db, &event_id).await;
    assert_eq!(metadata["traceparent"], traceparent_of(&create), "the relay carried the context unchanged");
    assert_eq!(metadata["tracestate"], "suitex=web");
    let _ = std::fs::remove_dir_all(&spool);
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_otel_variables_nothing_is_recorded_and_the_callers_context_is_carried_as_given() {
    let config = emulator_config("trace-off").build().unwrap();
    let merged_sub = format!("{}-off", config.names().merged_topic);
    provision_for_tests(&config, Topology::OrderedWithoutDeadLetters, &[&merged_sub]).await;
    let db = TestDb::new("trace_off").await;
    let log = std::env::temp_dir().join(format!("suitex-trace-off-{}.log", unique()));
    let w = worker(&config, &db, &[], &log);
    // No OTEL_* at all: no create span is recorded, so the event carries the caller's context
    // exactly (a recorded span would have put its own span id there).
    let receipt = emit(&config, &order_event("SO-3", Some(request_traceparent())), &[]);
    let untraced = emit(&config, &order_event("SO-4", None), &[]);
    let merged = receive(&config, &config.subscription_path(&merged_sub), 2, Duration::from_secs(60)).await;
    stop(w);
    assert_eq!(merged.len(), 2);
    let by_id: HashMap<&str, &google_cloud_pubsub::model::Message> =
        merged.iter().map(|m| (attr_of(m, "event_id"), m)).collect();
    let traced = by_id[receipt["event_id"].as_str().unwrap()];
    assert_eq!(attr_of(traced, "googclient_traceparent"), request_traceparent());
    let metadata = stored_metadata(&db, receipt["event_id"].as_str().unwrap()).await;
    assert_eq!(metadata["traceparent"], request_traceparent());
    let plain = by_id[untraced["event_id"].as_str().unwrap()];
    assert!(!plain.attributes.contains_key("googclient_traceparent"), "no context, no attribute: {plain:?}");
    assert!(stored_metadata(&db, untraced["event_id"].as_str().unwrap()).await.get("traceparent").is_none());
    // The worker's logs carry no trace fields when nothing is recorded.
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(!logs.contains("logging.googleapis.com/trace"), "{logs}");
    let _ = std::fs::remove_file(&log);
}

#[test]
fn a_malformed_traceparent_is_refused_by_name_at_emit() {
    let config = Config::builder("suitex-local").emulators("127.0.0.1:1", "127.0.0.1:1").build().unwrap();
    let mut event = order_event("SO-5", None);
    event["metadata"]["traceparent"] = "00-not-a-trace-01".into();
    let mut child = command(&config, &["emit"], &[]).spawn().unwrap();
    child.stdin.take().unwrap().write_all(event.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(65), "refused as invalid input");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metadata.traceparent"), "{err}");
    assert!(err.contains("4 dash-separated parts") || err.contains("not 4"), "{err}");
}
