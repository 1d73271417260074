//! Reading the event store: which events ([`Selection`]), read in id order within a bound on
//! the payload bytes held at once, and counted. Every read that concerns a tenant is scoped by
//! `account_id`. (Appending is in `event_store.rs`.)

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
    /// The store id (ascending in commit order; per aggregate, emission order).
    pub id: u64,
    /// The event, with its full payload inline (as the JSON text the database returned).
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

impl EventStore {
    /// Reads up to `limit` events of `selection` with ids greater than `after_id`, in id order.
    pub async fn read(&self, selection: &Selection, after_id: u64, limit: u32) -> Result<Vec<StoredEvent>> {
        self.read_bounded(selection, after_id, limit, u64::MAX).await
    }

    /// [`EventStore::read`], stopping before the payloads read exceed `max_bytes` (at least one
    /// event is read): replays of large payloads stay within a bounded memory.
    pub async fn read_bounded(
        &self,
        selection: &Selection,
        after_id: u64,
        limit: u32,
        max_bytes: u64,
    ) -> Result<Vec<StoredEvent>> {
        let operation = || format!("reading from {}", self.describe);
        // Which ids fit, from the payloads' sizes alone.
        let mut q =
            QueryBuilder::<sqlx::MySql>::new("SELECT id, LENGTH(payload) FROM event_store WHERE id > ");
        q.push_bind(after_id).push(" AND ");
        selection.push_where(&mut q);
        q.push(" ORDER BY id LIMIT ").push_bind(limit);
        let sizes: Vec<(u64, Option<i64>)> = self
            .timed("SELECT", q.build_query_as().fetch_all(&self.pool))
            .await
            .map_err(|e| db_error(operation(), e))?;
        let mut last = None;
        let mut bytes = 0u64;
        for (id, size) in sizes {
            let size = size.unwrap_or(0).max(0) as u64;
            if last.is_some() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            last = Some(id);
        }
        let Some(last) = last else { return Ok(Vec::new()) };
        // `CAST(… AS CHAR)`: MySQL 8 sends a JSON column with its own wire type and the binary
        // collation, which no text type decodes; as CHAR both MySQL 8 and MariaDB send text.
        let mut q = QueryBuilder::<sqlx::MySql>::new(
            "SELECT id, account_id, event_id, aggregate_type, aggregate_id, event_type, \
             CAST(payload AS CHAR) AS payload, CAST(metadata AS CHAR) AS metadata, occurred_at, created_at \
             FROM event_store WHERE id > ",
        );
        q.push_bind(after_id).push(" AND id <= ").push_bind(last).push(" AND ");
        selection.push_where(&mut q);
        q.push(" ORDER BY id");
        let rows = self
            .timed("SELECT", q.build().fetch_all(&self.pool))
            .await
            .map_err(|e| db_error(operation(), e))?;
        rows.iter().map(stored_event).collect()
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
    Ok(StoredEvent { id, event, created_at: created_at.assume_utc() })
}
