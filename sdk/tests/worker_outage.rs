//! A database outage under load: the event store goes away for more than 20 seconds while
//! events keep coming. No healthy event may be dead-lettered, and all are stored once it is
//! back. The database is a private MariaDB server this test starts, stops and restarts on its
//! own port and data directory, so tests beside it are not disturbed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use suitex_events::Emitter;
use suitex_events::store::EventStore;
use suitex_events::worker::WorkerOptions;
use suitex_test_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_of_over_20_seconds_dead_letters_nothing_and_loses_nothing() {
    let config = emulator_config("outage").build().unwrap();
    provision_for_tests(&config, Topology::UnorderedWithDeadLetters, &[]).await;
    let mut db = PrivateMariaDb::start();
    let settings = db.settings();
    let store = EventStore::open(&settings).await.unwrap();
    store.migrate().await.unwrap();

    let options = WorkerOptions {
        batch_wait: Duration::from_millis(10),
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        ..WorkerOptions::default()
    };
    let worker = RunningWorker::start(&config, &settings, options).await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();

    // Load: 40 events every 100 ms for 35 s, across 20 aggregates.
    let emitted = Arc::new(AtomicU64::new(0));
    let load = emit_load(emitter.clone(), emitted.clone(), 51, 20, 40, Duration::from_millis(100), 350);

    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_outage = count_rows(&store).await;
    assert!(before_outage > 0, "the worker stores while the database is up");
    db.pause();
    tokio::time::sleep(Duration::from_secs(22)).await;
    let retries_during_outage = worker.metrics.transient_retries.get();
    db.resume();

    load.await.unwrap();
    let total = emitted.load(Ordering::Relaxed);
    assert_eq!(total, 14_000);
    eventually(Duration::from_secs(120), "every emitted event is stored", || {
        let store = store.clone();
        async move { count_rows(&store).await == total }
    })
    .await;
    let metrics = worker.metrics.clone();
    worker.stop().await;

    assert!(retries_during_outage > 0, "the outage was noticed and retried");
    assert_eq!(metrics.poison.get(), 0, "no message was nacked");
    let dlq = config.subscription_path(&config.names().dlq_subscription);
    let pending = suitex_events::consume::puller::take_pending(&config, &dlq, 0).await.unwrap();
    assert_eq!(pending.messages.len(), 0, "no healthy event was dead-lettered");
    pending.settle(&[]).await.unwrap();
    let distinct: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT event_id) FROM event_store")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(distinct as u64, total, "each stored once");
}
