//! What the `events.merged` feeder keeps in the event store database: its position (the
//! insert-only `event_store_merged_position` table) and its leadership (a MySQL named lock).
//! The feeder itself is `worker::feeder`.
//!
//! Leadership is `GET_LOCK`: a named lock held by one session at a time, on MySQL 8 and MariaDB
//! alike, released by the server the moment that session ends — a leader that crashes, is
//! killed or loses its network gives the lock up without anyone's help, and a standby that
//! asks again takes it. It needs no privilege.

use super::EventStore;
use super::errors::{ErrorClass, classify};
use super::event_store::db_error;
use crate::error::Result;
use sqlx::Connection as _;
use sqlx::mysql::MySqlConnection;

/// The longest lock name MySQL 8 accepts.
const MAX_LOCK_NAME: usize = 64;

/// The named lock of the feeder of `database`: one feeder per event store, whatever else the
/// server holds.
pub fn feeder_lock_name(database: &str) -> String {
    let mut name = format!("suitex_events.merged_feeder.{database}");
    while name.len() > MAX_LOCK_NAME {
        name.pop();
    }
    name
}

/// The feeder's leadership: a session of its own that holds the feeder's named lock. Dropping
/// it closes the session, which releases the lock.
pub struct Leadership {
    conn: MySqlConnection,
    name: String,
}

impl Leadership {
    /// Whether the lock is still this session's. `false` (or an error) once the session is gone:
    /// another feeder may lead by now.
    pub async fn holds(&mut self) -> bool {
        let held: std::result::Result<Option<i64>, sqlx::Error> =
            sqlx::query_scalar("SELECT IS_USED_LOCK(?) = CONNECTION_ID()")
                .bind(&self.name)
                .fetch_one(&mut self.conn)
                .await;
        matches!(held, Ok(Some(1)))
    }

    /// Releases the lock now (a clean stop: a standby takes over at its next try).
    pub async fn release(mut self) {
        let _ = sqlx::query("DO RELEASE_LOCK(?)").bind(&self.name).execute(&mut self.conn).await;
        let _ = self.conn.close().await;
    }
}

impl EventStore {
    /// Tries once to become the feeder: `Some` when this process now holds the feeder's lock,
    /// `None` when another session does.
    pub async fn try_lead_feeder(&self) -> Result<Option<Leadership>> {
        let operation = || format!("taking the events.merged feeder's lock on {}", self.describe);
        let name = feeder_lock_name(&self.settings.database);
        let mut conn = self
            .timed("connecting", MySqlConnection::connect_with(&self.settings.connect_options()))
            .await
            .map_err(|e| db_error(operation(), e))?;
        let got: Option<i64> = self
            .timed("GET_LOCK", sqlx::query_scalar("SELECT GET_LOCK(?, 0)").bind(&name).fetch_one(&mut conn))
            .await
            .map_err(|e| db_error(operation(), e))?;
        if got == Some(1) {
            Ok(Some(Leadership { conn, name }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// The feeder's durable position: every row up to this `seq` is on `events.merged` (0:
    /// none yet).
    pub async fn merged_position(&self) -> Result<u64> {
        self.max_seq("event_store_merged_position", "the events.merged position").await
    }

    /// Records that every row up to `seq` is on `events.merged` (an INSERT; recording a
    /// position twice, as a new leader may, is not an error).
    pub async fn record_merged_position(&self, seq: u64) -> Result<()> {
        let recorded = self
            .timed(
                "INSERT",
                sqlx::query("INSERT INTO event_store_merged_position (seq) VALUES (?)")
                    .bind(seq)
                    .execute(&self.pool),
            )
            .await;
        match recorded {
            Ok(_) => Ok(()),
            Err(e) if classify(&e) == ErrorClass::Duplicate => Ok(()),
            Err(e) => Err(db_error(format!("recording the events.merged position in {}", self.describe), e)),
        }
    }

    /// The ledger's last `seq` (0: empty).
    pub async fn head_seq(&self) -> Result<u64> {
        self.max_seq("event_store", "the ledger's head").await
    }

    /// The largest `seq` of `table` (0: none), reading `what`.
    async fn max_seq(&self, table: &'static str, what: &str) -> Result<u64> {
        let sql = format!("SELECT CAST(MAX(seq) AS UNSIGNED) FROM {table}");
        let max: Option<u64> = self
            .timed("SELECT MAX(seq)", sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&self.pool))
            .await
            .map_err(|e| db_error(format!("reading {what} from {}", self.describe), e))?;
        Ok(max.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::feeder_lock_name;

    #[test]
    fn the_lock_name_fits_mysql_and_names_the_database() {
        assert_eq!(feeder_lock_name("events"), "suitex_events.merged_feeder.events");
        let long = feeder_lock_name(&"d".repeat(64));
        assert_eq!(long.len(), 64);
        assert!(long.starts_with("suitex_events.merged_feeder.d"));
    }
}
