//! A dead letter never reorders its aggregate: its key parks until it is redriven or skipped
//! (docs/architecture.md §2.5 "Parked keys"). On the Pub/Sub fake, which runs message ordering
//! and the dead-letter policy together as production does, with the claim-check bucket on the
//! storage emulator and the ledger in MariaDB.

use google_cloud_auth::credentials::anonymous;
use google_cloud_pubsub::client::Publisher;
use pubsub_fake::PubSubFake;
use serde_json::json;
use std::time::Duration;
use suitex_events::claim_check::{ClaimCheck, object_name, sha256_hex};
use suitex_events::consume::merged::MergedEvent;
use suitex_events::envelope::ClaimCheckRef;
use suitex_events::store::{Release, Selection};
use suitex_events::worker::WorkerOptions;
use suitex_events::worker::dlq::{self, Filter};
use suitex_events::{Config, Event, Payload};
use suitex_test_support::*;

fn options() -> WorkerOptions {
    quick_worker_options()
}

fn event(aggregate_id: &str, n: u64) -> Event {
    Event::builder()
        .account_id(31)
        .aggregate("sales_order", aggregate_id)
        .event_type("sales_order.updated")
        .payload(json!({"n": n, "lines": "x".repeat(64)}))
        .build()
        .unwrap()
}

/// A publisher to `topic` on the fake.
async fn publisher(fake: &PubSubFake, topic: String) -> Publisher {
    Publisher::builder(topic)
        .with_endpoint(fake.endpoint())
        .with_credentials(anonymous::Builder::new().build())
        .build()
        .await
        .unwrap()
}

async fn publish(config: &Config, fake: &PubSubFake, events: &[Event]) {
    let publisher = publisher(fake, config.raw_topic_path()).await;
    for e in events {
        publisher.publish(raw_message(e)).await.unwrap();
    }
}

/// A child process, killed (SIGKILL) and reaped when dropped: a failing test leaves none behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `e` as a claim-check whose object was never written (or was lost): poison until the
/// object is restored with [`restore`].
fn with_missing_object(config: &Config, e: &Event) -> Event {
    let text = e.payload().json_text().unwrap().into_owned();
    let sha256 = sha256_hex(text.as_bytes());
    let r = ClaimCheckRef {
        bucket: config.names().payload_bucket.clone(),
        object: object_name(e, &sha256),
        generation: 0,
        sha256,
        size: text.len() as u64,
    };
    e.clone().with_payload(Payload::ClaimCheck(r))
}

async fn restore(config: &Config, e: &Event) {
    let text = e.payload().json_text().unwrap().into_owned();
    ClaimCheck::connect(config).await.unwrap().offload(e, text.into_bytes().into()).await.unwrap();
}

fn n_of(e: &Event) -> u64 {
    e.payload().to_value().unwrap()["n"].as_u64().unwrap()
}

/// The aggregate's rows: (payload n, seq, aggregate_version), in seq order.
async fn rows_of(db: &TestDb, aggregate_id: &str) -> Vec<(u64, u64, u64)> {
    let selection = Selection::Aggregate {
        account_id: 31,
        aggregate_type: "sales_order".into(),
        aggregate_id: aggregate_id.into(),
    };
    let rows = db.store.read_after(&selection, 0, 100).await.unwrap();
    rows.iter().map(|s| (n_of(&s.event), s.seq, s.aggregate_version)).collect()
}

/// The `n` of each message of `key` on `events.merged`, in the order received, until `n`
/// distinct events came (the other keys' messages are consumed and dropped). The feeder
/// publishes at least once: a feeder that stopped before recording its position publishes
/// again from there.
async fn merged_ns(config: &Config, key: &str, n: usize) -> Vec<u64> {
    let sub = config.subscription_path("events.merged-sub");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut ns: Vec<u64> = Vec::new();
    while ns.iter().collect::<std::collections::HashSet<_>>().len() < n {
        assert!(tokio::time::Instant::now() < deadline, "events.merged held only {ns:?} of {key}");
        for m in receive(config, &sub, 1, Duration::from_secs(1)).await {
            if m.ordering_key == key {
                ns.push(n_of(&MergedEvent::decode(&m.data).unwrap().event));
            }
        }
    }
    ns
}

/// `suitex-events ARGS` as an operator runs it, against the scene's database and Pub/Sub.
fn cli(s: &Scene, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_suitex-events"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("USER", "ops-oncall")
        .env("PUBSUB_EMULATOR_HOST", s.fake.addr().to_string())
        .env("STORAGE_EMULATOR_HOST", required_env("STORAGE_EMULATOR_HOST"))
        .envs(s.db.settings.to_settings())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "suitex-events {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("suitex-events {args:?} printed no JSON ({e}): {stdout}"))
}

/// Redrives `key`'s dead letters (`n` of them) and waits, up to `within`, until no key is
/// parked.
async fn redrive_until_released(config: &Config, db: &TestDb, key: &str, n: usize, within: Duration) {
    let report = dlq::redrive(config, &Filter { ordering_key: Some(key.to_string()), ..Filter::default() })
        .await
        .unwrap();
    assert_eq!(report.redriven.len(), n);
    eventually(within, "the key is released", || async { db.store.open_parks().await.unwrap().is_empty() })
        .await;
}

struct Scene {
    fake: PubSubFake,
    config: Config,
    db: TestDb,
    k: Vec<Event>,
    poison: Event,
    workers: Vec<RunningWorker>,
}

impl Scene {
    /// A counter summed over the scene's workers.
    fn total(&self, counter: impl Fn(&suitex_events::worker::metrics::Metrics) -> u64) -> u64 {
        self.workers.iter().map(|w| counter(&w.metrics)).sum()
    }

    async fn stop(self) {
        for w in self.workers {
            w.stop().await;
        }
    }
}

/// Key K gets e1, e2, e3, e4 with e2 poison (a claim-check whose object is missing); key L
/// gets two events beside it; `workers` workers share the subscription. Returns once e2 is
/// dead-lettered and K is parked.
async fn k_parked_behind_e2(prefix: &str, workers: usize) -> Scene {
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, prefix).await;
    let db = TestDb::new(prefix).await;
    let k: Vec<Event> = (1..=4).map(|n| event("SO-1", n)).collect();
    let poison = with_missing_object(&config, &k[1]);
    let l: Vec<Event> = (1..=2).map(|n| event("SO-2", n)).collect();
    publish(
        &config,
        &fake,
        &[k[0].clone(), poison.clone(), k[2].clone(), l[0].clone(), k[3].clone(), l[1].clone()],
    )
    .await;
    let mut running = Vec::new();
    for _ in 0..workers {
        running.push(RunningWorker::start(&config, &db.settings, options()).await);
    }

    let key = k[0].ordering_key();
    eventually(Duration::from_secs(60), "K is parked with e3 and e4 kept aside", || async {
        db.store.open_parks().await.unwrap().get(&key).is_some_and(|p| p.parked_events == 2)
    })
    .await;
    let dead =
        dlq::list(&config, &Filter { ordering_key: Some(key.clone()), ..Filter::default() }).await.unwrap();
    assert_eq!(dead.len(), 1, "e2 is the key's one dead letter");
    assert_eq!(dead[0].event_id.as_deref(), Some(&*poison.event_id().to_string()));
    assert_eq!(dead[0].delivery_count, Some(5));

    let park = db.store.open_parks().await.unwrap().remove(&key).unwrap();
    assert_eq!(park.event_id.as_deref(), Some(&*poison.event_id().to_string()));
    assert_eq!(park.data_sha256, sha256_hex(&poison.to_wire_json()));
    assert!(park.reason.contains("claim-check"), "the park says why: {}", park.reason);
    assert!(park.recorded_by.starts_with("worker as "), "{}", park.recorded_by);
    let aside: Vec<u64> = db.store.parked_events(park.id).await.unwrap().iter().map(n_of).collect();
    assert_eq!(aside, [3, 4], "e3 and e4 are kept aside, whole, in their order");

    eventually(Duration::from_secs(30), "L flows beside the parked key", || async {
        rows_of(&db, "SO-2").await.len() == 2
    })
    .await;
    assert_eq!(
        rows_of(&db, "SO-1").await,
        [(1, rows_of(&db, "SO-1").await[0].1, 1)],
        "only e1 of K is stored"
    );
    let raw = config.subscription_path(&config.names().raw_subscription);
    eventually(Duration::from_secs(30), "nothing is left on events.raw-sub", || async {
        fake.backlog(&raw) == 0
    })
    .await;
    let s = Scene { fake, config, db, k, poison, workers: running };
    assert_eq!(s.total(|m| m.kept_aside.get()), 2);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_parks_its_key_and_its_redrive_appends_it_before_the_events_kept_aside() {
    parked_then_redriven("park_redrive", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_workers_a_parked_key_stays_parked_across_them_and_its_redrive_restores_the_order() {
    parked_then_redriven("park_two", 2).await;
}

/// K parked behind e2 (see [`k_parked_behind_e2`]), e5 arrives meanwhile, the operator looks,
/// restores e2's object and releases K: K's rows are e1 … e5 in order, and K flows again.
async fn parked_then_redriven(prefix: &str, workers: usize) {
    let s = k_parked_behind_e2(prefix, workers).await;
    let key = s.k[0].ordering_key();
    // The key stays parked while the cause is not fixed: later events join the others aside.
    let e5 = event("SO-1", 5);
    publish(&s.config, &s.fake, std::slice::from_ref(&e5)).await;
    eventually(Duration::from_secs(30), "e5 is kept aside too", || async {
        s.db.store.open_parks().await.unwrap().get(&key).is_some_and(|p| p.parked_events == 3)
    })
    .await;
    assert_eq!(rows_of(&s.db, "SO-1").await.len(), 1);

    // What the operator sees.
    let listed = cli(&s, &["parked", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["ordering_key"], key.as_str());
    assert_eq!(listed[0]["parked_events"], 3);
    assert_eq!(listed[0]["event_id"], s.poison.event_id().to_string());
    let shown = cli(&s, &["parked", "show", &key, "--json"]);
    let aside: Vec<u64> = shown["events_aside"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(aside, [3, 4, 5], "{shown}");
    assert_eq!(shown["history"][0]["action"], "parked");

    // The operator restores the object and releases the key: its dead letter is redriven.
    restore(&s.config, &s.k[1]).await;
    let report = cli(&s, &["parked", "release", &key]);
    assert_eq!(report["redriven"].as_array().unwrap().len(), 1, "{report}");
    eventually(Duration::from_secs(30), "the key is released", || async {
        s.db.store.open_parks().await.unwrap().is_empty()
    })
    .await;
    let rows = rows_of(&s.db, "SO-1").await;
    let ns: Vec<u64> = rows.iter().map(|r| r.0).collect();
    let versions: Vec<u64> = rows.iter().map(|r| r.2).collect();
    assert_eq!(ns, [1, 2, 3, 4, 5], "K's rows are e1 … e5 in seq order");
    assert_eq!(versions, [1, 2, 3, 4, 5], "and in aggregate_version order");
    assert!(rows.windows(2).all(|w| w[0].1 < w[1].1));
    assert_eq!(merged_ns(&s.config, &key, 5).await, [1, 2, 3, 4, 5], "events.merged shows K in that order");

    // Flowing again: a new event is appended at once.
    publish(&s.config, &s.fake, &[event("SO-1", 6)]).await;
    eventually(Duration::from_secs(30), "K flows after its release", || async {
        rows_of(&s.db, "SO-1").await.len() == 6
    })
    .await;
    let history = s.db.store.parking_history(&key).await.unwrap();
    let actions: Vec<&str> = history.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["parked", "redriven"]);
    assert_eq!(history[1].park_id, Some(history[0].id));
    assert_eq!(s.total(|m| m.releases.get()), 1);
    assert_eq!(s.total(|m| m.kept_aside.get()), 3);
    assert_eq!(s.fake.backlog(&s.config.subscription_path(&s.config.names().dlq_subscription)), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_dead_letter_is_recorded_and_the_events_kept_aside_flow_in_order() {
    let s = k_parked_behind_e2("park_skip", 1).await;
    let key = s.k[0].ordering_key();
    let park = s.db.store.open_parks().await.unwrap().remove(&key).unwrap();
    // The gauges follow the parks even while no message arrives.
    eventually(Duration::from_secs(15), "the parked-keys gauge shows K", || async {
        s.workers[0].metrics.parked_keys.get() == 1 && s.workers[0].metrics.parked_events.get() == 2
    })
    .await;
    let released = cli(&s, &["parked", "skip", &key, "--reason", "object lost for good"]);
    assert_eq!(released["action"], "skipped");
    assert_eq!(released["appended"].as_array().unwrap().len(), 2, "{released}");
    // No traffic follows: the idle worker's gauges still see the key go.
    eventually(
        Duration::from_secs(15),
        "the parked-keys gauge drops to 0 while the worker idles",
        || async { s.workers[0].metrics.parked_keys.get() == 0 },
    )
    .await;
    assert!(
        s.db.store.release(&park, Release::Skipped, None, "ops-oncall", "again").await.is_err(),
        "a park ends once"
    );
    let rows = rows_of(&s.db, "SO-1").await;
    assert_eq!(rows.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(), [(1, 1), (3, 2), (4, 3)]);
    let history = s.db.store.parking_history(&key).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].action, "skipped");
    assert_eq!(history[1].reason, "object lost for good");
    assert!(history[1].recorded_by.starts_with("ops-oncall as "), "{}", history[1].recorded_by);
    assert_eq!(merged_ns(&s.config, &key, 3).await, [1, 3, 4]);
    // The dead letter is still there; redriven after the skip it is appended last, as the
    // operator chose.
    assert_eq!(
        dlq::list(&s.config, &Filter { ordering_key: Some(key), ..Filter::default() }).await.unwrap().len(),
        1
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parking_tables_are_append_only() {
    let s = k_parked_behind_e2("park_append_only", 1).await;
    for sql in [
        "UPDATE event_store_parking SET reason = 'x'",
        "DELETE FROM event_store_parking",
        "UPDATE event_store_parked_events SET event = '{}'",
        "DELETE FROM event_store_parked_events",
    ] {
        let err = s.db.store.execute(sql).await.expect_err(sql).to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    s.stop().await;
}

/// Publishes `e` on the dead-letter topic as Pub/Sub does when it gives up on it.
async fn dead_letter(config: &Config, fake: &PubSubFake, e: &Event) {
    let mut m = raw_message(e);
    m.attributes.insert("CloudPubSubDeadLetterSourceDeliveryCount".into(), "5".into());
    m.attributes
        .insert("CloudPubSubDeadLetterSourceSubscription".into(), config.names().raw_subscription.clone());
    publisher(fake, config.topic_path(&config.names().dlq_topic)).await.publish(m).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_event_dead_lettered_without_the_workers_nack_parks_its_key_and_its_redrive_restores_the_order()
 {
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "park_watch").await;
    let db = TestDb::new("park_watch").await;
    let k: Vec<Event> = (1..=3).map(|n| event("SO-7", n)).collect();
    let key = k[0].ordering_key();
    publish(&config, &fake, &k[..1]).await;

    // A worker that takes e1 and stops before settling it, five times (a crash loop): Pub/Sub
    // dead-letters the healthy event on its own — no worker saw its last attempt.
    let raw = config.subscription_path(&config.names().raw_subscription);
    let dlq_sub = config.subscription_path(&config.names().dlq_subscription);
    let puller = suitex_events::consume::puller::Puller::connect(&config).await.unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while fake.backlog(&dlq_sub) == 0 {
        assert!(tokio::time::Instant::now() < until, "Pub/Sub never dead-lettered e1");
        let ids: Vec<String> = puller.pull(&raw, 10).await.unwrap().into_iter().map(|m| m.ack_id).collect();
        puller.release(&raw, ids).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A worker starts again: its dead-letter watch parks the key before anything of it flows.
    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    eventually(Duration::from_secs(30), "the watch parks K", || async {
        db.store.open_parks().await.unwrap().contains_key(&key)
    })
    .await;
    let park = db.store.open_parks().await.unwrap().remove(&key).unwrap();
    assert_eq!(park.event_id, Some(k[0].event_id().to_string()));
    assert!(park.reason.contains("without the worker's last nack"), "{}", park.reason);
    assert!(park.recorded_by.starts_with("dead-letter watch as "), "{}", park.recorded_by);
    publish(&config, &fake, &k[1..]).await;
    eventually(Duration::from_secs(30), "e2 and e3 are kept aside", || async {
        db.store.open_parks().await.unwrap().get(&key).is_some_and(|p| p.parked_events == 2)
    })
    .await;
    assert!(rows_of(&db, "SO-7").await.is_empty(), "nothing of K is stored ahead of e1");

    redrive_until_released(&config, &db, &key, 1, Duration::from_secs(30)).await;
    let rows = rows_of(&db, "SO-7").await;
    assert_eq!(rows.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(), [(1, 1), (2, 2), (3, 3)]);
    let metrics = worker.metrics.clone();
    worker.stop().await;
    assert_eq!(metrics.watch_parks.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_parks_a_key_within_a_poll_and_never_for_an_event_already_stored() {
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "park_window").await;
    let db = TestDb::new("park_window").await;
    let worker = RunningWorker::start(&config, &db.settings, options()).await;

    // Stored, then dead-lettered anyway (its acks were lost): the ledger holds it in order, so
    // its key is not parked and goes on.
    let stored = event("SO-8", 1);
    publish(&config, &fake, std::slice::from_ref(&stored)).await;
    eventually(Duration::from_secs(30), "e1 of SO-8 is stored", || async {
        rows_of(&db, "SO-8").await.len() == 1
    })
    .await;
    dead_letter(&config, &fake, &stored).await;

    // Dead-lettered while a worker runs, never stored: the window in which a later event of
    // the key could still be appended ahead of it is the time the watch takes to park the key.
    let lost = event("SO-9", 1);
    let started = tokio::time::Instant::now();
    dead_letter(&config, &fake, &lost).await;
    eventually(Duration::from_secs(10), "the watch parks SO-9", || async {
        db.store.open_parks().await.unwrap().contains_key(&lost.ordering_key())
    })
    .await;
    let window = started.elapsed();
    // Printed for the record (architecture §2.5 quotes it): one poll and a few queries.
    println!("the dead-letter watch parked the key {window:?} after Pub/Sub published the dead letter");

    publish(&config, &fake, &[event("SO-8", 2)]).await;
    eventually(Duration::from_secs(30), "SO-8 goes on", || async { rows_of(&db, "SO-8").await.len() == 2 })
        .await;
    let parks = db.store.open_parks().await.unwrap();
    assert_eq!(
        parks.keys().collect::<Vec<_>>(),
        [&lost.ordering_key()],
        "only the key of the event never stored"
    );

    // An event kept aside behind SO-9's park, then dead-lettered anyway (its acks were lost):
    // it is in order already, so SO-9 is not parked a second time.
    let kept = event("SO-9", 2);
    publish(&config, &fake, std::slice::from_ref(&kept)).await;
    eventually(Duration::from_secs(30), "e2 of SO-9 is kept aside", || async {
        db.store.open_parks().await.unwrap().get(&lost.ordering_key()).is_some_and(|p| p.parked_events == 1)
    })
    .await;
    dead_letter(&config, &fake, &kept).await;
    let watch = config.subscription_path(&config.names().dlq_watch_subscription());
    eventually(Duration::from_secs(30), "the watch has considered it", || async {
        fake.backlog(&watch) == 0
    })
    .await;
    assert_eq!(db.store.open_parks().await.unwrap().of(&lost.ordering_key()).len(), 1);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_during_the_poisons_last_attempt_leaves_its_key_parked_for_the_next_worker() {
    // The scene of k_parked_behind_e2, with the worker a process of its own that is killed
    // (SIGKILL) during e2's last attempt — after it found e2 poison, before it could park the
    // key or nack. Pub/Sub then dead-letters e2 on its own when the lease runs out; the next
    // worker's dead-letter watch parks K before that worker takes its first message.
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "park_kill").await;
    let db = TestDb::new("park_kill").await;
    let k: Vec<Event> = (1..=4).map(|n| event("SO-1", n)).collect();
    let poison = with_missing_object(&config, &k[1]);
    let l: Vec<Event> = (1..=2).map(|n| event("SO-2", n)).collect();
    let key = k[0].ordering_key();
    publish(
        &config,
        &fake,
        &[k[0].clone(), poison.clone(), k[2].clone(), l[0].clone(), k[3].clone(), l[1].clone()],
    )
    .await;

    // An administrator's transaction holds the gap where K's park would go (a locking read;
    // plain reads of the table go on), so the worker reaches e2's last attempt and stops
    // there: e2 found poison, nothing parked, nothing nacked.
    let mut lock = db.store.pool().acquire().await.unwrap();
    sqlx::raw_sql("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *lock)
        .await
        .unwrap();
    let mut gap = sqlx::Connection::begin(&mut *lock).await.unwrap();
    sqlx::query("SELECT id FROM event_store_parking WHERE ordering_key = ? FOR UPDATE")
        .bind(&key)
        .fetch_all(&mut *gap)
        .await
        .unwrap();
    let worker = KillOnDrop(spawn_worker_process(
        env!("CARGO_BIN_EXE_suitex-events"),
        &config,
        &db.settings,
        "park_kill.log",
        &[("SUITEX_WORKER_LEASE_EXTENSION", "10s")],
    ));
    let waiting = "SELECT ID FROM information_schema.PROCESSLIST \
                   WHERE INFO LIKE '%INSERT INTO event_store_parking%' AND INFO NOT LIKE '%PROCESSLIST%'";
    let mut parking_session: Option<i64> = None;
    for _ in 0..600 {
        parking_session = sqlx::query_scalar(waiting).fetch_optional(db.store.pool()).await.unwrap();
        if parking_session.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(parking_session) = parking_session else {
        let sessions: Vec<(i64, Option<String>)> =
            sqlx::query_as("SELECT ID, INFO FROM information_schema.PROCESSLIST")
                .fetch_all(db.store.pool())
                .await
                .unwrap();
        panic!("the worker never came to park K on e2's last attempt; sessions: {sessions:?}");
    };
    drop(worker); // SIGKILL
    // The dead worker's statement would still run once the gap is free: end its session first.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL {parking_session}")))
        .execute(db.store.pool())
        .await
        .unwrap();
    gap.rollback().await.unwrap();
    let _ = lock.close().await;
    assert!(db.store.open_parks().await.unwrap().is_empty(), "the killed worker parked nothing");
    assert_eq!(rows_of(&db, "SO-1").await.len(), 1, "only e1 of K is stored");

    // Its leases run out (10 s at most): e2 is dead-lettered without the worker's nack.
    let dlq_sub = config.subscription_path(&config.names().dlq_subscription);
    eventually(Duration::from_secs(60), "Pub/Sub dead-letters e2 on its own", || async {
        fake.backlog(&dlq_sub) >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(11)).await; // every lease of the killed worker is over

    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    eventually(Duration::from_secs(30), "L flows and K's events wait", || async {
        rows_of(&db, "SO-2").await.len() == 2
    })
    .await;
    let raw = config.subscription_path(&config.names().raw_subscription);
    eventually(Duration::from_secs(30), "nothing is left on events.raw-sub", || async {
        fake.backlog(&raw) == 0
    })
    .await;
    eventually(Duration::from_secs(30), "the dead-letter watch parks K", || async {
        db.store.open_parks().await.unwrap().contains_key(&key)
    })
    .await;
    let parks = db.store.open_parks().await.unwrap();
    assert_eq!(
        parks.of(&key)[0].event_id,
        Some(poison.event_id().to_string()),
        "K is parked behind e2 first"
    );
    assert_eq!(rows_of(&db, "SO-1").await.len(), 1, "nothing of K was stored ahead of e2");

    // The cause is fixed; K's dead letters are redriven (e2's, and those of e3 and e4 if their
    // attempts ran out with the killed worker too): K is whole and in order.
    restore(&config, &k[1]).await;
    let dead =
        dlq::list(&config, &Filter { ordering_key: Some(key.clone()), ..Filter::default() }).await.unwrap();
    redrive_until_released(&config, &db, &key, dead.len(), Duration::from_secs(60)).await;
    let rows = rows_of(&db, "SO-1").await;
    assert_eq!(rows.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(), [(1, 1), (2, 2), (3, 3), (4, 4)]);
    // The killed worker's feeder had published e1 without recording it: e1 may come twice.
    let mut merged = merged_ns(&config, &key, 4).await;
    let mut seen = std::collections::HashSet::new();
    merged.retain(|n| seen.insert(*n));
    assert_eq!(merged, [1, 2, 3, 4], "events.merged shows K in order");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_made_while_no_worker_ran_parks_its_key_before_the_next_worker_takes_a_message() {
    // e1 was dead-lettered while no worker ran (say the only one was killed during its last
    // attempt); e2 and e3 wait on events.raw. The worker that starts considers the dead letters
    // first, so neither is appended ahead of e1.
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "park_start").await;
    let db = TestDb::new("park_start").await;
    let k: Vec<Event> = (1..=3).map(|n| event("SO-4", n)).collect();
    let key = k[0].ordering_key();
    // Other keys' dead letters ahead of it give the watch work: a worker that did not wait for
    // the watch would append e2 long before the watch reached e1's dead letter.
    for n in 0..100 {
        dead_letter(&config, &fake, &event(&format!("SO-X{n}"), 1)).await;
    }
    dead_letter(&config, &fake, &k[0]).await;
    publish(&config, &fake, &k[1..]).await;
    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    let raw = config.subscription_path(&config.names().raw_subscription);
    eventually(Duration::from_secs(30), "e2 and e3 are settled", || async { fake.backlog(&raw) == 0 }).await;
    assert_eq!(rows_of(&db, "SO-4").await, [], "nothing of the key is appended ahead of its dead letter");
    let parks = db.store.open_parks().await.unwrap();
    assert_eq!(parks.get(&key).map(|p| p.parked_events), Some(2), "e2 and e3 are kept aside behind e1");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_key_is_visible_in_the_metrics_and_the_worker_stays_ready() {
    // Parking is not an outage: /readyz answers 200 while a key is parked, and /metrics shows
    // the parked key, the event kept aside and how long ago the key was parked.
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "park_ready").await;
    let db = TestDb::new("park_ready").await;
    let (worker, addr) = RunningWorker::start_serving(&config, &db.settings, options()).await;
    until_status(addr, "/readyz", 200, Duration::from_secs(20)).await;
    let k: Vec<Event> = (1..=2).map(|n| event("SO-5", n)).collect();
    dead_letter(&config, &fake, &k[0]).await;
    eventually(Duration::from_secs(30), "the watch parks the key behind e1", || async {
        db.store.open_parks().await.unwrap().contains_key(&k[0].ordering_key())
    })
    .await;
    publish(&config, &fake, &k[1..]).await;
    eventually(Duration::from_secs(30), "e2 is kept aside behind e1's park", || async {
        db.store.open_parks().await.unwrap().get(&k[0].ordering_key()).is_some_and(|p| p.parked_events == 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_100)).await; // the oldest park is a second old
    eventually(Duration::from_secs(15), "the gauges show the parked key", || async {
        let text = http_get(addr, "/metrics").await.1;
        text.contains("suitex_events_parked_keys 1")
            && text.contains("suitex_events_parked_events 1")
            && !text.contains("suitex_events_parked_oldest_age_seconds 0")
    })
    .await;
    let (status, body) = http_get(addr, "/readyz").await;
    assert_eq!(status, 200, "a parked key leaves the worker ready: {body}");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feeder_that_runs_beside_events_work_parks_the_key_of_a_dead_letter_no_worker_parked() {
    // Where `php artisan events:work` stores, no Rust worker runs and `suitex-events feed` feeds
    // events.merged: it runs the dead-letter watch too, so a dead letter Pub/Sub made on its own
    // (a crash on the last attempt, lost acks) parks its key there as well.
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "park_feed").await;
    let db = TestDb::new("park_feed").await;
    let feed = std::process::Command::new(env!("CARGO_BIN_EXE_suitex-events"))
        .arg("feed")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PUBSUB_EMULATOR_HOST", fake.addr().to_string())
        .env("STORAGE_EMULATOR_HOST", required_env("STORAGE_EMULATOR_HOST"))
        .env("SUITEX_WORKER_METRICS_ADDR", "off")
        .envs(db.settings.to_settings())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let feed = KillOnDrop(feed);
    let lost = event("SO-3", 1);
    dead_letter(&config, &fake, &lost).await;
    let parked = tokio::time::timeout(Duration::from_secs(30), async {
        while !db.store.open_parks().await.unwrap().contains_key(&lost.ordering_key()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    drop(feed);
    assert!(parked.is_ok(), "suitex-events feed did not park {} within 30 s", lost.ordering_key());
    let park = db.store.open_parks().await.unwrap().remove(&lost.ordering_key()).unwrap();
    assert_eq!(park.event_id.as_deref(), Some(&*lost.event_id().to_string()));
    assert_eq!(park.data_sha256, sha256_hex(&lost.to_wire_json()), "known by its body, for its redrive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_events_aside_while_the_key_is_released_strands_none_of_them() {
    // A worker keeps K's events aside one after the other while a release of K runs: each is
    // either kept before the release (and appended by it, in order) or told the key was
    // released (and appended by the worker's retry instead) — none is left kept aside behind a
    // park that is over.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use suitex_events::store::{NewPark, Parking};
    let db = TestDb::new("park_race").await;
    let dead = event("SO-R", 0);
    let key = dead.ordering_key();
    let new_park = NewPark::of_message(
        &key,
        "m-0",
        &dead.to_wire_json(),
        Some(&dead),
        &Default::default(),
        "a test".into(),
    );
    db.store.park(&[Parking::Park(new_park)], &Default::default(), "test").await.unwrap();
    let park = db.store.open_parks().await.unwrap().remove(&key).unwrap();

    let kept_so_far = Arc::new(AtomicUsize::new(0));
    let keeper = tokio::spawn({
        let (store, kept_so_far) = (db.store.clone(), kept_so_far.clone());
        async move {
            let open = store.open_parks().await.unwrap();
            let (mut kept, mut refused) = (Vec::new(), Vec::new());
            for n in 1..=150 {
                let e = event("SO-R", n);
                let outcome = store.park(&[Parking::KeepAside(&e)], &open, "test").await.unwrap();
                if outcome.released_meanwhile.is_empty() {
                    kept.push(e.event_id().to_string());
                    kept_so_far.fetch_add(1, Ordering::Relaxed);
                } else {
                    refused.push(e.event_id().to_string());
                }
            }
            (kept, refused)
        }
    });
    eventually(Duration::from_secs(30), "some events are kept aside", || async {
        kept_so_far.load(Ordering::Relaxed) >= 10
    })
    .await;
    let released =
        db.store.release(&park, Release::Redriven, Some(&dead), "test", "the race").await.unwrap().unwrap();
    let (kept, refused) = keeper.await.unwrap();
    assert!(!refused.is_empty(), "the release landed while events were still being kept aside");
    let appended: Vec<String> = released.appended.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(appended[0], dead.event_id().to_string(), "the dead letter first");
    assert_eq!(appended[1..], kept[..], "then every event kept aside before the release, in order");
    let rows = rows_of(&db, "SO-R").await;
    assert_eq!(rows.len(), 1 + kept.len());
    assert_eq!(
        db.store.parked_events(park.id).await.unwrap().len(),
        kept.len(),
        "nothing was kept after the release"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_of_a_parked_key_holds_back_the_events_after_it_until_it_is_dead_lettered() {
    // K is parked behind e2 (e3 and e4 kept aside). Then e5 (poison) and e6 arrive together:
    // while e5 still has attempts left, e6 must not be kept aside behind e2's park — released
    // with it, e6 would be appended before e5.
    let s = k_parked_behind_e2("park_poison_behind", 1).await;
    let key = s.k[0].ordering_key();
    let k: Vec<Event> = (5..=6).map(|n| event("SO-1", n)).collect();
    let p5 = with_missing_object(&s.config, &k[0]);
    publish(&s.config, &s.fake, &[p5.clone(), k[1].clone()]).await;
    eventually(Duration::from_secs(60), "e5 parks K again, with e6 behind it", || async {
        s.db.store.open_parks().await.unwrap().of(&key).len() == 2
    })
    .await;
    let raw = s.config.subscription_path(&s.config.names().raw_subscription);
    eventually(Duration::from_secs(30), "e6 is settled", || async { s.fake.backlog(&raw) == 0 }).await;
    let open = s.db.store.open_parks().await.unwrap();
    let parks = open.of(&key);
    let behind = |i: usize| {
        let id = parks[i].id;
        let store = s.db.store.clone();
        async move { store.parked_events(id).await.unwrap().iter().map(n_of).collect::<Vec<_>>() }
    };
    assert_eq!(
        (behind(0).await, behind(1).await),
        (vec![3, 4], vec![6]),
        "each event behind the dead letter before it"
    );

    restore(&s.config, &s.k[1]).await;
    restore(&s.config, &k[0]).await;
    redrive_until_released(&s.config, &s.db, &key, 2, Duration::from_secs(60)).await;
    let rows = rows_of(&s.db, "SO-1").await;
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6], "K is whole and in order");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_dead_letter_of_a_parked_key_parks_it_again_and_one_release_restores_the_whole_order() {
    // K: e1, e2 (poison), e3, e4 (poison too), e5. e4 must not end up after e5.
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "park_twice").await;
    let db = TestDb::new("park_twice").await;
    let k: Vec<Event> = (1..=5).map(|n| event("SO-3", n)).collect();
    let key = k[0].ordering_key();
    let (p2, p4) = (with_missing_object(&config, &k[1]), with_missing_object(&config, &k[3]));
    publish(&config, &fake, &[k[0].clone(), p2.clone(), k[2].clone(), p4.clone(), k[4].clone()]).await;
    let worker = RunningWorker::start(&config, &db.settings, options()).await;
    eventually(Duration::from_secs(60), "K is parked behind e2 and e4, e3 and e5 kept aside", || async {
        let open = db.store.open_parks().await.unwrap();
        open.of(&key).len() == 2 && open.of(&key).iter().map(|p| p.parked_events).sum::<u64>() == 2
    })
    .await;
    let open = db.store.open_parks().await.unwrap();
    let parks = open.of(&key);
    assert_eq!(parks[0].event_id, Some(p2.event_id().to_string()), "the oldest park is e2's");
    assert_eq!(parks[1].event_id, Some(p4.event_id().to_string()), "then e4's");
    let behind = |i: usize| {
        let id = parks[i].id;
        let store = db.store.clone();
        async move { store.parked_events(id).await.unwrap().iter().map(n_of).collect::<Vec<_>>() }
    };
    assert_eq!(
        (behind(0).await, behind(1).await),
        (vec![3], vec![5]),
        "each event behind the dead letter before it"
    );
    assert_eq!(rows_of(&db, "SO-3").await.len(), 1);

    // Both causes fixed; the key's dead letters redriven, in their order.
    restore(&config, &k[1]).await;
    restore(&config, &k[3]).await;
    redrive_until_released(&config, &db, &key, 2, Duration::from_secs(60)).await;
    let rows = rows_of(&db, "SO-3").await;
    assert_eq!(rows.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(), [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]);
    let actions: Vec<String> =
        db.store.parking_history(&key).await.unwrap().into_iter().map(|r| r.action).collect();
    assert_eq!(actions, ["parked", "parked", "redriven", "redriven"]);
    worker.stop().await;
}
