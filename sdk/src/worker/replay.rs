//! Replay: re-publish stored events to `events.merged`, marked `replayed`.
//!
//! Events are read from the store in ledger (`seq`) order — per aggregate, version order — and
//! published in that order at no more than the requested rate. A replay is safe to repeat:
//! `events.merged` is at-least-once and its consumers deduplicate on `event_id`.

use crate::config::Config;
use crate::consume::merged::{LedgerPosition, MergedWriter};
use crate::deadline::Deadline;
use crate::error::Result;
use crate::ordered_publisher::OrderedPublisher;
use crate::store::{EventStore, Selection};
use std::time::Duration;
use tokio::time::Instant;

/// Events read from the store per page.
const PAGE: u32 = 500;
/// Payload bytes read from the store per page (at least one event): a replay of large payloads
/// holds a bounded amount of them.
const PAGE_BYTES: u64 = 32 * 1024 * 1024;

/// Re-publishes stored events to `events.merged`.
pub struct Replayer {
    config: Config,
    store: EventStore,
    merged: MergedWriter,
    publisher: OrderedPublisher,
}

impl Replayer {
    /// A replayer reading `store` and publishing to `config`'s merged topic.
    pub async fn new(config: Config, store: EventStore) -> Result<Replayer> {
        let publisher =
            OrderedPublisher::connect(&config, config.topic_path(&config.names().merged_topic)).await?;
        Ok(Replayer { merged: MergedWriter::new(&config), config, store, publisher })
    }

    /// How many events `selection` holds.
    pub async fn count(&self, selection: &Selection) -> Result<u64> {
        self.store.count(selection).await
    }

    /// Replays `selection` at no more than `rate` events per second (`None`: as fast as
    /// possible), calling `progress(done)` after each page. Returns how many were published.
    pub async fn replay(
        &self,
        selection: &Selection,
        rate: Option<f64>,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        let started = Instant::now();
        let mut done = 0u64;
        let mut after = 0u64;
        loop {
            let page = self.store.read_after_bounded(selection, after, PAGE, PAGE_BYTES).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let keys: Vec<String> = page.iter().map(|s| s.event.ordering_key()).collect();
            let mut batch = self.publisher.batch(keys.iter().map(String::as_str));
            for stored in &page {
                if let Some(rate) = rate.filter(|r| *r > 0.0) {
                    tokio::time::sleep_until(started + Duration::from_secs_f64(done as f64 / rate)).await;
                }
                let position = LedgerPosition {
                    store_id: stored.id,
                    seq: stored.seq,
                    aggregate_version: stored.aggregate_version,
                };
                batch.push(self.merged.merged(position, &stored.event, None, true).await?.to_message());
                done += 1;
            }
            for result in batch.finish(Deadline::after(self.config.publish_deadline())).await {
                result?;
            }
            progress(done);
        }
        Ok(done)
    }
}
