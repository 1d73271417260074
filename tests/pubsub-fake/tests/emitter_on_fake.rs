//! The SDK emitter against the fake: the production paths the emulator cannot exercise.

use pubsub_fake::{PubSubFake, Subscription};
use serde_json::json;
use std::time::Duration;
use suitex_events::config::{Endpoint, Names};
use suitex_events::{Config, Emitter, Event};
use tonic::Code;

const RAW: &str = "projects/suitex-local/topics/events.raw";

fn config(fake: &PubSubFake, deadline: Duration) -> Config {
    Config::builder("suitex-local")
        .pubsub_endpoint(Endpoint::emulator(&fake.endpoint()))
        .storage_endpoint(Endpoint::emulator("127.0.0.1:1"))
        .names(Names::default())
        .publish_deadline(deadline)
        .build()
        .unwrap()
}

fn event(aggregate_id: &str, n: u32) -> Event {
    Event::builder()
        .account_id(42)
        .aggregate("customer", aggregate_id)
        .event_type("customer.updated")
        .payload(json!({"n": n}))
        .build()
        .unwrap()
}

async fn received(fake: &PubSubFake, sub: &str, n: usize) -> Vec<serde_json::Value> {
    let subscriber = google_cloud_pubsub::client::Subscriber::builder()
        .with_endpoint(fake.endpoint())
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .build()
        .await
        .unwrap();
    let mut stream = subscriber.subscribe(sub).build();
    let mut out = Vec::new();
    while out.len() < n {
        let (m, h) =
            tokio::time::timeout(Duration::from_secs(20), stream.next()).await.unwrap().unwrap().unwrap();
        h.ack();
        out.push(serde_json::from_slice::<serde_json::Value>(&m.data).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitter_resumes_an_ordering_key_paused_by_a_failed_publish() {
    let fake = pubsub_fake::start().await;
    fake.create_topic(RAW).unwrap();
    let sub = "projects/suitex-local/subscriptions/probe";
    fake.create_subscription(Subscription {
        name: sub.into(),
        topic: RAW.into(),
        enable_message_ordering: true,
        ..Default::default()
    })
    .unwrap();
    let emitter = Emitter::connect(config(&fake, Duration::from_secs(5))).await.unwrap();

    fake.fail_next_publishes(RAW, 1, Code::FailedPrecondition);
    let err = emitter.emit_event(event("C-1", 1)).await.unwrap_err();
    assert!(err.is_publish(), "{err}");
    assert!(!err.is_transient(), "FAILED_PRECONDITION is not transient: {err}");
    // Without the emitter's resume, the official client would answer "publishing is paused".
    let second = emitter.emit_event(event("C-1", 2)).await.expect("the key was resumed");
    assert!(!second.message_id.is_empty());
    let third = emitter.emit_event(event("C-1", 3)).await.unwrap();

    let got = received(&fake, sub, 2).await;
    assert_eq!(got[0]["event_id"], second.event_id.to_string());
    assert_eq!(got[1]["event_id"], third.event_id.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_inside_a_batch_fails_the_rest_of_its_key_and_resumes_it() {
    let fake = pubsub_fake::start().await;
    fake.create_topic(RAW).unwrap();
    let config = Config::builder("suitex-local")
        .pubsub_endpoint(Endpoint::emulator(&fake.endpoint()))
        .storage_endpoint(Endpoint::emulator("127.0.0.1:1"))
        // One message per request, so the injected failure hits exactly the first event.
        .batching(suitex_events::config::Batching { max_messages: 1, ..Default::default() })
        .build()
        .unwrap();
    let emitter = Emitter::connect(config).await.unwrap();
    fake.fail_next_publishes(RAW, 1, Code::FailedPrecondition);
    let results = emitter.emit_events(vec![event("C-1", 1), event("C-1", 2), event("C-1", 3)]).await.unwrap();
    assert!(results.iter().all(|r| r.is_err()), "{results:?}");
    assert!(results[1].as_ref().unwrap_err().to_string().contains("paused"), "{:?}", results[1]);
    emitter.emit_event(event("C-1", 4)).await.expect("the key was resumed after the batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_pubsub_fails_the_emit_at_its_deadline_and_the_key_recovers() {
    let fake = pubsub_fake::start().await;
    fake.create_topic(RAW).unwrap();
    let emitter = Emitter::connect(config(&fake, Duration::from_secs(1))).await.unwrap();
    fake.set_response_delay(Duration::from_secs(3));
    let err = emitter.emit_event(event("C-9", 1)).await.unwrap_err();
    assert!(err.is_deadline_exceeded(), "{err}");
    assert_eq!(err.to_string(), format!("publishing to {RAW} did not complete within 1s"));
    fake.set_response_delay(Duration::ZERO);
    // The abandoned publish completes in the background; the key keeps working.
    emitter.emit_event_within(event("C-9", 2), Duration::from_secs(10)).await.expect("the key is not stuck");
}
