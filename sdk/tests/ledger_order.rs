//! The ledger's own order (docs/architecture.md §2.2, §2.4): `seq` gapless in commit order and
//! `aggregate_version` per aggregate, assigned by the database whoever writes; readers that
//! follow `seq` never skip a row; `events.merged` fed from the ledger by one leader at a time.

use futures::StreamExt;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use suitex_events::store::{EventStore, MIGRATOR, Selection, StoreSettings, StoredEvent};
use suitex_events::{Config, Event};
use suitex_test_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_suitex-events");

fn event(account: u64, aggregate: &str, n: u64) -> Event {
    Event::builder()
        .account_id(account)
        .aggregate("order", aggregate)
        .event_type("order.changed")
        .payload(json!({"n": n}))
        .build()
        .unwrap()
}

/// What a reader needs to hold of the ledger to check its order.
fn check_order(rows: &[StoredEvent]) {
    let seqs: Vec<u64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=rows.len() as u64).collect::<Vec<_>>(), "seq is 1…N without a gap, each once");
    let mut versions: HashMap<(u64, String), Vec<u64>> = HashMap::new();
    for r in rows {
        versions
            .entry((r.event.account_id(), r.event.aggregate_id().to_string()))
            .or_default()
            .push(r.aggregate_version);
    }
    for (aggregate, v) in versions {
        assert_eq!(v, (1..=v.len() as u64).collect::<Vec<_>>(), "{aggregate:?}: versions 1…k in seq order");
    }
}

/// A plain INSERT, as an operator would write it by hand (no seq, no version).
async fn insert_by_hand(conn: &mut sqlx::MySqlConnection, e: &Event) {
    sqlx::query(
        "INSERT INTO event_store (account_id, event_id, aggregate_type, aggregate_id, event_type, payload, occurred_at) \
         VALUES (?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))",
    )
    .bind(e.account_id())
    .bind(e.event_id().to_string())
    .bind(e.aggregate_type())
    .bind(e.aggregate_id())
    .bind(e.event_type())
    .bind(e.payload().json_text().unwrap().to_string())
    .execute(conn)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_writers_at_once_and_a_follower_that_sees_every_row_exactly_once() {
    let db = TestDb::new("order3").await;
    // 300 rows in batches of 20, and 150 from each of two single-row writers.
    const PER_WRITER: u64 = 300;
    const TOTAL: usize = 2 * PER_WRITER as usize;
    // A follower from the start, reading while the writers write.
    let follower = tokio::spawn({
        let store = EventStore::connect(&db.settings).await.unwrap();
        async move {
            let mut rows = Vec::new();
            let mut stream = std::pin::pin!(store.follow(Selection::All, 0));
            while rows.len() < TOTAL {
                rows.push(
                    tokio::time::timeout(Duration::from_secs(60), stream.next())
                        .await
                        .unwrap()
                        .unwrap()
                        .unwrap(),
                );
            }
            rows
        }
    });

    // 1. The worker's append path: multi-row INSERTs.
    let batches = tokio::spawn({
        let store = EventStore::open(&db.settings).await.unwrap();
        async move {
            for chunk in 0..(PER_WRITER / 20) {
                let events: Vec<Event> =
                    (0..20).map(|i| event(1, &format!("A-{}", i % 7), chunk * 20 + i)).collect();
                store.append(&events).await.unwrap();
            }
        }
    });
    // 2. Transactions that stay open for random times, single rows (as `events:work` through
    //    EventStore::create(), and as an operator's session would).
    let mut open_transactions = Vec::new();
    for writer in 0..2u64 {
        let pool = db.store.pool().clone();
        open_transactions.push(tokio::spawn(async move {
            for n in 0..PER_WRITER / 2 {
                let mut tx = pool.begin().await.unwrap();
                insert_by_hand(&mut tx, &event(1, &format!("A-{}", n % 7), 10_000 * (writer + 1) + n)).await;
                // Held open 0–4 ms, differently for each row and writer.
                let hold = (n * 7 + writer * 3) % 5;
                tokio::time::sleep(Duration::from_millis(hold)).await;
                tx.commit().await.unwrap();
            }
        }));
    }
    batches.await.unwrap();
    for t in open_transactions {
        t.await.unwrap();
    }
    let followed = follower.await.unwrap();
    assert_eq!(followed.len(), TOTAL);
    check_order(&followed);
    let ledger = db.store.read_after(&Selection::All, 0, 10_000).await.unwrap();
    assert_eq!(ledger.len(), followed.len(), "the follower saw every row, and nothing else");
    for (a, b) in ledger.iter().zip(&followed) {
        assert_eq!((a.seq, a.id, a.event.event_id()), (b.seq, b.id, b.event.event_id()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_appenders_of_one_aggregate_get_distinct_versions() {
    let db = TestDb::new("order_same").await;
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let store = EventStore::open(&db.settings).await.unwrap();
        writers.push(tokio::spawn(async move {
            for n in 0..50 {
                store
                    .append(&[event(5, "SO-1", w * 100 + n), event(5, "SO-1", w * 100 + n + 50)])
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let stream =
        Selection::Aggregate { account_id: 5, aggregate_type: "order".into(), aggregate_id: "SO-1".into() };
    let rows = db.store.read_after(&stream, 0, 1000).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.aggregate_version).collect::<Vec<_>>(), (1..=200).collect::<Vec<u64>>());
    check_order(&rows);
}

#[tokio::test]
async fn the_migration_numbers_the_rows_already_stored_in_id_order() {
    let db = TestDb::new("order_mig").await;
    // A ledger as 0001 left it: drop what 0002 added, by building a fresh database to 0001.
    let admin = EventStore::connect(&mysql_server()).await.unwrap();
    let name = format!("{}_v1", db.settings.database);
    admin.execute(&format!("CREATE DATABASE `{name}`")).await.unwrap();
    let settings = db.settings.clone().with_database(&name);
    let store = EventStore::open(&settings).await.unwrap();
    MIGRATOR.run_to(1, store.pool()).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    let order = ["B", "A", "B", "C", "A", "B"];
    let mut ids = Vec::new();
    for (n, agg) in order.iter().enumerate() {
        let e = event(3, agg, n as u64);
        insert_by_hand(&mut conn, &e).await;
        ids.push(e.event_id());
    }
    drop(conn);
    store.migrate().await.unwrap();
    let rows = store.read_after(&Selection::All, 0, 100).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.event.event_id()).collect::<Vec<_>>(), ids, "seq follows id");
    assert_eq!(rows.iter().map(|r| r.aggregate_version).collect::<Vec<_>>(), vec![1, 1, 2, 1, 2, 3]);
    check_order(&rows);
    // New rows go on from there.
    store.append(&[event(3, "A", 99)]).await.unwrap();
    let last = store.read_after(&Selection::All, 6, 10).await.unwrap();
    assert_eq!((last[0].seq, last[0].aggregate_version), (7, 3));
    // Still append-only.
    let refused = store.execute("UPDATE event_store SET event_type = 'x' WHERE seq = 1").await.unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    admin.execute(&format!("DROP DATABASE `{name}`")).await.unwrap();
}

#[tokio::test]
async fn tail_prints_the_ledger_as_json_lines_in_seq_order() {
    let db = TestDb::new("order_tail").await;
    let events: Vec<Event> = (0..6).map(|n| event(7 + n % 2, &format!("T-{}", n % 3), n)).collect();
    db.store.append(&events).await.unwrap();
    let tail = |args: &[&str]| -> Vec<serde_json::Value> {
        let out = Command::new(BIN)
            .arg("tail")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(db.settings.to_settings())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let all = tail(&["--no-follow"]);
    assert_eq!(all.iter().map(|l| l["seq"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(all[0]["event_id"], events[0].event_id().to_string());
    assert_eq!(all[0]["payload"], json!({"n": 0}));
    let after = tail(&["--no-follow", "--after-seq", "4"]);
    assert_eq!(after.iter().map(|l| l["seq"].as_u64().unwrap()).collect::<Vec<_>>(), vec![5, 6]);
    let tenant = tail(&["--no-follow", "--account", "8"]);
    assert_eq!(tenant.iter().map(|l| l["seq"].as_u64().unwrap()).collect::<Vec<_>>(), vec![2, 4, 6]);
    // Tenant 8's aggregate T-0 holds one event: n = 3, the 4th row.
    let stream = tail(&["--no-follow", "--account", "8", "--aggregate", "order:T-0"]);
    assert_eq!(stream.len(), 1);
    assert_eq!((stream[0]["seq"].as_u64(), stream[0]["aggregate_version"].as_u64()), (Some(4), Some(1)));

    // Following: a row appended after tail started is printed.
    let mut child = Command::new(BIN)
        .args(["tail", "--after-seq", "6"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(db.settings.to_settings())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let late = event(7, "T-9", 9);
    db.store.append(std::slice::from_ref(&late)).await.unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(10), line).await.expect("tail follows").unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (v["seq"].as_u64(), v["event_id"].as_str()),
        (Some(7), Some(late.event_id().to_string().as_str()))
    );
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success(), "tail exits 0 on SIGTERM");
}

/// `suitex-events worker` with its feeder, as in production.
fn spawn_worker(config: &Config, db: &StoreSettings, log: &str) -> Child {
    spawn_worker_process(BIN, config, db, log, &[("RUST_LOG", "suitex_events=info")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feeder_killed_mid_stream_is_replaced_and_events_merged_holds_every_seq_in_order() {
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "feeder").await;
    let db = TestDb::new("feeder").await;
    // The ledger, written by hand: the feeder publishes rows, whoever wrote them.
    const N: u64 = 12_000;
    let events: Vec<Event> = (0..N).map(|n| event(9, &format!("F-{}", n % 40), n)).collect();
    for chunk in events.chunks(500) {
        db.store.append(chunk).await.unwrap();
    }
    let merged_sub = config.subscription_path("events.merged-sub");

    let mut leader = spawn_worker(&config, &db.settings, "suitex-feeder-a.log");
    eventually(Duration::from_secs(60), "the first worker feeds events.merged", || async {
        fake.backlog(&merged_sub) >= 1000
    })
    .await;
    let standby = spawn_worker(&config, &db.settings, "suitex-feeder-b.log");
    tokio::time::sleep(Duration::from_millis(300)).await;
    leader.kill().unwrap(); // SIGKILL: its session ends, and with it the lock
    leader.wait().unwrap();
    let at_kill = fake.backlog(&merged_sub);
    assert!(at_kill < N as usize, "killed mid-stream ({at_kill} of {N} published)");

    let mut seen: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    let mut per_key: HashMap<String, Vec<u64>> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while seen.len() < N as usize {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {N} seqs reached events.merged",
            seen.len()
        );
        for m in receive(&config, &merged_sub, 1000, Duration::from_millis(500)).await {
            let body: serde_json::Value = serde_json::from_slice(&m.data).unwrap();
            let seq = body["seq"].as_u64().unwrap();
            assert_eq!(attr(&m, "seq"), seq.to_string());
            seen.insert(seq, (m.ordering_key.clone(), body["aggregate_version"].as_u64().unwrap()));
            per_key.entry(m.ordering_key.clone()).or_default().push(seq);
        }
    }
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=N).collect::<Vec<_>>(),
        "every seq, none skipped"
    );
    // Per key: in seq order, where a new leader may start again from its recorded position
    // (re-publishing is allowed, going backwards only to repeat what was published).
    for (key, seqs) in &per_key {
        let mut highest = 0;
        let mut firsts = Vec::new();
        for &s in seqs {
            if s > highest {
                firsts.push(s);
                highest = s;
            }
        }
        let expected: Vec<u64> = seen.iter().filter(|(_, (k, _))| k == key).map(|(s, _)| *s).collect();
        assert_eq!(firsts, expected, "{key}: each seq first arrives in order");
    }
    let republished: usize = per_key.values().map(Vec::len).sum::<usize>() - N as usize;
    let rows = db.store.read_after(&Selection::All, 0, N as u32).await.unwrap();
    for r in &rows {
        assert_eq!(seen[&r.seq].1, r.aggregate_version, "seq {}: aggregate_version as stored", r.seq);
    }
    let position = db.store.merged_position().await.unwrap();
    let _ = Command::new("kill").args(["-TERM", &standby.id().to_string()]).status();
    let mut standby = standby;
    assert!(standby.wait().unwrap().success());
    assert_eq!(db.store.merged_position().await.unwrap().max(position), N, "the new leader records the end");
    eprintln!(
        "published again after the takeover: {republished} messages ({at_kill} were published at the kill)"
    );
}
