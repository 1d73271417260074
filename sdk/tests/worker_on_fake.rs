//! The worker on `events.raw-sub` exactly as production has it — message ordering AND a
//! dead-letter policy, which the official emulator cannot run — using the Pub/Sub fake.

use google_cloud_auth::credentials::anonymous;
use google_cloud_pubsub::client::Publisher;
use google_cloud_pubsub::model::Message;
use pubsub_fake::{Outcome, PubSubFake};
use serde_json::json;
use std::time::Duration;
use suitex_events::consume::merged::MergedEvent;
use suitex_events::store::Selection;
use suitex_events::worker::WorkerOptions;
use suitex_events::{Config, Emitter, Event};
use suitex_test_support::*;

async fn production_topology(fake: &PubSubFake) -> Config {
    fake_topology(fake, "onfake").await
}

fn options() -> WorkerOptions {
    quick_worker_options()
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
async fn on_an_ordered_subscription_poison_is_dead_lettered_after_five_attempts_and_parks_its_key_until_skipped()
 {
    let fake = pubsub_fake::start().await;
    let config = production_topology(&fake).await;
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
    let dead = receive(
        &config,
        &config.subscription_path(&config.names().dlq_subscription),
        1,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(&dead[0].data[..], b"not json");
    assert_eq!(dead[0].ordering_key, key);
    assert_eq!(attr(&dead[0], "CloudPubSubDeadLetterSourceDeliveryCount"), "5");
    assert_eq!(attr(&dead[0], "CloudPubSubDeadLetterSourceSubscription"), "events.raw-sub");

    // The key is parked behind its dead letter: the healthy events are kept aside, in order,
    // not stored after it (docs/architecture.md §2.5 "Parked keys").
    eventually(Duration::from_secs(30), "the three healthy events are kept aside", || async {
        db.store.open_parks().await.unwrap().get(&key).is_some_and(|p| p.parked_events == 3)
    })
    .await;
    assert_eq!(db.rows().await, 0);
    let park = db.store.open_parks().await.unwrap().remove(&key).unwrap();
    assert_eq!(park.event_id, None, "a body that is not JSON names no event");
    // It can never be stored: the operator skips it, and the key flows in its order.
    db.store
        .release(&park, suitex_events::store::Release::Skipped, None, "ops", "not an event")
        .await
        .unwrap()
        .unwrap();
    let stream = db
        .store
        .read_after(
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
    let seqs: Vec<u64> =
        stream.iter().map(|s| s.event.payload().to_value().unwrap()["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3], "the key continues, in order, once its dead letter is skipped");
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(metrics.poison.get(), 5, "one nack per delivery attempt");
    // The fake hands out the poison and the three healthy events of the key together, as
    // Pub/Sub does: the healthy ones are held back (nacked, never stored) while the poison is
    // still to be redelivered, and kept aside — acked — in the round its last attempt is spent.
    let raw = config.subscription_path(&config.names().raw_subscription);
    let acks: Vec<i32> =
        fake.settlements(&raw).iter().filter(|s| s.outcome == Outcome::Ack).map(|s| s.attempt).collect();
    assert_eq!(
        acks,
        [5, 5, 5],
        "the healthy events were acked once (kept aside), after the poison's last attempt"
    );
    assert_eq!(fake.backlog(&config.subscription_path(&config.names().raw_subscription)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_after_a_lost_ack_is_one_row_and_reaches_events_merged_once() {
    let fake = pubsub_fake::start().await;
    let config = production_topology(&fake).await;
    let db = TestDb::new("fake_lost_ack").await;
    fake.lose_next_acks(&config.subscription_path(&config.names().raw_subscription), 1);
    let e = event("L-1", 0);
    Emitter::connect(config.clone()).await.unwrap().emit_event(e.clone()).await.unwrap();

    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    let merged_sub = config.subscription_path("events.merged-sub");
    let merged = receive(&config, &merged_sub, 1, Duration::from_secs(30)).await;
    assert_eq!(merged.len(), 1);
    let decoded = MergedEvent::decode(&merged[0].data).unwrap();
    assert_eq!(decoded.event, e);
    assert_eq!((decoded.seq, decoded.aggregate_version), (1, 1));
    eventually(Duration::from_secs(30), "the redelivery is settled as a duplicate", || async {
        worker.metrics.duplicates.get() == 1
    })
    .await;
    let again = receive(&config, &merged_sub, 1, Duration::from_secs(2)).await;
    assert!(again.is_empty(), "events.merged holds the row once (it is fed from the ledger)");
    assert_eq!(db.rows().await, 1);
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(metrics.appended.get(), 1);
    assert_eq!(metrics.duplicates.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pubsub_outage_on_events_merged_is_retried_without_burning_delivery_attempts() {
    let fake = pubsub_fake::start().await;
    let config = production_topology(&fake).await;
    let db = TestDb::new("fake_merged_down").await;
    // The next 8 publishes to events.merged fail with a status the client does not retry: the
    // feeder must back off and publish the row again; the raw message is acked once stored.
    fake.fail_next_publishes(
        &config.topic_path(&config.names().merged_topic),
        8,
        tonic::Code::FailedPrecondition,
    );
    let e = event("M-1", 0);
    Emitter::connect(config.clone()).await.unwrap().emit_event(e.clone()).await.unwrap();
    let mut o = options();
    o.feeder.backoff = (Duration::from_millis(20), Duration::from_millis(500));
    let worker = RunningWorker::start(&config, &db.settings, o).await;
    let merged =
        receive(&config, &config.subscription_path("events.merged-sub"), 1, Duration::from_secs(60)).await;
    assert_eq!(merged.len(), 1);
    assert_eq!(MergedEvent::decode(&merged[0].data).unwrap().event, e);
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(metrics.poison.get(), 0, "nothing was nacked");
    assert_eq!(metrics.merged_published.get(), 1);
    assert_eq!(db.rows().await, 1);
    let raw = config.subscription_path(&config.names().raw_subscription);
    let acks: Vec<i32> =
        fake.settlements(&raw).iter().filter(|s| s.outcome == Outcome::Ack).map(|s| s.attempt).collect();
    assert_eq!(acks, [1], "acked on its first delivery, whatever events.merged did");
    assert_eq!(
        fake.backlog(&config.subscription_path(&config.names().dlq_subscription)),
        0,
        "nothing was dead-lettered"
    );
}

/// An event whose payload is nested deeper than the ledger holds (40 levels; MariaDB refuses
/// more than 31): a producer outside the SDK could publish it, and the worker refuses it as
/// poison when it decodes it (envelope/exact.rs), before the database would refuse the row.
fn too_deep_for_the_ledger(aggregate_id: &str) -> Event {
    let text = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    Event::builder()
        .account_id(31)
        .aggregate("customer", aggregate_id)
        .event_type("customer.updated")
        .payload(json!(null))
        .build()
        .unwrap()
        .with_payload(suitex_events::Payload::Raw(serde_json::value::RawValue::from_string(text).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_holds_back_the_later_events_of_its_key_and_its_dead_letter_parks_them() {
    let fake = pubsub_fake::start().await;
    let config = production_topology(&fake).await;
    let db = TestDb::new("fake_fence").await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();
    let poison = too_deep_for_the_ledger("F-1");
    let mut batch = vec![poison.clone()];
    batch.extend((1..=2).map(|s| event("F-1", s)));
    batch.push(event("F-2", 1)); // another key flows at once
    for r in emitter.emit_events(batch).await.unwrap() {
        r.unwrap();
    }
    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    let dlq = config.subscription_path(&config.names().dlq_subscription);
    let dead = receive(&config, &dlq, 1, Duration::from_secs(60)).await;
    assert_eq!(attr(&dead[0], "event_id"), poison.event_id().to_string());
    eventually(Duration::from_secs(30), "F-1's healthy events are kept aside, F-2's stored", || async {
        db.rows().await == 1
            && db
                .store
                .open_parks()
                .await
                .unwrap()
                .get(&poison.ordering_key())
                .is_some_and(|p| p.parked_events == 2)
    })
    .await;
    let metrics = worker.metrics.clone();
    worker.stop().await;
    let park = db.store.open_parks().await.unwrap().remove(&poison.ordering_key()).unwrap();
    assert_eq!(park.event_id, Some(poison.event_id().to_string()));
    db.store
        .release(&park, suitex_events::store::Release::Skipped, None, "ops", "too deep for the ledger")
        .await
        .unwrap()
        .unwrap();
    let f1 = db
        .store
        .read_after(
            &Selection::Aggregate {
                account_id: 31,
                aggregate_type: "customer".into(),
                aggregate_id: "F-1".into(),
            },
            0,
            10,
        )
        .await
        .unwrap();
    let seqs: Vec<u64> =
        f1.iter().map(|s| s.event.payload().to_value().unwrap()["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2]);
    let raw = config.subscription_path(&config.names().raw_subscription);
    let settled = fake.settlements(&raw);
    let f1_acks: Vec<i32> = settled
        .iter()
        .filter(|s| s.outcome == Outcome::Ack && s.ordering_key == poison.ordering_key())
        .map(|s| s.attempt)
        .collect();
    assert_eq!(f1_acks, [5, 5], "F-1's healthy events were never stored ahead of the refused one");
    let f2_acks: Vec<i32> = settled
        .iter()
        .filter(|s| s.outcome == Outcome::Ack && s.ordering_key == event("F-2", 0).ordering_key())
        .map(|s| s.attempt)
        .collect();
    assert_eq!(f2_acks, [1], "another key is not held back");
    assert_eq!(metrics.poison.get(), 5);
    assert_eq!(fake.backlog(&dlq), 0, "only the refused event was dead-lettered (and consumed above)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_stored_upper_case_by_another_writer_is_a_duplicate_not_a_stuck_worker() {
    let fake = pubsub_fake::start().await;
    let config = production_topology(&fake).await;
    let e = event("U-1", 1);
    // Another writer stored this event with its id in upper case.
    let db = TestDb::new("fake_upper").await;
    sqlx::query(
        "INSERT INTO event_store (account_id, event_id, aggregate_type, aggregate_id, event_type, payload, occurred_at) \
         VALUES (31, ?, 'customer', 'U-1', 'customer.updated', '{\"seq\": 1}', UTC_TIMESTAMP(6))",
    )
    .bind(e.event_id().to_string().to_uppercase())
    .execute(db.store.pool())
    .await
    .unwrap();
    let stored_id: u64 =
        sqlx::query_scalar("SELECT id FROM event_store").fetch_one(db.store.pool()).await.unwrap();

    Emitter::connect(config.clone()).await.unwrap().emit_event(e.clone()).await.unwrap();
    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    let merged =
        receive(&config, &config.subscription_path("events.merged-sub"), 1, Duration::from_secs(30)).await;
    assert_eq!(merged.len(), 1, "the duplicate was re-published, not stuck");
    assert_eq!(MergedEvent::decode(&merged[0].data).unwrap().store_id, stored_id);
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(db.rows().await, 1, "no second row");
    assert_eq!(metrics.duplicates.get(), 1);
    assert_eq!(metrics.poison.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_stored_with_other_content_is_poison_never_acked_or_published() {
    let fake = pubsub_fake::start().await;
    let config = production_topology(&fake).await;
    let db = TestDb::new("fake_conflict").await;
    let original = event("D-1", 1);
    db.store.append(std::slice::from_ref(&original)).await.unwrap();
    // The same event_id, reused for another payload and another aggregate.
    let reused = Event::builder()
        .event_id(original.event_id())
        .account_id(31)
        .aggregate("customer", "D-2")
        .event_type("customer.updated")
        .payload(json!({"seq": 99}))
        .build()
        .unwrap();
    let payload_only = Event::builder()
        .account_id(31)
        .aggregate("customer", "D-1")
        .event_type("customer.updated")
        .payload(json!({"seq": 2}))
        .build()
        .unwrap();
    db.store.append(std::slice::from_ref(&payload_only)).await.unwrap();
    let reused_payload = Event::builder()
        .event_id(payload_only.event_id())
        .account_id(31)
        .aggregate("customer", "D-1")
        .event_type("customer.updated")
        .payload(json!({"seq": 3}))
        .build()
        .unwrap();
    let emitter = Emitter::connect(config.clone()).await.unwrap();
    for r in emitter.emit_events(vec![reused.clone(), reused_payload.clone()]).await.unwrap() {
        r.unwrap();
    }
    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    let dlq = config.subscription_path(&config.names().dlq_subscription);
    let dead = receive(&config, &dlq, 2, Duration::from_secs(60)).await;
    let mut dead_ids: Vec<&str> = dead.iter().map(|m| attr(m, "event_id")).collect();
    dead_ids.sort();
    let mut want = vec![reused.event_id().to_string(), reused_payload.event_id().to_string()];
    want.sort();
    assert_eq!(dead_ids, want, "both reuses were dead-lettered");
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(metrics.duplicates.get(), 0, "neither was taken for a duplicate");
    assert_eq!(db.rows().await, 2);
    // events.merged holds the two stored rows as stored: nothing of the reuses.
    let merged: Vec<MergedEvent> =
        receive(&config, &config.subscription_path("events.merged-sub"), 3, Duration::from_secs(5))
            .await
            .iter()
            .map(|m| MergedEvent::decode(&m.data).unwrap())
            .collect();
    assert_eq!(merged.iter().map(|m| m.event.clone()).collect::<Vec<_>>(), vec![original, payload_only]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_holds_no_more_resolved_payload_bytes_than_its_limit() {
    let fake = pubsub_fake::start().await;
    let config = production_topology(&fake).await;
    let db = TestDb::new("fake_bytes").await;
    // Eight claim-checks of ~400 KiB each: 3.2 MiB in all, against a limit of 1 MiB per batch.
    let events: Vec<Event> = (0..8)
        .map(|i| {
            Event::builder()
                .account_id(31)
                .aggregate("customer", format!("B-{i}"))
                .event_type("customer.snapshot")
                .payload(json!({"i": i, "fill": "b".repeat(400 * 1024)}))
                .build()
                .unwrap()
        })
        .collect();
    for r in Emitter::connect(config.clone()).await.unwrap().emit_events(events).await.unwrap() {
        assert_eq!(r.unwrap().payload_location, suitex_events::PayloadLocation::ClaimCheck);
    }
    let limit = 1024 * 1024;
    let worker =
        RunningWorker::start(&config, &db.settings, WorkerOptions { batch_max_bytes: limit, ..options() })
            .await;
    eventually(Duration::from_secs(60), "every event is stored", || async { db.rows().await == 8 }).await;
    let metrics = worker.metrics.clone();
    worker.stop().await;
    let peak = metrics.peak_batch_payload_bytes();
    assert!(peak > 400 * 1024, "the payloads were counted: {peak}");
    assert!(peak <= limit as u64, "a batch held {peak} bytes of payloads; the limit is {limit}");
}
