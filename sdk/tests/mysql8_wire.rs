//! The ledger reads on MySQL 8 (Cloud SQL), whose wire types differ from MariaDB's: a `JSON`
//! column arrives with its own column type (245) and the binary collation, and MySQL normalizes
//! stored documents (keys reordered, whitespace dropped). No MySQL 8 server can be installed
//! here, so these tests talk to a MySQL-protocol stand-in (`tests/support/mysql8_server.py`,
//! built on the `mysql-mimic` package) that answers the event store's queries exactly as MySQL 8
//! types them.

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use suitex_events::consume::merged::MergedEvent;
use suitex_events::store::{EventStore, Selection, StoreSettings};
use suitex_events::worker::replay::Replayer;
use suitex_events::{Event, Payload};
use suitex_test_support::*;

struct Mysql8 {
    child: Child,
    port: u16,
}

impl Drop for Mysql8 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(rows: serde_json::Value) -> Mysql8 {
    let python = required_env("SUITEX_TEST_PYTHON");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/mysql8_server.py");
    let mut child = Command::new(&python)
        .arg(script)
        .args(["--port", &port.to_string(), "--events", &rows.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{python} cannot run the MySQL 8 stand-in ({e}); scripts/services start installs it")
        });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(
        line.starts_with("listening"),
        "the MySQL 8 stand-in did not start: {line:?} (is mysql-mimic installed?)"
    );
    Mysql8 { child, port }
}

fn settings(port: u16) -> StoreSettings {
    StoreSettings::from_lookup(|k| match k {
        "DB_EVENT_STORE_HOST" => Some("127.0.0.1".into()),
        "DB_EVENT_STORE_PORT" => Some(port.to_string()),
        "DB_EVENT_STORE_SSL_MODE" => Some("disabled".into()),
        "DB_EVENT_STORE_POOL_SIZE" => Some("1".into()),
        _ => None,
    })
    .unwrap()
}

fn row(id: u64, event: &Event) -> serde_json::Value {
    json!({
        "id": id,
        "seq": id,
        "aggregate_version": id,
        "account_id": event.account_id(),
        "event_id": event.event_id().to_string(),
        "aggregate_type": event.aggregate_type(),
        "aggregate_id": event.aggregate_id(),
        "event_type": event.event_type(),
        "payload": event.payload().to_value().unwrap(),
        "metadata": event.metadata(),
        "occurred_at": event.occurred_at_rfc3339().trim_end_matches('Z'),
        "created_at": "2026-12-01T10:00:00.000001",
    })
}

#[tokio::test]
async fn stored_events_read_back_from_mysql_8_json_columns() {
    let payload = json!({"name": "Zoë", "bb": {"z": 1, "a": [1, 2.5, null]}, "a": true});
    let mut metadata = serde_json::Map::new();
    metadata.insert("correlation_id".into(), json!("req-1"));
    metadata.insert("actor".into(), json!("user:7"));
    let event = Event::builder()
        .account_id(42)
        .aggregate("customer", "C-8")
        .event_type("customer.updated")
        .payload(payload.clone())
        .metadata(metadata.clone())
        .build()
        .unwrap();
    let server = start(json!([row(7, &event)]));
    let store = EventStore::connect(&settings(server.port)).await.unwrap();
    let read =
        store.read_after(&Selection::Tenant { account_id: 42 }, 0, 10).await.expect("reads on MySQL 8");
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].id, 7);
    assert_eq!(
        read[0].event.payload().to_value().unwrap(),
        payload,
        "the same document, whatever its key order"
    );
    assert_eq!(read[0].event.metadata(), Some(&metadata));
    assert_eq!(read[0].event.event_id(), event.event_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_from_mysql_8_reoffloads_a_large_payload_next_to_its_original_object() {
    let config = emulator_config("mysql8").offload_threshold(64 * 1024).build().unwrap();
    let probe = provision_with_probe(&config).await;
    let merged_probe = config.subscription_path(&format!("{}-m", config.names().merged_topic));
    suitex_events::clients::subscription_admin(&config)
        .await
        .unwrap()
        .create_subscription()
        .set_name(&merged_probe)
        .set_topic(config.topic_path(&config.names().merged_topic))
        .send()
        .await
        .unwrap();
    // Emitted with its keys in the producer's order: the claim-check object holds those bytes.
    let payload = json!({"zebra": "z".repeat(100_000), "apple": 1, "mid": {"y": 2, "b": 3}});
    let event = Event::builder()
        .account_id(42)
        .aggregate("customer", "C-9")
        .event_type("customer.snapshot")
        .payload(payload.clone())
        .build()
        .unwrap();
    let receipt = suitex_events::Emitter::connect(config.clone())
        .await
        .unwrap()
        .emit_event(event.clone())
        .await
        .unwrap();
    assert_eq!(receipt.payload_location, suitex_events::PayloadLocation::ClaimCheck);
    receive(&config, &probe, 1, Duration::from_secs(30)).await;

    // MySQL 8 hands the payload back normalized; replay offloads it again.
    let server = start(json!([row(11, &event)]));
    let store = EventStore::connect(&settings(server.port)).await.unwrap();
    let replayer = Replayer::new(config.clone(), store).await.unwrap();
    let n = replayer
        .replay(&Selection::Tenant { account_id: 42 }, None, |_| {})
        .await
        .expect("the replay does not trip over its own object");
    assert_eq!(n, 1);
    let got = receive(&config, &merged_probe, 1, Duration::from_secs(30)).await;
    let merged = MergedEvent::decode(&got[0].data).unwrap();
    assert!(merged.replayed);
    let Payload::ClaimCheck(r) = merged.event.payload() else {
        panic!("a large payload travels as a claim-check")
    };
    let bytes = download(&r.bucket, &r.object).await;
    assert_eq!(suitex_events::claim_check::sha256_hex(&bytes), r.sha256);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(), payload);
}
