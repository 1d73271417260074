//! `consume::Inbox` (beneath the PHP extension's `Inbox`) against the Pub/Sub emulator, with
//! fake-gcs-server behind a relay the test takes down and brings back.

use serde_json::json;
use std::time::Duration;
use suitex_events::config::Config;
use suitex_events::consume::Inbox;
use suitex_events::envelope::{Event, Payload};
use suitex_events::{Emitter, PayloadLocation};
use suitex_test_support::*;

fn oversized(aggregate_id: &str) -> Event {
    Event::builder()
        .account_id(11)
        .aggregate("invoice", aggregate_id)
        .event_type("invoice.synced")
        .payload(json!({"id": aggregate_id, "lines": "x".repeat(4096)}))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_keeps_the_batch_without_spending_delivery_attempts() {
    let names = unique_names("inbox");
    let pubsub = required_env("PUBSUB_EMULATOR_HOST");
    let storage = required_env("STORAGE_EMULATOR_HOST");
    let config = Config::builder("suitex-local")
        .emulators(&pubsub, &storage)
        .names(names.clone())
        .offload_threshold(1024)
        .build()
        .unwrap();
    // Dead-lettering on: the emulator then counts delivery attempts.
    provision_for_tests(&config, Topology::UnorderedWithDeadLetters, &[]).await;

    let emitter = Emitter::connect(config.clone()).await.unwrap();
    let events = [oversized("INV-1"), oversized("INV-2")];
    for e in &events {
        let receipt = emitter.emit_event(e.clone()).await.expect("emit");
        assert_eq!(receipt.payload_location, PayloadLocation::ClaimCheck);
    }

    let relay = Relay::start(storage.trim_start_matches("http://").trim_end_matches('/')).await;
    let through_relay = Config::builder("suitex-local")
        .emulators(&pubsub, &relay.url())
        .names(names)
        .offload_threshold(1024)
        .build()
        .unwrap();
    let inbox = Inbox::connect(through_relay).await.unwrap().with_fetch_deadline(Duration::from_secs(2));

    // Cloud Storage is down: nothing can be resolved, the pull says so, and loses nothing.
    relay.set_up(false);
    let err = inbox.pull(10, Duration::from_secs(10)).await.expect_err("no claim-check can be resolved");
    assert!(err.is_transient(), "a storage outage must be transient: {err}");
    assert!(err.to_string().contains("downloading gs://"), "{err}");

    // Back up: the same deliveries come first, on their first attempt, with their payloads.
    relay.set_up(true);
    let mut got = Vec::new();
    for _ in 0..5 {
        if got.len() == events.len() {
            break;
        }
        got.extend(inbox.pull(10, Duration::from_secs(1)).await.expect("pull after the outage"));
    }
    assert_eq!(got.len(), events.len(), "the batch held during the outage was not handed out again");
    for d in &got {
        assert_eq!(d.delivery_attempt, 1, "the outage spent a delivery attempt on {}", d.message_id);
        let event = d.event.as_ref().expect("resolved");
        let sent = events.iter().find(|e| e.event_id() == event.event_id()).expect("an emitted event");
        assert!(matches!(event.payload(), Payload::Raw(_) | Payload::Inline(_)), "resolved inline");
        assert_eq!(event.payload(), sent.payload());
    }
    assert_ne!(got[0].event.as_ref().unwrap().event_id(), got[1].event.as_ref().unwrap().event_id());

    inbox.ack(got.iter().map(|d| d.ack_id.clone()).collect()).await.unwrap();
    let after = inbox.pull(10, Duration::from_secs(2)).await.unwrap();
    assert!(after.is_empty(), "acked deliveries came back: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_check_declared_larger_than_the_maximum_is_poison_before_any_download() {
    let config = emulator_config("toolarge").offload_threshold(1024).build().unwrap();
    provision_for_tests(&config, Topology::UnorderedWithDeadLetters, &[]).await;
    // A genuine claim-check, then the same message with its reference claiming 40 MiB.
    let e = oversized("INV-9");
    Emitter::connect(config.clone()).await.unwrap().emit_event(e.clone()).await.unwrap();
    let inbox = Inbox::connect(config.clone()).await.unwrap();
    let genuine = inbox.pull(1, Duration::from_secs(10)).await.unwrap().remove(0);
    inbox.ack(vec![genuine.ack_id]).await.unwrap();
    let mut wire: serde_json::Value = serde_json::from_slice(&e.to_wire_json()).unwrap();
    let r = &genuine.event.as_ref().unwrap();
    assert_eq!(r.event_id(), e.event_id());
    let object = list_objects(&config.names().payload_bucket, "11/").await.remove(0);
    let bytes = download(&config.names().payload_bucket, &object).await;
    wire.as_object_mut().unwrap().remove("payload");
    wire["payload_ref"] = json!({
        "bucket": config.names().payload_bucket,
        "object": object,
        "generation": 1,
        "sha256": suitex_events::claim_check::sha256_hex(&bytes),
        "size": 40u64 << 20,
    });
    let publisher = google_cloud_pubsub::client::Publisher::builder(config.raw_topic_path())
        .with_endpoint(format!("http://{}", required_env("PUBSUB_EMULATOR_HOST")))
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .build()
        .await
        .unwrap();
    publisher
        .publish(google_cloud_pubsub::model::Message::new().set_data(serde_json::to_vec(&wire).unwrap()))
        .await
        .unwrap();
    let forged = inbox.pull(1, Duration::from_secs(10)).await.unwrap().remove(0);
    let why = forged.event.expect_err("a reference above the maximum payload is poison").to_string();
    assert!(
        why.contains(&format!("is {} bytes by its reference; the limit is {}", 40u64 << 20, 32u64 << 20)),
        "{why}"
    );
    inbox.ack(vec![forged.ack_id]).await.unwrap();
}
