//! # suitex-events
//!
//! The SuiteX event backbone SDK, split along the system's main boundary:
//!
//! | side | feature | modules | who links it |
//! |---|---|---|---|
//! | **emit** | `emit` (default) | [`envelope`], [`config`], [`settings`], [`claim_check`] (upload), [`emit`] | the web tier: the PHP extension, the C library, any Rust producer |
//! | consume | `consume` | [`consume`]: unary Pull, [`consume::Inbox`], the `events.merged` form | PHP queue workers that store events themselves |
//! | store | `store` | [`store`]: the `event_store` table, its settings, the three database roles | the worker and the operator tools, never the web tier |
//! | worker | `worker` | [`worker`]: StreamingPull → store → `events.merged`, metrics, replay, dead letters | the `suitex-events worker` process |
//!
//! The web tier *emits*: [`Emitter::emit_event`] validates the [envelope](envelope), offloads
//! oversized payloads to the claim-check bucket ([`claim_check`]) and publishes to `events.raw`,
//! ordered per aggregate. A background worker ([`worker::Worker`], the `suitex-events worker`
//! command) appends each event to the append-only `event_store` table and re-publishes it to
//! `events.merged`. A build with the default features has no database driver in it at all.
//!
//! The same SDK serves Rust callers directly, PHP through the `suitex_events` extension and C
//! through `include/suitex_events.h`; those bindings only convert values and map errors.
//!
//! ```no_run
//! use suitex_events::{Config, Emitter, Event};
//!
//! # async fn demo() -> suitex_events::Result<()> {
//! let emitter = Emitter::connect(Config::from_env()?).await?;
//! let event = Event::from_input_json(br#"{
//!     "account_id": 42, "aggregate_type": "customer", "aggregate_id": "C-1001",
//!     "event_type": "customer.updated", "payload": {"name": "Ada"}
//! }"#)?;
//! let receipt = emitter.emit_event(event).await?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod claim_check;
#[cfg(any(feature = "test-support", test))]
pub mod clients;
#[cfg(not(any(feature = "test-support", test)))]
pub(crate) mod clients;
pub mod config;
pub mod deadline;
pub mod emit;
pub mod envelope;
pub mod error;
pub mod ordered_publisher;
pub mod per_process;
pub mod settings;
pub mod trace;

#[cfg(feature = "consume")]
pub mod consume;
#[cfg(feature = "endpoint")]
pub mod serve;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "otlp")]
pub mod telemetry;
#[cfg(feature = "worker")]
pub mod worker;

pub use config::Config;
pub use emit::{BlockingEmitter, EmitReceipt, Emitter};
pub use envelope::{Event, Payload, PayloadLocation};
pub use error::{ConfigError, Error, Result, ValidationError};

#[cfg(feature = "consume")]
pub use consume::{BlockingInbox, Delivery, Inbox};
#[cfg(feature = "store")]
pub use store::{EventStore, StoreSettings};
#[cfg(feature = "worker")]
pub use worker::{Worker, WorkerOptions};
