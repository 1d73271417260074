//! Every wait of the worker has a deadline, and SIGTERM is honoured even while the database or
//! Cloud Storage hangs. A hung server is a relay that keeps connections open and passes nothing
//! (`RelayMode::Frozen`): calls neither fail nor finish, which no outage test can show.

use serde_json::json;
use std::time::Duration;
use suitex_events::consume::puller::Puller;
use suitex_events::store::EventStore;
use suitex_events::worker::WorkerOptions;
use suitex_events::{Emitter, Event};
use suitex_test_support::*;

fn event(aggregate_id: &str, seq: u64, payload_bytes: usize) -> Event {
    Event::builder()
        .account_id(71)
        .aggregate("order", aggregate_id)
        .event_type("order.changed")
        .payload(json!({"seq": seq, "fill": "x".repeat(payload_bytes)}))
        .build()
        .unwrap()
}

fn options() -> WorkerOptions {
    WorkerOptions {
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(500),
        shutdown_deadline: Duration::from_secs(3),
        // The shortest Pub/Sub allows: what was on its way to a stopped worker comes back once
        // its lease runs out.
        lease_extension: Duration::from_secs(10),
        ..WorkerOptions::default()
    }
}

/// A private MariaDB behind a relay the test can freeze; the event store migrated.
async fn frozen_bed() -> (PrivateMariaDb, Relay, EventStore) {
    let db = PrivateMariaDb::start();
    let root = EventStore::open(&db.settings()).await.unwrap();
    root.migrate().await.unwrap();
    let relay = Relay::start(&format!("127.0.0.1:{}", db.port())).await;
    (db, relay, root)
}

fn through(relay: &Relay, db: &PrivateMariaDb) -> suitex_events::StoreSettings {
    let mut s = db.settings();
    s.port = relay.port();
    s
}

/// A worker on the fake, storing through a relay to a private MariaDB, that has stored
/// `first` (so that its connections are open) before the test freezes the relay.
struct Running {
    fake: pubsub_fake::PubSubFake,
    config: suitex_events::config::Config,
    db: PrivateMariaDb,
    relay: Relay,
    root: EventStore,
    worker: RunningWorker,
    emitter: Emitter,
}

async fn running(tag: &str, first: Event) -> Running {
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, tag).await;
    let (db, relay, root) = frozen_bed().await;
    let worker = RunningWorker::start(&config, &through(&relay, &db), options()).await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();
    emitter.emit_event(first).await.unwrap();
    eventually(Duration::from_secs(20), "the first event is stored", || {
        let root = root.clone();
        async move { count_rows(&root).await == 1 }
    })
    .await;
    Running { fake, config, db, relay, root, worker, emitter }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_hung_database_call_returns_within_the_shutdown_deadline_and_loses_nothing() {
    let Running { fake, config, db, relay, root, worker, emitter } =
        running("hangdb", event("O-1", 0, 10)).await;

    relay.set_mode(RelayMode::Frozen);
    for seq in 1..=5 {
        emitter.emit_event(event("O-1", seq, 10)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // the batch is in its INSERT, which hangs
    let stopped = tokio::time::timeout(Duration::from_secs(3 + 10), worker.stop()).await;
    let summary = stopped.expect("the worker returned within its shutdown deadline while the database hung");
    assert!(summary.released > 0, "the batch in hand was released for redelivery: {summary:?}");
    let raw = config.subscription_path(&config.names().raw_subscription);
    assert!(
        fake.settlements(&raw).iter().any(|s| s.outcome == pubsub_fake::Outcome::Nack),
        "the batch in hand was handed back (nacked) before the worker returned"
    );

    // The database answers again; a new worker stores what was released, once. (What was still
    // on its way to the old process when it stopped comes back when its lease runs out.)
    relay.set_mode(RelayMode::Up);
    let worker = RunningWorker::start(&config, &through(&relay, &db), options()).await;
    eventually(Duration::from_secs(90), "every event is stored", || {
        let root = root.clone();
        async move { count_rows(&root).await == 6 }
    })
    .await;
    worker.stop().await;
    assert_eq!(fake.backlog(&config.subscription_path(&config.names().dlq_subscription)), 0);
}

/// The worker decodes the next messages while a batch is stored (its intake): at shutdown,
/// what was decoded and not yet in a batch is handed back at once with the batch in hand, and
/// nothing stays counted as in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_the_messages_decoded_ahead_of_a_hung_batch_are_handed_back_with_it() {
    let Running { fake, config, db: _db, relay, root, worker, emitter } =
        running("ahead", event("A-0", 0, 10)).await;

    relay.set_mode(RelayMode::Frozen);
    let hung = event("A-1", 1, 10);
    emitter.emit_event(hung.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await; // its batch is in its INSERT, which hangs
    let ahead: Vec<Event> = (2..=6).map(|i| event(&format!("A-{i}"), i, 10)).collect();
    for e in &ahead {
        emitter.emit_event(e.clone()).await.unwrap();
    }
    eventually(Duration::from_secs(10), "the later events are taken and decoded", || {
        let in_flight = worker.metrics.in_flight.get();
        async move { in_flight == 6 }
    })
    .await;
    let metrics = worker.metrics.clone();
    let summary = tokio::time::timeout(Duration::from_secs(3 + 10), worker.stop())
        .await
        .expect("the worker returned within its shutdown deadline");
    assert_eq!(summary.released, 1, "the hung batch was released: {summary:?}");
    assert_eq!(metrics.in_flight.get(), 0, "nothing is left counted as in flight");
    let raw = config.subscription_path(&config.names().raw_subscription);
    let nacked: std::collections::HashSet<String> = fake
        .settlements(&raw)
        .into_iter()
        .filter(|s| s.outcome == pubsub_fake::Outcome::Nack)
        .map(|s| s.ordering_key)
        .collect();
    for e in std::iter::once(&hung).chain(&ahead) {
        assert!(
            nacked.contains(&e.ordering_key()),
            "{} was handed back (nacked) before the worker returned, not left leased: {nacked:?}",
            e.ordering_key()
        );
    }
    drop(root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_database_statement_times_out_and_the_batch_is_retried() {
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "stmt").await;
    let (db, relay, root) = frozen_bed().await;
    let mut settings = through(&relay, &db);
    settings.statement_timeout = Duration::from_secs(2);
    let worker = RunningWorker::start(&config, &settings, options()).await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();

    relay.set_mode(RelayMode::Frozen);
    emitter.emit_event(event("S-1", 0, 10)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let retries = worker.metrics.transient_retries.get();
    relay.set_mode(RelayMode::Up);
    assert!(
        retries >= 2,
        "a hung statement ends at its timeout and the batch is retried ({retries} retries in 8 s)"
    );
    eventually(Duration::from_secs(30), "the event is stored once the database answers", || {
        let root = root.clone();
        async move { count_rows(&root).await == 1 }
    })
    .await;
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(metrics.poison.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_claim_check_download_times_out_and_the_batch_is_retried() {
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "fetch").await;
    let db = TestDb::new("fetch_deadline").await;
    // The worker reaches Cloud Storage through a relay that will hang.
    let storage = Relay::start(&required_env("STORAGE_EMULATOR_HOST")).await;
    let worker_config = suitex_events::Config::builder(config.project())
        .names(config.names().clone())
        .pubsub_endpoint(config.pubsub_endpoint().clone())
        .storage_endpoint(suitex_events::config::Endpoint::emulator(&storage.url()))
        .build()
        .unwrap();
    Emitter::connect(config.clone()).await.unwrap().emit_event(event("G-1", 0, 300 * 1024)).await.unwrap();

    storage.set_mode(RelayMode::Frozen);
    let worker = RunningWorker::start(
        &worker_config,
        &db.settings,
        WorkerOptions { fetch_deadline: Duration::from_secs(2), ..options() },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let retries = worker.metrics.transient_retries.get();
    storage.set_mode(RelayMode::Up);
    assert!(
        retries >= 2,
        "a hung download ends at its deadline and the batch is retried ({retries} retries in 8 s)"
    );
    eventually(Duration::from_secs(30), "the event is stored once storage answers", || async {
        db.rows().await == 1
    })
    .await;
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(metrics.poison.get(), 0, "a slow download is never poison");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_acknowledge_and_modify_deadline_calls_give_up_at_their_deadline() {
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "rpc").await;
    Emitter::connect(config.clone()).await.unwrap().emit_event(event("R-1", 0, 10)).await.unwrap();
    let sub = config.subscription_path(&config.names().raw_subscription);
    let puller = Puller::connect(&config).await.unwrap();
    assert_eq!(puller.deadlines(), (Duration::from_secs(30), Duration::from_secs(10)), "production's");
    let got = puller.pull(&sub, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    // The same calls with shorter deadlines, against a service that answers after a minute.
    let (pull_deadline, rpc_deadline) = (Duration::from_secs(2), Duration::from_secs(1));
    let puller = puller.with_deadlines(pull_deadline, rpc_deadline);
    fake.set_response_delay(Duration::from_secs(60));
    // The deadline, named as missed (a transient failure), not before it and long before the answer.
    fn gave_up<T>(
        result: &suitex_events::Result<T>,
        deadline: Duration,
        started: std::time::Instant,
    ) -> bool {
        let waited = started.elapsed();
        let missed = match result {
            Err(e @ suitex_events::Error::DeadlineExceeded { deadline: d, .. }) => {
                *d == deadline && e.is_transient()
            }
            _ => false,
        };
        missed && waited >= deadline && waited < Duration::from_secs(30)
    }
    let ack_ids = vec![got[0].ack_id.clone()];
    let started = std::time::Instant::now();
    let ack = puller.ack(&sub, ack_ids.clone()).await;
    assert!(
        gave_up(&ack, rpc_deadline, started),
        "ack ends at its deadline: {ack:?} after {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let extend = puller.modify_deadline(&sub, ack_ids, 60).await;
    assert!(
        gave_up(&extend, rpc_deadline, started),
        "modify-deadline ends at its deadline: {extend:?} after {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let pull = puller.pull(&sub, 10).await;
    assert!(
        gave_up(&pull, pull_deadline, started),
        "pull ends at its deadline: {pull:?} after {:?}",
        started.elapsed()
    );
    fake.set_response_delay(Duration::ZERO);
}
