//! The append-only event store itself: appends and reads.
//!
//! Only workers write it, and only with INSERT. Appending is idempotent on `event_id`: an event
//! already stored is reported as [`Appended::Duplicate`] with its existing id — never an error
//! and never an UPDATE. (`ON DUPLICATE KEY UPDATE` would fire the append-only trigger, and
//! `INSERT IGNORE` would also hide real errors such as a truncated payload.) Every read that
//! concerns a tenant is scoped by `account_id`.

use super::{MIGRATOR, StoreSettings};
use crate::envelope::{Event, Payload};
use crate::error::{Error, Poison, Result, Service};
use serde_json::Value;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{QueryBuilder, Row as _};
use std::collections::HashMap;
use std::time::Duration;
use time::{OffsetDateTime, PrimitiveDateTime};

/// Most rows in one INSERT.
pub const MAX_ROWS_PER_INSERT: usize = 500;
/// Bytes kept free in every statement for SQL text and protocol framing.
const PACKET_HEADROOM: usize = 64 * 1024;

/// What appending one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// A new row with this id.
    Stored(u64),
    /// The event_id was already stored, as this id; nothing was written.
    Duplicate(u64),
    /// The row can never be stored as it is (poison); nothing was written for it.
    Rejected(Poison),
}

impl Appended {
    /// The row id, for stored and duplicate events.
    pub fn id(&self) -> Option<u64> {
        match self {
            Appended::Stored(id) | Appended::Duplicate(id) => Some(*id),
            Appended::Rejected(_) => None,
        }
    }
}

/// A row of the event store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The store id (ascending in commit order; per aggregate, emission order).
    pub id: u64,
    /// The event, with its full payload inline.
    pub event: Event,
    /// When the row was written (UTC).
    pub created_at: OffsetDateTime,
}

/// Which stored events to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// One aggregate's stream, in order.
    Aggregate {
        /// The tenant.
        account_id: u64,
        /// E.g. `customer`.
        aggregate_type: String,
        /// E.g. `C-1001`.
        aggregate_id: String,
    },
    /// Every event of one tenant, in id order.
    Tenant {
        /// The tenant.
        account_id: u64,
    },
    /// Ids `from..=to`, optionally one tenant's only.
    IdRange {
        /// First id.
        from: u64,
        /// Last id.
        to: u64,
        /// Only this tenant's events, when given.
        account_id: Option<u64>,
    },
}

impl Selection {
    /// Appends this selection's conditions (joined by AND) to a WHERE clause.
    fn push_where(&self, q: &mut QueryBuilder<sqlx::MySql>) {
        match self {
            Selection::Aggregate { account_id, aggregate_type, aggregate_id } => {
                q.push("account_id = ").push_bind(*account_id);
                q.push(" AND aggregate_type = ").push_bind(aggregate_type.as_str());
                q.push(" AND aggregate_id = ").push_bind(aggregate_id.as_str());
            }
            Selection::Tenant { account_id } => {
                q.push("account_id = ").push_bind(*account_id);
            }
            Selection::IdRange { from, to, account_id } => {
                q.push("id >= ").push_bind(*from).push(" AND id <= ").push_bind(*to);
                if let Some(a) = account_id {
                    q.push(" AND account_id = ").push_bind(*a);
                }
            }
        }
    }
}

/// The event store: a MySQL connection pool and the append/read operations.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: MySqlPool,
    max_packet: usize,
    /// The server hands a multi-row INSERT consecutive ids without gaps (auto-increment step 1
    /// and lock mode 0 or 1), so ids follow from LAST_INSERT_ID() alone.
    consecutive_ids: bool,
    describe: String,
}

pub(super) fn db_error(operation: impl Into<String>, e: sqlx::Error) -> Error {
    let transient = is_transient(&e);
    Error::service(Service::Database, operation, transient, e)
}

/// MySQL/MariaDB error numbers that mean "try again later".
const TRANSIENT_CODES: [u16; 11] = [
    1040, // too many connections
    1053, // server shutdown in progress
    1205, // lock wait timeout
    1213, // deadlock
    1290, // --read-only (failover in progress)
    1836, // read-only mode
    1927, // connection was killed (MariaDB)
    2002, 2003, 2006, 2013, // cannot connect / server gone / lost connection
];

fn mysql_code(e: &sqlx::Error) -> Option<u16> {
    e.as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .map(|d| d.number())
}

fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(_) => mysql_code(e).is_some_and(|c| TRANSIENT_CODES.contains(&c)),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

const DUPLICATE_KEY: u16 = 1062;
const DEADLOCK: u16 = 1213;

/// One row ready to insert.
struct InsertRow<'a> {
    event: &'a Event,
    payload: String,
    metadata: Option<String>,
}

impl InsertRow<'_> {
    fn size(&self) -> usize {
        self.payload.len()
            + self.metadata.as_ref().map_or(0, String::len)
            + self.event.aggregate_id().len()
            + self.event.aggregate_type().len()
            + self.event.event_type().len()
            + 128
    }
}

fn primitive_utc(at: OffsetDateTime) -> PrimitiveDateTime {
    PrimitiveDateTime::new(at.date(), at.time())
}

impl EventStore {
    /// Connects a pool (lazily: the first query opens the first connection).
    pub async fn connect(settings: &StoreSettings) -> Result<EventStore> {
        let pool = MySqlPoolOptions::new()
            .max_connections(settings.pool_size)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(settings.connect_options());
        Ok(EventStore {
            pool,
            max_packet: 16 * 1024 * 1024,
            consecutive_ids: false,
            describe: settings.describe(),
        })
    }

    /// Connects and reads the server's `max_allowed_packet`, which bounds every INSERT.
    pub async fn open(settings: &StoreSettings) -> Result<EventStore> {
        let mut store = EventStore::connect(settings).await?;
        store.refresh_limits().await?;
        Ok(store)
    }

    /// Re-reads the server's `max_allowed_packet` and how it allocates auto-increment ids.
    pub async fn refresh_limits(&mut self) -> Result<()> {
        let (packet, lock_mode, step): (u64, u64, u64) = sqlx::query_as(
            "SELECT CAST(@@max_allowed_packet AS UNSIGNED), CAST(@@innodb_autoinc_lock_mode AS UNSIGNED), \
             CAST(@@auto_increment_increment AS UNSIGNED)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_error(format!("connecting to {}", self.describe), e))?;
        self.max_packet = packet as usize;
        self.consecutive_ids = step == 1 && lock_mode <= 1;
        Ok(())
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
    /// Events must carry their payload inline. An event already stored (or repeated earlier in
    /// `events`) is a [`Appended::Duplicate`]. A row the database refuses — too large for its
    /// `max_allowed_packet`, or rejected as data — is [`Appended::Rejected`] and the others are
    /// still written. `Err` means nothing more can be said (connection lost, deadlock, …): the
    /// call can be repeated as a whole, since it is idempotent.
    pub async fn append(&self, events: &[Event]) -> Result<Vec<Appended>> {
        let mut outcome: Vec<Option<Appended>> = vec![None; events.len()];
        let mut rows: Vec<(usize, InsertRow<'_>)> = Vec::with_capacity(events.len());
        // Later occurrences of an event_id within `events`, with the index of the first.
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        let mut first_index: HashMap<uuid::Uuid, usize> = HashMap::new();
        let limit = self.max_packet.saturating_sub(PACKET_HEADROOM);
        for (i, event) in events.iter().enumerate() {
            if let Some(&first) = first_index.get(&event.event_id()) {
                repeats.push((i, first));
                continue;
            }
            first_index.insert(event.event_id(), i);
            let Payload::Inline(payload) = event.payload() else {
                outcome[i] = Some(Appended::Rejected(Poison::Unresolved));
                continue;
            };
            let row = InsertRow {
                event,
                payload: serde_json::to_string(payload).expect("a JSON value always serializes"),
                metadata: event.metadata().map(|m| serde_json::to_string(m).expect("JSON serializes")),
            };
            if row.size() > limit {
                outcome[i] = Some(Appended::Rejected(Poison::RowTooLarge { size: row.size(), limit }));
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
            }
            self.append_chunk(&rows[start..end], &mut outcome).await?;
            start = end;
        }
        for (i, first) in repeats {
            outcome[i] = Some(match outcome[first].clone().expect("a first occurrence has an outcome") {
                Appended::Stored(id) | Appended::Duplicate(id) => Appended::Duplicate(id),
                rejected => rejected,
            });
        }
        Ok(outcome.into_iter().map(|o| o.expect("every event has an outcome")).collect())
    }

    /// Inserts one chunk: already-stored event_ids are duplicates, the rest are inserted in
    /// order. A duplicate-key race with another worker is resolved by looking again.
    async fn append_chunk(
        &self,
        rows: &[(usize, InsertRow<'_>)],
        outcome: &mut [Option<Appended>],
    ) -> Result<()> {
        let mut pending: Vec<&(usize, InsertRow<'_>)> = rows.iter().collect();
        for _attempt in 0..10 {
            if pending.is_empty() {
                return Ok(());
            }
            let ids: Vec<String> = pending.iter().map(|(_, r)| r.event.event_id().to_string()).collect();
            match self.insert(&pending).await {
                Ok(first) => {
                    if let Some(first) = self.consecutive(first, &pending).await? {
                        for (k, (i, _)) in pending.iter().enumerate() {
                            outcome[*i] = Some(Appended::Stored(first + k as u64));
                        }
                        return Ok(());
                    }
                    let stored = self.ids_of(&ids).await?;
                    for (i, r) in &pending {
                        let id = stored.get(&r.event.event_id().to_string()).copied().ok_or_else(|| {
                            Error::service(
                                Service::Database,
                                "reading back appended ids",
                                true,
                                format!("event {} was inserted but cannot be read back", r.event.event_id()),
                            )
                        })?;
                        outcome[*i] = Some(Appended::Stored(id));
                    }
                    return Ok(());
                }
                Err(e) if mysql_code(&e) == Some(DUPLICATE_KEY) => {
                    // Some are stored already (an earlier attempt, another worker): those are
                    // duplicates; insert the rest.
                    let existing = self.ids_of(&ids).await?;
                    pending.retain(|(i, r)| match existing.get(&r.event.event_id().to_string()) {
                        Some(id) => {
                            outcome[*i] = Some(Appended::Duplicate(*id));
                            false
                        }
                        None => true,
                    });
                }
                Err(e) if mysql_code(&e) == Some(DEADLOCK) => {
                    // Racing inserts of the same event_ids; InnoDB asks to try again.
                    tracing::debug!("deadlock while appending; retrying");
                    tokio::time::sleep(Duration::from_millis(5 + (pending.len() as u64 % 7) * 3)).await;
                }
                Err(e) if is_transient(&e) => {
                    return Err(db_error(format!("appending to {}", self.describe), e));
                }
                Err(e) if pending.len() > 1 => {
                    // A row the database refuses fails the whole statement: find it.
                    tracing::debug!(error = %e, rows = pending.len(), "chunk refused; inserting row by row");
                    for row in pending.drain(..) {
                        Box::pin(self.append_chunk(std::slice::from_ref(row), outcome)).await?;
                    }
                    return Ok(());
                }
                Err(e) => {
                    let (i, _) = pending[0];
                    outcome[*i] = Some(Appended::Rejected(Poison::RowRefused {
                        code: mysql_code(&e),
                        message: e.to_string(),
                    }));
                    return Ok(());
                }
            }
        }
        Err(Error::service(
            Service::Database,
            format!("appending to {}", self.describe),
            true,
            "event_ids kept colliding with concurrent inserts; retry",
        ))
    }

    /// When the ids of an INSERT of `rows` whose first id is `first` are `first..first+n`,
    /// returns `Some(first)`. A single statement's ids always ascend in row order; they have no
    /// gaps when the server says so, or — under interleaved lock mode — when the last row has
    /// `first + n - 1` (n ascending ids in an interval of n).
    async fn consecutive(&self, first: u64, rows: &[&(usize, InsertRow<'_>)]) -> Result<Option<u64>> {
        if first == 0 {
            return Ok(None);
        }
        if self.consecutive_ids || rows.len() == 1 {
            return Ok(Some(first));
        }
        let last = rows.last().expect("a non-empty chunk").1.event.event_id().to_string();
        let id: Option<u64> = sqlx::query_scalar("SELECT id FROM event_store WHERE event_id = ?")
            .bind(last)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_error(format!("reading back appended ids from {}", self.describe), e))?;
        Ok((id == Some(first + rows.len() as u64 - 1)).then_some(first))
    }

    /// Inserts `rows` in one statement; returns the first row's id (LAST_INSERT_ID()).
    async fn insert(&self, rows: &[&(usize, InsertRow<'_>)]) -> std::result::Result<u64, sqlx::Error> {
        let mut q = QueryBuilder::<sqlx::MySql>::new(
            "INSERT INTO event_store (account_id, event_id, aggregate_type, aggregate_id, event_type, payload, metadata, occurred_at) ",
        );
        q.push_values(rows, |mut b, (_, r)| {
            b.push_bind(r.event.account_id())
                .push_bind(r.event.event_id().to_string())
                .push_bind(r.event.aggregate_type())
                .push_bind(r.event.aggregate_id())
                .push_bind(r.event.event_type())
                .push_bind(&r.payload)
                .push_bind(r.metadata.as_deref())
                .push_bind(primitive_utc(r.event.occurred_at()));
        });
        q.build().execute(&self.pool).await.map(|r| r.last_insert_id())
    }

    async fn ids_of(&self, event_ids: &[String]) -> Result<HashMap<String, u64>> {
        let mut q =
            QueryBuilder::<sqlx::MySql>::new("SELECT event_id, id FROM event_store WHERE event_id IN (");
        let mut sep = q.separated(", ");
        for id in event_ids {
            sep.push_bind(id);
        }
        q.push(")");
        let rows = q
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(format!("reading ids from {}", self.describe), e))?;
        rows.iter()
            .map(|r| {
                Ok((r.try_get::<String, _>(0).map_err(decode)?, r.try_get::<u64, _>(1).map_err(decode)?))
            })
            .collect()
    }

    /// Reads up to `limit` events of `selection` with ids greater than `after_id`, in id order.
    pub async fn read(&self, selection: &Selection, after_id: u64, limit: u32) -> Result<Vec<StoredEvent>> {
        let mut q = QueryBuilder::<sqlx::MySql>::new(
            "SELECT id, account_id, event_id, aggregate_type, aggregate_id, event_type, payload, metadata, occurred_at, created_at FROM event_store WHERE id > ",
        );
        q.push_bind(after_id).push(" AND ");
        selection.push_where(&mut q);
        q.push(" ORDER BY id LIMIT ").push_bind(limit);
        let rows = q
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(format!("reading from {}", self.describe), e))?;
        rows.iter().map(stored_event).collect()
    }

    /// Counts the events of `selection`.
    pub async fn count(&self, selection: &Selection) -> Result<u64> {
        let mut q = QueryBuilder::<sqlx::MySql>::new("SELECT COUNT(*) FROM event_store WHERE ");
        selection.push_where(&mut q);
        let n: i64 = q
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_error(format!("counting in {}", self.describe), e))?;
        Ok(n as u64)
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

fn decode(e: sqlx::Error) -> Error {
    Error::service(Service::Database, "decoding an event_store row", false, e)
}

fn stored_event(r: &MySqlRow) -> Result<StoredEvent> {
    let id: u64 = r.try_get("id").map_err(decode)?;
    let payload: Value = serde_json::from_str(&r.try_get::<String, _>("payload").map_err(decode)?)
        .map_err(|e| decode(sqlx::Error::Decode(Box::new(e))))?;
    let metadata: Option<String> = r.try_get("metadata").map_err(decode)?;
    let occurred_at: PrimitiveDateTime = r.try_get("occurred_at").map_err(decode)?;
    let created_at: PrimitiveDateTime = r.try_get("created_at").map_err(decode)?;
    let mut input = serde_json::json!({
        "event_id": r.try_get::<String, _>("event_id").map_err(decode)?,
        "occurred_at": crate::envelope::format_occurred_at(occurred_at.assume_utc()),
        "account_id": r.try_get::<u64, _>("account_id").map_err(decode)?,
        "aggregate_type": r.try_get::<String, _>("aggregate_type").map_err(decode)?,
        "aggregate_id": r.try_get::<String, _>("aggregate_id").map_err(decode)?,
        "event_type": r.try_get::<String, _>("event_type").map_err(decode)?,
        "payload": payload,
    });
    if let Some(m) = metadata {
        input["metadata"] = serde_json::from_str(&m).map_err(|e| decode(sqlx::Error::Decode(Box::new(e))))?;
    }
    let event = Event::from_input(input)
        .map_err(|e| decode(sqlx::Error::Decode(format!("row {id} breaks the envelope: {e}").into())))?;
    Ok(StoredEvent { id, event, created_at: created_at.assume_utc() })
}

