//! Worker processes as they run in production: several sharing the subscription, and one
//! killed with SIGKILL in the middle of a load and restarted.

use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command};
use std::time::Duration;
use suitex_events::store::StoreSettings;
use suitex_events::{Config, Emitter, Event};
use suitex_test_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_suitex-events");

/// Starts `suitex-events worker` with every setting from the environment, as in production.
fn spawn_worker(config: &Config, db: &StoreSettings, log: &str) -> Child {
    spawn_worker_process(
        BIN,
        config,
        db,
        log,
        &[("SUITEX_WORKER_LEASE_EXTENSION", "10s"), ("SUITEX_WORKER_BATCH_WAIT", "10ms")],
    )
}

/// Per-aggregate event sequences, interleaved across aggregates.
fn load(account: u64, aggregates: usize, per_aggregate: u64) -> Vec<Event> {
    let mut events = Vec::new();
    for seq in 0..per_aggregate {
        for a in 0..aggregates {
            events.push(
                Event::builder()
                    .account_id(account)
                    .aggregate("order", format!("O-{a}"))
                    .event_type("order.changed")
                    .payload(json!({"seq": seq, "pad": "p".repeat(200)}))
                    .build()
                    .unwrap(),
            );
        }
    }
    events
}

async fn emit_all(emitter: &Emitter, events: &[Event]) {
    for chunk in events.chunks(1000) {
        for r in emitter.emit_events(chunk.to_vec()).await.unwrap() {
            r.unwrap();
        }
    }
}

async fn stored_event_ids(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar("SELECT event_id FROM event_store").fetch_all(db.store.pool()).await.unwrap()
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "the worker exits 0 on SIGTERM: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_store_every_event_once_in_emission_order_per_aggregate() {
    let config = emulator_config("two").build().unwrap();
    provision_for_tests(&config, Topology::OrderedWithoutDeadLetters, &[]).await;
    let db = TestDb::new("two").await;
    let a = spawn_worker(&config, &db.settings, "suitex-two-a.log");
    let b = spawn_worker(&config, &db.settings, "suitex-two-b.log");
    let events = load(41, 100, 50); // 5,000 events over 100 aggregates
    emit_all(&Emitter::connect(config.clone()).await.unwrap(), &events).await;
    eventually(Duration::from_secs(180), "5,000 rows are stored", || async { db.rows().await >= 5000 }).await;
    stop(a);
    stop(b);

    let ids = stored_event_ids(&db).await;
    assert_eq!(ids.len(), 5000, "every event stored exactly once");
    let want: HashSet<String> = events.iter().map(|e| e.event_id().to_string()).collect();
    assert_eq!(ids.into_iter().collect::<HashSet<_>>(), want);
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT aggregate_id, JSON_EXTRACT(payload, '$.seq') FROM event_store ORDER BY id")
            .fetch_all(db.store.pool())
            .await
            .unwrap();
    let mut per_aggregate: HashMap<String, Vec<u64>> = HashMap::new();
    for (agg, seq) in rows {
        per_aggregate.entry(agg).or_default().push(seq.parse().unwrap());
    }
    assert_eq!(per_aggregate.len(), 100);
    for (agg, seqs) in per_aggregate {
        assert_eq!(seqs, (0..50).collect::<Vec<_>>(), "aggregate {agg}: store ids follow emission order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_load_and_restarted_loses_nothing_and_stores_nothing_twice() {
    // On the Pub/Sub fake with events.raw-sub exactly as in production (ordered, dead-lettering
    // after 5): the official emulator never gives back some of the ordering keys a killed
    // client held, so it cannot show that nothing is lost.
    let fake = pubsub_fake::start().await;
    let config = Config::builder("suitex-local")
        .pubsub_endpoint(suitex_events::config::Endpoint::emulator(&fake.endpoint()))
        .storage_endpoint(suitex_events::config::Endpoint::emulator(&required_env("STORAGE_EMULATOR_HOST")))
        .names(unique_names("kill"))
        .build()
        .unwrap();
    let n = config.names();
    for t in [&n.raw_topic, &n.merged_topic, &n.dlq_topic] {
        fake.create_topic(&config.topic_path(t)).unwrap();
    }
    fake.create_subscription(pubsub_fake::Subscription {
        name: config.subscription_path(&n.raw_subscription),
        topic: config.raw_topic_path(),
        enable_message_ordering: true,
        ack_deadline_seconds: 10,
        dead_letter_policy: Some(pubsub_fake::DeadLetterPolicy {
            dead_letter_topic: config.topic_path(&n.dlq_topic),
            max_delivery_attempts: 5,
        }),
        ..Default::default()
    })
    .unwrap();
    let dlq_sub = config.subscription_path(&n.dlq_subscription);
    fake.create_subscription(pubsub_fake::Subscription {
        name: dlq_sub.clone(),
        topic: config.topic_path(&n.dlq_topic),
        ..Default::default()
    })
    .unwrap();

    let db = TestDb::new("kill").await;
    let events = load(42, 50, 200); // 10,000 events over 50 aggregates
    emit_all(&Emitter::connect(config.clone()).await.unwrap(), &events).await;

    let mut first = spawn_worker(&config, &db.settings, "suitex-kill-1.log");
    eventually(Duration::from_secs(120), "the first worker has stored some events", || async {
        db.rows().await >= 1500
    })
    .await;
    first.kill().unwrap(); // SIGKILL: no shutdown; its leases simply run out
    first.wait().unwrap();
    let at_kill = db.rows().await;
    assert!(at_kill < 10_000, "killed in the middle ({at_kill} of 10,000 stored)");

    let second = spawn_worker(&config, &db.settings, "suitex-kill-2.log");
    eventually(Duration::from_secs(180), "all 10,000 events are stored", || async {
        db.rows().await >= 10_000
    })
    .await;
    eventually(Duration::from_secs(60), "events.raw-sub is drained", || async {
        fake.backlog(&config.subscription_path(&n.raw_subscription)) == 0
    })
    .await;
    stop(second);

    let ids = stored_event_ids(&db).await;
    assert_eq!(ids.len(), 10_000, "no event stored twice");
    let want: HashSet<String> = events.iter().map(|e| e.event_id().to_string()).collect();
    assert_eq!(ids.into_iter().collect::<HashSet<_>>(), want, "none missing");
    assert_eq!(fake.backlog(&dlq_sub), 0, "no healthy event was dead-lettered");
}
