//! Ordinary production failures of the database, under load: a revoked grant, a rotated
//! password. Neither is about any one event, so neither may dead-letter a healthy event; once
//! the database is usable again every event is stored exactly once. The worker runs against a
//! private MariaDB server as a least-privilege account (INSERT + SELECT), and against the Pub/Sub
//! fake with `events.raw-sub` as production has it (ordering + dead-lettering after 5 attempts,
//! redelivery without back-off, so a wrongly nacked event would be dead-lettered in seconds).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use suitex_events::Emitter;
use suitex_test_support::*;

const WORKER: &str = "suitex_worker";
const PASSWORD: &str = "w0rker-secret";

type Bed = DbFaultBed;

/// The bed, with the worker's account holding the writer role (table-level rights).
async fn bed(prefix: &str) -> Bed {
    let b = DbFaultBed::start(prefix).await;
    let account = suitex_events::store::grants::Account::new(WORKER, "%").unwrap();
    let writer = suitex_events::store::grants::Role::Writer;
    b.root.apply_role("event_store", &account, writer, Some(PASSWORD)).await.unwrap();
    b
}

/// Waits for every emitted event to be stored, then checks nothing was dead-lettered or nacked
/// and each event is stored once.
async fn assert_all_stored_once_and_nothing_dead_lettered(b: &Bed, total: u64, worker: RunningWorker) {
    eventually(Duration::from_secs(90), "every emitted event is stored", || {
        let root = b.root.clone();
        async move { count_rows(&root).await == total }
    })
    .await;
    let metrics = worker.metrics.clone();
    worker.stop().await;
    b.assert_each_stored_once_and_nothing_dead_lettered(total, &metrics).await;
    assert!(metrics.transient_retries.get() > 0, "the failure was seen and retried");
}

/// The worker under load while `outage` makes the database unusable to it for 8 s and
/// `repair` makes it usable again; returns the rows stored when the repair began and the events
/// emitted in all, once every one of them is stored and nothing was nacked or dead-lettered.
async fn through_an_outage(
    prefix: &str,
    outage: impl AsyncFnOnce(&Bed),
    repair: impl AsyncFnOnce(&Bed),
) -> (u64, u64) {
    let b = bed(prefix).await;
    let worker =
        RunningWorker::start(&b.config, &b.db.settings_as(WORKER, PASSWORD), DbFaultBed::worker_options())
            .await;
    let emitted = Arc::new(AtomicU64::new(0));
    let emitter = Emitter::connect(b.config.clone()).await.unwrap();
    let load = emit_load(emitter, emitted.clone(), 61, 10, 20, Duration::from_millis(200), 75);

    eventually(Duration::from_secs(20), "the worker stores before the outage", || {
        let root = b.root.clone();
        async move { count_rows(&root).await > 0 }
    })
    .await;
    outage(&b).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let during = count_rows(&b.root).await;
    repair(&b).await;

    load.await.unwrap();
    let total = emitted.load(Ordering::Relaxed);
    assert_all_stored_once_and_nothing_dead_lettered(&b, total, worker).await;
    (during, total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_insert_grant_under_load_dead_letters_nothing_and_every_event_is_stored_once_after_the_grant_returns()
 {
    let (during, total) = through_an_outage(
        "revoke",
        async |b: &Bed| b.db.sql(&format!("REVOKE INSERT ON event_store.event_store FROM '{WORKER}'@'%'")),
        async |b: &Bed| b.db.sql(&format!("GRANT INSERT ON event_store.event_store TO '{WORKER}'@'%'")),
    )
    .await;
    assert!(total > during, "events kept arriving while the grant was missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_password_under_load_dead_letters_nothing_and_every_event_is_stored_once_after_it_is_changed_back()
 {
    // The password changes and the worker's open connections go away (a failover, a restart):
    // every new connection is refused with 1045 until the password is changed back.
    let outage = async |b: &Bed| {
        b.db.sql(&format!("ALTER USER '{WORKER}'@'%' IDENTIFIED BY 'rotated-elsewhere'"));
        assert!(b.kill_sessions_of(WORKER).await > 0, "the worker had connections");
    };
    let repair = async |b: &Bed| b.db.sql(&format!("ALTER USER '{WORKER}'@'%' IDENTIFIED BY '{PASSWORD}'"));
    through_an_outage("password", outage, repair).await;
}
