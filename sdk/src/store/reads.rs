//! Reading the event store: which events ([`Selection`]), read in the ledger's order (`seq`)
//! within a bound on the payload bytes held at once, followed as they commit, and counted.
//! Every read that concerns a tenant is scoped by `account_id`. (Appending is in
//! `event_store.rs`.)
//!
//! `seq` is the position to read from, never `id`: ids are taken when a row is inserted and
//! rows commit in any order, so a reader that went on from `id > last` could step past a row
//! that commits a moment later and never see it. `seq` is assigned in commit order without
//! gaps (docs/architecture.md §2.2): a reader that has seen `seq` n has seen every smaller one.

use super::EventStore;
use super::event_store::db_error;
use crate::envelope::{Event, Payload};
use crate::error::{Error, Result, Service};
use serde_json::Value;
use sqlx::QueryBuilder;
use sqlx::Row as _;
use sqlx::mysql::MySqlRow;
use time::{OffsetDateTime, PrimitiveDateTime};

/// A row of the event store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The row's id (a key, not an order: see [`StoredEvent::seq`]).
    pub id: u64,
    /// The row's position in the ledger: 1, 2, 3 … in commit order, without gaps.
    pub seq: u64,
    /// The event's number within its aggregate: 1, 2, 3 … in ledger order.
    pub aggregate_version: u64,
    /// The event, with its full payload inline (as the JSON text the database returned).
    pub event: Event,
    /// When the row was written (UTC).
    pub created_at: OffsetDateTime,
}

/// A row read for `events.merged` ([`EventStore::read_for_feed`]): a payload above the
/// offload threshold is left in the database, and only its size and SHA-256 are read.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRow {
    /// The row; its event's payload is `null` when [`FeedRow::large`] is set.
    pub stored: StoredEvent,
    /// The payload left unread: its size and the lowercase hex SHA-256 of its bytes, as the
    /// database holds them.
    pub large: Option<(u64, String)>,
}

/// Which stored events to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// One aggregate's stream, in order (`aggregate_version` 1, 2, 3 …).
    Aggregate {
        /// The tenant.
        account_id: u64,
        /// E.g. `customer`.
        aggregate_type: String,
        /// E.g. `C-1001`.
        aggregate_id: String,
    },
    /// Every event of one tenant, in ledger order.
    Tenant {
        /// The tenant.
        account_id: u64,
    },
    /// Every event, in ledger order.
    All,
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
            Selection::All => {
                q.push("TRUE");
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

/// The column a read goes on from: `seq` (the ledger's order) or, for the deprecated readers,
/// `id`.
#[derive(Clone, Copy)]
enum Cursor {
    Seq,
    Id,
}

impl Cursor {
    fn column(self) -> &'static str {
        match self {
            Cursor::Seq => "seq",
            Cursor::Id => "id",
        }
    }

    fn of(self, e: &StoredEvent) -> u64 {
        match self {
            Cursor::Seq => e.seq,
            Cursor::Id => e.id,
        }
    }
}

/// Where a [`EventStore::follow`] stream waits for new rows: woken by appends of this process,
/// and otherwise polling at this interval (rows appended by other processes).
pub const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Rows read per page by [`EventStore::follow`].
const FOLLOW_PAGE: u32 = 500;

impl EventStore {
    /// Reads up to `limit` events of `selection` whose `seq` is greater than `after_seq`, in
    /// ledger order.
    pub async fn read_after(
        &self,
        selection: &Selection,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        self.read_page(selection, Cursor::Seq, after_seq, limit, u64::MAX).await
    }

    /// [`EventStore::read_after`], stopping before the payloads read exceed `max_bytes` (at
    /// least one event is read): replays of large payloads stay within a bounded memory.
    pub async fn read_after_bounded(
        &self,
        selection: &Selection,
        after_seq: u64,
        limit: u32,
        max_bytes: u64,
    ) -> Result<Vec<StoredEvent>> {
        self.read_page(selection, Cursor::Seq, after_seq, limit, max_bytes).await
    }

    /// Up to `limit` rows after `after_seq`, in ledger order, for `events.merged`: payloads of
    /// at most `inline_max` bytes are read (together at most `max_bytes`, at least one row);
    /// larger ones are not — the row carries their size and SHA-256, computed by the database,
    /// so that the feeder can name the object the event arrived with instead of holding the
    /// payload (docs/architecture.md §2.4).
    pub async fn read_for_feed(
        &self,
        after_seq: u64,
        limit: u32,
        inline_max: u64,
        max_bytes: u64,
    ) -> Result<Vec<FeedRow>> {
        let (all, seq) = (&Selection::All, Cursor::Seq);
        let Some(last) = self.page_end(all, seq, after_seq, limit, max_bytes, inline_max).await? else {
            return Ok(Vec::new());
        };
        // `inline_max` is a number, written into the statement as such.
        let large = format!("LENGTH(payload) > {inline_max}");
        let payload = format!(
            "IF({large}, 'null', CAST(payload AS CHAR)) AS payload, \
             IF({large}, SHA2(CAST(payload AS CHAR), 256), NULL) AS payload_sha256, \
             IF({large}, LENGTH(CAST(payload AS CHAR)), NULL) AS payload_size"
        );
        let rows = self.rows_through(all, seq, after_seq, last, &payload).await?;
        rows.into_iter()
            .map(|r| {
                let sha256: Option<String> = r.try_get("payload_sha256").map_err(decode)?;
                let size: Option<i64> = r.try_get("payload_size").map_err(decode)?;
                let large = sha256.map(|sha| (size.unwrap_or(0).max(0) as u64, sha.to_ascii_lowercase()));
                Ok(FeedRow { stored: stored_event(&r)?, large })
            })
            .collect()
    }

    /// Every event of `selection` after `after_seq`, in ledger order: first what is stored,
    /// then each new row as it commits — never skipping one, never yielding one twice. The
    /// stream ends only with an error (a reader of it retries from the last `seq` it saw).
    /// It wakes when this process appends and polls every [`FOLLOW_POLL`] for other writers.
    pub fn follow(
        &self,
        selection: Selection,
        after_seq: u64,
    ) -> impl futures::Stream<Item = Result<StoredEvent>> + Send + 'static {
        let store = self.clone();
        let state = (store, selection, after_seq, std::collections::VecDeque::<StoredEvent>::new());
        futures::stream::try_unfold(state, |(store, selection, mut after, mut ready)| async move {
            loop {
                if let Some(next) = ready.pop_front() {
                    after = next.seq;
                    return Ok(Some((next, (store, selection, after, ready))));
                }
                // Taken before reading, so an append that commits during the read wakes the wait
                // below.
                let mut commits = store.commits();
                let page = store.read_after(&selection, after, FOLLOW_PAGE).await?;
                if page.is_empty() {
                    let _ = tokio::time::timeout(FOLLOW_POLL, commits.changed()).await;
                } else {
                    ready.extend(page);
                }
            }
        })
    }

    /// Reads up to `limit` events of `selection` with ids greater than `after_id`, in id order.
    #[deprecated(
        since = "0.4.0",
        note = "ids are not the ledger's order: a reader going on from `id > last` can step past a row that commits later; use read_after (seq)"
    )]
    pub async fn read(&self, selection: &Selection, after_id: u64, limit: u32) -> Result<Vec<StoredEvent>> {
        self.read_page(selection, Cursor::Id, after_id, limit, u64::MAX).await
    }

    /// [`EventStore::read`] within a bound on the payload bytes.
    #[deprecated(
        since = "0.4.0",
        note = "ids are not the ledger's order: a reader going on from `id > last` can step past a row that commits later; use read_after_bounded (seq)"
    )]
    pub async fn read_bounded(
        &self,
        selection: &Selection,
        after_id: u64,
        limit: u32,
        max_bytes: u64,
    ) -> Result<Vec<StoredEvent>> {
        self.read_page(selection, Cursor::Id, after_id, limit, max_bytes).await
    }

    async fn read_page(
        &self,
        selection: &Selection,
        cursor: Cursor,
        after: u64,
        limit: u32,
        max_bytes: u64,
    ) -> Result<Vec<StoredEvent>> {
        let Some(last) = self.page_end(selection, cursor, after, limit, max_bytes, u64::MAX).await? else {
            return Ok(Vec::new());
        };
        let rows =
            self.rows_through(selection, cursor, after, last, "CAST(payload AS CHAR) AS payload").await?;
        let events: Vec<StoredEvent> = rows.iter().map(stored_event).collect::<Result<_>>()?;
        debug_assert!(events.windows(2).all(|w| cursor.of(&w[0]) < cursor.of(&w[1])));
        Ok(events)
    }

    /// Where a page of `selection` after `after` ends, from the payloads' sizes alone: up to
    /// `limit` rows, stopping before the payloads read exceed `max_bytes` (at least one row).
    /// Payloads above `unread_above` bytes are not to be read and count nothing. `None`: no row.
    async fn page_end(
        &self,
        selection: &Selection,
        cursor: Cursor,
        after: u64,
        limit: u32,
        max_bytes: u64,
        unread_above: u64,
    ) -> Result<Option<u64>> {
        let column = cursor.column();
        let mut q = QueryBuilder::<sqlx::MySql>::new(format!(
            "SELECT {column}, LENGTH(payload) FROM event_store WHERE {column} > "
        ));
        q.push_bind(after).push(" AND ");
        selection.push_where(&mut q);
        q.push(format!(" ORDER BY {column} LIMIT ")).push_bind(limit);
        let sizes: Vec<(u64, Option<i64>)> = self
            .timed("SELECT", q.build_query_as().fetch_all(&self.pool))
            .await
            .map_err(|e| db_error(format!("reading from {}", self.describe), e))?;
        let mut last = None;
        let mut bytes = 0u64;
        for (position, size) in sizes {
            let size = size.unwrap_or(0).max(0) as u64;
            let read = if size > unread_above { 0 } else { size };
            if last.is_some() && bytes + read > max_bytes {
                break;
            }
            bytes += read;
            last = Some(position);
        }
        Ok(last)
    }

    /// The rows of `selection` with `after < cursor <= last`, in cursor order: every column of
    /// a stored event, the payload's as `payload_columns` gives it.
    async fn rows_through(
        &self,
        selection: &Selection,
        cursor: Cursor,
        after: u64,
        last: u64,
        payload_columns: &str,
    ) -> Result<Vec<MySqlRow>> {
        let column = cursor.column();
        // `CAST(… AS CHAR)`: MySQL 8 sends a JSON column with its own wire type and the binary
        // collation, which no text type decodes; as CHAR both MySQL 8 and MariaDB send text.
        let mut q = QueryBuilder::<sqlx::MySql>::new(format!(
            "SELECT id, seq, aggregate_version, account_id, event_id, aggregate_type, aggregate_id, event_type, \
             {payload_columns}, CAST(metadata AS CHAR) AS metadata, occurred_at, created_at \
             FROM event_store WHERE {column} > "
        ));
        q.push_bind(after).push(format!(" AND {column} <= ")).push_bind(last).push(" AND ");
        selection.push_where(&mut q);
        q.push(format!(" ORDER BY {column}"));
        self.timed("SELECT", q.build().fetch_all(&self.pool))
            .await
            .map_err(|e| db_error(format!("reading from {}", self.describe), e))
    }

    /// Counts the events of `selection`.
    pub async fn count(&self, selection: &Selection) -> Result<u64> {
        let mut q = QueryBuilder::<sqlx::MySql>::new("SELECT COUNT(*) FROM event_store WHERE ");
        selection.push_where(&mut q);
        let n: i64 = self
            .timed("SELECT COUNT(*)", q.build_query_scalar().fetch_one(&self.pool))
            .await
            .map_err(|e| db_error(format!("counting in {}", self.describe), e))?;
        Ok(n as u64)
    }
}

pub(super) fn decode(e: sqlx::Error) -> Error {
    Error::service(Service::Database, "decoding an event_store row", false, e)
}

fn stored_event(r: &MySqlRow) -> Result<StoredEvent> {
    let id: u64 = r.try_get("id").map_err(decode)?;
    let seq: u64 = r.try_get("seq").map_err(decode)?;
    let aggregate_version: u32 = r.try_get("aggregate_version").map_err(decode)?;
    let payload = r.try_get::<String, _>("payload").map_err(decode)?;
    let payload = serde_json::value::RawValue::from_string(payload)
        .map_err(|e| decode(sqlx::Error::Decode(format!("row {id}'s payload is not JSON: {e}").into())))?;
    let metadata: Option<String> = r.try_get("metadata").map_err(decode)?;
    let occurred_at: PrimitiveDateTime = r.try_get("occurred_at").map_err(decode)?;
    let created_at: PrimitiveDateTime = r.try_get("created_at").map_err(decode)?;
    let mut input = serde_json::json!({
        "event_id": r.try_get::<String, _>("event_id").map_err(decode)?.to_ascii_lowercase(),
        "occurred_at": crate::envelope::format_occurred_at(occurred_at.assume_utc()),
        "account_id": r.try_get::<u64, _>("account_id").map_err(decode)?,
        "aggregate_type": r.try_get::<String, _>("aggregate_type").map_err(decode)?,
        "aggregate_id": r.try_get::<String, _>("aggregate_id").map_err(decode)?,
        "event_type": r.try_get::<String, _>("event_type").map_err(decode)?,
        "payload": Value::Null,
    });
    if let Some(m) = metadata {
        input["metadata"] = serde_json::from_str(&m).map_err(|e| decode(sqlx::Error::Decode(Box::new(e))))?;
    }
    let event = Event::from_input(input)
        .map_err(|e| decode(sqlx::Error::Decode(format!("row {id} breaks the envelope: {e}").into())))?
        .with_payload(Payload::Raw(payload));
    Ok(StoredEvent {
        id,
        seq,
        aggregate_version: aggregate_version.into(),
        event,
        created_at: created_at.assume_utc(),
    })
}
