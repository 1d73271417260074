//! Health that means something: `/healthz` answers while the process lives; `/readyz` answers
//! 200 only while the event store answers and the subscriber is connected, so a Kubernetes
//! readiness probe sees a worker that cannot store.

use std::time::Duration;
use suitex_events::store::EventStore;
use suitex_events::worker::WorkerOptions;
use suitex_test_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_database_and_healthz_the_process() {
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "readyz").await;
    let mut db = PrivateMariaDb::start();
    EventStore::open(&db.settings()).await.unwrap().migrate().await.unwrap();
    let (worker, addr) =
        RunningWorker::start_serving(&config, &db.settings(), WorkerOptions::default()).await;

    let ready = until_status(addr, "/readyz", 200, Duration::from_secs(20)).await;
    assert!(ready.contains("database ok") && ready.contains("subscriber ok"), "{ready}");

    db.pause();
    let down = until_status(addr, "/readyz", 503, Duration::from_secs(20)).await;
    assert!(down.contains("database unavailable"), "the answer says why: {down}");
    assert_eq!(http_get(addr, "/healthz").await.0, 200, "the process itself is alive");

    db.resume();
    until_status(addr, "/readyz", 200, Duration::from_secs(30)).await;
    worker.stop().await;
}
