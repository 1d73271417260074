//! Every rule of the envelope, broken one at a time: each input must be refused with the exact
//! message in `tests/data/bad_envelopes.json` (shared with the PHP and C binding tests).

use serde_json::Value;
use suitex_events::Event;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    event: Option<Value>,
    raw: Option<String>,
    field: String,
    error: String,
}

fn corpus() -> Vec<Case> {
    let text = include_str!("data/bad_envelopes.json");
    serde_json::from_str(text).expect("the corpus is valid JSON")
}

#[test]
fn corpus_covers_at_least_thirty_rules() {
    assert!(corpus().len() >= 30);
}

#[test]
fn every_bad_envelope_is_refused_with_its_expected_message() {
    let mut failures = Vec::new();
    for case in corpus() {
        let bytes = match (&case.raw, &case.event) {
            (Some(raw), _) => raw.clone().into_bytes(),
            (None, Some(v)) => serde_json::to_vec(v).unwrap(),
            (None, None) => panic!("case {:?} has neither raw nor event", case.name),
        };
        match Event::from_input_json(&bytes) {
            Ok(_) => failures.push(format!("{}: was accepted", case.name)),
            Err(e) => {
                if e.field() != case.field || e.to_string() != case.error {
                    failures.push(format!(
                        "{}:\n   expected [{}] {}\n        got [{}] {}",
                        case.name,
                        case.field,
                        case.error,
                        e.field(),
                        e
                    ));
                }
            }
        }
        // The parsed-value entry point (used by the PHP binding) must agree with the text one.
        if let Some(v) = &case.event {
            match Event::from_input(v.clone()) {
                Ok(_) => failures.push(format!("{}: from_input accepted it", case.name)),
                Err(e) if e.to_string() != case.error => {
                    failures.push(format!("{}: from_input says {e}", case.name))
                }
                Err(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_unbroken_base_event_is_accepted() {
    let base = serde_json::json!({
        "account_id": 42, "aggregate_type": "customer", "aggregate_id": "C-1001",
        "event_type": "customer.updated", "payload": {"name": "Ada"}
    });
    Event::from_input(base).expect("the base of every case is valid");
}
