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
pub use reads::{FOLLOW_POLL, Selection, StoredEvent};
pub use settings::{DEFAULT_CONNECTION_MAX_LIFETIME, SslMode, StoreSettings};

/// The embedded migrations of the crate's `migrations/` folder (applied by `suitex-events
/// migrate`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
