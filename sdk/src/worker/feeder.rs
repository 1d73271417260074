//! The `events.merged` feeder: publishes the ledger's rows to `events.merged` in `seq` order.
//!
//! The worker acks a raw message once its row is committed; what reaches `events.merged` comes
//! from the ledger, never from a batch in hand (docs/architecture.md §2.4). So `events.merged`
//! holds what the ledger holds, in the ledger's order, whoever wrote the row (the Rust worker,
//! `php artisan events:work`, an operator's INSERT) — and the worker stores at the database's
//! speed instead of waiting on a Pub/Sub round trip per ordering key and batch.
//!
//! * **One feeder across all replicas.** Every worker runs a [`Feeder`]; the one whose session
//!   holds the feeder's named lock (`GET_LOCK`, see `store::feed`) leads, the others stand by and
//!   ask again every [`FeederOptions::standby_retry`]. The server releases the lock when the
//!   leader's session ends, so a standby takes over within that interval of a leader's death.
//!   The leader checks every [`FeederOptions::leadership_check`] that the lock is still its own
//!   and stops feeding when it is not.
//! * **Never skipping, re-publishing allowed.** The leader reads the ledger after its position
//!   by `seq` (gapless, in commit order: nothing can commit behind it), publishes a page ordered
//!   per key, waits for every message id, and only then moves on. Its position is recorded
//!   durably (an INSERT into `event_store_merged_position`) at most every
//!   [`FeederOptions::checkpoint_every`] and when it stops; a new leader starts from the last
//!   recorded position, so after a crash up to that much is published again — never less.
//! * **Low latency.** The leader is told of every commit of its own process and polls every
//!   [`crate::store::FOLLOW_POLL`] only for rows other processes commit.
//! * **Large payloads stay in the database.** A payload above the offload threshold is not read
//!   back: the page carries its size and SHA-256 ([`EventStore::read_for_feed`]), and the merged
//!   message names the object the event arrived with while the bucket holds it; only when that
//!   object is gone is the payload read and offloaded again. A worker process holds a large
//!   payload for its batch, not a second time here (docs/architecture.md §2.4).

use super::digests::{Digest, Digests};
use super::metrics::Metrics;
use crate::config::Config;
use crate::consume::merged::{LedgerPosition, MergedEvent, MergedWriter};
use crate::deadline::Deadline;
use crate::envelope::Event;
use crate::error::{Error, Result, Service};
use crate::ordered_publisher::OrderedPublisher;
use crate::store::{EventStore, FOLLOW_POLL, FeedRow, Leadership, Selection};
use crate::trace;
use backon::BackoffBuilder;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Payload bytes read from the ledger per page (at least one row).
const PAGE_BYTES: u64 = 32 * 1024 * 1024;

/// Tuning of the feeder; every field has a production default.
#[derive(Debug, Clone, PartialEq)]
pub struct FeederOptions {
    /// Most rows read and published at once (default 500).
    pub page: u32,
    /// How often a standby asks for the lead (default 2s): the longest a dead leader's work
    /// waits, beyond the server noticing that its session is gone.
    pub standby_retry: Duration,
    /// How often the leader makes sure the lock is still its own (default 1s).
    pub leadership_check: Duration,
    /// Longest time between two records of the position (default 5s): after a crash, at most
    /// this much of the feed is published again.
    pub checkpoint_every: Duration,
    /// Back-off after a failure to read the ledger or to publish (from, to).
    pub backoff: (Duration, Duration),
    /// The ledger's digests outside the database, written while this feeder leads (`None`:
    /// none; see [`super::digests`]).
    pub digests: Option<DigestOptions>,
}

/// Where and how often the leading feeder writes digests (`SUITEX_WORKER_DIGEST_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct DigestOptions {
    /// The digest bucket (`SUITEX_WORKER_DIGEST_BUCKET`).
    pub bucket: String,
    /// A digest after at most this many new rows (`SUITEX_WORKER_DIGEST_EVERY`).
    pub every_rows: u64,
    /// A digest at least this often while rows are appended (`SUITEX_WORKER_DIGEST_INTERVAL`).
    pub interval: Duration,
}

impl Default for DigestOptions {
    fn default() -> Self {
        use crate::settings as s;
        DigestOptions {
            bucket: s::WORKER_DIGEST_BUCKET.default.text().into(),
            every_rows: s::WORKER_DIGEST_EVERY.default.count(),
            interval: s::WORKER_DIGEST_INTERVAL.default.duration(),
        }
    }
}

impl Default for FeederOptions {
    fn default() -> Self {
        FeederOptions {
            page: 500,
            standby_retry: Duration::from_secs(2),
            leadership_check: Duration::from_secs(1),
            checkpoint_every: Duration::from_secs(5),
            backoff: (Duration::from_millis(200), Duration::from_secs(30)),
            digests: Some(DigestOptions::default()),
        }
    }
}

/// Where the leader's digests stand.
struct DigestState {
    /// The number the next digest gets (`None`: to be found in the bucket).
    next: Option<u64>,
    /// The `seq` of the last digest.
    seq: u64,
    /// When a digest was last due.
    at: Instant,
}

/// Why the leader stopped leading.
enum Stopped {
    Shutdown,
    LostLead,
}

/// Publishes the ledger to `events.merged` (see the module's documentation).
pub struct Feeder {
    config: Config,
    /// The digest bucket and how often to write to it.
    digests: Option<(Digests, DigestOptions)>,
    store: EventStore,
    merged: MergedWriter,
    publisher: OrderedPublisher,
    metrics: Arc<Metrics>,
    options: FeederOptions,
}

impl Feeder {
    /// A feeder reading `store` and publishing to `config`'s merged topic.
    pub async fn new(
        config: Config,
        store: EventStore,
        metrics: Arc<Metrics>,
        options: FeederOptions,
    ) -> Result<Feeder> {
        let publisher =
            OrderedPublisher::connect(&config, config.topic_path(&config.names().merged_topic)).await?;
        let digests = match &options.digests {
            Some(o) => Some((Digests::connect(&config, &o.bucket).await?, o.clone())),
            None => None,
        };
        Ok(Feeder { merged: MergedWriter::new(&config), config, digests, store, publisher, metrics, options })
    }

    /// Stands by and leads in turn until `shutdown` is cancelled. A leader that is asked to stop
    /// first publishes what the ledger held at that moment and records its position.
    pub async fn run(&self, shutdown: CancellationToken) {
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match self.store.try_lead_feeder().await {
                Ok(Some(mut leadership)) => {
                    self.metrics.feeder_leading.set(1);
                    tracing::info!("leading the events.merged feeder");
                    let stopped = self.lead(&mut leadership, &shutdown).await;
                    self.metrics.feeder_leading.set(0);
                    leadership.release().await;
                    match stopped {
                        Stopped::Shutdown => return,
                        Stopped::LostLead => {
                            tracing::warn!(
                                "the events.merged feeder's lock is no longer this process's; standing by"
                            )
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot ask for the events.merged feeder's lock; retrying")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.options.standby_retry) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Feeds until shutdown (after a last catch-up) or until the lead is lost.
    async fn lead(&self, leadership: &mut Leadership, shutdown: &CancellationToken) -> Stopped {
        let mut backoff = self.backoff();
        let mut position = loop {
            match self.store.merged_position().await {
                Ok(p) => break p,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the events.merged position; retrying");
                    if self.pause(&mut backoff, shutdown).await.is_err() {
                        return Stopped::Shutdown;
                    }
                }
            }
        };
        self.metrics.merged_seq.set(position as i64);
        let mut recorded = position;
        let mut last_record = Instant::now();
        let mut last_check = Instant::now();
        // Set on shutdown: the ledger's head then, which the leader still publishes.
        let mut drain_to: Option<u64> = None;
        let mut digest = DigestState { next: None, seq: 0, at: Instant::now() };
        loop {
            if drain_to.is_none() && shutdown.is_cancelled() {
                drain_to = Some(self.store.head_seq().await.unwrap_or(position));
            }
            if last_check.elapsed() >= self.options.leadership_check {
                last_check = Instant::now();
                if !leadership.holds().await {
                    return Stopped::LostLead;
                }
            }
            let done = drain_to.is_some_and(|to| position >= to);
            if position > recorded && (done || last_record.elapsed() >= self.options.checkpoint_every) {
                match self.store.record_merged_position(position).await {
                    Ok(()) => {
                        recorded = position;
                        last_record = Instant::now();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, position, "cannot record the events.merged position")
                    }
                }
            }
            if done {
                return Stopped::Shutdown;
            }
            // Taken before reading: a commit during the read ends the wait below.
            let mut commits = self.store.commits();
            let inline_max = self.config.offload_threshold() as u64;
            let page = match self
                .store
                .read_for_feed(position, self.options.page, inline_max, PAGE_BYTES)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, position, "cannot read the ledger for events.merged; retrying");
                    if self.pause(&mut backoff, shutdown).await.is_err() && drain_to.is_some() {
                        return Stopped::Shutdown;
                    }
                    continue;
                }
            };
            let Some(last) = page.last().map(|r| r.stored.seq) else {
                self.metrics.merged_lag.set(0);
                if drain_to.is_some() {
                    // Nothing left of what the ledger held at shutdown.
                    drain_to = Some(position);
                    continue;
                }
                let wait = FOLLOW_POLL.min(self.options.leadership_check);
                tokio::select! {
                    _ = commits.changed() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => {}
                }
                continue;
            };
            if let Err(e) = self.publish(&page).await {
                tracing::warn!(error = %e, from = position + 1, to = last, "publishing to events.merged failed; retrying the page");
                if self.pause(&mut backoff, shutdown).await.is_err() && drain_to.is_some() {
                    return Stopped::Shutdown;
                }
                continue;
            }
            backoff = self.backoff();
            position = last;
            self.digest(&mut digest, position).await;
            self.metrics.merged_published.inc_by(page.len() as u64);
            self.metrics.merged_seq.set(position as i64);
            if page.len() < self.options.page as usize {
                self.metrics.merged_lag.set(0);
            } else if let Ok(head) = self.store.head_seq().await {
                self.metrics.merged_lag.set(head.saturating_sub(position) as i64);
            }
        }
    }

    /// Writes a digest of row `position` when enough rows or time have passed since the last
    /// one. A failure is logged and counted, and tried again at the next interval: the feed
    /// never waits on the digest bucket.
    async fn digest(&self, state: &mut DigestState, position: u64) {
        let Some((digests, options)) = &self.digests else { return };
        if position <= state.seq
            || (position - state.seq < options.every_rows && state.at.elapsed() < options.interval)
        {
            return;
        }
        state.at = Instant::now();
        match self.write_digest(digests, state, position).await {
            Ok(()) => {
                self.metrics.digest_seq.set(state.seq as i64);
            }
            Err(e) => {
                self.metrics.digest_failures.inc();
                tracing::warn!(error = %e, bucket = digests.bucket(), seq = position, "cannot write the ledger's digest; trying again at the next interval");
            }
        }
    }

    async fn write_digest(&self, digests: &Digests, state: &mut DigestState, position: u64) -> Result<()> {
        let next = match state.next {
            Some(n) => n,
            None => {
                let last = digests.last_number().await?;
                if last > 0
                    && let Some(d) = digests.read(last).await?
                {
                    state.seq = state.seq.max(d.seq);
                }
                last + 1
            }
        };
        state.next = Some(next);
        if position <= state.seq {
            return Ok(());
        }
        let Some((row_hash, created_at)) = self.store.row_hash_at(position).await? else { return Ok(()) };
        let digest = Digest {
            encoding: crate::store::ENCODING_V1.to_string(),
            digest: next,
            seq: position,
            row_hash,
            created_at,
            written_at: crate::envelope::format_occurred_at(time::OffsetDateTime::now_utc()),
        };
        if digests.write(&digest).await? {
            tracing::debug!(digest = next, seq = position, "ledger digest written");
            state.next = Some(next + 1);
            state.seq = position;
        } else {
            // Another leader wrote that number: find the end again next time.
            state.next = None;
        }
        Ok(())
    }

    /// Publishes a page of the ledger, ordered per key, and waits for every message id.
    async fn publish(&self, page: &[FeedRow]) -> Result<()> {
        let span = self.publish_span(page);
        self.publish_page(page).instrument(span).await
    }

    /// The `publish` span of a page ([`trace::publish_span`]), linked to the trace context each
    /// row carries (the producer's `create` span). The messages carry that context unchanged, so
    /// `events.merged`'s consumers continue the producer's trace.
    fn publish_span(&self, page: &[FeedRow]) -> tracing::Span {
        let span = trace::publish_span(
            &self.config.names().merged_topic,
            page.len(),
            trace::Publishing::OnBehalf,
            page.iter().map(|r| r.stored.event.trace_context()),
        );
        // As OTLP integers (a u64 would travel as text).
        if let (Some(first), Some(last)) = (page.first(), page.last())
            && let (Ok(first), Ok(last)) = (i64::try_from(first.stored.seq), i64::try_from(last.stored.seq))
        {
            span.record("ledger.seq.first", first);
            span.record("ledger.seq.last", last);
        }
        span
    }

    async fn publish_page(&self, page: &[FeedRow]) -> Result<()> {
        let keys: Vec<String> = page.iter().map(|r| r.stored.event.ordering_key()).collect();
        let mut batch = self.publisher.batch(keys.iter().map(String::as_str));
        for row in page {
            let s = &row.stored;
            let position =
                LedgerPosition { store_id: s.id, seq: s.seq, aggregate_version: s.aggregate_version };
            let merged = match &row.large {
                None => self.merged.merged(position, &s.event, None, false).await?,
                Some((size, sha256)) => self.merged_large(position, &s.event, *size, sha256).await?,
            };
            batch.push(merged.to_message());
        }
        for result in batch.finish(Deadline::after(self.config.publish_deadline())).await {
            result?;
        }
        Ok(())
    }

    /// The merged form of a row whose large payload stayed in the database: it names the object
    /// the event arrived with — or, when the bucket no longer has it, the payload is read and
    /// offloaded again.
    async fn merged_large(
        &self,
        position: LedgerPosition,
        event: &Event,
        size: u64,
        sha256: &str,
    ) -> Result<MergedEvent> {
        if let Some(merged) = self.merged.merged_by_reference(position, event, size, sha256).await? {
            return Ok(merged);
        }
        let seq = position.seq;
        let row = self.store.read_after_bounded(&Selection::All, seq - 1, 1, u64::MAX).await?;
        let Some(row) = row.into_iter().find(|r| r.seq == seq) else {
            return Err(Error::service(
                Service::Database,
                "reading a ledger row for events.merged",
                true,
                format!("row seq {seq} was listed but cannot be read"),
            ));
        };
        self.merged.merged(position, &row.event, None, false).await
    }

    fn backoff(&self) -> backon::ExponentialBackoff {
        let (min, max) = self.options.backoff;
        backon::ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// Waits out the next back-off step; `Err` when shutdown was asked for meanwhile.
    async fn pause(
        &self,
        backoff: &mut backon::ExponentialBackoff,
        shutdown: &CancellationToken,
    ) -> std::result::Result<(), ()> {
        let wait = backoff.next().unwrap_or(self.options.backoff.1);
        tokio::select! {
            _ = tokio::time::sleep(wait) => Ok(()),
            _ = shutdown.cancelled() => Err(()),
        }
    }
}
