//! The append-only event store (`event_store` table, docs/architecture.md §2.2): the store side of the
//! backbone, behind the `store` feature. The web tier never links this module.
//!
//! * [`StoreSettings`]: where the database is (`DB_EVENT_STORE_*`, as Laravel's connection).
//! * [`EventStore`]: idempotent appends and tenant-scoped reads; INSERT only, never UPDATE or
//!   DELETE.
//! * [`grants`]: the database accounts and their rights.
//! * [`Leadership`], [`EventStore::merged_position`]: what the `events.merged` feeder keeps in
//!   the database (`feed.rs`).
//! * [`EventStore::open_parks`], [`EventStore::park`], [`EventStore::release`]: parked keys, so
//!   that a dead letter never reorders its aggregate (`parking.rs`).
//! * [`EventStore::verify_chain`]: the ledger's hash chain, recomputed (`chain.rs`).
//! * [`MIGRATOR`]: the migrations in the crate's `migrations/` folder, embedded at compile time.

use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;
use std::sync::LazyLock;

mod chain;
mod errors;
mod event_store;
mod feed;
pub mod grants;
mod parking;
mod reads;
mod settings;

pub use chain::{Break, ChainRow, Checkpoint, ENCODING_V1, GENESIS, Verification};
pub use errors::{
    CONNECTION_SCOPED, ErrorClass, FailureClass, classify_code, connection_scoped, failure_class,
    failure_class_of,
};
pub use event_store::{Appended, EventStore, MAX_ROWS_PER_INSERT};
pub use feed::{Leadership, feeder_lock_name};
pub use parking::{KeptAside, NewPark, OpenParks, Park, Parking, ParkingRecord, Release, Released};
pub use reads::{FOLLOW_POLL, FeedRow, Selection, StoredEvent};
pub use settings::{DEFAULT_CONNECTION_MAX_LIFETIME, SslMode, StoreSettings};

/// The migrations of the crate's `migrations/` folder, embedded at compile time (applied by
/// `suitex-events migrate`).
///
/// Listed here rather than expanded by `sqlx::migrate!`: that macro alone would bring sqlx's
/// procedural macros, and with them a second build of sqlx, its MySQL driver and rustls for the
/// compiler's side. The same names, types and checksums as sqlx's reading of the folder, which a
/// unit test holds this list to — a file added to the folder and not here fails it.
pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect(),
    )
});

/// Version, description (the file name's, as sqlx reads it) and text of each migration.
const MIGRATIONS: [(i64, &str, &str); 4] = [
    (1, "create event store", include_str!("../../migrations/0001_create_event_store.sql")),
    (2, "ledger order", include_str!("../../migrations/0002_ledger_order.sql")),
    (3, "ledger chain", include_str!("../../migrations/0003_ledger_chain.sql")),
    (4, "parking", include_str!("../../migrations/0004_parking.sql")),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sqlx::migrate!("./migrations")` would embed, read from the folder by sqlx itself.
    #[tokio::test]
    async fn the_embedded_migrations_are_the_folders_as_sqlx_reads_it() {
        let folder = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"));
        let read = Migrator::new(folder).await.unwrap();
        let described = |m: &Migration| {
            (m.version, m.description.to_string(), m.migration_type, m.checksum.to_vec(), m.no_tx)
        };
        let embedded: Vec<_> = MIGRATOR.iter().map(described).collect();
        let folder: Vec<_> = read.iter().map(described).collect();
        assert_eq!(folder.len(), 4, "the folder's migrations: {folder:?}");
        assert_eq!(embedded, folder);
        for (embedded, read) in MIGRATOR.iter().zip(read.iter()) {
            assert_eq!(embedded.sql.as_str(), read.sql.as_str(), "migration {}", read.version);
        }
    }
}
