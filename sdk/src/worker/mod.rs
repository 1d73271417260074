//! The worker side (feature `worker`): the `suitex-events worker` process and the operator
//! tools around the event store.
//!
//! * [`Worker`]: StreamingPull `events.raw-sub` → `event_store` → ack; its intake (`intake`)
//!   decodes the next batch while one is stored.
//! * [`feeder`]: the ledger → `events.merged`, one leader across all workers.
//! * [`digests`]: the ledger's digests outside the database, written by the leading feeder.
//! * [`WorkerOptions`]: its tuning.
//! * [`metrics`]: Prometheus counters and the endpoint that serves them with [`health`].
//! * [`replay`]: re-publish stored events to `events.merged`.
//! * [`dlq`]: list, show and redrive dead letters.
//! * [`dlq_watch`]: parks the key of a dead letter the worker did not park itself.
//! * [`provision`]: local/dev topology on the emulators.

pub mod digests;
pub mod dlq;
pub mod dlq_watch;
pub mod feeder;
pub mod health;
mod intake;
pub mod metrics;
mod options;
pub mod provision;
pub mod replay;
#[allow(clippy::module_inception)]
mod worker;

pub use options::WorkerOptions;
pub use worker::{RunSummary, Worker};
