//! [`BlockingInbox`]: the [`Inbox`] for callers without an async runtime (the PHP extension's
//! `Inbox` class), safe across `fork()` like [`BlockingEmitter`](crate::BlockingEmitter).

use super::{Delivery, Inbox};
use crate::config::Config;
use crate::error::Result;
use crate::per_process::PerProcess;
use std::time::Duration;

/// A blocking, fork-safe [`Inbox`]: pull events from `events.raw-sub` and settle them one by
/// one (for consumers such as PHP queue workers that store events themselves).
pub struct BlockingInbox {
    config: Config,
    process: PerProcess<Inbox>,
}

/// The name this type had before the consuming API was called the inbox everywhere.
#[deprecated(since = "0.2.0", note = "renamed BlockingInbox")]
pub type BlockingConsumer = BlockingInbox;

impl BlockingInbox {
    /// An inbox on `config`'s raw subscription. Creates no thread, runtime or connection.
    pub fn new(config: Config) -> BlockingInbox {
        BlockingInbox { config, process: PerProcess::default() }
    }

    fn run<R>(&self, f: impl AsyncFnOnce(&Inbox) -> R) -> Result<R> {
        let p = self.process.get(|| Inbox::connect(self.config.clone()))?;
        Ok(p.1.block_on(f(&p.2)))
    }

    /// Up to `max` events, waiting at most `wait` for the first (see [`Inbox::pull`]).
    pub fn pull(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        self.run(async |i| i.pull(max, wait).await)?
    }

    /// Acknowledges (consumes) deliveries by ack id.
    pub fn ack(&self, ack_ids: Vec<String>) -> Result<()> {
        self.run(async |i| i.ack(ack_ids).await)?
    }

    /// Releases deliveries for redelivery (counts a delivery attempt).
    pub fn nack(&self, ack_ids: Vec<String>) -> Result<()> {
        self.run(async |i| i.nack(ack_ids).await)?
    }

    /// Acks a delivery whose event is stored as row `store_id` (see [`Inbox::ack_stored`]).
    pub fn ack_stored(&self, ack_id: &str, store_id: u64) -> Result<()> {
        self.run(async |i| i.ack_stored(ack_id, store_id).await)?
    }

    /// The database span of the caller's INSERT of these deliveries' events (see
    /// [`Inbox::append_span`]).
    pub fn append_span(&self, ack_ids: &[&str]) -> Result<crate::trace::AppendSpan> {
        self.run(async |i| i.append_span(ack_ids))?
    }

    /// How many deliveries this process has leased (pulled, not settled). Their leases are
    /// kept alive in the background until they are settled.
    pub fn leased(&self) -> usize {
        self.run(async |i| i.leased()).unwrap_or(0)
    }

    /// The 0.2 name of [`BlockingInbox::leased`].
    #[deprecated(since = "0.3.0", note = "use leased: one word, leased, for handed out and not settled")]
    pub fn in_hand(&self) -> usize {
        self.leased()
    }
}
