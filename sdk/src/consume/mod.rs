//! The consume side (feature `consume`): taking events off `events.raw-sub` for callers that
//! store them themselves, and the `events.merged` form every consumer reads.
//!
//! * [`Inbox`] (async) and [`BlockingInbox`] (sync, fork-safe): pull, resolve claim-checks,
//!   settle one by one. The PHP extension's `SuiteX\Events\Inbox` class is a thin binding over
//!   [`BlockingInbox`].
//! * [`puller`]: unary Pull for tools that look at a subscription without consuming it.
//! * [`merged`]: the `events.merged` wire form and the writer that produces it.
//! * [`subscription`]: a subscription's dead-letter policy.
//!
//! The Rust [`Worker`](crate::worker::Worker) is the other way to consume: StreamingPull with
//! the event store built in.

mod blocking;
mod inbox;
pub mod merged;
pub mod puller;
pub mod subscription;

#[allow(deprecated)]
pub use blocking::{BlockingConsumer, BlockingInbox};
pub use inbox::{Delivery, Inbox};
