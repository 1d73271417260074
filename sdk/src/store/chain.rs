//! The ledger's hash chain (docs/architecture.md §2.2, "The hash chain"; migration 0003):
//! every row's `row_hash` is SHA-256 over the previous row's hash and the row's canonical
//! encoding, in `seq` order, assigned by the numbering trigger. [`EventStore::verify_chain`]
//! recomputes it from the columns — here, independently of the trigger's SQL — with nothing
//! more than the reader role's `SELECT`, and reports the first row that does not match.

use super::EventStore;
use super::event_store::db_error;
use super::reads::decode;
use crate::error::Result;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::mysql::MySqlRow;
use std::fmt::Write as _;
use time::PrimitiveDateTime;

/// The first version of the canonical encoding, its first line.
pub const ENCODING_V1: &str = "suitex-ledger/1";
/// The "previous hash" of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Rows read per query while verifying.
const PAGE_ROWS: u64 = 1000;
/// Payload bytes held at once while verifying (at least one row is read).
const PAGE_BYTES: u64 = 64 << 20;

/// One row as the chain covers it: the columns as the database returns them.
#[derive(Debug, Clone)]
pub struct ChainRow {
    /// The ledger position.
    pub seq: u64,
    /// The event's id, as stored.
    pub event_id: String,
    /// The tenant.
    pub account_id: u64,
    /// The aggregate's type.
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// The event's number within its aggregate.
    pub aggregate_version: u64,
    /// The event's type.
    pub event_type: String,
    /// When it happened (UTC).
    pub occurred_at: PrimitiveDateTime,
    /// When it was stored (UTC).
    pub created_at: PrimitiveDateTime,
    /// The payload's JSON text.
    pub payload: String,
    /// The metadata's JSON text, if any.
    pub metadata: Option<String>,
    /// The hash stored in the row.
    pub row_hash: String,
}

/// `YYYY-MM-DD HH:MM:SS.ffffff`, the encoding's form of a `DATETIME(6)`.
fn datetime(t: PrimitiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

impl ChainRow {
    /// The row's canonical encoding (version 1) after `previous`, the hash of the row before it.
    pub fn encoding(&self, previous: &str) -> String {
        let mut out = String::with_capacity(self.payload.len() + 512);
        out.push_str(ENCODING_V1);
        out.push('\n');
        out.push_str(previous);
        let mut field = |name: &str, value: &str| {
            let _ = write!(out, "\n{name}={}:{value}", value.len());
        };
        field("seq", &self.seq.to_string());
        field("event_id", &self.event_id);
        field("account_id", &self.account_id.to_string());
        field("aggregate_type", &self.aggregate_type);
        field("aggregate_id", &self.aggregate_id);
        field("aggregate_version", &self.aggregate_version.to_string());
        field("event_type", &self.event_type);
        field("occurred_at", &datetime(self.occurred_at));
        field("created_at", &datetime(self.created_at));
        field("payload", &self.payload);
        match &self.metadata {
            Some(m) => field("metadata", m),
            None => out.push_str("\nmetadata=null"),
        }
        out
    }

    /// The row's hash as the chain says it must be, after `previous`.
    pub fn expected_hash(&self, previous: &str) -> String {
        hex::encode(Sha256::digest(self.encoding(previous).as_bytes()))
    }
}

/// Where the chain breaks first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Break {
    /// No row holds this `seq`, though rows after it exist (a row removed).
    Missing {
        /// The `seq` expected next.
        seq: u64,
        /// The `seq` found instead.
        found: u64,
    },
    /// The row's content or position does not give its stored hash (changed, inserted out of
    /// band, reordered, or the rows before it changed).
    Mismatch {
        /// The row's `seq`.
        seq: u64,
        /// Its stored `row_hash`.
        stored: String,
        /// What the chain says it must be.
        expected: String,
    },
    /// The chain is consistent but differs from a digest written outside the database: a row
    /// after the previous digest's `seq` was changed and every hash after it recomputed.
    Digest {
        /// The digest's `seq`.
        seq: u64,
        /// The digest's number.
        digest: u64,
        /// The `seq` of the digest before it (0: none): the change is after this row.
        after_seq: u64,
        /// The hash the digest recorded.
        recorded: String,
        /// The hash the ledger gives now.
        computed: String,
    },
    /// A digest names a row the ledger no longer has: the newest rows were removed.
    Truncated {
        /// The first `seq` missing.
        seq: u64,
        /// The digest's number.
        digest: u64,
        /// The `seq` the digest recorded.
        digest_seq: u64,
    },
}

/// A digest of the chain kept outside the database: the `row_hash` of `seq` as it was when the
/// digest was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The digest's number (1, 2, 3 …).
    pub digest: u64,
    /// The row it records.
    pub seq: u64,
    /// That row's hash.
    pub row_hash: String,
}

impl Break {
    /// The `seq` the break is at.
    pub fn seq(&self) -> u64 {
        match self {
            Break::Missing { seq, .. }
            | Break::Mismatch { seq, .. }
            | Break::Digest { seq, .. }
            | Break::Truncated { seq, .. } => *seq,
        }
    }
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::Missing { seq, found } => {
                write!(f, "seq {seq} is missing (the next row is seq {found}): a row was removed")
            }
            Break::Mismatch { seq, stored, expected } => write!(
                f,
                "seq {seq} does not match its hash (stored {stored}, computed {expected}): the row, or its place in the chain, was changed"
            ),
            Break::Digest { seq, digest, after_seq, recorded, computed } => write!(
                f,
                "seq {seq} hashes to {computed} but digest {digest} recorded {recorded}: a row from seq {} to {seq} was changed and the chain recomputed",
                after_seq + 1
            ),
            Break::Truncated { seq, digest, digest_seq } => write!(
                f,
                "seq {seq} is missing but digest {digest} recorded seq {digest_seq}: the newest rows were removed"
            ),
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// The first `seq` checked.
    pub from_seq: u64,
    /// The last `seq` checked (0 when none was).
    pub to_seq: u64,
    /// Rows checked.
    pub rows: u64,
    /// The hash of the last row checked (the chain's head when the whole ledger was checked).
    pub head_hash: Option<String>,
    /// The first break, if any: the chain is intact up to just before it.
    pub first_break: Option<Break>,
}

impl Verification {
    /// Whether every row checked matched.
    pub fn intact(&self) -> bool {
        self.first_break.is_none()
    }
}

fn chain_row(r: &MySqlRow) -> Result<ChainRow> {
    Ok(ChainRow {
        seq: r.try_get("seq").map_err(decode)?,
        event_id: r.try_get("event_id").map_err(decode)?,
        account_id: r.try_get("account_id").map_err(decode)?,
        aggregate_type: r.try_get("aggregate_type").map_err(decode)?,
        aggregate_id: r.try_get("aggregate_id").map_err(decode)?,
        aggregate_version: u64::from(r.try_get::<u32, _>("aggregate_version").map_err(decode)?),
        event_type: r.try_get("event_type").map_err(decode)?,
        occurred_at: r.try_get("occurred_at").map_err(decode)?,
        created_at: r.try_get("created_at").map_err(decode)?,
        payload: r.try_get("payload").map_err(decode)?,
        metadata: r.try_get("metadata").map_err(decode)?,
        row_hash: r.try_get("row_hash").map_err(decode)?,
    })
}

impl EventStore {
    /// The stored `row_hash` and `created_at` (`YYYY-MM-DD HH:MM:SS.ffffff`) of row `seq`.
    pub async fn row_hash_at(&self, seq: u64) -> Result<Option<(String, String)>> {
        let row: Option<(String, PrimitiveDateTime)> =
            sqlx::query_as("SELECT row_hash, created_at FROM event_store WHERE seq = ?")
                .bind(seq)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| db_error(format!("reading row {seq}'s hash in {}", self.describe), e))?;
        Ok(row.map(|(h, t)| (h, datetime(t))))
    }

    /// Recomputes the hash chain over `from_seq ..= to_seq` (all of it after `from_seq` when
    /// `to_seq` is `None`) and reports the first row that does not match. A range that starts
    /// after seq 1 is anchored on the stored hash of the row before it. Reads in pages of
    /// bounded size; `progress` is told the last `seq` checked after each page.
    pub async fn verify_chain(
        &self,
        from_seq: u64,
        to_seq: Option<u64>,
        progress: impl FnMut(u64),
    ) -> Result<Verification> {
        self.verify_chain_against(from_seq, to_seq, &[], progress).await
    }

    /// [`EventStore::verify_chain`], also holding the chain to `digests` (in `seq` order): a
    /// row whose recomputed hash differs from a digest's (a chain recomputed after a change),
    /// or a digest beyond the newest row (rows removed from the end), is a break too.
    pub async fn verify_chain_against(
        &self,
        from_seq: u64,
        to_seq: Option<u64>,
        digests: &[Checkpoint],
        mut progress: impl FnMut(u64),
    ) -> Result<Verification> {
        let bounded = to_seq.is_some();
        // Looked up once per row: by `seq`, not by scanning every digest for every row.
        let digests: std::collections::BTreeMap<u64, &Checkpoint> =
            digests.iter().map(|d| (d.seq, d)).collect();
        let from_seq = from_seq.max(1);
        let to_seq = to_seq.unwrap_or(u64::MAX);
        let what = || format!("verifying the hash chain of {}", self.describe);
        let mut previous = if from_seq == 1 {
            GENESIS.to_string()
        } else {
            let anchor: Option<String> = sqlx::query_scalar("SELECT row_hash FROM event_store WHERE seq = ?")
                .bind(from_seq - 1)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| db_error(what(), e))?;
            match anchor {
                Some(h) => h,
                None => {
                    let first: Option<u64> =
                        sqlx::query_scalar("SELECT MIN(seq) FROM event_store WHERE seq >= ?")
                            .bind(from_seq - 1)
                            .fetch_one(&self.pool)
                            .await
                            .map_err(|e| db_error(what(), e))?;
                    return Ok(Verification {
                        from_seq,
                        to_seq: 0,
                        rows: 0,
                        head_hash: None,
                        first_break: first.map(|found| Break::Missing { seq: from_seq - 1, found }),
                    });
                }
            }
        };
        let mut out = Verification { from_seq, to_seq: 0, rows: 0, head_hash: None, first_break: None };
        let mut expected_seq = from_seq;
        let mut after = from_seq - 1;
        loop {
            // Which rows fit in a page, from their sizes alone.
            let sizes: Vec<(u64, i64)> = sqlx::query_as(
                "SELECT seq, LENGTH(payload) + COALESCE(LENGTH(metadata), 0) FROM event_store \
                 WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            )
            .bind(after)
            .bind(to_seq)
            .bind(PAGE_ROWS)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(what(), e))?;
            let Some(&(first, _)) = sizes.first() else { break };
            let mut last = first;
            let mut bytes = 0;
            for (seq, size) in sizes {
                let size = size.max(0) as u64;
                if seq != first && bytes + size > PAGE_BYTES {
                    break;
                }
                bytes += size;
                last = seq;
            }
            // `CAST(… AS CHAR)`: the JSON text, as MySQL 8 and MariaDB both send it.
            let rows = sqlx::query(
                "SELECT seq, event_id, account_id, aggregate_type, aggregate_id, aggregate_version, event_type, \
                 occurred_at, created_at, CAST(payload AS CHAR) AS payload, CAST(metadata AS CHAR) AS metadata, \
                 row_hash FROM event_store WHERE seq > ? AND seq <= ? ORDER BY seq",
            )
            .bind(after)
            .bind(last)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(what(), e))?;
            for r in &rows {
                let row = chain_row(r)?;
                if row.seq != expected_seq {
                    out.first_break = Some(Break::Missing { seq: expected_seq, found: row.seq });
                    return Ok(out);
                }
                let expected = row.expected_hash(&previous);
                if expected != row.row_hash {
                    out.first_break = Some(Break::Mismatch { seq: row.seq, stored: row.row_hash, expected });
                    return Ok(out);
                }
                if let Some(d) = digests.get(&row.seq)
                    && d.row_hash != expected
                {
                    let after_seq = digests.range(..d.seq).next_back().map_or(0, |(seq, _)| *seq);
                    out.first_break = Some(Break::Digest {
                        seq: row.seq,
                        digest: d.digest,
                        after_seq: after_seq.max(from_seq - 1),
                        recorded: d.row_hash.clone(),
                        computed: expected,
                    });
                    return Ok(out);
                }
                out.rows += 1;
                out.to_seq = row.seq;
                expected_seq = row.seq + 1;
                previous = expected;
            }
            out.head_hash = Some(previous.clone());
            after = last;
            progress(last);
        }
        if !bounded && let Some((_, d)) = digests.range(expected_seq..).next_back() {
            out.first_break =
                Some(Break::Truncated { seq: expected_seq, digest: d.digest, digest_seq: d.seq });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn row() -> ChainRow {
        ChainRow {
            seq: 7,
            event_id: "0190a7f2-4c1e-7b3a-9d2e-000000000001".into(),
            account_id: 42,
            aggregate_type: "customer".into(),
            aggregate_id: "C-Ä".into(),
            aggregate_version: 3,
            event_type: "customer.updated".into(),
            occurred_at: datetime!(2026-12-07 10:11:12.000034),
            created_at: datetime!(2026-12-07 10:11:13.5),
            payload: r#"{"a": 1}"#.into(),
            metadata: None,
            row_hash: String::new(),
        }
    }

    #[test]
    fn the_encoding_is_the_documented_text() {
        let text = row().encoding(GENESIS);
        assert_eq!(
            text,
            format!(
                "suitex-ledger/1\n{GENESIS}\nseq=1:7\nevent_id=36:0190a7f2-4c1e-7b3a-9d2e-000000000001\naccount_id=2:42\naggregate_type=8:customer\naggregate_id=4:C-Ä\naggregate_version=1:3\nevent_type=16:customer.updated\noccurred_at=26:2026-12-07 10:11:12.000034\ncreated_at=26:2026-12-07 10:11:13.500000\npayload=8:{{\"a\": 1}}\nmetadata=null"
            )
        );
        let mut with_metadata = row();
        with_metadata.metadata = Some(r#"{"actor":"Zoë"}"#.into());
        assert!(with_metadata.encoding(GENESIS).ends_with("\nmetadata=16:{\"actor\":\"Zoë\"}"));
    }

    #[test]
    fn each_field_and_the_previous_hash_change_the_hash() {
        let base = row().expected_hash(GENESIS);
        assert_eq!(base.len(), 64);
        let mut changed = row();
        changed.payload = r#"{"a": 2}"#.into();
        assert_ne!(changed.expected_hash(GENESIS), base);
        let mut moved = row();
        moved.seq = 8;
        assert_ne!(moved.expected_hash(GENESIS), base);
        assert_ne!(row().expected_hash(&"1".repeat(64)), base);
        // Lengths keep fields apart: moving a character between two fields changes the hash.
        let (mut a, mut b) = (row(), row());
        a.aggregate_type = "customerC".into();
        a.aggregate_id = "-Ä".into();
        b.aggregate_id = "C-Ä".into();
        assert_ne!(a.expected_hash(GENESIS), b.expected_hash(GENESIS));
    }
}
