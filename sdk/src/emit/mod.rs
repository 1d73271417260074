//! The emit side: what the web tier runs. Size check → claim-check upload → ordered publish to
//! `events.raw`. Nothing here can reach the event store.
//!
//! * [`Emitter`]: async, for Rust services (`emit_event`, `emit_events`).
//! * [`BlockingEmitter`]: the same, synchronous and fork-safe, for the PHP extension, the C
//!   library and plain threads.
//! * [`spool`] and [`relay`]: spool mode (emit appends locally; the relay publishes).
//!
//! Publishing itself is [`crate::ordered_publisher`], which the consume and worker sides share.

pub mod blocking;
mod emitter;
pub mod relay;
mod send;
pub mod spool;
pub mod spool_privacy;

pub use blocking::BlockingEmitter;
pub use emitter::{EmitReceipt, Emitter};
pub use relay::{Relay, RelayStats};
pub use spool::{Spool, SpoolStatus};
pub use spool_privacy::SpoolAccess;
