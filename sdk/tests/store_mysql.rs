//! The event store against MariaDB: schema, idempotent append, append-only enforcement, reads.

use serde_json::json;
use suitex_events::Event;
use suitex_events::error::Poison;
use suitex_events::store::{Appended, EventStore, Selection};
use suitex_test_support::*;

fn event(account: u64, aggregate_id: &str, n: u64) -> Event {
    Event::builder()
        .account_id(account)
        .aggregate("customer", aggregate_id)
        .event_type("customer.updated")
        .payload(json!({"n": n, "name": "Zoë", "ratio": 0.1, "empty": {}, "list": []}))
        .build()
        .unwrap()
}

async fn scalar(store: &EventStore, sql: &'static str) -> String {
    sqlx::query_scalar::<_, String>(sql).fetch_one(store.pool()).await.unwrap()
}

/// The store ids of a batch that was stored whole (anything else fails the test).
fn stored_ids(out: &[Appended]) -> Vec<u64> {
    out.iter()
        .map(|a| match a {
            Appended::Stored(id) => *id,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn migration_creates_the_designed_table() {
    let db = TestDb::new("schema").await;
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT column_name, column_type, is_nullable FROM information_schema.columns
         WHERE table_schema = DATABASE() AND table_name = 'event_store' ORDER BY ordinal_position",
    )
    .fetch_all(db.store.pool())
    .await
    .unwrap();
    let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "seq",
            "account_id",
            "event_id",
            "aggregate_type",
            "aggregate_id",
            "aggregate_version",
            "row_hash",
            "event_type",
            "payload",
            "metadata",
            "occurred_at",
            "created_at"
        ]
    );
    assert_eq!(columns[0].1, "bigint(20) unsigned");
    assert_eq!(columns[1].1, "bigint(20) unsigned");
    assert_eq!(columns[2].1, "bigint(20) unsigned");
    assert_eq!(columns[5].1, "varchar(191)");
    assert_eq!(columns[6].1, "int(10) unsigned");
    assert_eq!(columns[7].1, "char(64)", "row_hash");
    assert_eq!(columns[10].2, "YES", "metadata is nullable");
    assert_eq!(columns[11].1, "datetime(6)");

    let indexes: Vec<(String, i64, String, u32)> = sqlx::query_as(
        "SELECT index_name, non_unique, column_name, seq_in_index FROM information_schema.statistics
         WHERE table_schema = DATABASE() AND table_name = 'event_store' ORDER BY index_name, seq_in_index",
    )
    .fetch_all(db.store.pool())
    .await
    .unwrap();
    let composite: Vec<&str> = indexes
        .iter()
        .filter(|i| i.0 == "event_store_aggregate_version_unique" && i.1 == 0)
        .map(|i| i.2.as_str())
        .collect();
    assert_eq!(composite, ["account_id", "aggregate_type", "aggregate_id", "aggregate_version"]);
    assert!(indexes.iter().any(|i| i.0 == "event_store_event_id_unique" && i.1 == 0 && i.2 == "event_id"));
    assert!(indexes.iter().any(|i| i.0 == "event_store_seq_unique" && i.1 == 0 && i.2 == "seq"));

    let triggers: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT trigger_name, action_timing, event_manipulation FROM information_schema.triggers
         WHERE trigger_schema = DATABASE() ORDER BY trigger_name",
    )
    .fetch_all(db.store.pool())
    .await
    .unwrap();
    assert_eq!(
        triggers,
        [
            ("event_store_assign_order".into(), "BEFORE".into(), "INSERT".into()),
            ("event_store_no_delete".into(), "BEFORE".into(), "DELETE".into()),
            ("event_store_no_update".into(), "BEFORE".into(), "UPDATE".into()),
            ("event_store_parked_events_no_delete".into(), "BEFORE".into(), "DELETE".into()),
            ("event_store_parked_events_no_update".into(), "BEFORE".into(), "UPDATE".into()),
            ("event_store_parking_no_delete".into(), "BEFORE".into(), "DELETE".into()),
            ("event_store_parking_no_update".into(), "BEFORE".into(), "UPDATE".into())
        ]
    );
}

#[tokio::test]
async fn append_is_idempotent_and_keeps_order() {
    let db = TestDb::new("append").await;
    let batch: Vec<Event> = (0..20).map(|n| event(1, "A-1", n)).collect();
    let first = db.store.append(&batch).await.unwrap();
    let ids = stored_ids(&first);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids follow the batch order: {ids:?}");

    // The same events again, plus one new, plus an in-batch repeat.
    let mut again = batch.clone();
    let new = event(1, "A-1", 99);
    again.push(new.clone());
    again.push(new.clone());
    let second = db.store.append(&again).await.unwrap();
    for (i, a) in second[..20].iter().enumerate() {
        assert_eq!(a, &Appended::Duplicate(ids[i]), "an already stored event is a duplicate with its id");
    }
    let Appended::Stored(new_id) = second[20] else { panic!("{:?}", second[20]) };
    assert_eq!(second[21], Appended::Duplicate(new_id), "a repeat inside a batch is a duplicate");
    assert_eq!(db.rows().await, 21);

    // Read back: the stored event is the emitted one, payload and all.
    let stream = db
        .store
        .read_after(
            &Selection::Aggregate {
                account_id: 1,
                aggregate_type: "customer".into(),
                aggregate_id: "A-1".into(),
            },
            0,
            100,
        )
        .await
        .unwrap();
    assert_eq!(stream.len(), 21);
    assert_eq!(stream[0].event, batch[0]);
    assert_eq!(stream[20].event, new);
}

#[tokio::test]
async fn appended_ids_are_right_when_the_server_may_interleave_them() {
    // MariaDB hands out consecutive ids; MySQL 8 (interleaved locking) is read back.
    let db = TestDb::new("interleave").await;
    let store = db.store.clone().verifying_appended_ids();
    let batch: Vec<Event> = (0..50).map(|n| event(9, &format!("V-{}", n % 3), n)).collect();
    let out = store.append(&batch).await.unwrap();
    let stored = store.read_after(&Selection::Tenant { account_id: 9 }, 0, 100).await.unwrap();
    for (a, s) in out.iter().zip(&stored) {
        assert_eq!(a, &Appended::Stored(s.id));
    }
    for (e, s) in batch.iter().zip(&stored) {
        assert_eq!(e.event_id(), s.event.event_id(), "ids follow the batch order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_of_the_same_events_store_each_once() {
    let db = TestDb::new("race").await;
    let batch: Vec<Event> = (0..300).map(|n| event(2, &format!("R-{}", n % 7), n)).collect();
    let mut tasks = Vec::new();
    for k in 0..4 {
        // Half of them read ids back as under MySQL 8's interleaved auto-increment locking.
        let store = if k < 2 { db.store.clone() } else { db.store.clone().verifying_appended_ids() };
        // Overlapping, differently ordered subsets.
        let mine: Vec<Event> = if k % 2 == 0 { batch.clone() } else { batch.iter().rev().cloned().collect() };
        tasks.push(tokio::spawn(async move { store.append(&mine).await.unwrap() }));
    }
    let mut stored = 0;
    for t in tasks {
        stored += t.await.unwrap().iter().filter(|a| matches!(a, Appended::Stored(_))).count();
    }
    assert_eq!(stored, 300, "each event stored by exactly one of the racing appends");
    assert_eq!(db.rows().await, 300);
}

#[tokio::test]
async fn a_row_the_database_refuses_is_rejected_and_the_rest_are_stored() {
    let db = TestDb::new("refuse").await;
    // A constraint the real schema does not have, to make the database refuse one row.
    db.store
        .execute("ALTER TABLE event_store ADD CONSTRAINT small_payload CHECK (LENGTH(payload) < 200)")
        .await
        .unwrap();
    let ok1 = event(3, "X", 1);
    let big = Event::builder()
        .account_id(3)
        .aggregate("customer", "X")
        .event_type("customer.updated")
        .payload(json!("y".repeat(500)))
        .build()
        .unwrap();
    let ok2 = event(3, "Y", 2);
    let after = event(3, "X", 3);
    let out = db.store.append(&[ok1, big, ok2, after]).await.unwrap();
    assert!(matches!(out[0], Appended::Stored(_)), "{out:?}");
    let Appended::Rejected(why @ Poison::RowRefused { code: Some(4025), .. }) = &out[1] else {
        panic!("{out:?}")
    };
    assert!(why.to_string().starts_with("the database refused the row"), "{why}");
    assert!(matches!(out[2], Appended::Stored(_)), "{out:?}");
    assert_eq!(
        out[3],
        Appended::HeldBack,
        "a later event of the refused one's key is not stored ahead of it"
    );
    assert_eq!(db.rows().await, 2);
}

/// A payload nested deeper than MariaDB's JSON check allows (32 levels). The envelope refuses
/// such a payload since the ledger cannot hold it (envelope/exact.rs); it is set here behind the
/// envelope's back, as a payload only the database judges, to reach the store's handling of a
/// row the database refuses for its own data.
fn too_deep(account: u64, aggregate_id: &str) -> Event {
    let text = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    Event::builder()
        .account_id(account)
        .aggregate("customer", aggregate_id)
        .event_type("customer.updated")
        .payload(json!(null))
        .build()
        .unwrap()
        .with_payload(suitex_events::Payload::Raw(serde_json::value::RawValue::from_string(text).unwrap()))
}

#[tokio::test]
async fn rows_refused_for_their_own_data_are_poison_even_when_they_share_the_error() {
    let db = TestDb::new("twobad").await;
    let out = db.store.append(&[too_deep(5, "A"), too_deep(5, "B"), event(5, "C", 1)]).await.unwrap();
    assert!(matches!(out[0], Appended::Rejected(Poison::RowRefused { .. })), "{out:?}");
    assert!(matches!(out[1], Appended::Rejected(Poison::RowRefused { .. })), "{out:?}");
    assert!(matches!(out[2], Appended::Stored(_)), "{out:?}");
    // All of a chunk refused, each for its own data: still poison, since a blank row is accepted.
    let out = db.store.append(&[too_deep(5, "D"), too_deep(5, "E")]).await.unwrap();
    assert!(out.iter().all(|a| matches!(a, Appended::Rejected(_))), "{out:?}");
    assert_eq!(db.rows().await, 1);
}

#[tokio::test]
async fn a_table_that_refuses_every_row_is_a_transient_failure_not_poison() {
    let db = TestDb::new("allbad").await;
    // Every row now fails the same check: the table is wrong, not the events.
    db.store
        .execute("ALTER TABLE event_store ADD CONSTRAINT nothing_fits CHECK (account_id = 0)")
        .await
        .unwrap();
    let err = db.store.append(&[event(6, "A", 1), event(6, "B", 2)]).await.expect_err("a batch failure");
    assert!(err.is_transient(), "{err}");
    let err = db.store.append(&[event(6, "C", 1)]).await.expect_err("even for a single row");
    assert!(err.is_transient(), "{err}");
    db.store.execute("ALTER TABLE event_store DROP CONSTRAINT nothing_fits").await.unwrap();
    assert!(
        db.store.append(&[event(6, "A", 1)]).await.unwrap().iter().all(|a| matches!(a, Appended::Stored(_)))
    );
}

#[tokio::test]
async fn a_missing_table_is_a_transient_failure_not_poison() {
    let db = TestDb::new("notable").await;
    db.store.execute("RENAME TABLE event_store TO event_store_moved").await.unwrap();
    let err = db.store.append(&[event(8, "A", 1)]).await.expect_err("no table, no verdict on the event");
    assert!(err.is_transient(), "{err}");
    db.store.execute("RENAME TABLE event_store_moved TO event_store").await.unwrap();
    assert!(matches!(db.store.append(&[event(8, "A", 1)]).await.unwrap()[0], Appended::Stored(_)));
}

#[test]
fn only_errors_about_a_rows_data_are_poison() {
    use suitex_events::store::ErrorClass::*;
    use suitex_events::store::classify_code;
    for code in [1048, 1264, 1265, 1292, 1366, 1406, 3140, 3146, 3157, 3819, 4025] {
        assert_eq!(classify_code(code), RowData, "{code}");
    }
    // Rotated password, revoked grant, missing table or database, disk full, killed or timed-out
    // query, blocked host, per-user connection limit, read-only failover: never the row's fault.
    for code in [1045, 1142, 1146, 1049, 1114, 1021, 1317, 3024, 1129, 1203, 1290, 1836, 1927, 2013] {
        assert_eq!(classify_code(code), Transient, "{code}");
    }
    assert_eq!(classify_code(1062), Duplicate);
    assert_eq!(classify_code(1213), Deadlock);
}

/// Payloads above 8 MiB are sent to the server in pieces (to bound the worker's memory): they
/// must arrive byte for byte, multi-byte characters cut at no piece boundary, in batch order
/// with the small events around them, and be found again as duplicates.
#[tokio::test]
async fn large_payloads_sent_in_pieces_are_stored_exactly_and_in_order() {
    let db = TestDb::new("streamed").await;
    let limit = db.store.max_packet();
    let size = (12 << 20).min(limit - (1 << 20));
    assert!(size > 8 << 20, "max_allowed_packet ({limit}) leaves room for a payload sent in pieces");
    // 'é' is 2 bytes, '€' 3 and '𝄞' 4: every piece boundary falls inside some character.
    let text: String = "aé€𝄞".chars().cycle().take(size / 10 * 4).collect();
    let large = |id: &str| {
        Event::builder()
            .account_id(5)
            .aggregate("customer", id)
            .event_type("customer.snapshot")
            .payload(json!({"text": text}))
            .build()
            .unwrap()
    };
    let batch = vec![event(5, "S-1", 1), large("L-1"), event(5, "S-1", 2), large("L-2"), event(5, "S-1", 3)];
    let out = db.store.append(&batch).await.unwrap();
    let ids = stored_ids(&out);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids follow the batch order: {ids:?}");
    for (i, e) in batch.iter().enumerate() {
        let stored = db
            .store
            .read_after(&Selection::IdRange { from: ids[i], to: ids[i], account_id: None }, 0, 1)
            .await
            .unwrap();
        assert_eq!(stored[0].event, *e, "event {i} is stored as emitted");
    }
    let again = db.store.append(&batch).await.unwrap();
    assert_eq!(again, ids.iter().map(|id| Appended::Duplicate(*id)).collect::<Vec<_>>());
    assert_eq!(db.rows().await, 5);
}

#[tokio::test]
async fn a_row_larger_than_max_allowed_packet_is_rejected_before_sending() {
    let db = TestDb::new("packet").await;
    let limit = db.store.max_packet();
    let huge = Event::builder()
        .account_id(4)
        .aggregate("customer", "Z")
        .event_type("customer.snapshot")
        .payload(json!("h".repeat(limit + 1)))
        .build()
        .unwrap();
    let out = db.store.append(&[huge, event(4, "Z", 1), event(4, "W", 1)]).await.unwrap();
    let Appended::Rejected(why @ Poison::RowTooLarge { .. }) = &out[0] else { panic!("{out:?}") };
    assert!(why.to_string().contains("max_allowed_packet"), "{why}");
    assert_eq!(out[1], Appended::HeldBack, "its key waits");
    assert!(matches!(out[2], Appended::Stored(_)), "other keys do not");
}

#[tokio::test]
async fn update_and_delete_are_refused_by_the_triggers() {
    let db = TestDb::new("triggers").await;
    db.store.append(&[event(5, "T", 1)]).await.unwrap();
    for sql in ["UPDATE event_store SET event_type = 'x'", "DELETE FROM event_store"] {
        let err = db.store.execute(sql).await.unwrap_err().to_string();
        assert!(err.contains("event_store is append-only"), "{sql}: {err}");
    }
    assert_eq!(scalar(&db.store, "SELECT event_type FROM event_store").await, "customer.updated");
    assert_eq!(db.rows().await, 1);
}

#[tokio::test]
async fn the_worker_account_can_insert_and_select_but_not_change_anything() {
    let db = TestDb::new("grants").await;
    let user = format!("w_{}", unique());
    let account = suitex_events::store::grants::Account::new(&user, "%").unwrap();
    let role = suitex_events::store::grants::Role::Writer;
    db.store.apply_role(&db.settings.database, &account, role, Some("worker-pass")).await.unwrap();
    let mut as_worker = db.settings.clone();
    as_worker.username = user.clone();
    as_worker.password = "worker-pass".into();
    let worker = EventStore::open(&as_worker).await.unwrap();
    let out = worker.append(&[event(6, "G", 1)]).await.unwrap();
    assert!(matches!(out[0], Appended::Stored(_)));
    assert_eq!(worker.count(&Selection::Tenant { account_id: 6 }).await.unwrap(), 1);
    for sql in [
        "UPDATE event_store SET event_type = 'x'",
        "DELETE FROM event_store",
        "TRUNCATE TABLE event_store",
        "DROP TABLE event_store",
        "ALTER TABLE event_store ADD COLUMN x INT",
    ] {
        let err = worker.execute(sql).await.unwrap_err().to_string();
        assert!(err.contains("denied"), "{sql} must be denied by the grants: {err}");
    }
    assert_eq!(db.rows().await, 1);
    worker.pool().close().await;
    db.store.execute(&format!("DROP USER '{user}'@'%'")).await.unwrap();
}

#[tokio::test]
async fn reads_are_scoped_by_tenant() {
    let db = TestDb::new("reads").await;
    let mut all = Vec::new();
    for n in 0..6 {
        all.push(event(7, "S-1", n));
        all.push(event(8, "S-1", n));
    }
    let out = db.store.append(&all).await.unwrap();
    let ids: Vec<u64> = out.iter().map(|a| a.id().unwrap()).collect();

    let tenant7 = db.store.read_after(&Selection::Tenant { account_id: 7 }, 0, 100).await.unwrap();
    assert_eq!(tenant7.len(), 6);
    assert!(tenant7.iter().all(|e| e.event.account_id() == 7));

    // Same aggregate id under another tenant is another aggregate.
    let agg =
        Selection::Aggregate { account_id: 8, aggregate_type: "customer".into(), aggregate_id: "S-1".into() };
    let stream = db.store.read_after(&agg, 0, 100).await.unwrap();
    assert_eq!(stream.len(), 6);
    assert!(stream.iter().all(|e| e.event.account_id() == 8));
    // Paging continues after the last seq seen.
    let page2 = db.store.read_after(&agg, stream[2].seq, 2).await.unwrap();
    assert_eq!(page2.iter().map(|e| e.id).collect::<Vec<_>>(), vec![stream[3].id, stream[4].id]);

    let range = Selection::IdRange { from: ids[2], to: ids[7], account_id: Some(7) };
    let got = db.store.read_after(&range, 0, 100).await.unwrap();
    assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), vec![ids[2], ids[4], ids[6]]);
    assert_eq!(db.store.count(&range).await.unwrap(), 3);
    let unscoped = Selection::IdRange { from: ids[2], to: ids[7], account_id: None };
    assert_eq!(db.store.count(&unscoped).await.unwrap(), 6);
}
