//! Payloads reach the ledger number for number, or are refused naming the value's path — never
//! stored altered (docs/architecture.md §2.1, "Exact payloads"). One corpus,
//! `tests/data/exact_payloads.json` (shared with the C and PHP tests), through every way in: the
//! SDK's text and wire entry points, `suitex-events emit`, and a producer outside the SDK — a
//! Python publisher on `events.raw` — through the worker into MariaDB.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use suitex_events::Event;
use suitex_events::store::Selection;
use suitex_events::worker::WorkerOptions;
use suitex_events::worker::dlq::{self, Filter};
use suitex_test_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_suitex-events");

#[derive(serde::Deserialize, Clone)]
struct Case {
    name: String,
    /// The payload's JSON text, exactly as a producer sends it.
    payload: String,
    /// What the ledger returns for it, when it is stored.
    stored: Option<String>,
    /// The field (the value's path) a refusal names, and words its message contains.
    field: Option<String>,
    error: Option<String>,
}

fn corpus() -> Vec<Case> {
    serde_json::from_str(include_str!("data/exact_payloads.json")).expect("the corpus is JSON")
}

/// An input envelope carrying `payload` verbatim.
fn input(case: &Case, account: u64) -> String {
    format!(
        r#"{{"account_id":{account},"aggregate_type":"probe","aggregate_id":{},"event_type":"probe.exact","payload":{}}}"#,
        Value::String(case.name.clone()),
        case.payload
    )
}

/// The wire form of an event carrying `payload` verbatim, as another producer would publish it.
fn wire(case: &Case, account: u64) -> (String, String) {
    let event = Event::builder()
        .account_id(account)
        .aggregate("probe", case.name.clone())
        .event_type("probe.exact")
        .payload(Value::Null)
        .build()
        .unwrap();
    let text = String::from_utf8(event.to_wire_json()).unwrap();
    assert!(text.contains(r#""payload":null"#), "{text}");
    (
        event.event_id().to_string(),
        text.replacen(r#""payload":null"#, &format!(r#""payload":{}"#, case.payload), 1),
    )
}

fn check_refusal(case: &Case, field: &str, message: &str, failures: &mut Vec<String>) {
    let (want_field, want) = (case.field.as_deref().unwrap(), case.error.as_deref().unwrap());
    if !field.ends_with(want_field) || !message.contains(want) {
        failures.push(format!("{}: expected [{want_field}] …{want}…, got [{field}] {message}", case.name));
    }
}

#[test]
fn the_corpus_has_both_kinds_and_names_each_refusal() {
    let cases = corpus();
    assert!(cases.iter().filter(|c| c.stored.is_some()).count() >= 5);
    assert!(cases.iter().filter(|c| c.field.is_some()).count() >= 10);
    for c in &cases {
        assert!(c.stored.is_some() != c.field.is_some(), "{}: exactly one outcome", c.name);
        assert_eq!(c.field.is_some(), c.error.is_some(), "{}", c.name);
    }
}

#[test]
fn input_text_and_the_wire_form_store_exactly_or_refuse_naming_the_path() {
    let mut failures = Vec::new();
    for case in corpus() {
        let from_input = Event::from_input_json(input(&case, 1).as_bytes());
        let decoded = Event::decode(wire(&case, 1).1.as_bytes());
        for (how, outcome) in [("from_input_json", from_input), ("decode", decoded)] {
            match (outcome, &case.stored) {
                (Ok(e), Some(stored)) => {
                    let text = e.payload().json_text().unwrap().into_owned();
                    if &text != stored {
                        failures.push(format!("{} ({how}): stored as {text}, expected {stored}", case.name));
                    }
                }
                (Ok(e), None) => failures.push(format!(
                    "{} ({how}): accepted as {}",
                    case.name,
                    e.payload().json_text().unwrap()
                )),
                (Err(e), None) => check_refusal(&case, e.field(), &e.to_string(), &mut failures),
                (Err(e), Some(_)) => failures.push(format!("{} ({how}): refused: {e}", case.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `suitex-events emit` with `stdin`, no Pub/Sub reachable: a refusal must come before any
/// connection.
fn cli_emit(stdin: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .arg("emit")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_cli_refuses_each_inexact_payload_before_connecting_and_names_its_path() {
    let mut failures = Vec::new();
    let refused: Vec<Case> = corpus().into_iter().filter(|c| c.field.is_some()).collect();
    for case in &refused {
        let out = cli_emit(&input(case, 1));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            failures.push(format!("{}: exit 0", case.name));
            continue;
        }
        let field = case.field.as_deref().unwrap();
        check_refusal(case, if stderr.contains(field) { field } else { "" }, &stderr, &mut failures);
    }
    // A batch names the event too.
    let out = cli_emit(&format!("[{},{}]", input(&corpus()[0], 1), input(&refused[0], 1)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("events[1].{}", refused[0].field.as_deref().unwrap());
    assert!(!out.status.success() && stderr.contains(&want), "{stderr}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Publishes `messages` (wire JSON and its `event_id`) to `topic` on the emulator from Python's
/// standard library, through the emulator's REST interface: a producer that is not this SDK.
fn python_publish(topic: &str, messages: &[(String, String)]) {
    const SCRIPT: &str = r#"
import base64, json, os, sys, urllib.request
host, topic = os.environ["PUBSUB_EMULATOR_HOST"], sys.argv[1]
messages = [{"data": base64.b64encode(text.encode()).decode(), "attributes": {"event_id": event_id}}
            for event_id, text in json.load(sys.stdin)]
request = urllib.request.Request(f"http://{host}/v1/{topic}:publish",
    data=json.dumps({"messages": messages}).encode(), headers={"Content-Type": "application/json"})
ids = json.load(urllib.request.urlopen(request))["messageIds"]
assert len(ids) == len(messages), ids
print(len(ids))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT, topic])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(&serde_json::to_vec(messages).unwrap()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python publisher: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), messages.len().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_python_publisher_the_worker_stores_exactly_or_dead_letters_with_the_path() {
    let config = emulator_config("exact").build().unwrap();
    provision_for_tests(&config, Topology::UnorderedWithDeadLetters, &[]).await;
    let db = TestDb::new("exact").await;
    let cases = corpus();
    let messages: Vec<(String, String)> = cases.iter().map(|c| wire(c, 31)).collect();
    python_publish(&config.raw_topic_path(), &messages);

    let options = WorkerOptions {
        batch_wait: Duration::from_millis(10),
        backoff_min: Duration::from_millis(100),
        shutdown_deadline: Duration::from_secs(5),
        lease_extension: Duration::from_secs(10),
        ..WorkerOptions::default()
    };
    let worker = RunningWorker::start(&config, &db.settings, options).await;
    let stored_n = cases.iter().filter(|c| c.stored.is_some()).count();
    let refused_n = cases.len() - stored_n;
    // Listing leaves the dead letters where they are.
    let mut letters = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while letters.len() < refused_n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        letters = dlq::list(&config, &Filter::default()).await.unwrap();
    }
    eventually(Duration::from_secs(30), "the exact payloads are stored", || async {
        db.rows().await == stored_n as u64
    })
    .await;
    worker.stop().await;

    let mut failures = Vec::new();
    let rows = db.store.read_after(&Selection::All, 0, 1000).await.unwrap();
    assert_eq!(rows.len(), stored_n, "only the exact payloads are stored");
    for (case, (event_id, _)) in cases.iter().zip(&messages) {
        let row = rows.iter().find(|r| r.event.event_id().to_string() == *event_id);
        match (&case.stored, row) {
            (Some(stored), Some(row)) => {
                let text = row.event.payload().json_text().unwrap().into_owned();
                // MariaDB keeps the text the worker wrote; compare values, and the text too.
                let (got, want): (Value, Value) =
                    (serde_json::from_str(&text).unwrap(), serde_json::from_str(stored).unwrap());
                if got != want || &text != stored {
                    failures.push(format!("{}: stored {text}, expected {stored}", case.name));
                }
            }
            (Some(_), None) => failures.push(format!("{}: not stored", case.name)),
            (None, Some(row)) => failures.push(format!(
                "{}: stored altered as {}",
                case.name,
                row.event.payload().json_text().unwrap()
            )),
            (None, None) => {}
        }
    }
    // Each refused event is on events.dlq, and reading it again names the path and the limit.
    assert_eq!(letters.len(), refused_n, "every refused event is dead-lettered, once");
    for (case, (event_id, _)) in cases.iter().zip(&messages).filter(|(c, _)| c.field.is_some()) {
        match letters.iter().find(|d| d.event_id.as_deref() == Some(event_id.as_str())) {
            Some(d) => {
                let why = d.envelope_error.clone().unwrap_or_default();
                let field = case.field.as_deref().unwrap();
                check_refusal(case, if why.starts_with(field) { field } else { "" }, &why, &mut failures);
            }
            None => failures.push(format!("{}: not dead-lettered", case.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
