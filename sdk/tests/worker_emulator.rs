//! The worker against the Pub/Sub emulator, fake-gcs-server and MariaDB: emit → events.raw →
//! worker → event_store → events.merged, with poison, duplicates, replay and redrive.

use google_cloud_auth::credentials::anonymous;
use google_cloud_pubsub::client::Publisher;
use google_cloud_pubsub::model::Message;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use suitex_events::consume::merged::MergedEvent;
use suitex_events::envelope::Payload;
use suitex_events::store::{Appended, Selection};
use suitex_events::worker::WorkerOptions;
use suitex_events::worker::dlq::{self, Filter};
use suitex_events::worker::replay::Replayer;
use suitex_events::{Config, Emitter, Event};
use suitex_test_support::*;

fn options() -> WorkerOptions {
    WorkerOptions { lease_extension: Duration::from_secs(10), ..quick_worker_options() }
}

fn event(account: u64, aggregate_id: &str, seq: u64) -> Event {
    Event::builder()
        .account_id(account)
        .aggregate("customer", aggregate_id)
        .event_type("customer.updated")
        .payload(json!({"seq": seq, "name": "Zoë", "x": 1.5, "none": null, "empty": {}}))
        .build()
        .unwrap()
}

fn merged_sub(config: &Config) -> String {
    format!("{}-sub", config.names().merged_topic)
}

async fn merged(config: &Config, n: usize) -> Vec<MergedEvent> {
    receive(config, &config.subscription_path(&merged_sub(config)), n, Duration::from_secs(60))
        .await
        .iter()
        .map(|m| MergedEvent::decode(&m.data).expect("events.merged carries the merged form"))
        .collect()
}

/// What reaches `events.dlq-sub` within a minute (up to `n` messages).
async fn dead_letters(config: &Config, n: usize) -> Vec<Message> {
    receive(config, &config.subscription_path(&config.names().dlq_subscription), n, Duration::from_secs(60))
        .await
}

async fn raw_publisher(config: &Config) -> Publisher {
    Publisher::builder(config.raw_topic_path())
        .with_endpoint(format!("http://{}", required_env("PUBSUB_EMULATOR_HOST")))
        .with_credentials(anonymous::Builder::new().build())
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_from_emit_to_the_store_and_events_merged() {
    let config = emulator_config("flow").build().unwrap();
    provision_for_tests(&config, Topology::OrderedWithoutDeadLetters, &[&merged_sub(&config)]).await;
    let db = TestDb::new("flow").await;
    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();

    let mut events: Vec<Event> = Vec::new();
    for seq in 0..10 {
        for agg in 0..5 {
            events.push(event(21, &format!("F-{agg}"), seq));
        }
    }
    let big = Event::builder()
        .account_id(21)
        .aggregate("customer", "F-big")
        .event_type("customer.snapshot")
        .payload(json!({"blob": "é".repeat(200_000), "n": 3}))
        .build()
        .unwrap();
    events.push(big.clone());
    for r in emitter.emit_events(events.clone()).await.unwrap() {
        r.unwrap();
    }
    eventually(Duration::from_secs(60), "51 rows are stored", || async { db.rows().await == 51 }).await;

    for agg in 0..5 {
        let stream = db
            .store
            .read_after(
                &Selection::Aggregate {
                    account_id: 21,
                    aggregate_type: "customer".into(),
                    aggregate_id: format!("F-{agg}"),
                },
                0,
                100,
            )
            .await
            .unwrap();
        let seqs: Vec<u64> = stream
            .iter()
            .map(|s| {
                s.event.payload().to_value().expect("stored payloads are inline")["seq"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(seqs, (0..10).collect::<Vec<_>>(), "aggregate F-{agg}: store ids follow emission order");
    }
    let stored_big = db
        .store
        .read_after(
            &Selection::Aggregate {
                account_id: 21,
                aggregate_type: "customer".into(),
                aggregate_id: "F-big".into(),
            },
            0,
            1,
        )
        .await
        .unwrap();
    assert_eq!(stored_big[0].event, big, "the full offloaded payload is in MySQL");

    let got = merged(&config, 51).await;
    assert_eq!(got.len(), 51);
    let all = db.store.read_after(&Selection::Tenant { account_id: 21 }, 0, 100).await.unwrap();
    let ids: HashMap<String, u64> = all.iter().map(|s| (s.event.event_id().to_string(), s.id)).collect();
    for m in &got {
        assert!(!m.replayed);
        assert_eq!(ids[&m.event.event_id().to_string()], m.store_id, "merged carries the store id");
    }
    let big_merged = got.iter().find(|m| m.event.event_id() == big.event_id()).unwrap();
    assert!(
        matches!(big_merged.event.payload(), Payload::ClaimCheck(_)),
        "a large payload travels as a reference"
    );

    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(metrics.appended.get(), 51);
    assert_eq!(metrics.in_flight.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_store_one_row_which_reaches_events_merged_once() {
    let config = emulator_config("dup").build().unwrap();
    provision_for_tests(&config, Topology::OrderedWithoutDeadLetters, &[&merged_sub(&config)]).await;
    let db = TestDb::new("dup").await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();

    // The same event published twice.
    let twice = event(22, "D-1", 0);
    emitter.emit_event(twice.clone()).await.unwrap();
    emitter.emit_event(twice.clone()).await.unwrap();
    // An event stored before its message is worked on (an earlier attempt died between the
    // commit and the ack): its redelivery is a duplicate.
    let committed = event(22, "D-2", 0);
    let Appended::Stored(committed_id) = db.store.append(std::slice::from_ref(&committed)).await.unwrap()[0]
    else {
        panic!()
    };
    emitter.emit_event(committed.clone()).await.unwrap();

    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    // events.merged is fed from the ledger: each row once, whatever was delivered how often.
    let got = merged(&config, 2).await;
    assert_eq!(got.len(), 2, "every row reaches events.merged");
    eventually(Duration::from_secs(30), "every delivery is settled", || async {
        worker.metrics.appended.get() + worker.metrics.duplicates.get() == 3
    })
    .await;
    let later =
        receive(&config, &config.subscription_path(&merged_sub(&config)), 1, Duration::from_secs(2)).await;
    assert!(later.is_empty(), "no second copy of a row: {later:?}");
    assert_eq!(db.rows().await, 2, "one row per event_id");
    let (Some(first), Some(late)) = (
        got.iter().find(|m| m.event.event_id() == twice.event_id()),
        got.iter().find(|m| m.event.event_id() == committed.event_id()),
    ) else {
        panic!("both rows reached events.merged: {got:?}")
    };
    assert_eq!(late.store_id, committed_id);
    assert_eq!((late.seq, first.seq), (1, 2), "in ledger order");
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(metrics.appended.get(), 1);
    assert_eq!(metrics.duplicates.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_after_exactly_five_attempts_and_healthy_events_flow() {
    // Scenario 3 on the official emulator: events.raw-sub without ordering (the emulator
    // crashes on ordering + dead-lettering; the ordered variant runs on the Pub/Sub fake).
    let config = emulator_config("poison").build().unwrap();
    provision_for_tests(&config, Topology::UnorderedWithDeadLetters, &[]).await;
    let db = TestDb::new("poison").await;
    let worker = RunningWorker::start(&config, &db.settings, options()).await;

    let publisher = raw_publisher(&config).await;
    publisher
        .publish(Message::new().set_data("{\"not\": \"an envelope\"}").set_attributes([("origin", "test")]))
        .await
        .unwrap();
    let healthy = event(23, "P-1", 0);
    Emitter::connect(config.clone()).await.unwrap().emit_event(healthy.clone()).await.unwrap();

    let dead = dead_letters(&config, 1).await;
    assert_eq!(dead.len(), 1, "the poison message reached events.dlq");
    assert_eq!(&dead[0].data[..], b"{\"not\": \"an envelope\"}");
    assert_eq!(attr(&dead[0], "origin"), "test");
    assert_eq!(attr(&dead[0], "CloudPubSubDeadLetterSourceDeliveryCount"), "5", "{:?}", dead[0].attributes);
    eventually(Duration::from_secs(30), "the healthy event is stored", || async { db.rows().await == 1 })
        .await;
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(metrics.poison.get(), 5, "nacked on each of its five deliveries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_claim_check_is_poison_and_never_stored() {
    let config = emulator_config("tamper").offload_threshold(1024).build().unwrap();
    provision_for_tests(&config, Topology::UnorderedWithDeadLetters, &[]).await;
    let db = TestDb::new("tamper").await;
    let big = Event::builder()
        .account_id(24)
        .aggregate("customer", "T-1")
        .event_type("customer.snapshot")
        .payload(json!("a".repeat(5000)))
        .build()
        .unwrap();
    Emitter::connect(config.clone()).await.unwrap().emit_event(big.clone()).await.unwrap();
    // Replace the object's bytes behind the reference's back (no precondition).
    let original = serde_json::to_vec(&json!("a".repeat(5000))).unwrap();
    let object =
        suitex_events::claim_check::object_name(&big, &suitex_events::claim_check::sha256_hex(&original));
    let resp = reqwest::Client::new()
        .post(format!("{}/upload/storage/v1/b/{}/o", storage_url(), config.names().payload_bucket))
        .query(&[("uploadType", "media"), ("name", object.as_str())])
        .body(format!("\"{}\"", "b".repeat(4998)))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());

    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    let dead = dead_letters(&config, 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(attr(&dead[0], "event_id"), big.event_id().to_string());
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(db.rows().await, 0, "a payload that fails its checksum is never stored");
    assert_eq!(metrics.poison.get(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_publishes_exactly_the_selected_events_marked_replayed() {
    let config = emulator_config("replay").build().unwrap();
    provision_for_tests(&config, Topology::OrderedWithoutDeadLetters, &[&merged_sub(&config)]).await;
    let db = TestDb::new("replay").await;
    let mut events = Vec::new();
    for seq in 0..4 {
        events.push(event(25, "R-1", seq));
        events.push(event(25, "R-2", seq));
        events.push(event(26, "R-1", seq));
    }
    let ids: Vec<u64> = db.store.append(&events).await.unwrap().iter().map(|a| a.id().unwrap()).collect();
    let replayer = Replayer::new(config.clone(), db.store.clone()).await.unwrap();
    let merged_path = config.subscription_path(&merged_sub(&config));
    let merged_topic = config.topic_path(&config.names().merged_topic);
    let keys = ["25:customer:R-1", "25:customer:R-2", "26:customer:R-1"];

    let cases: Vec<(Selection, Vec<u64>)> = vec![
        (
            Selection::Aggregate {
                account_id: 25,
                aggregate_type: "customer".into(),
                aggregate_id: "R-1".into(),
            },
            vec![ids[0], ids[3], ids[6], ids[9]],
        ),
        (Selection::Tenant { account_id: 26 }, vec![ids[2], ids[5], ids[8], ids[11]]),
        (Selection::IdRange { from: ids[4], to: ids[7], account_id: None }, ids[4..=7].to_vec()),
        (Selection::IdRange { from: ids[4], to: ids[7], account_id: Some(25) }, vec![ids[4], ids[6], ids[7]]),
    ];
    for (selection, expected) in cases {
        let mut progress = Vec::new();
        let n = replayer.replay(&selection, Some(1000.0), |d| progress.push(d)).await.unwrap();
        assert_eq!(n, expected.len() as u64, "{selection:?}");
        assert_eq!(progress.last().copied(), Some(n));
        let sentinels = publish_sentinels(&config, &merged_topic, &keys).await;
        let sentinels: Vec<&str> = sentinels.iter().map(String::as_str).collect();
        let before = receive_until(&config, &merged_path, &sentinels, Duration::from_secs(30)).await;
        let got: Vec<MergedEvent> = before.iter().map(|m| MergedEvent::decode(&m.data).unwrap()).collect();
        let mut got_ids: Vec<u64> = got.iter().map(|m| m.store_id).collect();
        got_ids.sort();
        assert_eq!(got_ids, expected, "{selection:?} replays exactly its events");
        assert!(got.iter().all(|m| m.replayed), "replayed events are marked");
        assert!(before.iter().all(|m| attr(m, "replayed") == "true"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_moves_exactly_the_selected_dead_letters_back_to_events_raw() {
    let config = emulator_config("redrive").build().unwrap();
    let probe = provision_with_probe(&config).await;
    // Three dead letters as Pub/Sub leaves them: original attributes plus its own.
    let dlq_publisher = Publisher::builder(config.topic_path(&config.names().dlq_topic))
        .with_endpoint(format!("http://{}", required_env("PUBSUB_EMULATOR_HOST")))
        .with_credentials(anonymous::Builder::new().build())
        .build()
        .await
        .unwrap();
    let letters = [event(27, "X-1", 0), event(28, "X-2", 0), event(27, "X-3", 0)];
    for e in &letters {
        let mut m = raw_message(e);
        m.attributes.insert("CloudPubSubDeadLetterSourceDeliveryCount".into(), "5".into());
        m.attributes.insert(
            "CloudPubSubDeadLetterSourceSubscription".into(),
            config.names().raw_subscription.clone(),
        );
        dlq_publisher.publish(m).await.unwrap();
    }
    let listed = dlq::list(&config, &Filter { account_id: Some(27), ..Filter::default() }).await.unwrap();
    let mut listed_ids: Vec<String> = listed.iter().map(|d| d.event_id.clone().unwrap()).collect();
    listed_ids.sort();
    let mut want = vec![letters[0].event_id().to_string(), letters[2].event_id().to_string()];
    want.sort();
    assert_eq!(listed_ids, want, "list filters by tenant");
    assert!(listed.iter().all(|d| d.delivery_count == Some(5)));
    assert_eq!(dlq::list(&config, &Filter::default()).await.unwrap().len(), 3, "listing consumes nothing");

    let report = dlq::redrive(&config, &Filter { account_id: Some(27), ..Filter::default() }).await.unwrap();
    assert_eq!(report.redriven.len(), 2);
    assert!(report.failed.is_empty());

    let keys: Vec<String> = letters.iter().map(|e| e.ordering_key()).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let sentinels = publish_sentinels(&config, &config.raw_topic_path(), &keys).await;
    let sentinels: Vec<&str> = sentinels.iter().map(String::as_str).collect();
    let before = receive_until(&config, &probe, &sentinels, Duration::from_secs(30)).await;
    let got: HashSet<String> = before.iter().map(|m| attr(m, "event_id").to_string()).collect();
    assert_eq!(
        got,
        want.iter().cloned().collect::<HashSet<_>>(),
        "exactly the redriven events are back on events.raw"
    );
    for m in &before {
        assert!(m.attributes.keys().all(|k| !k.starts_with("CloudPubSubDeadLetter")), "{:?}", m.attributes);
        let e = Event::decode(&m.data).unwrap();
        assert_eq!(m.ordering_key, e.ordering_key());
    }
    let left = dlq::list(&config, &Filter::default()).await.unwrap();
    assert_eq!(left.len(), 1, "only the other tenant's dead letter is left");
    assert_eq!(left[0].event_id.as_deref(), Some(letters[1].event_id().to_string().as_str()));
    let _: Value = serde_json::to_value(&left[0]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_check_pointing_at_another_events_object_is_poison_and_never_stored() {
    let config = emulator_config("forged").offload_threshold(1024).build().unwrap();
    provision_for_tests(&config, Topology::UnorderedWithDeadLetters, &[]).await;
    let db = TestDb::new("forged").await;
    let payload = json!({"secret": "a".repeat(5000)});
    let victim = Event::builder()
        .account_id(31)
        .aggregate("customer", "V-1")
        .event_type("customer.snapshot")
        .payload(payload.clone())
        .build()
        .unwrap();
    Emitter::connect(config.clone()).await.unwrap().emit_event(victim.clone()).await.unwrap();
    // Another tenant's raw message whose reference is the victim's object, exact in bucket,
    // size and sha256: only the name ties an object to its event.
    let bytes = serde_json::to_vec(&payload).unwrap();
    let sha256 = suitex_events::claim_check::sha256_hex(&bytes);
    let stolen = suitex_events::envelope::ClaimCheckRef {
        bucket: config.names().payload_bucket.clone(),
        object: suitex_events::claim_check::object_name(&victim, &sha256),
        generation: 0,
        size: bytes.len() as u64,
        sha256,
    };
    let forged = Event::builder()
        .account_id(32)
        .aggregate("customer", "F-1")
        .event_type("customer.snapshot")
        .payload(json!({}))
        .build()
        .unwrap()
        .with_payload(Payload::ClaimCheck(stolen));
    raw_publisher(&config)
        .await
        .publish(
            Message::new()
                .set_data(forged.to_wire_json())
                .set_attributes([("event_id", forged.event_id().to_string())]),
        )
        .await
        .unwrap();

    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    let dead = dead_letters(&config, 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(attr(&dead[0], "event_id"), forged.event_id().to_string());
    eventually(Duration::from_secs(30), "the victim's own event stored", || async { db.rows().await == 1 })
        .await;
    let metrics = worker.metrics.clone();
    worker.stop().await;
    let stored = db.store.count(&suitex_events::store::Selection::Tenant { account_id: 32 }).await.unwrap();
    assert_eq!(stored, 0, "the forged event never borrows another tenant's payload");
    assert_eq!(metrics.poison.get(), 5);
}
