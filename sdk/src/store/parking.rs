//! Parked keys (docs/architecture.md §2.5 "Parked keys"): what the event store database keeps
//! so that a dead letter never reorders its aggregate. The tables are `event_store_parking`
//! (parks and releases) and `event_store_parked_events` (the events kept aside), both
//! append-only (migration 0004).
//!
//! A key is *parked* from the moment one of its events is dead-lettered until that dead letter
//! is appended (a redrive brought it back) or an operator skips it. Meanwhile the key's later
//! events are kept aside, never appended; a release appends the dead letter (unless skipped)
//! and then the kept events, in their order, and records the release — all or nothing.
//!
//! Keeping an event aside and releasing a park are serialised by a MySQL named lock per park
//! (`GET_LOCK`, no privilege needed), held on a session of its own until its transaction has
//! committed: an event is kept aside only under a park that is still open when it commits, and
//! a release sees every event kept aside before it. Locking reads (`FOR SHARE`) would need
//! more than the writer role's INSERT and SELECT on MySQL 8.

use super::EventStore;
use super::event_store::db_error;
use crate::envelope::Event;
use crate::error::{Error, Poison, Result, Service};
use crate::store::Appended;
use serde::Serialize;
use sqlx::Connection as _;
use sqlx::mysql::MySqlConnection;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// How long keeping events aside or a release waits for a park's lock (another release of it).
const PARK_LOCK_WAIT: Duration = Duration::from_secs(10);

/// An open park: the key is parked behind this dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Park {
    /// The park's record id.
    pub id: u64,
    /// The parked ordering key (`account:aggregate_type:aggregate_id`).
    pub ordering_key: String,
    /// The dead letter's event id, when its body could be read.
    pub event_id: Option<String>,
    /// The dead letter's Pub/Sub message id: on `events.raw` when the worker parked the key on
    /// its nack, on `events.dlq` when the dead-letter watch did.
    pub message_id: String,
    /// SHA-256 (hex) of the dead letter's body: a redrive that brings it back is known by it.
    pub data_sha256: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// Who parked it (the worker, with its database account).
    pub recorded_by: String,
    /// When (RFC 3339, UTC).
    pub parked_at: String,
    /// Seconds since it was parked, by the database's clock.
    pub age_seconds: u64,
    /// Events kept aside behind it.
    pub parked_events: u64,
}

/// The open parks, by key, oldest first. A key stays parked while any of its parks is open: a
/// second dead letter of a parked key parks it again, behind the first. The oldest park is the
/// one whose dead letter must come back (or be skipped) first; the key's later events are kept
/// behind the newest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenParks(HashMap<String, Vec<Park>>);

impl OpenParks {
    /// The key's oldest open park: the one a release of the key ends.
    pub fn get(&self, key: &str) -> Option<&Park> {
        self.0.get(key).and_then(|p| p.first())
    }

    /// The key's newest open park: the one its later events are kept behind.
    pub fn newest(&self, key: &str) -> Option<&Park> {
        self.0.get(key).and_then(|p| p.last())
    }

    /// The key's open parks, oldest first.
    pub fn of(&self, key: &str) -> &[Park] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }

    /// Whether the key is parked.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Removes and returns the key's oldest open park (once it is released).
    pub fn remove(&mut self, key: &str) -> Option<Park> {
        let parks = self.0.get_mut(key)?;
        let oldest = parks.remove(0);
        if parks.is_empty() {
            self.0.remove(key);
        }
        Some(oldest)
    }

    /// Whether no key is parked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parked keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The parked keys.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }

    /// Every open park, oldest first.
    pub fn all(&self) -> Vec<&Park> {
        let mut all: Vec<&Park> = self.0.values().flatten().collect();
        all.sort_by_key(|p| p.id);
        all
    }
}

/// One step of [`EventStore::park`], in message order.
#[derive(Debug, Clone)]
pub enum Parking<'a> {
    /// Park the key behind this dead letter (behind its open parks, if it has any).
    Park(NewPark),
    /// Keep this event aside behind its key's newest park.
    KeepAside(&'a Event),
}

/// A park to record: the dead letter of `ordering_key`.
#[derive(Debug, Clone)]
pub struct NewPark {
    /// The key to park.
    pub ordering_key: String,
    /// The dead letter's event id, when its body could be read.
    pub event_id: Option<String>,
    /// The dead letter's Pub/Sub message id.
    pub message_id: String,
    /// SHA-256 (hex) of the dead letter's body, as published: a redrive is known by it.
    pub data_sha256: String,
    /// Why it is dead-lettered.
    pub reason: String,
}

impl NewPark {
    /// The park of the dead letter with this body (`data`), message id and attributes, whose
    /// event is `event` when its body is one (else the `event_id` attribute names it).
    pub fn of_message(
        ordering_key: &str,
        message_id: &str,
        data: &[u8],
        event: Option<&Event>,
        attributes: &HashMap<String, String>,
        reason: String,
    ) -> NewPark {
        NewPark {
            ordering_key: ordering_key.to_string(),
            event_id: event.map(|e| e.event_id().to_string()).or_else(|| attributes.get("event_id").cloned()),
            message_id: message_id.to_string(),
            data_sha256: crate::claim_check::sha256_hex(data),
            reason,
        }
    }
}

/// How a park ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The dead letter came back (a redrive) and is appended first.
    Redriven,
    /// An operator gave up on the dead letter; only the kept events are appended.
    Skipped,
}

impl Release {
    fn action(self) -> &'static str {
        match self {
            Release::Redriven => "redriven",
            Release::Skipped => "skipped",
        }
    }
}

/// What a release did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Released {
    /// The park it ended.
    pub park_id: u64,
    /// `redriven` or `skipped`.
    pub action: String,
    /// Rows appended (or found stored already), in order, by event id: the dead letter (when
    /// redriven) and then the kept events.
    pub appended: Vec<(String, u64)>,
}

/// One record of a key's parking history, for `suitex-events parked show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParkingRecord {
    /// Record id.
    pub id: u64,
    /// `parked`, `redriven` or `skipped`.
    pub action: String,
    /// For a release, the park it ended.
    pub park_id: Option<u64>,
    /// The dead letter's event id (parks).
    pub event_id: Option<String>,
    /// The dead letter's Pub/Sub message id (parks).
    pub message_id: String,
    /// Why it was parked, or why it was skipped.
    pub reason: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// When (RFC 3339, UTC).
    pub recorded_at: String,
}

/// What keeping events aside found: keys whose park was released meanwhile, whose events must
/// be appended instead (retry the batch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeptAside {
    /// Keys whose open park was released while the events were on their way.
    pub released_meanwhile: Vec<String>,
}

/// The name of the named lock of park `id` (at most 64 characters).
fn park_lock_name(database: &str, id: u64) -> String {
    let mut name = format!("suitex_events.park.{id}.{database}");
    name.truncate(64);
    name
}

const PARK_COLUMNS: &str = "p.id, p.ordering_key, p.event_id, p.message_id, p.data_sha256, p.reason, p.recorded_by, \
     DATE_FORMAT(p.recorded_at, '%Y-%m-%dT%H:%i:%s.%fZ'), \
     CAST(GREATEST(TIMESTAMPDIFF(SECOND, p.recorded_at, UTC_TIMESTAMP(6)), 0) AS UNSIGNED), \
     CAST((SELECT COUNT(*) FROM event_store_parked_events e WHERE e.park_id = p.id) AS UNSIGNED)";

type ParkRow = (u64, String, Option<String>, String, Option<String>, String, String, String, u64, u64);

fn park_of(r: ParkRow) -> Park {
    Park {
        id: r.0,
        ordering_key: r.1,
        event_id: r.2,
        message_id: r.3,
        data_sha256: r.4.unwrap_or_default(),
        reason: r.5,
        recorded_by: r.6,
        parked_at: r.7,
        age_seconds: r.8,
        parked_events: r.9,
    }
}

impl EventStore {
    /// The open parks, by ordering key, oldest first. One small query: the worker asks before
    /// every batch.
    pub async fn open_parks(&self) -> Result<OpenParks> {
        let sql = format!(
            "SELECT {PARK_COLUMNS} FROM event_store_parking p WHERE p.action = 'parked' \
             AND NOT EXISTS (SELECT 1 FROM event_store_parking r WHERE r.park_id = p.id) ORDER BY p.id"
        );
        let rows: Vec<ParkRow> = self
            .timed("SELECT parks", sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool))
            .await
            .map_err(|e| db_error(format!("reading the parked keys of {}", self.describe), e))?;
        let mut open = OpenParks::default();
        for p in rows.into_iter().map(park_of) {
            open.0.entry(p.ordering_key.clone()).or_default().push(p);
        }
        Ok(open)
    }

    /// Whether `ordering_key` was ever parked behind the message whose body has `data_sha256`
    /// (open or released since).
    pub async fn parked_for(&self, ordering_key: &str, data_sha256: &str) -> Result<bool> {
        self.any_row(
            "SELECT id FROM event_store_parking WHERE ordering_key = ? AND data_sha256 = ? LIMIT 1",
            &[ordering_key, data_sha256],
            "the parked keys",
        )
        .await
    }

    /// Whether an event with this id is in the ledger.
    pub async fn is_stored(&self, event_id: uuid::Uuid) -> Result<bool> {
        self.any_row("SELECT id FROM event_store WHERE event_id = ?", &[&event_id.to_string()], "the ledger")
            .await
    }

    /// Whether an event with this id is kept aside behind a park (open or released since).
    pub async fn is_kept_aside(&self, event_id: uuid::Uuid) -> Result<bool> {
        self.any_row(
            "SELECT id FROM event_store_parked_events WHERE event_id = ? LIMIT 1",
            &[&event_id.to_string()],
            "the parked events",
        )
        .await
    }

    /// Whether `sql` (an id lookup with `binds`) finds a row; `what` names the table for errors.
    async fn any_row(&self, sql: &'static str, binds: &[&str], what: &str) -> Result<bool> {
        let query = binds.iter().fold(sqlx::query_scalar::<_, u64>(sql), |q, b| q.bind(*b));
        let found = self
            .timed("SELECT id", query.fetch_optional(&self.pool))
            .await
            .map_err(|e| db_error(format!("reading {what} of {}", self.describe), e))?;
        Ok(found.is_some())
    }

    /// A key's parking history (parks and releases), oldest first.
    pub async fn parking_history(&self, ordering_key: &str) -> Result<Vec<ParkingRecord>> {
        type Row = (u64, String, Option<u64>, Option<String>, String, String, String, String);
        let rows: Vec<Row> = self
            .timed(
                "SELECT parking",
                sqlx::query_as(
                    "SELECT id, action, park_id, event_id, message_id, reason, recorded_by, \
                     DATE_FORMAT(recorded_at, '%Y-%m-%dT%H:%i:%s.%fZ') FROM event_store_parking \
                     WHERE ordering_key = ? ORDER BY id",
                )
                .bind(ordering_key)
                .fetch_all(&self.pool),
            )
            .await
            .map_err(|e| db_error(format!("reading the parking history of {}", self.describe), e))?;
        Ok(rows
            .into_iter()
            .map(|r| ParkingRecord {
                id: r.0,
                action: r.1,
                park_id: r.2,
                event_id: r.3,
                message_id: r.4,
                reason: r.5,
                recorded_by: r.6,
                recorded_at: r.7,
            })
            .collect())
    }

    /// The events kept aside behind park `park_id`, in their order.
    pub async fn parked_events(&self, park_id: u64) -> Result<Vec<Event>> {
        let texts: Vec<String> = self
            .timed(
                "SELECT parked events",
                sqlx::query_scalar(
                    "SELECT event FROM event_store_parked_events WHERE park_id = ? ORDER BY id",
                )
                .bind(park_id)
                .fetch_all(&self.pool),
            )
            .await
            .map_err(|e| db_error(format!("reading the parked events of {}", self.describe), e))?;
        texts
            .iter()
            .map(|t| {
                Event::decode(t.as_bytes()).map_err(|e| {
                    Error::service(
                        Service::Database,
                        "reading the parked events",
                        false,
                        format!("a parked event of park {park_id} no longer decodes: {e}"),
                    )
                })
            })
            .collect()
    }

    /// Carries out `steps` in one transaction, in their order: records parks (a key parked
    /// already is parked again, behind its open parks) and keeps events aside behind their
    /// key's newest park. Idempotent: a park of the same key and dead letter that is open
    /// already, and an event kept aside already, are not recorded twice. An event whose key's
    /// open park was released meanwhile is not kept: its key is reported, to be appended.
    /// Events must carry their payload inline.
    pub async fn park(
        &self,
        steps: &[Parking<'_>],
        open: &OpenParks,
        recorded_by: &str,
    ) -> Result<KeptAside> {
        let operation = || format!("parking keys in {}", self.describe);
        let db = |e| db_error(operation(), e);
        // The open parks events are kept behind: locked, so no release of them runs meanwhile.
        let locked: BTreeMap<u64, &str> = steps
            .iter()
            .filter_map(|s| match s {
                Parking::KeepAside(e) => {
                    open.newest(&e.ordering_key()).map(|p| (p.id, p.ordering_key.as_str()))
                }
                Parking::Park(_) => None,
            })
            .collect();
        let mut conn = self.locked_session(locked.keys().copied()).await?;
        let mut tx = self.timed("BEGIN", conn.begin()).await.map_err(db)?;
        let mut kept = KeptAside::default();
        // Open parks that were released meanwhile (read under their locks: current).
        for (&id, &key) in &locked {
            let released: Option<u64> = self
                .timed(
                    "SELECT release",
                    sqlx::query_scalar("SELECT id FROM event_store_parking WHERE park_id = ?")
                        .bind(id)
                        .fetch_optional(&mut *tx),
                )
                .await
                .map_err(db)?;
            if released.is_some() {
                kept.released_meanwhile.push(key.to_string());
            }
        }
        // The newest park of each key as the steps go.
        let mut newest: HashMap<String, u64> = HashMap::new();
        for step in steps {
            match step {
                Parking::Park(p) => {
                    if let Some(same) =
                        open.of(&p.ordering_key).iter().find(|o| o.data_sha256 == p.data_sha256)
                    {
                        // Recorded by an earlier attempt at this batch.
                        newest.insert(p.ordering_key.clone(), same.id);
                        continue;
                    }
                    let id = self
                        .timed(
                            "INSERT park",
                            sqlx::query(
                                "INSERT INTO event_store_parking \
                                 (ordering_key, action, event_id, message_id, data_sha256, reason, recorded_by) \
                                 VALUES (?, 'parked', ?, ?, ?, ?, CONCAT(?, ' as ', CURRENT_USER()))",
                            )
                            .bind(&p.ordering_key)
                            .bind(&p.event_id)
                            .bind(&p.message_id)
                            .bind(&p.data_sha256)
                            .bind(&p.reason)
                            .bind(recorded_by)
                            .execute(&mut *tx),
                        )
                        .await
                        .map_err(db)?
                        .last_insert_id();
                    newest.insert(p.ordering_key.clone(), id);
                }
                Parking::KeepAside(event) => {
                    let key = event.ordering_key();
                    if kept.released_meanwhile.contains(&key) {
                        continue;
                    }
                    let Some(park_id) = newest.get(&key).copied().or_else(|| open.newest(&key).map(|p| p.id))
                    else {
                        return Err(Error::service(
                            Service::Database,
                            operation(),
                            false,
                            format!(
                                "event {} is to be kept aside, but its key {key} has no park",
                                event.event_id()
                            ),
                        ));
                    };
                    self.keep_aside(&mut tx, park_id, event).await.map_err(db)?;
                }
            }
        }
        self.timed("COMMIT", tx.commit()).await.map_err(db)?;
        let _ = conn.close().await; // ends the session: its named locks go with it
        Ok(kept)
    }

    /// Keeps `event` behind park `park_id` in `tx`, unless it is kept there already.
    async fn keep_aside(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
        park_id: u64,
        event: &Event,
    ) -> std::result::Result<(), sqlx::Error> {
        let there: Option<u64> = self
            .timed(
                "SELECT parked event",
                sqlx::query_scalar(
                    "SELECT id FROM event_store_parked_events WHERE park_id = ? AND event_id = ?",
                )
                .bind(park_id)
                .bind(event.event_id().to_string())
                .fetch_optional(&mut **tx),
            )
            .await?;
        if there.is_some() {
            return Ok(());
        }
        let text = String::from_utf8(event.to_wire_json()).expect("the wire form is JSON text");
        self.timed(
            "INSERT parked event",
            sqlx::query("INSERT INTO event_store_parked_events (park_id, event_id, event) VALUES (?, ?, ?)")
                .bind(park_id)
                .bind(event.event_id().to_string())
                .bind(text)
                .execute(&mut **tx),
        )
        .await
        .map(|_| ())
    }

    /// Ends `park`: appends the dead letter (`dead_letter`, for [`Release::Redriven`]) and then
    /// the events kept aside behind it, in order, and records the release (`reason`, and
    /// `recorded_by` with the database account) — committed only once every row is stored, so
    /// a release that fails leaves the key parked and can be repeated. `Ok(Err(poison))` when
    /// the database refuses one of the rows (the dead letter again, or a kept event): nothing
    /// is released.
    pub async fn release(
        &self,
        park: &Park,
        how: Release,
        dead_letter: Option<&Event>,
        recorded_by: &str,
        reason: &str,
    ) -> Result<std::result::Result<Released, Poison>> {
        let operation = || format!("releasing the parked key {} in {}", park.ordering_key, self.describe);
        let db = |e| db_error(operation(), e);
        let mut conn = self.locked_session([park.id]).await?;
        let mut tx = self.timed("BEGIN", conn.begin()).await.map_err(db)?;
        let inserted = self
            .timed(
                "INSERT release",
                sqlx::query(
                    "INSERT INTO event_store_parking (ordering_key, action, park_id, reason, recorded_by) \
                     VALUES (?, ?, ?, ?, CONCAT(?, ' as ', CURRENT_USER()))",
                )
                .bind(&park.ordering_key)
                .bind(how.action())
                .bind(park.id)
                .bind(reason)
                .bind(recorded_by)
                .execute(&mut *tx),
            )
            .await;
        if let Err(e) = inserted {
            drop(tx);
            let _ = conn.close().await;
            if super::errors::classify(&e) == super::ErrorClass::Duplicate {
                return Err(Error::Invalid(crate::error::ValidationError::new(
                    "park",
                    format!("park {} of {} is released already", park.id, park.ordering_key),
                )));
            }
            return Err(db(e));
        }
        let mut events: Vec<Event> = dead_letter.into_iter().cloned().collect();
        events.extend(self.parked_events(park.id).await?);
        let outcomes = self.append(&events).await?;
        let mut appended = Vec::with_capacity(events.len());
        for (event, outcome) in events.iter().zip(outcomes) {
            match outcome {
                Appended::Stored(id) | Appended::Duplicate(id) => {
                    appended.push((event.event_id().to_string(), id));
                }
                Appended::Rejected(why) => {
                    drop(tx); // rolls the release back
                    let _ = conn.close().await;
                    return Ok(Err(why));
                }
                Appended::HeldBack => unreachable!("nothing is rejected before a held-back event here"),
            }
        }
        self.timed("COMMIT", tx.commit()).await.map_err(db)?;
        let _ = conn.close().await;
        Ok(Ok(Released { park_id: park.id, action: how.action().to_string(), appended }))
    }

    /// A session of its own holding the named locks of `parks` (taken in ascending order, so
    /// two holders never wait on each other). Closing it releases them.
    async fn locked_session(&self, parks: impl IntoIterator<Item = u64>) -> Result<MySqlConnection> {
        let operation = || format!("locking parked keys in {}", self.describe);
        let mut conn = self
            .timed("connecting", MySqlConnection::connect_with(&self.settings.connect_options()))
            .await
            .map_err(|e| db_error(operation(), e))?;
        let mut ids: Vec<u64> = parks.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let got: Option<i64> = self
                .timed(
                    "GET_LOCK",
                    sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
                        .bind(park_lock_name(&self.settings.database, id))
                        .bind(PARK_LOCK_WAIT.as_secs())
                        .fetch_one(&mut conn),
                )
                .await
                .map_err(|e| db_error(operation(), e))?;
            if got != Some(1) {
                let _ = conn.close().await;
                return Err(Error::service(
                    Service::Database,
                    operation(),
                    true,
                    format!("park {id} stayed locked for {PARK_LOCK_WAIT:?} (a release of it is running)"),
                ));
            }
        }
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::park_lock_name;

    #[test]
    fn a_park_lock_name_fits_mysql() {
        assert_eq!(park_lock_name("events", 7), "suitex_events.park.7.events");
        assert_eq!(park_lock_name(&"d".repeat(64), u64::MAX).len(), 64);
    }
}
