//! The worker on `events.raw-sub` exactly as production has it — message ordering AND a
//! dead-letter policy, which the official emulator cannot run — using the Pub/Sub fake.

use google_cloud_auth::credentials::anonymous;
use google_cloud_pubsub::client::Publisher;
use google_cloud_pubsub::model::Message;
use pubsub_fake::{DeadLetterPolicy, PubSubFake, Subscription};
use serde_json::json;
use std::time::Duration;
use suitex_events::config::{Endpoint, Names};
use suitex_events::worker::WorkerOptions;
use suitex_events::envelope::Payload;
use suitex_events::consume::merged::MergedEvent;
use suitex_events::store::Selection;
use suitex_events::{Config, Emitter, Event};
use suitex_test_support::*;

fn production_topology(fake: &PubSubFake) -> Config {
    let config = Config::builder("suitex-local")
        .pubsub_endpoint(Endpoint::emulator(&fake.endpoint()))
        .storage_endpoint(Endpoint::emulator(&required_env("STORAGE_EMULATOR_HOST")))
        .names(Names::default())
        .build()
        .unwrap();
    for t in ["events.raw", "events.merged", "events.dlq"] {
        fake.create_topic(&config.topic_path(t)).unwrap();
    }
    let sub = |name: &str, topic: &str| Subscription {
        name: config.subscription_path(name),
        topic: config.topic_path(topic),
        ack_deadline_seconds: 60,
        enable_message_ordering: true,
        ..Default::default()
    };
    fake.create_subscription(Subscription {
        dead_letter_policy: Some(DeadLetterPolicy {
            dead_letter_topic: config.topic_path("events.dlq"),
            max_delivery_attempts: 5,
        }),
        ..sub("events.raw-sub", "events.raw")
    })
    .unwrap();
    fake.create_subscription(sub("events.dlq-sub", "events.dlq")).unwrap();
    fake.create_subscription(sub("events.merged-sub", "events.merged")).unwrap();
    config
}

fn options() -> WorkerOptions {
    WorkerOptions {
        batch_wait: Duration::from_millis(10),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        shutdown_deadline: Duration::from_secs(5),
        ..WorkerOptions::default()
    }
}

fn event(aggregate_id: &str, seq: u64) -> Event {
    Event::builder()
        .account_id(31)
        .aggregate("customer", aggregate_id)
        .event_type("customer.updated")
        .payload(json!({"seq": seq}))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_ordered_subscription_poison_is_dead_lettered_after_five_attempts_then_its_key_flows() {
    let fake = pubsub_fake::start().await;
    let config = production_topology(&fake);
    let db = TestDb::new("fake_dlq").await;

    // A poison message first on the key, then three healthy events of the same aggregate.
    let key = event("K-1", 0).ordering_key();
    Publisher::builder(config.raw_topic_path())
        .with_endpoint(fake.endpoint())
        .with_credentials(anonymous::Builder::new().build())
        .build()
        .await
        .unwrap()
        .publish(Message::new().set_data("not json").set_ordering_key(key.clone()))
        .await
        .unwrap();
    let emitter = Emitter::connect(config.clone()).await.unwrap();
    let healthy: Vec<Event> = (1..=3).map(|s| event("K-1", s)).collect();
    for r in emitter.emit_events(healthy.clone()).await.unwrap() {
        r.unwrap();
    }

    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    let dead =
        receive(&config, &config.subscription_path("events.dlq-sub"), 1, Duration::from_secs(60)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(&dead[0].data[..], b"not json");
    assert_eq!(dead[0].ordering_key, key);
    assert_eq!(attr(&dead[0], "CloudPubSubDeadLetterSourceDeliveryCount"), "5");
    assert_eq!(attr(&dead[0], "CloudPubSubDeadLetterSourceSubscription"), "events.raw-sub");

    eventually(Duration::from_secs(30), "the three healthy events are stored", || async {
        db.rows().await == 3
    })
    .await;
    let stream = db
        .store
        .read(
            &Selection::Aggregate {
                account_id: 31,
                aggregate_type: "customer".into(),
                aggregate_id: "K-1".into(),
            },
            0,
            10,
        )
        .await
        .unwrap();
    let seqs: Vec<u64> = stream
        .iter()
        .map(|s| match s.event.payload() {
            Payload::Inline(v) => v["seq"].as_u64().unwrap(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3], "the key continues, in order, once the poison is dead-lettered");
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(metrics.poison.get(), 5, "one nack per delivery attempt");
    assert_eq!(fake.backlog(&config.subscription_path("events.raw-sub")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_after_a_lost_ack_is_one_row_and_reaches_events_merged_again() {
    let fake = pubsub_fake::start().await;
    let config = production_topology(&fake);
    let db = TestDb::new("fake_lost_ack").await;
    fake.lose_next_acks(&config.subscription_path("events.raw-sub"), 1);
    let e = event("L-1", 0);
    Emitter::connect(config.clone()).await.unwrap().emit_event(e.clone()).await.unwrap();

    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    let merged =
        receive(&config, &config.subscription_path("events.merged-sub"), 2, Duration::from_secs(30)).await;
    assert_eq!(merged.len(), 2, "stored once, published after each delivery");
    let decoded: Vec<MergedEvent> = merged.iter().map(|m| MergedEvent::decode(&m.data).unwrap()).collect();
    assert_eq!(decoded[0].store_id, decoded[1].store_id);
    assert_eq!(decoded[0].event, e);
    assert_eq!(db.rows().await, 1);
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(metrics.appended.get(), 1);
    assert_eq!(metrics.duplicates.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pubsub_outage_on_events_merged_is_retried_without_burning_delivery_attempts() {
    let fake = pubsub_fake::start().await;
    let config = production_topology(&fake);
    let db = TestDb::new("fake_merged_down").await;
    // The next 8 publishes to events.merged fail with a retryable-by-us, non-retried-by-the-
    // client status: the worker must back off and retry, never nack.
    fake.fail_next_publishes(&config.topic_path("events.merged"), 8, tonic::Code::FailedPrecondition);
    let e = event("M-1", 0);
    Emitter::connect(config.clone()).await.unwrap().emit_event(e.clone()).await.unwrap();
    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    let merged =
        receive(&config, &config.subscription_path("events.merged-sub"), 1, Duration::from_secs(60)).await;
    assert_eq!(merged.len(), 1);
    assert_eq!(MergedEvent::decode(&merged[0].data).unwrap().event, e);
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert!(metrics.transient_retries.get() >= 8, "{:?}", metrics.transient_retries);
    assert_eq!(metrics.poison.get(), 0, "nothing was nacked");
    assert_eq!(db.rows().await, 1);
    assert_eq!(fake.backlog(&config.subscription_path("events.dlq-sub")), 0, "nothing was dead-lettered");
}
