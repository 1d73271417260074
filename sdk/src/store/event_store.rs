//! The append-only event store itself: its connections and the append algorithm (reads are in
//! `reads.rs`).
//!
//! Only workers write it, and only with INSERT. Appending is idempotent on `event_id`: an event
//! already stored *with the same content* is reported as [`Appended::Duplicate`] with its
//! existing id — never an error and never an UPDATE. (`ON DUPLICATE KEY UPDATE` would fire the
//! append-only trigger, and `INSERT IGNORE` would also hide real errors such as a truncated
//! payload.) An `event_id` stored with other content is poison.
//!
//! What counts as the row's fault is decided in [`super::errors`]; even then, a row is only
//! declared poison when the table is shown to accept rows at all (another row of the batch, or a
//! blank row tried in a transaction that is rolled back), so a table that refuses everything is
//! a failure of the batch, never N poison events. A key's later events are never stored ahead
//! of its refused one ([`Appended::HeldBack`]).

use super::errors::{ErrorClass, FailureClass, classify, failure_class, mysql_code};
use super::reads::decode;
use super::{MIGRATOR, StoreSettings};
use crate::envelope::Event;
use crate::error::{Error, Poison, Result, Service};
use backon::BackoffBuilder;
use serde_json::Value;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::{QueryBuilder, Row as _};
use std::borrow::{Borrow, Cow};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use time::{OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

/// Most rows in one INSERT.
pub const MAX_ROWS_PER_INSERT: usize = 500;
/// Bytes kept free in every statement for SQL text and protocol framing.
const PACKET_HEADROOM: usize = 64 * 1024;
/// A payload larger than this is sent to the server in pieces of [`PAYLOAD_PIECE`] bytes and
/// inserted in a statement of its own (see [`EventStore::insert_streamed`]).
const STREAMED_PAYLOAD: usize = 8 << 20;
/// The size of one piece of a streamed payload.
const PAYLOAD_PIECE: usize = 4 << 20;
/// Races with concurrent writers of the same event ids (deadlocks, duplicates appearing) that
/// one chunk may meet before the append gives up for now (transient).
const RACE_ATTEMPTS: usize = 10;
/// The first and the longest wait before an INSERT that InnoDB chose as a deadlock victim runs
/// again.
const DEADLOCK_BACKOFF_MIN: Duration = Duration::from_millis(5);
const DEADLOCK_BACKOFF_MAX: Duration = Duration::from_millis(200);

/// What appending one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// A new row with this id.
    Stored(u64),
    /// The event was already stored, with the same content, as this id; nothing was written.
    Duplicate(u64),
    /// The row can never be stored as it is (poison); nothing was written for it.
    Rejected(Poison),
    /// Not written: an earlier event of the same ordering key in this call was rejected, and a
    /// key's events are never stored ahead of one that failed. Deliver it again after that one.
    HeldBack,
}

impl Appended {
    /// The row id, for stored and duplicate events.
    pub fn id(&self) -> Option<u64> {
        match self {
            Appended::Stored(id) | Appended::Duplicate(id) => Some(*id),
            Appended::Rejected(_) | Appended::HeldBack => None,
        }
    }
}

/// When the pool's connections were last retired: a connection opened before that moment is
/// closed at its next use instead of being handed out or taken back (docs/architecture.md §2.3).
///
/// sqlx has no call that closes a pool's idle connections and keeps the pool; its acquire and
/// release hooks can refuse a connection, so they consult this.
#[derive(Debug)]
struct Retirement {
    /// A fixed origin for the monotonic clock.
    origin: std::time::Instant,
    /// Nanoseconds after `origin` of the last retirement (0: never).
    at: AtomicU64,
}

impl Retirement {
    fn new() -> Retirement {
        Retirement { origin: std::time::Instant::now(), at: AtomicU64::new(0) }
    }

    fn retire_all(&self) {
        self.at.fetch_max(self.origin.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Whether a connection opened `age` ago was opened after the last retirement.
    fn keeps(&self, age: Duration) -> bool {
        let opened = self.origin.elapsed().saturating_sub(age).as_nanos() as u64;
        opened >= self.at.load(Ordering::Relaxed)
    }
}

/// The event store: a MySQL connection pool and the append/read operations.
#[derive(Debug, Clone)]
pub struct EventStore {
    pub(super) pool: MySqlPool,
    /// Connections retired after a connection-scoped error.
    retirement: Arc<Retirement>,
    /// Re-read on retirement when the password comes from a file.
    pub(super) settings: Arc<StoreSettings>,
    max_packet: usize,
    /// The server hands a multi-row INSERT consecutive ids without gaps (auto-increment step 1
    /// and lock mode 0 or 1), so ids follow from LAST_INSERT_ID() alone.
    consecutive_ids: bool,
    /// Longest any one statement may take before it is abandoned (a transient failure).
    statement_timeout: Duration,
    pub(super) describe: String,
    /// Told whenever this process (any clone of this store) commits appended rows: followers
    /// and the `events.merged` feeder wait on it instead of polling.
    committed: Arc<tokio::sync::watch::Sender<u64>>,
}

pub(super) fn db_error(operation: impl Into<String>, e: sqlx::Error) -> Error {
    let transient = classify(&e) != ErrorClass::RowData;
    Error::service(Service::Database, operation, transient, e)
}

/// The columns of a stored row that make it the same event (metadata and times are not
/// compared: a redelivery carries the same ones, another writer may format them otherwise).
struct Existing {
    id: u64,
    account_id: u64,
    aggregate_type: String,
    aggregate_id: String,
    event_type: String,
    /// SHA2 of the stored payload text, as the server computes it.
    payload_sha256: String,
}

/// One row ready to insert.
struct InsertRow<'a> {
    event: &'a Event,
    payload: Cow<'a, str>,
    metadata: Option<String>,
}

impl InsertRow<'_> {
    /// Whether the payload is sent in pieces.
    fn streamed(&self) -> bool {
        self.payload.len() > STREAMED_PAYLOAD
    }

    fn size(&self) -> usize {
        self.payload.len()
            + self.metadata.as_ref().map_or(0, String::len)
            + self.event.aggregate_id().len()
            + self.event.aggregate_type().len()
            + self.event.event_type().len()
            + 128
    }
}

type Row<'a> = (usize, InsertRow<'a>);

fn primitive_utc(at: OffsetDateTime) -> PrimitiveDateTime {
    PrimitiveDateTime::new(at.date(), at.time())
}

fn timed_out(what: &str, limit: Duration) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} did not complete within {limit:?} (DB_EVENT_STORE_STATEMENT_TIMEOUT)"),
    ))
}

/// The state of one append call.
struct Run {
    outcome: Vec<Option<Appended>>,
    /// Ordering keys with a rejected event in this call, with that event's index: the key's
    /// events after it are held back (those before it are not).
    fenced: HashMap<String, usize>,
}

impl Run {
    fn reject(&mut self, i: usize, event: &Event, why: Poison) {
        self.outcome[i] = Some(Appended::Rejected(why));
        self.fence(i, event);
    }

    fn fence(&mut self, i: usize, event: &Event) {
        let first = self.fenced.entry(event.ordering_key()).or_insert(i);
        *first = (*first).min(i);
    }

    /// Whether event `i` waits behind a rejected earlier event of its key.
    fn held(&self, i: usize, event: &Event) -> bool {
        self.fenced.get(&event.ordering_key()).is_some_and(|&first| i > first)
    }

    /// Rows not held back, marking the others.
    fn unfenced<'r, 'e>(&mut self, rows: impl IntoIterator<Item = &'r Row<'e>>) -> Vec<&'r Row<'e>>
    where
        'e: 'r,
    {
        let mut out = Vec::new();
        for row in rows {
            if self.held(row.0, row.1.event) {
                self.outcome[row.0] = Some(Appended::HeldBack);
            } else {
                out.push(row);
            }
        }
        out
    }
}

impl EventStore {
    /// Connects a pool (lazily: the first query opens the first connection).
    pub async fn connect(settings: &StoreSettings) -> Result<EventStore> {
        let retirement = Arc::new(Retirement::new());
        let (on_acquire, on_release) = (retirement.clone(), retirement.clone());
        let pool = MySqlPoolOptions::new()
            .max_connections(settings.pool_size)
            .acquire_timeout(settings.statement_timeout.min(Duration::from_secs(10)))
            // Slow-moving changes (an IAM token's hour, grants, a new primary) reach the worker
            // within this time even when no error shows them.
            .max_lifetime(settings.connection_max_lifetime)
            .before_acquire(move |_, meta| {
                let keep = on_acquire.keeps(meta.age);
                Box::pin(async move { Ok(keep) })
            })
            .after_release(move |conn, meta| {
                let keep = on_release.keeps(meta.age);
                Box::pin(async move {
                    // A connection that carried a large payload keeps buffers of that size; hand
                    // the memory back when it returns to the pool (bounded memory: §2.5).
                    sqlx::Connection::shrink_buffers(conn);
                    Ok(keep)
                })
            })
            .connect_lazy_with(settings.connect_options());
        Ok(EventStore {
            pool,
            retirement,
            settings: Arc::new(settings.clone()),
            max_packet: 16 * 1024 * 1024,
            consecutive_ids: false,
            statement_timeout: settings.statement_timeout,
            describe: settings.describe(),
            committed: Arc::new(tokio::sync::watch::Sender::new(0)),
        })
    }

    /// Connects and reads the server's `max_allowed_packet`, which bounds every INSERT.
    pub async fn open(settings: &StoreSettings) -> Result<EventStore> {
        let mut store = EventStore::connect(settings).await?;
        store.refresh_limits().await?;
        Ok(store)
    }

    /// Runs one statement within the statement timeout. After a connection-scoped failure (see
    /// [`super::errors`]) every connection opened before it is retired, so the retry runs on a
    /// fresh session.
    pub(super) async fn timed<T>(
        &self,
        what: &str,
        statement: impl Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> std::result::Result<T, sqlx::Error> {
        let result = tokio::time::timeout(self.statement_timeout, statement)
            .await
            .unwrap_or_else(|_| Err(timed_out(what, self.statement_timeout)));
        if let Err(e) = &result
            && let (class, false) = failure_class(e)
        {
            self.retire_connections(class, e);
        }
        result
    }

    /// Retires every connection opened until now (each is closed at its next use) and, when
    /// the password comes from a file, reads it again for the connections to come.
    pub fn retire_connections(&self, class: FailureClass, cause: &sqlx::Error) {
        tracing::debug!(class = class.name(), error = %cause, "retiring the event store's connections");
        self.retirement.retire_all();
        if self.settings.password_file.is_some() {
            self.pool.set_connect_options(self.settings.connect_options());
        }
    }

    /// Re-reads the server's `max_allowed_packet` and how it allocates auto-increment ids.
    pub async fn refresh_limits(&mut self) -> Result<()> {
        let (packet, lock_mode, step): (u64, u64, u64) = self
            .timed(
                "reading the server's limits",
                sqlx::query_as(
                    "SELECT CAST(@@max_allowed_packet AS UNSIGNED), CAST(@@innodb_autoinc_lock_mode AS UNSIGNED), \
                     CAST(@@auto_increment_increment AS UNSIGNED)",
                )
                .fetch_one(&self.pool),
            )
            .await
            .map_err(|e| db_error(format!("connecting to {}", self.describe), e))?;
        self.max_packet = packet as usize;
        self.consecutive_ids = step == 1 && lock_mode <= 1;
        Ok(())
    }

    /// Whether the database answers (a trivial query within the statement timeout).
    pub async fn ping(&self) -> Result<()> {
        self.timed("SELECT 1", sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool))
            .await
            .map(|_| ())
            .map_err(|e| db_error(format!("pinging {}", self.describe), e))
    }

    /// Reads back the ids of every multi-row INSERT as on a server with interleaved
    /// auto-increment locking (MySQL 8's default), whatever this server does. For tests.
    #[cfg(feature = "test-support")]
    pub fn verifying_appended_ids(mut self) -> EventStore {
        self.consecutive_ids = false;
        self
    }

    /// The connection pool (for the test suites).
    #[cfg(feature = "test-support")]
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    #[cfg(not(feature = "test-support"))]
    pub(crate) fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Commits of appended rows by this process (any clone of this store), counted:
    /// `changed()` on the receiver resolves at the first commit after this call.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// The server's `max_allowed_packet` as last read.
    pub fn max_packet(&self) -> usize {
        self.max_packet
    }

    /// Applies the embedded migrations.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| Error::service(Service::Database, format!("migrating {}", self.describe), false, e))
    }

    /// Appends events in order; returns one outcome per event.
    ///
    /// Events must carry their payload inline. An event already stored with the same content
    /// (or repeated earlier in `events`) is a [`Appended::Duplicate`]. A row that can never be
    /// stored — too large for the server's `max_allowed_packet`, refused for its own data, or an
    /// `event_id` stored with other content — is [`Appended::Rejected`], the later events of
    /// its ordering key are [`Appended::HeldBack`], and the others are still written. `Err`
    /// means a failure of the database itself (connection, account, table, disk, timeout …):
    /// the call can be repeated as a whole, since it is idempotent.
    pub async fn append(&self, events: &[Event]) -> Result<Vec<Appended>> {
        self.append_refs(events).await
    }

    /// [`EventStore::append`], taking the events by reference (`&[Event]` or `&[&Event]`), so
    /// a caller holding large payloads need not copy them.
    pub async fn append_refs<E: Borrow<Event> + Sync>(&self, events: &[E]) -> Result<Vec<Appended>> {
        let events: Vec<&Event> = events.iter().map(Borrow::borrow).collect();
        let events = events.as_slice();
        let mut run = Run { outcome: vec![None; events.len()], fenced: HashMap::new() };
        let mut rows: Vec<Row<'_>> = Vec::with_capacity(events.len());
        // Later occurrences of an event_id within `events`, with the index of the first.
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        let mut first_index: HashMap<Uuid, usize> = HashMap::new();
        let limit = self.max_packet.saturating_sub(PACKET_HEADROOM);
        for (i, event) in events.iter().enumerate() {
            if run.held(i, event) {
                run.outcome[i] = Some(Appended::HeldBack);
                continue;
            }
            if let Some(&first) = first_index.get(&event.event_id()) {
                if same_event(events[first], event) {
                    repeats.push((i, first));
                } else {
                    run.reject(
                        i,
                        event,
                        conflict(event, None, "content than an earlier event of this batch"),
                    );
                }
                continue;
            }
            first_index.insert(event.event_id(), i);
            let Some(payload) = event.payload().json_text() else {
                run.reject(i, event, Poison::Unresolved);
                continue;
            };
            let row = InsertRow {
                event,
                payload,
                metadata: event.metadata().map(|m| serde_json::to_string(m).expect("JSON serializes")),
            };
            if row.size() > limit {
                run.reject(i, event, Poison::RowTooLarge { size: row.size(), limit });
                continue;
            }
            rows.push((i, row));
        }

        // Chunks bounded by rows and by packet size.
        let mut start = 0;
        while start < rows.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < rows.len() && end - start < MAX_ROWS_PER_INSERT && bytes + rows[end].1.size() <= limit
            {
                bytes += rows[end].1.size();
                end += 1;
                // A streamed payload goes in a statement of its own.
                if rows[end - 1].1.streamed() || rows.get(end).is_some_and(|r| r.1.streamed()) {
                    break;
                }
            }
            let chunk = run.unfenced(&rows[start..end]);
            self.append_chunk(chunk, &mut run).await?;
            self.committed.send_modify(|commits| *commits += 1);
            start = end;
        }
        for (i, first) in repeats {
            run.outcome[i] =
                Some(match run.outcome[first].clone().expect("a first occurrence has an outcome") {
                    Appended::Stored(id) | Appended::Duplicate(id) => Appended::Duplicate(id),
                    other => other,
                });
        }
        Ok(run.outcome.into_iter().map(|o| o.expect("every event has an outcome")).collect())
    }

    /// Inserts one chunk: already-stored event_ids are compared (duplicates or conflicts), the
    /// rest are inserted in order. A statement refused for a row's data is taken apart with
    /// [`EventStore::probe`]. A duplicate-key race with another worker is resolved by looking
    /// again.
    async fn append_chunk<'r, 'e: 'r>(&self, mut pending: Vec<&'r Row<'e>>, run: &mut Run) -> Result<()> {
        let operation = || format!("appending to {}", self.describe);
        // Jittered, so that two workers inserting the same event ids do not retry in step.
        let mut deadlock_backoff = backon::ExponentialBuilder::default()
            .with_min_delay(DEADLOCK_BACKOFF_MIN)
            .with_max_delay(DEADLOCK_BACKOFF_MAX)
            .with_jitter()
            .without_max_times()
            .build();
        for _attempt in 0..RACE_ATTEMPTS {
            pending = run.unfenced(pending);
            if pending.is_empty() {
                return Ok(());
            }
            let e = match self.insert(&pending).await {
                Ok(first) => {
                    self.record_stored(first, &pending, run).await?;
                    return Ok(());
                }
                Err(e) => e,
            };
            match classify(&e) {
                ErrorClass::Duplicate => {
                    // Some are stored already (an earlier attempt, another worker): compare
                    // them; insert the rest.
                    let ids: Vec<Uuid> = pending.iter().map(|(_, r)| r.event.event_id()).collect();
                    let existing = self.existing(&ids).await?;
                    let mut rest = Vec::with_capacity(pending.len());
                    for row @ (i, r) in pending {
                        match existing.get(&r.event.event_id()) {
                            Some(stored) => match self.compare(stored, r).await? {
                                None => run.outcome[*i] = Some(Appended::Duplicate(stored.id)),
                                Some(why) => run.reject(*i, r.event, why),
                            },
                            None => rest.push(row),
                        }
                    }
                    pending = rest;
                }
                ErrorClass::Deadlock => {
                    // Racing inserts of the same event_ids; InnoDB asks to try again.
                    tracing::debug!("deadlock while appending; retrying");
                    tokio::time::sleep(deadlock_backoff.next().unwrap_or(DEADLOCK_BACKOFF_MAX)).await;
                }
                ErrorClass::Transient => return Err(db_error(operation(), e)),
                ErrorClass::RowData => {
                    tracing::debug!(error = %e, rows = pending.len(), "chunk refused; finding the row");
                    let accepted = self.probe(&pending, run).await?;
                    pending = accepted;
                }
            }
        }
        Err(Error::service(
            Service::Database,
            operation(),
            true,
            "event_ids kept colliding with concurrent inserts; retry",
        ))
    }

    /// Finds the rows of a refused statement that the database refuses for their own data:
    /// each row is inserted alone inside a transaction that is always rolled back (nothing is
    /// written, nothing is updated or deleted). Refused rows are rejected (holding back their
    /// key); the rows the database accepts are returned, to be inserted for real.
    ///
    /// When no row is accepted, a blank row is tried too: if the table refuses even that, the
    /// fault is the table's (a constraint, a schema change), and the whole batch fails for now
    /// instead of making poison of every event.
    async fn probe<'r, 'e: 'r>(&self, rows: &[&'r Row<'e>], run: &mut Run) -> Result<Vec<&'r Row<'e>>> {
        let operation = || format!("appending to {}", self.describe);
        let mut tx = self.timed("BEGIN", self.pool.begin()).await.map_err(|e| db_error(operation(), e))?;
        let mut accepted = Vec::new();
        let mut refused: Vec<(&'r Row<'e>, sqlx::Error)> = Vec::new();
        for &row in rows {
            if run.held(row.0, row.1.event) {
                run.outcome[row.0] = Some(Appended::HeldBack);
                continue;
            }
            let tried = self.try_in_savepoint(&mut tx, &[row]).await?;
            match tried {
                Ok(()) => accepted.push(row),
                Err(e) => match classify(&e) {
                    ErrorClass::RowData => {
                        run.fence(row.0, row.1.event);
                        refused.push((row, e));
                    }
                    // Stored meanwhile, or a race: the real insert sorts these out.
                    ErrorClass::Duplicate | ErrorClass::Deadlock => accepted.push(row),
                    ErrorClass::Transient => return Err(db_error(operation(), e)),
                },
            }
        }
        if accepted.is_empty() && !refused.is_empty() {
            let blank = blank_event();
            let blank_row: Row<'_> =
                (usize::MAX, InsertRow { event: &blank, payload: Cow::Borrowed("{}"), metadata: None });
            if let Err(e) = self.try_in_savepoint(&mut tx, &[&blank_row]).await? {
                let _ = tx.rollback().await;
                let (_, first) = refused.swap_remove(0);
                return Err(Error::service(
                    Service::Database,
                    operation(),
                    true,
                    format!("the table refuses every row, even a blank one ({e}); first refusal: {first}"),
                ));
            }
        }
        let _ = self.timed("ROLLBACK", tx.rollback()).await;
        for ((i, _), e) in refused {
            run.outcome[*i] =
                Some(Appended::Rejected(Poison::RowRefused { code: mysql_code(&e), message: e.to_string() }));
        }
        Ok(accepted)
    }

    /// Inserts `rows` inside a savepoint of `tx` and rolls the savepoint back: `Ok(Ok(()))`
    /// when the database would accept them. The outer `Err` is a failure of the transaction.
    async fn try_in_savepoint(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::MySql>,
        rows: &[&Row<'_>],
    ) -> Result<std::result::Result<(), sqlx::Error>> {
        let operation = || format!("appending to {}", self.describe);
        let mut savepoint = self
            .timed("SAVEPOINT", sqlx::Connection::begin(&mut **tx))
            .await
            .map_err(|e| db_error(operation(), e))?;
        let tried = self.insert_on(&mut savepoint, rows).await.map(|_| ());
        self.timed("ROLLBACK TO SAVEPOINT", savepoint.rollback())
            .await
            .map_err(|e| db_error(operation(), e))?;
        Ok(tried)
    }

    /// Records the ids of an INSERT of `rows` whose first id is `first`.
    async fn record_stored(&self, first: u64, rows: &[&Row<'_>], run: &mut Run) -> Result<()> {
        if let Some(first) = self.consecutive(first, rows).await? {
            for (k, (i, _)) in rows.iter().enumerate() {
                run.outcome[*i] = Some(Appended::Stored(first + k as u64));
            }
            return Ok(());
        }
        let ids: Vec<Uuid> = rows.iter().map(|(_, r)| r.event.event_id()).collect();
        let stored = self.existing(&ids).await?;
        for (i, r) in rows {
            let id = stored.get(&r.event.event_id()).map(|e| e.id).ok_or_else(|| {
                Error::service(
                    Service::Database,
                    "reading back appended ids",
                    true,
                    format!("event {} was inserted but cannot be read back", r.event.event_id()),
                )
            })?;
            run.outcome[*i] = Some(Appended::Stored(id));
        }
        Ok(())
    }

    /// When the ids of an INSERT of `rows` whose first id is `first` are `first..first+n`,
    /// returns `Some(first)`. A single statement's ids always ascend in row order; they have no
    /// gaps when the server says so, or — under interleaved lock mode — when the last row has
    /// `first + n - 1` (n ascending ids in an interval of n).
    async fn consecutive(&self, first: u64, rows: &[&Row<'_>]) -> Result<Option<u64>> {
        if first == 0 {
            return Ok(None);
        }
        if self.consecutive_ids || rows.len() == 1 {
            return Ok(Some(first));
        }
        let last = rows.last().expect("a non-empty chunk").1.event.event_id().to_string();
        let id: Option<u64> = self
            .timed(
                "SELECT id",
                sqlx::query_scalar("SELECT id FROM event_store WHERE event_id = ?")
                    .bind(last)
                    .fetch_optional(&self.pool),
            )
            .await
            .map_err(|e| db_error(format!("reading back appended ids from {}", self.describe), e))?;
        Ok((id == Some(first + rows.len() as u64 - 1)).then_some(first))
    }

    /// Inserts `rows` in one statement; returns the first row's id (LAST_INSERT_ID()).
    async fn insert(&self, rows: &[&Row<'_>]) -> std::result::Result<u64, sqlx::Error> {
        let mut conn = self.timed("connecting", self.pool.acquire()).await?;
        self.insert_on(&mut conn, rows).await
    }

    /// Inserts `rows` in one statement on `conn`; returns the first row's id.
    async fn insert_on(
        &self,
        conn: &mut sqlx::MySqlConnection,
        rows: &[&Row<'_>],
    ) -> std::result::Result<u64, sqlx::Error> {
        match rows {
            [(_, row)] if row.streamed() => self.insert_streamed(conn, row).await,
            _ => self
                .timed("INSERT", insert_query(rows, false).build().execute(&mut *conn))
                .await
                .map(|r| r.last_insert_id()),
        }
    }

    /// Inserts one row whose payload is large, sending the payload in pieces into a session
    /// variable first. A bound value is copied into the driver's argument buffer and again into
    /// its packet buffer (and once more when a packet exceeds 16 MiB); in pieces, the worker
    /// holds the payload once plus two pieces, instead of about four times the payload. The
    /// variable is cleared afterwards so the connection does not keep the payload.
    async fn insert_streamed(
        &self,
        conn: &mut sqlx::MySqlConnection,
        row: &InsertRow<'_>,
    ) -> std::result::Result<u64, sqlx::Error> {
        let inserted = async {
            let mut first = true;
            for piece in pieces(&row.payload, PAYLOAD_PIECE) {
                let sql = if first {
                    "SET @suitex_payload = ?"
                } else {
                    "SET @suitex_payload = CONCAT(@suitex_payload, ?)"
                };
                first = false;
                self.timed("SET @suitex_payload", sqlx::query(sql).bind(piece).execute(&mut *conn)).await?;
            }
            let rows = [&(
                0,
                InsertRow { event: row.event, payload: Cow::Borrowed(""), metadata: row.metadata.clone() },
            )];
            self.timed("INSERT", insert_query(&rows, true).build().execute(&mut *conn))
                .await
                .map(|r| r.last_insert_id())
        }
        .await;
        let cleared = self
            .timed("SET @suitex_payload", sqlx::query("SET @suitex_payload = NULL").execute(&mut *conn))
            .await;
        let id = inserted?;
        cleared?;
        Ok(id)
    }

    /// The stored rows of these event ids, keyed by id as a UUID (whatever case the stored
    /// text has: the column compares case-insensitively, and so does this).
    async fn existing(&self, event_ids: &[Uuid]) -> Result<HashMap<Uuid, Existing>> {
        let mut q = QueryBuilder::<sqlx::MySql>::new(
            "SELECT event_id, id, account_id, aggregate_type, aggregate_id, event_type, SHA2(payload, 256) \
             FROM event_store WHERE event_id IN (",
        );
        let mut sep = q.separated(", ");
        for id in event_ids {
            sep.push_bind(id.to_string());
        }
        q.push(")");
        let rows = self
            .timed("SELECT", q.build().fetch_all(&self.pool))
            .await
            .map_err(|e| db_error(format!("reading ids from {}", self.describe), e))?;
        let mut out = HashMap::new();
        for r in &rows {
            let text: String = r.try_get(0).map_err(decode)?;
            let Ok(event_id) = Uuid::try_parse(&text) else { continue };
            out.insert(
                event_id,
                Existing {
                    id: r.try_get(1).map_err(decode)?,
                    account_id: r.try_get(2).map_err(decode)?,
                    aggregate_type: r.try_get(3).map_err(decode)?,
                    aggregate_id: r.try_get(4).map_err(decode)?,
                    event_type: r.try_get(5).map_err(decode)?,
                    payload_sha256: r.try_get::<Option<String>, _>(6).map_err(decode)?.unwrap_or_default(),
                },
            );
        }
        Ok(out)
    }

    /// `None` when the stored row is the same event as `row`, else why it is not.
    ///
    /// The payload is compared by hash first (MariaDB keeps the text as written, so a
    /// redelivery hashes the same); when the hashes differ it is compared as JSON, since MySQL 8
    /// stores a normalized document (keys reordered, whitespace dropped).
    async fn compare(&self, stored: &Existing, row: &InsertRow<'_>) -> Result<Option<Poison>> {
        let e = row.event;
        for (what, same) in [
            ("account_id", stored.account_id == e.account_id()),
            ("aggregate_type", stored.aggregate_type == e.aggregate_type()),
            ("aggregate_id", stored.aggregate_id == e.aggregate_id()),
            ("event_type", stored.event_type == e.event_type()),
        ] {
            if !same {
                return Ok(Some(conflict(e, Some(stored.id), what)));
            }
        }
        if stored.payload_sha256.eq_ignore_ascii_case(&crate::claim_check::sha256_hex(row.payload.as_bytes()))
        {
            return Ok(None);
        }
        let text: Option<String> = self
            .timed(
                "SELECT payload",
                sqlx::query_scalar("SELECT CAST(payload AS CHAR) FROM event_store WHERE id = ?")
                    .bind(stored.id)
                    .fetch_optional(&self.pool),
            )
            .await
            .map_err(|e| db_error(format!("reading a stored payload from {}", self.describe), e))?;
        let same = match (text, serde_json::from_str::<Value>(&row.payload)) {
            (Some(text), Ok(ours)) => serde_json::from_str::<Value>(&text).is_ok_and(|theirs| theirs == ours),
            _ => false,
        };
        Ok((!same).then(|| conflict(e, Some(stored.id), "payload")))
    }

    /// Runs one statement as-is (for the test suites: scratch databases, grants).
    #[cfg(feature = "test-support")]
    pub async fn execute(&self, sql: &str) -> Result<()> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| db_error(sql.to_string(), e))
    }
}

/// Splits `text` into pieces of at most `size` bytes (at least one character each), at
/// character boundaries.
fn pieces(text: &str, size: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        if end == 0 {
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// The INSERT statement for `rows`; with `payload_variable` the payload is `@suitex_payload`
/// (see [`EventStore::insert_streamed`]).
fn insert_query(rows: &[&Row<'_>], payload_variable: bool) -> QueryBuilder<sqlx::MySql> {
    let mut q = QueryBuilder::<sqlx::MySql>::new(
        "INSERT INTO event_store (account_id, event_id, aggregate_type, aggregate_id, event_type, payload, metadata, occurred_at) ",
    );
    q.push_values(rows, |mut b, (_, r)| {
        b.push_bind(r.event.account_id())
            .push_bind(r.event.event_id().to_string())
            .push_bind(r.event.aggregate_type())
            .push_bind(r.event.aggregate_id())
            .push_bind(r.event.event_type());
        if payload_variable {
            b.push("@suitex_payload");
        } else {
            b.push_bind(r.payload.as_ref());
        }
        b.push_bind(r.metadata.as_deref()).push_bind(primitive_utc(r.event.occurred_at()));
    });
    q
}

/// Whether two events with one `event_id` are the same event (a repeat within a batch).
fn same_event(a: &Event, b: &Event) -> bool {
    a.account_id() == b.account_id()
        && a.aggregate_type() == b.aggregate_type()
        && a.aggregate_id() == b.aggregate_id()
        && a.event_type() == b.event_type()
        && a.payload() == b.payload()
}

fn conflict(e: &Event, store_id: Option<u64>, what: &str) -> Poison {
    Poison::ConflictingDuplicate { event_id: e.event_id().to_string(), store_id, what: what.to_string() }
}

/// A row that any healthy table accepts (it is only ever inserted inside a transaction that is
/// rolled back).
fn blank_event() -> Event {
    Event::builder()
        .event_id(Uuid::new_v4())
        .account_id(1)
        .aggregate("suitex.probe", "probe")
        .event_type("suitex.probe")
        .payload(Value::Object(Default::default()))
        .build()
        .expect("the probe event is valid")
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_cut_at_character_boundaries_and_cover_the_text() {
        let text: String = "aé€𝄞".chars().cycle().take(1001).collect();
        for size in [1, 2, 3, 5, 7, 64, 5000] {
            let parts: Vec<&str> = pieces(&text, size).collect();
            assert_eq!(parts.concat(), text, "size {size}");
            // A piece is at most `size` bytes unless one character is larger.
            assert!(parts.iter().all(|p| p.len() <= size.max(4) && !p.is_empty()), "size {size}");
        }
        assert_eq!(pieces("", 4).count(), 0);
    }
}
