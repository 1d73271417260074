//! The worker recovers from every database fault by itself — no restart, no operator
//! (docs/architecture.md §2.3). Each test runs the worker under load against a private MariaDB
//! server as an account with database-level rights (`GRANT SELECT, INSERT ON event_store.*`, the
//! way DBAs commonly grant), makes the database unusable to it in one of production's ways, shows
//! that `/readyz` and the metrics say which failure the worker is waiting out, repairs the
//! database, and ends with every event stored once, nothing nacked or dead-lettered, `/readyz`
//! ready again and the same worker still running.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use suitex_events::Emitter;
use suitex_events::store::{EventStore, StoreSettings};
use suitex_test_support::*;

const WORKER: &str = "suitex_worker";
const PASSWORD: &str = "w0rker-secret";

type Bed = DbFaultBed;

/// The bed, with the worker's account holding database-level rights.
async fn bed(prefix: &str) -> Bed {
    let b = DbFaultBed::start(prefix).await;
    b.db.sql(&format!(
        "CREATE USER '{WORKER}'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT SELECT, INSERT ON event_store.* TO '{WORKER}'@'%'"
    ));
    b
}

/// A plain INSERT of one event of `aggregate`, as the worker's account or root writes one.
async fn insert_one(conn: &mut sqlx::MySqlConnection, aggregate: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO event_store (account_id, event_id, aggregate_type, aggregate_id, event_type, payload, occurred_at) \
         VALUES (42, ?, 'customer', ?, 'customer.updated', '{}', UTC_TIMESTAMP(6))",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(aggregate)
    .execute(conn)
    .await
    .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_session_appending_inside_the_ledger_triggers_is_found_and_ended() {
    // information_schema.processlist shows what a session runs now: inside event_store's
    // triggers, their definer (root, who migrated) as its user and the trigger's statement as its
    // query. A listing by account alone misses a session that is appending at that moment, and
    // a REVOKE or a new password never reaches it. Here the worker's INSERT waits inside the
    // triggers for the sequence's counter row, which root's open transaction holds.
    let b = bed("listing").await;
    let mut holder = b.root.pool().begin().await.unwrap();
    insert_one(&mut holder, "held").await.unwrap();
    let worker = EventStore::open(&b.db.settings_as(WORKER, PASSWORD)).await.unwrap();
    let mut appender = worker.pool().acquire().await.unwrap();
    let id: i64 =
        sqlx::query_scalar("SELECT CAST(CONNECTION_ID() AS SIGNED)").fetch_one(&mut *appender).await.unwrap();
    let appending = tokio::spawn(async move { insert_one(&mut appender, "waiting").await });
    // Waiting for the counter row, which root's transaction holds.
    eventually(Duration::from_secs(10), "the worker's INSERT waits inside the triggers", || {
        let root = b.root.clone();
        async move {
            let inside = "SELECT COUNT(*) FROM information_schema.processlist WHERE id = ? AND info LIKE '%event_store_sequence%'";
            sqlx::query_scalar::<_, i64>(inside).bind(id).fetch_one(root.pool()).await.unwrap() > 0
        }
    })
    .await;
    let mut listing = b.root.pool().acquire().await.unwrap();
    let shown_as: String = sqlx::query_scalar("SELECT user FROM information_schema.processlist WHERE id = ?")
        .bind(id)
        .fetch_one(&mut *listing)
        .await
        .unwrap();
    assert_ne!(shown_as, WORKER, "inside the triggers the session shows as their definer");

    let sessions = sessions_of(&mut *listing, WORKER).await;
    assert!(sessions.contains(&id), "the appending session {id} is among the worker's: {sessions:?}");
    assert_eq!(kill_sessions(&mut listing, &sessions).await, sessions.len());
    let ended =
        tokio::time::timeout(Duration::from_secs(10), appending).await.expect("the INSERT ends").unwrap();
    assert!(ended.is_err(), "the killed session's INSERT failed");
    holder.rollback().await.unwrap();
    let rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM event_store").fetch_one(&mut *listing).await.unwrap();
    assert_eq!(rows, 0, "neither INSERT committed");
}

/// A metric's value in the worker's `/metrics` text (the sample's full name with labels).
fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The worker, with `settings`, under a load of 10 events per 200 ms for `load_for`; once it
/// stores, `fault` runs and the fault lasts `fault_for`; `failure` (a class, e.g. `access`),
/// when given, must be what `/readyz` and `/metrics` report meanwhile; then `repair` runs.
async fn recovers_from(
    b: &Bed,
    settings: &StoreSettings,
    load_for: Duration,
    fault: impl AsyncFnOnce(&Bed),
    fault_for: Duration,
    failure: Option<&str>,
    repair: impl AsyncFnOnce(&Bed),
) {
    let (worker, addr) =
        RunningWorker::start_serving(&b.config, settings, DbFaultBed::worker_options()).await;
    let emitted = Arc::new(AtomicU64::new(0));
    let emitter = Emitter::connect(b.config.clone()).await.unwrap();
    let ticks = (load_for.as_millis() / 200) as u64;
    let load = emit_load(emitter, emitted.clone(), 61, 10, 10, Duration::from_millis(200), ticks);
    eventually(Duration::from_secs(20), "the worker stores before the fault", || {
        let root = b.root.clone();
        async move { count_rows(&root).await > 0 }
    })
    .await;
    until_status(addr, "/readyz", 200, Duration::from_secs(10)).await;

    let started = tokio::time::Instant::now();
    fault(b).await;
    if let Some(class) = failure {
        assert_failure_reported(addr, class).await;
    }
    tokio::time::sleep_until(started + fault_for).await;
    repair(b).await;

    load.await.unwrap();
    let total = emitted.load(Ordering::Relaxed);
    eventually(Duration::from_secs(60), "every emitted event is stored after the repair", || {
        let root = b.root.clone();
        async move { count_rows(&root).await == total }
    })
    .await;
    let ready = until_status(addr, "/readyz", 200, Duration::from_secs(20)).await;
    assert!(!ready.contains("storing fails"), "{ready}");
    let (_, text) = http_get(addr, "/metrics").await;
    assert_eq!(metric(&text, "suitex_events_consecutive_failed_attempts"), Some(0.0), "{text}");
    assert!(worker.is_running(), "the same worker process recovered; nothing restarted it");
    let metrics = worker.metrics.clone();
    worker.stop().await;
    b.assert_each_stored_once_and_nothing_dead_lettered(total, &metrics).await;
}

/// `/readyz` answers 503 naming the failure's class, and `/metrics` counts failed attempts
/// with that class set.
async fn assert_failure_reported(addr: SocketAddr, class: &str) {
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = http_get(addr, "/readyz").await;
        let (_, text) = http_get(addr, "/metrics").await;
        let failed = metric(&text, "suitex_events_consecutive_failed_attempts").unwrap_or(0.0);
        let flagged = metric(&text, &format!("suitex_events_store_failure{{class=\"{class}\"}}"));
        if status == 503
            && body.contains(&format!("storing fails ({class}, "))
            && failed > 0.0
            && flagged == Some(1.0)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "the worker does not report a {class} failure: /readyz {status}: {body}\nfailed attempts {failed}, flag {flagged:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_level_revoke_and_grant_of_insert_needs_no_restart() {
    // A change of database-level rights reaches an open session only at its next USE (its
    // sessions keep the rights they logged in with). The DBA ends the worker's sessions so the
    // REVOKE bites; the sessions opened while it holds never see the GRANT that follows, and a
    // worker reusing them would refuse every INSERT until it is restarted.
    let b = bed("revoke-db").await;
    recovers_from(
        &b,
        &b.db.settings_as(WORKER, PASSWORD),
        Duration::from_secs(20),
        async |b: &Bed| {
            b.db.sql(&format!("REVOKE INSERT ON event_store.* FROM '{WORKER}'@'%'"));
            b.kill_sessions_of(WORKER).await;
        },
        Duration::from_secs(10),
        Some("access"),
        async |b: &Bed| b.db.sql(&format!("GRANT INSERT ON event_store.* TO '{WORKER}'@'%'")),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_session_killed_twice_in_ten_seconds_needs_no_restart() {
    let b = bed("kill").await;
    recovers_from(
        &b,
        &b.db.settings_as(WORKER, PASSWORD),
        Duration::from_secs(16),
        async |b: &Bed| {
            assert!(b.kill_sessions_of(WORKER).await > 0, "the worker had sessions to kill");
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert!(b.kill_sessions_of(WORKER).await > 0, "the worker opened new sessions");
        },
        Duration::from_secs(10),
        // A killed idle session is replaced before it is handed out; a killed busy one fails
        // its statement: which of the two a kill meets is chance, so no failure is demanded.
        None,
        async |_: &Bed| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_server_for_twenty_seconds_needs_no_restart() {
    // As during a Cloud SQL failover, when the old primary is read-only for a while; the
    // worker's account has no SUPER (or READ_ONLY ADMIN) to write through it.
    let b = bed("read-only").await;
    recovers_from(
        &b,
        &b.db.settings_as(WORKER, PASSWORD),
        Duration::from_secs(30),
        async |b: &Bed| b.db.sql("SET GLOBAL read_only = ON"),
        Duration::from_secs(20),
        Some("read_only"),
        async |b: &Bed| b.db.sql("SET GLOBAL read_only = OFF"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_out_of_connections_for_twenty_seconds_needs_no_restart() {
    // Other sessions hold the server's connections, max_connections is lowered to MariaDB's
    // floor (10, below the worker's pool size) under them, and the worker's sessions are cut:
    // every new one is refused with 1040 (Too many connections) until the others let go.
    // The others connect *before* the limit drops and the cut is made from one of their
    // sessions, so the worker never races them for a freed slot.
    let b = bed("max-connections").await;
    let mut settings = b.db.settings_as(WORKER, PASSWORD);
    settings.pool_size = 12;
    let others = std::sync::Mutex::new(None);
    recovers_from(
        &b,
        &settings,
        Duration::from_secs(30),
        async |b: &Bed| {
            const LIMIT: usize = 10;
            let hog = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(LIMIT as u32)
                .connect_lazy_with(b.db.settings().connect_options());
            let mut held = Vec::new();
            for _ in 0..LIMIT {
                held.push(hog.acquire().await.expect("a session while the server has room"));
            }
            let conn = &mut *held[0];
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET GLOBAL max_connections = {LIMIT}")))
                .execute(&mut *conn)
                .await
                .unwrap();
            // A session the worker was opening as the limit dropped may finish its handshake
            // after the listing: cut again until none is left (no new one gets in now).
            let mut cut = 0;
            for _ in 0..10 {
                let ids = sessions_of(&mut *conn, WORKER).await;
                if ids.is_empty() {
                    break;
                }
                cut += kill_sessions(conn, &ids).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(cut > 0, "the worker had sessions to cut");
            let left = sessions_of(&mut *conn, WORKER).await;
            assert_eq!(left, Vec::<i64>::new(), "the worker holds no session once the server is full");
            *others.lock().unwrap() = Some((hog, held));
        },
        Duration::from_secs(20),
        Some("connection_limit"),
        async |b: &Bed| {
            let (hog, held) = others.lock().unwrap().take().expect("the other sessions");
            drop(held);
            hog.close().await;
            b.db.sql("SET GLOBAL max_connections = 151");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_password_is_read_from_the_password_file_without_a_restart() {
    // The password lives in a mounted secret; the DBA rotates it (the old one is refused from
    // then on) and the secret is updated. Open sessions stay authenticated until they end; here
    // they are cut at once, so every new session needs the new password.
    let b = bed("rotate").await;
    let file = b.db.dir().join("worker-password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let mut settings = b.db.settings_as(WORKER, "");
    settings.password_file = Some(file.display().to_string());
    let rotated = "r0tated-secret";
    recovers_from(
        &b,
        &settings,
        Duration::from_secs(20),
        async |b: &Bed| {
            b.db.sql(&format!("ALTER USER '{WORKER}'@'%' IDENTIFIED BY '{rotated}'"));
            b.kill_sessions_of(WORKER).await;
        },
        Duration::from_secs(8),
        Some("authentication"),
        async |_: &Bed| std::fs::write(&file, format!("{rotated}\n")).unwrap(),
    )
    .await;
    let refused = EventStore::open(&b.db.settings_as(WORKER, PASSWORD)).await;
    assert!(refused.is_err(), "the old password is refused");
}
