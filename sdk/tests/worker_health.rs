//! Health that means something: `/healthz` answers while the process lives; `/readyz` answers
//! 200 only while the event store answers and the subscriber is connected, so a Kubernetes
//! readiness probe sees a worker that cannot store.

use std::time::Duration;
use suitex_events::store::EventStore;
use suitex_events::worker::WorkerOptions;
use suitex_test_support::*;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the endpoint answers");
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Polls `path` until it answers `status`; returns that answer's body.
async fn until(addr: std::net::SocketAddr, path: &str, status: u16, timeout: Duration) -> String {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        let (got, body) = get(addr, path).await;
        if got == status {
            return body;
        }
        assert!(tokio::time::Instant::now() < end, "{path} still answers {got} after {timeout:?}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_database_and_healthz_the_process() {
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "readyz").await;
    let mut db = PrivateMariaDb::start();
    EventStore::open(&db.settings()).await.unwrap().migrate().await.unwrap();
    let (worker, addr) =
        RunningWorker::start_serving(&config, &db.settings(), WorkerOptions::default()).await;

    let ready = until(addr, "/readyz", 200, Duration::from_secs(20)).await;
    assert!(ready.contains("database ok") && ready.contains("subscriber ok"), "{ready}");

    db.pause();
    let down = until(addr, "/readyz", 503, Duration::from_secs(20)).await;
    assert!(down.contains("database unavailable"), "the answer says why: {down}");
    assert_eq!(get(addr, "/healthz").await.0, 200, "the process itself is alive");

    db.resume();
    until(addr, "/readyz", 200, Duration::from_secs(30)).await;
    worker.stop().await;
}
