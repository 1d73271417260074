//! The spool: a durable local queue between `emit_event` and Pub/Sub (`SUITEX_EVENTS_SPOOL`).
//!
//! In spool mode an emit validates and size-checks the events as in direct mode, then appends
//! them to a SQLite database in the spool directory and returns: a web request never waits on
//! Pub/Sub or Cloud Storage. `suitex-events relay` ([`super::relay`]) drains the spool to
//! `events.raw` (claim-check uploads included) and removes what was published.
//!
//! **Durability.** The database runs in WAL mode with `synchronous = FULL`: every append is one
//! transaction whose commit has the WAL `fsync`ed before the emit returns. So an event whose
//! emit returned survives the emitting process crashing (it is on disk), the relay crashing
//! (nothing leaves the spool before Pub/Sub acknowledged it; the relay re-publishes what it had
//! in flight, and the worker deduplicates on `event_id`), and a host power loss (the WAL was
//! synced). It does not survive losing the disk itself: put the spool on the host's persistent
//! disk (or the pod's persistent volume), never on tmpfs.
//!
//! **Order.** Many processes append at once (every php-fpm worker, CLI jobs); SQLite serializes
//! the writers, and each append takes the write lock for its whole transaction, so the row ids
//! (`seq`) follow the order in which appends completed. The relay publishes each ordering key in
//! `seq` order, which is therefore the order of the emits that returned.
//!
//! **Bounded.** The pending events may take at most `SUITEX_EVENTS_SPOOL_MAX_BYTES` (their JSON
//! plus a small per-row overhead); an append that would pass it fails at once with
//! [`Error::SpoolFull`], naming the limit, and appends nothing. Dead events (refused by Pub/Sub
//! as invalid) are kept apart in the `dead` table, listed by `suitex-events spool list`, and do
//! not count against the limit.
//!
//! SQLite (through `rusqlite`, with its bundled library) rather than a file format of our own:
//! concurrent appends from many processes, crash safety and a queryable dead-letter table are
//! what it does best.

use super::spool_privacy::SpoolAccess;
use crate::error::{Error, Result};
use backon::BackoffBuilder;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database file inside the spool directory.
pub const SPOOL_FILE: &str = "spool.sqlite3";
/// Bytes counted for one row beyond its JSON (row id, key, event id, time).
const ROW_OVERHEAD: u64 = 128;
/// How long an append waits for another process's transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spooled (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    ordering_key TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    bytes        INTEGER NOT NULL,
    spooled_at   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE TABLE IF NOT EXISTS dead (
    seq          INTEGER PRIMARY KEY,
    ordering_key TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    spooled_at   INTEGER NOT NULL,
    dead_at      INTEGER NOT NULL,
    reason       TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS spool_size (id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO spool_size (id, bytes) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS spooled_added AFTER INSERT ON spooled
    BEGIN UPDATE spool_size SET bytes = bytes + NEW.bytes WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS spooled_removed AFTER DELETE ON spooled
    BEGIN UPDATE spool_size SET bytes = bytes - OLD.bytes WHERE id = 1; END;
";

/// One event to append: its ordering key, id and wire JSON (payload inline).
#[derive(Debug, Clone)]
pub struct Entry {
    /// `{account_id}:{aggregate_type}:{aggregate_id}`.
    pub ordering_key: String,
    /// The event's id (hyphenated).
    pub event_id: String,
    /// The envelope as JSON, payload inline.
    pub body: Vec<u8>,
}

/// An event waiting in the spool.
#[derive(Debug, Clone)]
pub struct Spooled {
    /// Its position: the order appends completed in.
    pub seq: i64,
    /// Its ordering key.
    pub ordering_key: String,
    /// Its event id.
    pub event_id: String,
    /// The envelope as JSON, payload inline.
    pub body: Vec<u8>,
    /// When it was appended (Unix milliseconds).
    pub spooled_at_ms: i64,
    /// Failed publish attempts so far.
    pub attempts: i64,
}

/// An event the relay gave up on: refused by Pub/Sub (or Cloud Storage) as invalid.
#[derive(Debug, Clone, Serialize)]
pub struct DeadEvent {
    /// Its position in the spool when it was appended.
    pub seq: i64,
    /// Its ordering key.
    pub ordering_key: String,
    /// Its event id.
    pub event_id: String,
    /// When it was appended (Unix milliseconds).
    pub spooled_at_ms: i64,
    /// When it was given up on (Unix milliseconds).
    pub dead_at_ms: i64,
    /// Why.
    pub reason: String,
    /// The envelope as it was spooled.
    pub body: String,
}

/// What the spool holds (`suitex-events spool status`, the relay's metrics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolStatus {
    /// The database file.
    pub path: PathBuf,
    /// Events waiting to be published.
    pub depth: u64,
    /// Bytes they take, as counted against the limit.
    pub bytes: u64,
    /// The limit (`SUITEX_EVENTS_SPOOL_MAX_BYTES`).
    pub max_bytes: u64,
    /// Age of the oldest waiting event, in milliseconds.
    pub oldest_age_ms: Option<u64>,
    /// Events in the dead table.
    pub dead: u64,
}

/// A spool directory's database, opened by one process (open one per process: the handle is
/// not carried across `fork()`).
#[derive(Debug)]
pub struct Spool {
    conn: Mutex<Connection>,
    path: PathBuf,
    max_bytes: u64,
}

fn spool_error(path: &Path, operation: &str, e: impl Into<crate::error::BoxError>) -> Error {
    let e = e.into();
    // A busy or locked database and a full disk pass; a corrupt or unreadable file does not.
    let transient = e.downcast_ref::<rusqlite::Error>().is_none_or(|e| {
        matches!(
            e.sqlite_error_code(),
            Some(
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::SystemIoFailure
            )
        )
    });
    Error::service(crate::error::Service::Spool, format!("{operation} ({})", path.display()), transient, e)
}

/// Switches a spool's connection to WAL with `synchronous = FULL` and creates its tables (each
/// idempotent); on failure, which step failed.
fn prepare(conn: &Connection) -> std::result::Result<(), (&'static str, rusqlite::Error)> {
    const WAL: &str = "switching the spool to WAL";
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(|e| (WAL, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err((
            WAL,
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                Some(format!("the journal mode stayed {mode}")),
            ),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL").map_err(|e| ("setting synchronous = FULL", e))?;
    conn.execute_batch(SCHEMA).map_err(|e| ("creating the spool's tables", e))
}

/// Whether SQLite refused for a lock another connection holds.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Spool {
    /// Opens (creating if needed) the spool in directory `dir`, with a limit of `max_bytes`.
    /// The directory and its files are created private (or shared with one group) as `access`
    /// says, and an existing spool that is not is refused before anything is written to it
    /// ([`super::spool_privacy`]).
    pub fn open(dir: &Path, max_bytes: u64, access: &SpoolAccess) -> Result<Spool> {
        let path = dir.join(SPOOL_FILE);
        let fail = |op: &str, e: rusqlite::Error| spool_error(&path, op, e);
        access.secure_dir(dir)?;
        // SQLite gives the -wal and -shm files the database file's mode, owner and group.
        access.secure_file(&path)?;
        let conn = Connection::open(&path).map_err(|e| fail("opening the spool", e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| fail("opening the spool", e))?;
        // Processes that open a new spool at the same moment (php-fpm workers after a deploy)
        // contend for the switch to WAL and the schema, and SQLite answers some of them "database
        // is locked" at once instead of waiting (a lock it cannot wait for without deadlocking):
        // they try again, within the busy timeout.
        let mut waits = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(2))
            .with_max_delay(Duration::from_millis(100))
            .with_jitter()
            .with_total_delay(Some(BUSY_TIMEOUT))
            .without_max_times()
            .build();
        loop {
            match prepare(&conn) {
                Ok(()) => break,
                Err((op, e)) if is_busy(&e) => match waits.next() {
                    Some(wait) => std::thread::sleep(wait),
                    None => return Err(fail(op, e)),
                },
                Err((op, e)) => return Err(fail(op, e)),
            }
        }
        Ok(Spool { conn: Mutex::new(conn), path, max_bytes })
    }

    /// `config`'s spool directory; a clear error naming `SUITEX_EVENTS_SPOOL` in direct mode.
    pub fn dir_of(config: &crate::config::Config) -> Result<&Path> {
        config.spool().ok_or_else(|| {
            Error::Config(crate::error::ConfigError::new(
                crate::settings::SPOOL.name,
                "is not set; it names the spool directory (spool mode)",
            ))
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The limit on pending bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn conn(&self) -> parking_lot::MutexGuard<'_, Connection> {
        self.conn.lock()
    }

    fn fail<'a>(&'a self, operation: &'a str) -> impl Fn(rusqlite::Error) -> Error + 'a {
        move |e| spool_error(&self.path, operation, e)
    }

    /// Appends `entries` in one durable transaction (all or none), in order; returns their
    /// `seq`s. Fails with [`Error::SpoolFull`] when they would pass the limit.
    pub fn append(&self, entries: &[Entry]) -> Result<Vec<i64>> {
        let needed: u64 = entries.iter().map(|e| e.body.len() as u64 + ROW_OVERHEAD).sum();
        let mut conn = self.conn();
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.fail("appending"))?;
        let held: u64 = tx
            .query_row("SELECT bytes FROM spool_size WHERE id = 1", [], |r| r.get::<_, i64>(0))
            .map_err(self.fail("appending"))?
            .max(0) as u64;
        if held + needed > self.max_bytes {
            return Err(Error::SpoolFull { path: self.path.clone(), held, needed, limit: self.max_bytes });
        }
        let now = now_ms();
        let mut seqs = Vec::with_capacity(entries.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO spooled (ordering_key, event_id, body, bytes, spooled_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(self.fail("appending"))?;
            for e in entries {
                let bytes = e.body.len() as i64 + ROW_OVERHEAD as i64;
                insert
                    .execute(params![e.ordering_key, e.event_id, e.body, bytes, now])
                    .map_err(self.fail("appending"))?;
                seqs.push(tx.last_insert_rowid());
            }
        }
        tx.commit().map_err(self.fail("committing an append"))?;
        Ok(seqs)
    }

    /// Up to `limit` waiting events, oldest first.
    pub fn pending(&self, limit: usize) -> Result<Vec<Spooled>> {
        let conn = self.conn();
        let mut q = conn
            .prepare_cached(
                "SELECT seq, ordering_key, event_id, body, spooled_at, attempts FROM spooled ORDER BY seq LIMIT ?1",
            )
            .map_err(self.fail("reading the spool"))?;
        q.query_map([limit as i64], |r| {
            Ok(Spooled {
                seq: r.get(0)?,
                ordering_key: r.get(1)?,
                event_id: r.get(2)?,
                body: r.get(3)?,
                spooled_at_ms: r.get(4)?,
                attempts: r.get(5)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.fail("reading the spool"))
    }

    /// Removes published events.
    pub fn remove(&self, seqs: &[i64]) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.fail("removing"))?;
        {
            let mut delete =
                tx.prepare_cached("DELETE FROM spooled WHERE seq = ?1").map_err(self.fail("removing"))?;
            for seq in seqs {
                delete.execute([seq]).map_err(self.fail("removing"))?;
            }
        }
        tx.commit().map_err(self.fail("removing"))
    }

    /// Counts a failed attempt on events that stay in the spool.
    pub fn failed(&self, seqs: &[i64], error: &str) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.fail("recording"))?;
        {
            let mut update = tx
                .prepare_cached("UPDATE spooled SET attempts = attempts + 1, last_error = ?2 WHERE seq = ?1")
                .map_err(self.fail("recording"))?;
            for seq in seqs {
                update.execute(params![seq, error]).map_err(self.fail("recording"))?;
            }
        }
        tx.commit().map_err(self.fail("recording"))
    }

    /// Moves an event to the dead table with `reason`.
    pub fn bury(&self, seq: i64, reason: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(self.fail("burying"))?;
        tx.execute(
            "INSERT OR REPLACE INTO dead (seq, ordering_key, event_id, body, spooled_at, dead_at, reason)
             SELECT seq, ordering_key, event_id, body, spooled_at, ?2, ?3 FROM spooled WHERE seq = ?1",
            params![seq, now_ms(), reason],
        )
        .map_err(self.fail("burying"))?;
        tx.execute("DELETE FROM spooled WHERE seq = ?1", [seq]).map_err(self.fail("burying"))?;
        tx.commit().map_err(self.fail("burying"))
    }

    /// Depth, bytes, oldest age and dead count.
    pub fn status(&self) -> Result<SpoolStatus> {
        let conn = self.conn();
        let depth: i64 = conn
            .query_row("SELECT COUNT(*) FROM spooled", [], |r| r.get(0))
            .map_err(self.fail("reading the spool's status"))?;
        // The oldest by position (the primary key), not by a scan of the times.
        let oldest: Option<i64> = conn
            .query_row("SELECT spooled_at FROM spooled ORDER BY seq LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(self.fail("reading the spool's status"))?;
        let bytes: i64 = conn
            .query_row("SELECT bytes FROM spool_size WHERE id = 1", [], |r| r.get(0))
            .map_err(self.fail("reading the spool's status"))?;
        let dead: i64 = conn
            .query_row("SELECT COUNT(*) FROM dead", [], |r| r.get(0))
            .map_err(self.fail("reading the spool's status"))?;
        Ok(SpoolStatus {
            path: self.path.clone(),
            depth: depth as u64,
            bytes: bytes.max(0) as u64,
            max_bytes: self.max_bytes,
            oldest_age_ms: oldest.map(|t| (now_ms() - t).max(0) as u64),
            dead: dead as u64,
        })
    }

    /// Up to `limit` dead events, oldest first.
    pub fn dead(&self, limit: usize) -> Result<Vec<DeadEvent>> {
        let conn = self.conn();
        let mut q = conn
            .prepare(
                "SELECT seq, ordering_key, event_id, body, spooled_at, dead_at, reason FROM dead ORDER BY seq LIMIT ?1",
            )
            .map_err(self.fail("reading dead events"))?;
        q.query_map([limit as i64], |r| {
            let body: Vec<u8> = r.get(3)?;
            Ok(DeadEvent {
                seq: r.get(0)?,
                ordering_key: r.get(1)?,
                event_id: r.get(2)?,
                body: String::from_utf8_lossy(&body).into_owned(),
                spooled_at_ms: r.get(4)?,
                dead_at_ms: r.get(5)?,
                reason: r.get(6)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.fail("reading dead events"))
    }

    /// The `seq` of a waiting event with this id, if any (for tests and tools).
    pub fn find(&self, event_id: &str) -> Result<Option<i64>> {
        self.conn()
            .query_row("SELECT seq FROM spooled WHERE event_id = ?1", [event_id], |r| r.get(0))
            .optional()
            .map_err(self.fail("reading the spool"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, n: usize) -> Entry {
        Entry { ordering_key: key.into(), event_id: format!("e-{key}-{n}"), body: vec![b'x'; n] }
    }

    #[test]
    fn processes_that_open_a_new_spool_at_the_same_moment_all_succeed() {
        // Eight emitters open (and so create) one spool at once, as concurrent php-fpm workers
        // do on the first request after a deploy; SQLite answers some of them "database is
        // locked" at once, without waiting, while another switches the new file to WAL.
        for round in 0..20 {
            let dir = std::env::temp_dir().join(format!("spool-race-{round}-{}", uuid::Uuid::now_v7()));
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let opened: Vec<_> = (0..8)
                .map(|_| {
                    let (dir, barrier) = (dir.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        Spool::open(&dir, 10_000, &SpoolAccess::owner_only())
                            .map(|s| s.append(&[entry("k", 1)]))
                    })
                })
                .collect();
            for t in opened {
                let appended = t.join().unwrap().unwrap_or_else(|e| panic!("round {round}: {e}"));
                appended.unwrap();
            }
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn appends_in_order_removes_and_counts_bytes() {
        let dir = std::env::temp_dir().join(format!("spool-unit-{}", uuid::Uuid::now_v7()));
        let spool = Spool::open(&dir, 10_000, &SpoolAccess::owner_only()).unwrap();
        let seqs = spool.append(&[entry("a", 10), entry("b", 20), entry("a", 30)]).unwrap();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        let status = spool.status().unwrap();
        assert_eq!((status.depth, status.bytes), (3, 60 + 3 * ROW_OVERHEAD));
        let pending = spool.pending(10).unwrap();
        assert_eq!(pending.iter().map(|p| p.body.len()).collect::<Vec<_>>(), [10, 20, 30]);
        spool.remove(&seqs[..1]).unwrap();
        spool.bury(seqs[1], "refused").unwrap();
        let status = spool.status().unwrap();
        assert_eq!((status.depth, status.bytes, status.dead), (1, 30 + ROW_OVERHEAD, 1));
        assert_eq!(spool.dead(10).unwrap()[0].reason, "refused");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_full_spool_refuses_the_whole_append_and_names_the_limit() {
        let dir = std::env::temp_dir().join(format!("spool-unit-{}", uuid::Uuid::now_v7()));
        let spool = Spool::open(&dir, 1_000, &SpoolAccess::owner_only()).unwrap();
        spool.append(&[entry("a", 500)]).unwrap();
        let err = spool.append(&[entry("b", 100), entry("c", 300)]).unwrap_err();
        assert!(matches!(err, Error::SpoolFull { limit: 1_000, .. }), "{err}");
        assert!(err.to_string().contains("SUITEX_EVENTS_SPOOL_MAX_BYTES"), "{err}");
        assert_eq!(spool.status().unwrap().depth, 1, "nothing of the refused append was written");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
