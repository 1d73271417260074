//! The ledger's hash chain on MariaDB (migration 0003; docs/architecture.md §2.2): every writer
//! is chained — the store's appends (the worker's path) and a hand-written INSERT — an
//! independent re-implementation of the documented encoding (a short Python script) agrees
//! with every stored hash, and `verify` (the API and `suitex-events verify`) names the `seq` of
//! each kind of tampering done as root with the append-only triggers dropped.

use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};
use suitex_events::Event;
use suitex_events::store::{Break, ChainRow, GENESIS};
use suitex_test_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_suitex-events");

fn event(account: u64, aggregate: &str, n: u64) -> Event {
    Event::builder()
        .account_id(account)
        .aggregate("order", aggregate)
        .event_type("order.changed")
        .payload(json!({"n": n, "amount": 1234.5, "name": "Zoë", "lines": [{"sku": "A-1", "qty": n}]}))
        .build()
        .unwrap()
}

/// A ledger of 12 rows: 10 appended by the store in two batches, around two hand-written
/// INSERTs by an operator (one with metadata).
async fn ledger(prefix: &str) -> TestDb {
    let db = TestDb::new(prefix).await;
    let first: Vec<Event> = (0..5).map(|n| event(7, &format!("SO-{}", n % 2), n)).collect();
    db.store.append(&first).await.unwrap();
    for (i, metadata) in [(100, None), (101, Some(r#"{"actor": "ops@example.com"}"#))] {
        sqlx::query(
            "INSERT INTO event_store (account_id, event_id, aggregate_type, aggregate_id, event_type, payload, metadata, occurred_at) \
             VALUES (8, UUID(), 'order', 'SO-9', 'order.fixed', ?, ?, UTC_TIMESTAMP(6))",
        )
        .bind(format!(r#"{{"by": "hand", "n": {i}}}"#))
        .bind(metadata)
        .execute(db.store.pool())
        .await
        .unwrap();
    }
    let second: Vec<Event> = (5..10).map(|n| event(7, &format!("SO-{}", n % 3), n)).collect();
    db.store.append(&second).await.unwrap();
    db
}

async fn root(db: &TestDb, sql: &str) {
    db.store.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// As an admin who gets around the append-only triggers.
async fn without_triggers(db: &TestDb) {
    root(db, "DROP TRIGGER event_store_no_update; DROP TRIGGER event_store_no_delete; DROP TRIGGER event_store_assign_order").await;
}

async fn first_break(db: &TestDb) -> Option<Break> {
    db.store.verify_chain(1, None, |_| {}).await.unwrap().first_break
}

/// seq, event_id, account_id, aggregate_type, aggregate_id, aggregate_version, event_type,
/// occurred_at, created_at, payload, metadata, row_hash.
type Columns =
    (u64, String, u64, String, String, u32, String, String, String, String, Option<String>, String);

/// The rows as the chain covers them, read with the SQL's own formatting of the times (so the
/// script checks the Rust encoder's formatting as well).
async fn rows_as_json(db: &TestDb) -> Vec<Value> {
    let rows: Vec<Columns> =
        sqlx::query_as(
            "SELECT seq, event_id, account_id, aggregate_type, aggregate_id, aggregate_version, event_type, \
             DATE_FORMAT(occurred_at, '%Y-%m-%d %H:%i:%s.%f'), DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f'), \
             CAST(payload AS CHAR), CAST(metadata AS CHAR), row_hash FROM event_store ORDER BY seq",
        )
        .fetch_all(db.store.pool())
        .await
        .unwrap();
    rows.into_iter()
        .map(|r| {
            json!({"seq": r.0, "event_id": r.1, "account_id": r.2, "aggregate_type": r.3, "aggregate_id": r.4,
                   "aggregate_version": r.5, "event_type": r.6, "occurred_at": r.7, "created_at": r.8,
                   "payload": r.9, "metadata": r.10, "row_hash": r.11})
        })
        .collect()
}

/// The chain re-implemented from the README's specification, in another language.
const AUDITOR: &str = r#"
import hashlib, json, sys
FIELDS = ["seq", "event_id", "account_id", "aggregate_type", "aggregate_id", "aggregate_version",
          "event_type", "occurred_at", "created_at", "payload"]
previous = "0" * 64
for row in json.load(sys.stdin):
    text = "suitex-ledger/1\n" + previous
    for name in FIELDS:
        value = str(row[name]).encode()
        text += "\n%s=%d:" % (name, len(value)) + value.decode()
    if row["metadata"] is None:
        text += "\nmetadata=null"
    else:
        text += "\nmetadata=%d:%s" % (len(row["metadata"].encode()), row["metadata"])
    digest = hashlib.sha256(text.encode()).hexdigest()
    if digest != row["row_hash"]:
        print("break at seq", row["seq"])
        sys.exit(1)
    previous = digest
print("intact", previous)
"#;

fn auditor(rows: &[Value]) -> (bool, String) {
    let mut child = Command::new("python3")
        .args(["-c", AUDITOR])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(&serde_json::to_vec(rows).unwrap()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn verify_cli(db: &TestDb, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("verify")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(db.settings.to_settings())
        .output()
        .unwrap()
}

#[tokio::test]
async fn every_writer_is_chained_and_an_independent_script_agrees() {
    let db = ledger("chain_ok").await;
    let rows = rows_as_json(&db).await;
    assert_eq!(rows.len(), 12);
    assert!(rows.iter().all(|r| r["row_hash"].as_str().unwrap().len() == 64), "every row is chained");
    let (ok, said) = auditor(&rows);
    assert!(ok, "the auditor's script: {said}");

    let v = db.store.verify_chain(1, None, |_| {}).await.unwrap();
    assert!(v.intact(), "{v:?}");
    assert_eq!((v.from_seq, v.to_seq, v.rows), (1, 12, 12));
    assert_eq!(said, format!("intact {}", v.head_hash.clone().unwrap()), "both end on the same head");
    // A range is anchored on the row before it.
    let part = db.store.verify_chain(5, Some(8), |_| {}).await.unwrap();
    assert!(part.intact() && (part.from_seq, part.to_seq, part.rows) == (5, 8, 4), "{part:?}");

    let out = verify_cli(&db, &["--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["intact"], true);
    assert_eq!(report["rows"], 12);
    assert_eq!(report["head_hash"], v.head_hash.unwrap().as_str());
}

#[tokio::test]
async fn a_changed_payload_is_caught_at_its_seq() {
    let db = ledger("chain_changed").await;
    without_triggers(&db).await;
    root(&db, r#"UPDATE event_store SET payload = '{"n": 3, "amount": 9999.5}' WHERE seq = 4"#).await;
    assert!(matches!(first_break(&db).await, Some(Break::Mismatch { seq: 4, .. })));
    assert_eq!(auditor(&rows_as_json(&db).await), (false, "break at seq 4".to_string()));
    let out = verify_cli(&db, &[]);
    assert_eq!(out.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("breaks at seq 4") && stderr.contains("seq 1 to 3 (3 rows) are intact"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_deleted_row_is_caught_at_its_seq() {
    let db = ledger("chain_deleted").await;
    without_triggers(&db).await;
    root(&db, "DELETE FROM event_store WHERE seq = 6").await;
    assert_eq!(first_break(&db).await, Some(Break::Missing { seq: 6, found: 7 }));
}

#[tokio::test]
async fn a_row_inserted_with_a_forged_seq_is_caught_at_its_seq() {
    let db = ledger("chain_forged").await;
    without_triggers(&db).await;
    // Slipped in as seq 13, claiming the previous row's hash.
    root(
        &db,
        "INSERT INTO event_store (seq, row_hash, account_id, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, payload, occurred_at) \
         SELECT 13, row_hash, 7, UUID(), 'order', 'SO-1', 99, 'order.changed', '{\"n\": 13}', UTC_TIMESTAMP(6) FROM event_store WHERE seq = 12",
    )
    .await;
    assert!(matches!(first_break(&db).await, Some(Break::Mismatch { seq: 13, .. })));
}

#[tokio::test]
async fn reordered_rows_are_caught_where_the_order_changed() {
    let db = ledger("chain_reordered").await;
    without_triggers(&db).await;
    root(&db, "UPDATE event_store SET seq = 1000 WHERE seq = 8; UPDATE event_store SET seq = 8 WHERE seq = 9; UPDATE event_store SET seq = 9 WHERE seq = 1000").await;
    assert!(matches!(first_break(&db).await, Some(Break::Mismatch { seq: 8, .. })));
}

#[tokio::test]
async fn a_chain_recomputed_after_a_change_is_consistent_again_which_only_digests_can_catch() {
    // What verify without digests cannot see, stated as a test: an admin who changes a row and
    // recomputes every hash after it leaves a chain that verifies.
    let db = ledger("chain_recomputed").await;
    let head = forge_seq_10_and_recompute(&db).await;
    assert_eq!(first_break(&db).await, None);
    assert_ne!(head, GENESIS);
}

fn parse(s: &str) -> time::PrimitiveDateTime {
    let f = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]"
    );
    time::PrimitiveDateTime::parse(s, f).unwrap()
}

/// A ledger of 12 rows whose feeder (leading, publishing 4 rows a page) has written a digest
/// every 4 rows to a digest bucket of the test's own; with the environment `verify` needs.
async fn digested_ledger(prefix: &str) -> (TestDb, Vec<(String, String)>) {
    use std::sync::Arc;
    use suitex_events::worker::feeder::{DigestOptions, Feeder, FeederOptions};
    use suitex_events::worker::metrics::Metrics;
    let db = ledger(prefix).await;
    let config = emulator_config(prefix).build().unwrap();
    provision_for_tests(&config, Topology::UnorderedWithDeadLetters, &[]).await;
    let bucket = format!("digests-{}", unique());
    suitex_events::worker::provision::create_digest_bucket(&storage_url(), &config, &bucket).await.unwrap();
    let metrics = Arc::new(Metrics::default());
    let options = FeederOptions {
        page: 4,
        digests: Some(DigestOptions {
            bucket: bucket.clone(),
            every_rows: 4,
            interval: std::time::Duration::from_secs(600),
        }),
        ..FeederOptions::default()
    };
    let feeder = Feeder::new(config.clone(), db.store.clone(), metrics.clone(), options).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn({
        let stop = stop.clone();
        async move { feeder.run(stop).await }
    });
    eventually(std::time::Duration::from_secs(30), "digests up to seq 12 are written", || async {
        metrics.digest_seq.get() == 12
    })
    .await;
    stop.cancel();
    running.await.unwrap();
    let mut env: Vec<(String, String)> =
        config.to_settings().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    env.extend(db.settings.to_settings().into_iter().map(|(k, v)| (k.to_string(), v)));
    env.push(("SUITEX_WORKER_DIGEST_BUCKET".into(), bucket));
    (db, env)
}

fn verify_with(env: &[(String, String)], args: &[&str]) -> (Option<i32>, Value) {
    let out = Command::new(BIN)
        .arg("verify")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_digests_a_recomputed_chain_is_caught() {
    let (db, env) = digested_ledger("chain_digest_recomputed").await;
    let (code, report) = verify_with(&env, &["--json", "--digests"]);
    assert_eq!((code, &report["intact"], &report["digests"]), (Some(0), &json!(true), &json!(3)), "{report}");

    // Change seq 10 and recompute every hash after it: consistent again without digests.
    forge_seq_10_and_recompute(&db).await;
    let (code, report) = verify_with(&env, &["--json"]);
    assert_eq!((code, &report["intact"]), (Some(0), &json!(true)), "without digests: {report}");
    let (code, report) = verify_with(&env, &["--json", "--digests"]);
    assert_eq!(code, Some(65), "{report}");
    let b = &report["first_break"];
    assert_eq!(
        (&b["kind"], &b["seq"], &b["after_seq"], &b["digest"]),
        (&json!("digest"), &json!(12), &json!(8), &json!(3)),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_digests_removed_newest_rows_are_caught() {
    let (db, env) = digested_ledger("chain_digest_truncated").await;
    without_triggers(&db).await;
    root(&db, "DELETE FROM event_store WHERE seq > 10").await;
    let (code, report) = verify_with(&env, &["--json"]);
    assert_eq!(
        (code, &report["intact"], &report["rows"]),
        (Some(0), &json!(true), &json!(10)),
        "without digests: {report}"
    );
    let (code, report) = verify_with(&env, &["--json", "--digests"]);
    assert_eq!(code, Some(65), "{report}");
    let b = &report["first_break"];
    assert_eq!(
        (&b["kind"], &b["seq"], &b["digest_seq"]),
        (&json!("truncated"), &json!(11), &json!(12)),
        "{report}"
    );
}

/// As an admin who covers their tracks: seq 10's payload changed, then every hash from seq 10 on
/// recomputed by the documented encoding. Returns the new head hash.
async fn forge_seq_10_and_recompute(db: &TestDb) -> String {
    without_triggers(db).await;
    root(db, r#"UPDATE event_store SET payload = '{"n": 0, "forged": true}' WHERE seq = 10"#).await;
    let rows = rows_as_json(db).await;
    let mut previous = rows[8]["row_hash"].as_str().unwrap().to_string();
    for r in &rows[9..] {
        let h = chain_row(r).expected_hash(&previous);
        root(db, &format!("UPDATE event_store SET row_hash = '{h}' WHERE seq = {}", r["seq"])).await;
        previous = h;
    }
    previous
}

fn chain_row(r: &Value) -> ChainRow {
    ChainRow {
        seq: r["seq"].as_u64().unwrap(),
        event_id: r["event_id"].as_str().unwrap().into(),
        account_id: r["account_id"].as_u64().unwrap(),
        aggregate_type: r["aggregate_type"].as_str().unwrap().into(),
        aggregate_id: r["aggregate_id"].as_str().unwrap().into(),
        aggregate_version: r["aggregate_version"].as_u64().unwrap(),
        event_type: r["event_type"].as_str().unwrap().into(),
        occurred_at: parse(r["occurred_at"].as_str().unwrap()),
        created_at: parse(r["created_at"].as_str().unwrap()),
        payload: r["payload"].as_str().unwrap().into(),
        metadata: r["metadata"].as_str().map(String::from),
        row_hash: String::new(),
    }
}
