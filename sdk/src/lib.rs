//! # suitex-events
//!
//! The SuiteX event backbone SDK. The web tier *emits* JSON events: [`Emitter::emit`] validates
//! the [envelope](envelope), offloads oversized payloads to the claim-check bucket
//! ([`claim_check`]) and publishes to `events.raw`, ordered per aggregate. A background worker
//! (the `suitex-events worker` command) appends each event to the append-only `event_store`
//! table and re-publishes it to `events.merged`.
//!
//! The same SDK serves Rust callers directly, PHP through the `suitex_events` extension and C
//! through `include/suitex_events.h`; those bindings only convert values and map errors.
//!
//! ```no_run
//! use suitex_events::{Config, Emitter, envelope::Event};
//!
//! # async fn demo() -> suitex_events::Result<()> {
//! let emitter = Emitter::connect(Config::from_env()?).await?;
//! let event = Event::from_input_json(br#"{
//!     "account_id": 42, "aggregate_type": "customer", "aggregate_id": "C-1001",
//!     "event_type": "customer.updated", "payload": {"name": "Ada"}
//! }"#)?;
//! let receipt = emitter.emit(event).await?;
//! # Ok(()) }
//! ```

pub mod blocking;
pub mod claim_check;
pub mod clients;
pub mod config;
pub mod consumer;
pub mod dlq;
pub mod emitter;
pub mod envelope;
pub mod error;
pub mod merged;
pub mod metrics;
pub mod ordered_publisher;
pub mod provision;
pub mod pull;
pub mod replay;
pub mod store;

pub use config::Config;
pub use emitter::{EmitReceipt, Emitter};
pub use envelope::{Event, PayloadLocation};
pub use error::{ConfigError, Error, Result, ValidationError};
