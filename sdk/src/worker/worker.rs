//! The worker: `events.raw-sub` → `event_store` → ack; beside it, the ledger → `events.merged`
//! ([`super::feeder`]).
//!
//! Messages are taken in batches: what the subscriber holds is taken at once (up to
//! [`WorkerOptions::batch_size`] messages and [`WorkerOptions::batch_max_bytes`] bytes of
//! payloads); the worker waits for more only when [`WorkerOptions::batch_wait`] asks it to
//! (default: not at all — under load a batch fills while the one before it is stored). A batch
//! holds many aggregates, which is how different keys are worked on together, and batches are
//! handled one after the other, which is how each key keeps its order. For a batch the worker
//!
//! 1. decodes every message strictly; resolves claim-checks (download within
//!    [`WorkerOptions::fetch_deadline`], verify size and sha256, keep the verified text);
//! 2. appends all events in one idempotent multi-row INSERT (in message order); once the rows
//!    are committed
//! 3. acks them. The committed rows reach `events.merged` from the ledger, through the feeder
//!    that runs beside the worker (one leads across all workers), in `seq` order.
//!
//! Failure classes (docs/architecture.md §2.5):
//! * **poison** — only what is wrong with *that message*: bad envelope, unsupported schema
//!   version, claim-check missing, tampered, too large or outside its bucket, a row the database
//!   refuses for its own data, an `event_id` stored as another event. That message is nacked;
//!   Pub/Sub dead-letters it after its last delivery attempt.
//! * **held back** — a later message of the same ordering key as a poison message that will be
//!   delivered again: it is nacked without being stored, so a key never overtakes its own
//!   failure.
//! * **parked** — when a poison message is on its last delivery attempt (Pub/Sub dead-letters it
//!   on this nack), its key is *parked* first, in the database: the key's later messages, here
//!   and in every worker, are kept aside (stored in `event_store_parked_events`, acked, never
//!   appended) until the dead letter comes back through a redrive — then it is appended, and
//!   the kept events after it, in order — or an operator skips it (`suitex-events parked`).
//!   A dead letter never reorders its aggregate (docs/architecture.md §2.5 "Parked keys").
//! * **transient** — everything else (database, Cloud Storage or Pub/Sub unavailable, a revoked
//!   grant, a full disk, a statement past its timeout …): nothing is nacked (that would burn
//!   delivery attempts). The worker stops taking messages, keeps the batch's leases alive,
//!   backs off and retries the whole batch, which is idempotent.
//! * **duplicate** — the event is already stored with the same content: it is acked (the
//!   feeder publishes the row from the ledger, as any other).
//!
//! Several worker processes may share the subscription; with message ordering on, Pub/Sub
//! hands each ordering key to one of them at a time.

use super::WorkerOptions;
use super::dlq_watch::DlqWatch;
use super::feeder::Feeder;
use super::health::Health;
use super::intake::{Decoder, Intake, Received, Waiting};
use super::metrics::Metrics;
use crate::claim_check::ClaimCheck;
use crate::config::Config;
use crate::envelope::{Event, Payload};
use crate::error::{Error, Poison, Result, Service};
use crate::store::{Appended, EventStore, NewPark, Park, Parking, Release};
use crate::trace;
use backon::BackoffBuilder;
use futures::{FutureExt, StreamExt};
use google_cloud_pubsub::subscriber::ShutdownBehavior;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;
use tokio::sync::{OnceCell, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Who the worker's parking records name (with its database account).
const WORKER: &str = "worker";
/// How long a starting worker's dead-letter watch may take to consider what its subscription
/// holds before the worker takes its first message.
const WATCH_DRAIN: Duration = Duration::from_secs(10);
/// Claim-check downloads of one batch that run at once.
const FETCH_CONCURRENCY: usize = 8;
/// How often the run loop shows it is alive while it waits for messages.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Batches handled.
    pub batches: u64,
    /// Messages still in hand at the shutdown deadline, released for redelivery.
    pub released: u64,
}

/// A message's event with its payload inline, or why it is poison.
type Resolved = std::result::Result<Event, Poison>;

/// What to do with a message once its batch is through.
enum Verdict {
    Ack,
    Nack(Poison),
    /// Not stored: an earlier message of its key failed and will be delivered again.
    HoldBack,
}

/// Ordering keys held back across batches: after a message of a key fails (and will be
/// redelivered), the key's other messages that were handed out with it are not stored until
/// that message comes back — or the window, one lease extension, ends (Pub/Sub redelivers a
/// key's messages in order, so nothing newer arrives before it).
#[derive(Default)]
struct Fences(HashMap<String, (String, Instant)>);

impl Fences {
    /// Whether a message of `key` must be held back; the failed message itself lifts the fence.
    fn holds(&mut self, key: &str, message_id: &str) -> bool {
        match self.0.get(key) {
            Some((_, until)) if *until <= Instant::now() => {
                self.0.remove(key);
                false
            }
            Some((failed, _)) if failed == message_id => {
                self.0.remove(key);
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    fn fence(&mut self, key: &str, message_id: &str, window: Duration) {
        if !key.is_empty() {
            self.0.insert(key.to_string(), (message_id.to_string(), Instant::now() + window));
        }
    }

    /// Lifts the fences whose failed message is the dead letter of an open park — parked by
    /// this worker or by another on its last attempt: it will not be delivered again, so
    /// nothing waits for it; its key's later events go aside behind the park. (Without this, a
    /// worker that saw an earlier attempt fail held the key's events back for the rest of the
    /// window while another worker parked the key.)
    fn lift_parked<'a>(&mut self, parks: impl IntoIterator<Item = &'a Park>) {
        for park in parks {
            if self.0.get(&park.ordering_key).is_some_and(|(failed, _)| *failed == park.message_id) {
                self.0.remove(&park.ordering_key);
            }
        }
    }
}

/// Consumes `events.raw-sub` into the event store. (The other way to consume is
/// [`crate::consume::Inbox`], for callers that store events themselves.)
pub struct Worker {
    config: Config,
    store: EventStore,
    /// Feeds `events.merged` from the ledger while the worker runs (when it leads).
    feeder: Option<Arc<Feeder>>,
    claim_check: OnceCell<ClaimCheck>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    options: WorkerOptions,
    /// Delivery attempts before Pub/Sub dead-letters a message: the subscription's policy when
    /// it can be read, else the configured value.
    max_attempts: Arc<AtomicI32>,
}

impl Worker {
    /// A worker for `config`'s subscription and topics, storing into `store`.
    pub async fn new(config: Config, store: EventStore, options: WorkerOptions) -> Result<Worker> {
        let metrics = Arc::new(Metrics::default());
        let feeder = if options.feed_merged {
            let feeder =
                Feeder::new(config.clone(), store.clone(), metrics.clone(), options.feeder.clone()).await?;
            Some(Arc::new(feeder))
        } else {
            None
        };
        Ok(Worker {
            health: Arc::new(Health::new(store.clone())),
            max_attempts: Arc::new(AtomicI32::new(options.max_delivery_attempts)),
            config,
            store,
            feeder,
            claim_check: OnceCell::new(),
            metrics,
            options,
        })
    }

    /// The worker's metrics (serve them with [`super::metrics::spawn`]).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The worker's health, for `/healthz` and `/readyz` (see [`super::metrics::spawn`]).
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Reads the subscription's dead-letter policy in the background (best effort: the
    /// subscriber role may not read subscriptions; the configured value stands then).
    fn learn_max_attempts(&self, subscription: String) {
        let (config, slot, configured) =
            (self.config.clone(), self.max_attempts.clone(), self.options.max_delivery_attempts);
        tokio::spawn(async move {
            let Some(policy) =
                crate::consume::subscription::dead_letter_attempts(&config, &subscription).await
            else {
                return;
            };
            if policy > 0 {
                if policy != configured {
                    tracing::warn!(
                        subscription = %subscription,
                        policy,
                        configured,
                        "the subscription dead-letters after a different number of attempts than SUITEX_WORKER_MAX_DELIVERY_ATTEMPTS; using the subscription's"
                    );
                }
                slot.store(policy, Ordering::Relaxed);
            }
        });
    }

    /// Pulls and stores until `shutdown` is cancelled, then stops pulling, finishes (or, after
    /// [`WorkerOptions::shutdown_deadline`], releases) what it holds, and returns — within the
    /// shutdown deadline even when the database or Cloud Storage hangs. The feeder runs beside
    /// it; when it leads, it publishes what the ledger held at shutdown before it stops.
    /// `Err` only for a permanent subscription error (e.g. the subscription does not exist).
    pub async fn run(&self, shutdown: CancellationToken) -> Result<RunSummary> {
        let feeder_stop = CancellationToken::new();
        let feeder = self.feeder.clone().map(|feeder| {
            let stop = feeder_stop.clone();
            tokio::spawn(async move { feeder.run(stop).await })
        });
        // Stops the feeder however the run ends.
        let _feeder_guard = feeder_stop.clone().drop_guard();
        let watch_stop = CancellationToken::new();
        let _watch_guard = watch_stop.clone().drop_guard();
        if self.options.dlq_watch {
            let watch = DlqWatch::new(self.config.clone(), self.store.clone(), self.metrics.clone());
            // Dead letters made while no worker ran park their keys before the first message.
            watch.drain(WATCH_DRAIN).await;
            let stop = watch_stop.clone();
            tokio::spawn(async move { watch.run(stop).await });
        }
        let started = Instant::now();
        let result = self.store_until(shutdown).await;
        feeder_stop.cancel();
        if let Some(feeder) = feeder {
            let left = self
                .options
                .shutdown_deadline
                .saturating_sub(started.elapsed().min(self.options.shutdown_deadline));
            let left = left.max(Duration::from_secs(1));
            if tokio::time::timeout(left, feeder).await.is_err() {
                tracing::warn!(
                    "the events.merged feeder did not finish within the shutdown deadline; the next leader publishes the rest"
                );
            }
        }
        result
    }

    async fn store_until(&self, shutdown: CancellationToken) -> Result<RunSummary> {
        let subscription = self.config.subscription_path(&self.config.names().raw_subscription);
        let subscriber = crate::clients::subscriber(&self.config).await?;
        self.learn_max_attempts(subscription.clone());
        let stream = subscriber
            .subscribe(&subscription)
            .set_max_outstanding_messages(self.options.max_outstanding)
            .set_max_lease(self.options.max_lease)
            .set_max_lease_extension(self.options.lease_extension)
            // At shutdown everything in hand is settled first; what the subscriber prefetched and
            // never handed over is then released at once rather than left leased to a process
            // that is going away (which would hold its keys until the leases ran out).
            .set_shutdown_behavior(ShutdownBehavior::NackImmediately)
            .build();
        // Up to a batch is decoded while the batch before it is stored.
        let decoder = Decoder {
            metrics: self.metrics.clone(),
            subscription: self.config.names().raw_subscription.clone(),
            subscription_path: subscription.clone(),
        };
        let mut intake = Intake::start(stream, decoder, self.options.batch_size);
        self.health.set_subscribed(true);
        // `Some(deadline)` once shutdown has been asked for.
        let (stop_tx, stop) = watch::channel::<Option<Instant>>(None);
        let deadline_after = self.options.shutdown_deadline;
        let health = self.health.clone();
        // Fused: it is polled while the worker waits for messages *and* while it works on a
        // batch, and stays pending once it has fired.
        let mut shutdown = Box::pin(
            async move {
                shutdown.cancelled().await;
                health.set_draining();
                let _ = stop_tx.send(Some(Instant::now() + deadline_after));
            }
            .fuse(),
        );
        let mut summary = RunSummary::default();
        let mut fences = Fences::default();
        // What was taken from the intake after the last batch was full: a message that did not
        // fit (the next batch's first), or the stream's failure (reported after that batch).
        let mut carried: Option<Result<Received>> = None;
        tracing::info!(%subscription, "worker started");

        'run: loop {
            self.health.beat();
            let next = match carried.take() {
                Some(next) => Some(next),
                None => tokio::select! {
                    biased;
                    _ = &mut shutdown => break 'run,
                    next = intake.next() => next,
                    _ = tokio::time::sleep(HEARTBEAT) => {
                        self.observe_parks().await;
                        continue 'run;
                    }
                },
            };
            let first = match next {
                None => break 'run,
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    self.health.set_subscribed(false);
                    let _ = intake.stop().await;
                    return Err(e);
                }
            };
            let max_payload = self.config.max_payload();
            let mut bytes = first.payload_bytes(max_payload);
            let mut batch = vec![first];
            // Take what is there now; wait for more only within `batch_wait`.
            let fill_until = Instant::now() + self.options.batch_wait;
            while batch.len() < self.options.batch_size {
                let next = match intake.try_next() {
                    Ok(next) => next,
                    Err(Waiting::Empty) if Instant::now() < fill_until => tokio::select! {
                        biased;
                        next = intake.next() => match next {
                            Some(next) => next,
                            None => break,
                        },
                        _ = tokio::time::sleep_until(fill_until) => break,
                    },
                    Err(Waiting::Empty | Waiting::Ended) => break,
                };
                let r = match next {
                    Ok(r) => r,
                    Err(e) => {
                        carried = Some(Err(e));
                        break;
                    }
                };
                let cost = r.payload_bytes(max_payload);
                if bytes + cost > self.options.batch_max_bytes as u64 {
                    carried = Some(Ok(r));
                    break;
                }
                bytes += cost;
                batch.push(r);
            }
            summary.batches += 1;
            // The batch is worked on while shutdown is still listened for, so that its
            // deadline also bounds a batch whose database or storage hangs.
            let released = {
                let mut work = std::pin::pin!(self.handle(batch, &stop, &mut fences));
                loop {
                    tokio::select! {
                        released = &mut work => break released,
                        _ = &mut shutdown => {}
                    }
                }
            };
            if let Some(released) = released {
                summary.released += released;
                break 'run;
            }
            if stop.borrow().is_some() {
                break 'run;
            }
        }

        self.health.set_subscribed(false);
        if let Some(Ok(r)) = carried.take() {
            summary.released += 1;
            intake.release(r);
        }
        // Stop pulling (what the intake decoded and the batches did not take is released); let
        // the subscriber flush acks and release what it prefetched.
        let stream = intake.stop().await;
        let remaining = stop
            .borrow()
            .map_or(self.options.shutdown_deadline, |d| d.saturating_duration_since(Instant::now()));
        if let Some(stream) = stream {
            crate::clients::close_stream(stream, || {}, remaining).await;
        }
        tracing::info!(batches = summary.batches, released = summary.released, "worker stopped");
        Ok(summary)
    }

    /// Sets the parking gauges while no message arrives: a key released by an operator (or by
    /// another worker) stops counting without waiting for traffic. A failure leaves them as
    /// they were; the next batch reads the parks anyway.
    async fn observe_parks(&self) {
        if let Ok(parks) = self.store.open_parks().await {
            self.metrics.observe_parks(parks.all());
        }
    }

    /// Handles one batch until it is through. Returns `Some(n)` when shutdown's deadline
    /// passed — while the batch was retried or while an attempt hung — and its `n` messages
    /// were released for redelivery instead.
    async fn handle(
        &self,
        batch: Vec<Received>,
        stop: &watch::Receiver<Option<Instant>>,
        fences: &mut Fences,
    ) -> Option<u64> {
        let mut backoff = self.options.backoff().build();
        // Messages of this batch that an earlier attempt stored: not duplicates on a retry.
        let mut ours: HashSet<usize> = HashSet::new();
        let release = |batch: Vec<Received>| {
            let n = batch.len() as u64;
            self.metrics.in_flight.dec_by(n as i64);
            tracing::warn!(messages = n, "shutdown deadline reached; releasing the batch for redelivery");
            Some(n)
        };
        loop {
            self.health.beat();
            let attempt = tokio::select! {
                biased;
                result = self.store_batch(&batch, &mut ours, fences) => Some(result),
                _ = shutdown_deadline(stop.clone()) => None,
            };
            let Some(attempt) = attempt else { return release(batch) };
            match attempt {
                Ok(verdicts) => {
                    self.settle(batch, verdicts);
                    let failed = self.metrics.attempt_succeeded();
                    if failed > 0 {
                        self.health.store_recovered();
                        tracing::info!(failed_attempts = failed, "storing works again");
                    }
                    return None;
                }
                Err(e) => {
                    self.metrics.transient_retries.inc();
                    let class = crate::store::failure_class_of(&e);
                    let failed = self.metrics.attempt_failed(class);
                    self.health.store_failed(class, &e, failed);
                    let wait = backoff.next().unwrap_or(self.options.backoff_max);
                    // One line per back-off step: the store's own retries within an attempt
                    // (deadlocks, races) are not logged here.
                    tracing::warn!(error = %e, class = class.name(), failed_attempts = failed, retry_in = ?wait, messages = batch.len(), "transient failure; batch kept and retried on a fresh connection where the failure was the session's (nothing nacked)");
                    if e.is_database() {
                        // The server's limits may have changed (a failover, a new max_allowed_packet).
                        let mut store = self.store.clone();
                        let _ = store.refresh_limits().await;
                    }
                    let wake = Instant::now() + wait;
                    let deadline = *stop.borrow();
                    if let Some(d) =
                        deadline.map(|d| d.checked_sub(RELEASE_RESERVE).unwrap_or(d)).filter(|d| *d <= wake)
                    {
                        tokio::time::sleep_until(d).await;
                        return release(batch);
                    }
                    let woke = tokio::select! {
                        _ = tokio::time::sleep_until(wake) => true,
                        _ = shutdown_deadline(stop.clone()) => false,
                    };
                    if !woke {
                        return release(batch);
                    }
                }
            }
        }
    }

    fn settle(&self, batch: Vec<Received>, verdicts: Vec<Verdict>) {
        for (r, verdict) in batch.into_iter().zip(verdicts) {
            self.metrics.in_flight.dec();
            let settle = trace::settle_span(
                &r.span,
                &self.config.names().raw_subscription,
                &r.message.message_id,
                matches!(verdict, Verdict::Ack),
            );
            let _settling = settle.enter();
            match verdict {
                Verdict::Ack => {
                    tracing::debug!(
                        event_id = r.message.attributes.get("event_id").map(String::as_str).unwrap_or(""),
                        message_id = %r.message.message_id,
                        "stored and acked"
                    );
                    r.handler.ack();
                }
                Verdict::Nack(reason) => {
                    self.metrics.poison.inc();
                    tracing::warn!(
                        message_id = %r.message.message_id,
                        event_id = r.message.attributes.get("event_id").map(String::as_str).unwrap_or(""),
                        delivery_attempt = r.attempt().unwrap_or(0),
                        %reason,
                        "poison message nacked"
                    );
                    r.handler.nack();
                }
                Verdict::HoldBack => {
                    self.metrics.held_back.inc();
                    tracing::debug!(
                        message_id = %r.message.message_id,
                        ordering_key = %r.message.ordering_key,
                        "held back behind a failed event of its key; nacked for redelivery after it"
                    );
                    r.handler.nack();
                }
            }
        }
    }

    async fn claim_check(&self) -> Result<&ClaimCheck> {
        self.claim_check.get_or_try_init(|| ClaimCheck::connect(&self.config)).await
    }

    /// The event of a message with its payload inline, or why it is poison. `Err` for a failure
    /// worth retrying (storage unavailable or too slow).
    async fn resolve(&self, r: &Received) -> Result<Resolved> {
        let event = match &r.event {
            Err(reason) => return Ok(Err(reason.clone())),
            Ok(e) => e,
        };
        let Payload::ClaimCheck(_) = event.payload() else { return Ok(Ok(event.clone())) };
        self.claim_check().await?.resolve(event.clone(), self.options.fetch_deadline).await
    }

    /// Whether nacking `r` now makes Pub/Sub dead-letter it (its last delivery attempt).
    fn last_attempt(&self, r: &Received) -> bool {
        r.attempt().is_some_and(|a| a >= self.max_attempts.load(Ordering::Relaxed))
    }

    /// One attempt at a batch: resolve, append. `Err` is a batch-wide failure (to be
    /// retried whole); per-message poison and held-back messages come back as verdicts.
    async fn store_batch(
        &self,
        batch: &[Received],
        ours: &mut HashSet<usize>,
        fences: &mut Fences,
    ) -> Result<Vec<Verdict>> {
        let started = Instant::now();
        // 1. Resolve claim-checks.
        // Indices rather than references: a closure over `&Received` trips rustc's
        // higher-ranked `Send` inference and would make the worker future non-`Send`.
        let resolved: Vec<Resolved> = futures::stream::iter(0..batch.len())
            .map(|i| self.resolve(&batch[i]))
            .buffered(FETCH_CONCURRENCY)
            .collect::<Vec<Result<Resolved>>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        let bytes: u64 = resolved
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|e| e.payload().json_text().map_or(0, |t| t.len() as u64))
            .sum();
        self.metrics.observe_batch_payload_bytes(bytes);

        // 2. Parked keys (docs/architecture.md §2.5): a dead letter that a redrive brought back
        //    releases its key's oldest park first — it is appended, then the events kept aside
        //    behind it. A dead letter of a later park waits (held back) until the earlier ones
        //    are released.
        let mut parks = self.store.open_parks().await?;
        let open = parks.all();
        self.metrics.observe_parks(open.iter().copied());
        fences.lift_parked(open);
        let mut verdicts: Vec<Option<Verdict>> = (0..batch.len()).map(|_| None).collect();
        if !parks.is_empty() {
            for (i, (r, res)) in batch.iter().zip(&resolved).enumerate() {
                if !parks.contains_key(r.key()) {
                    continue;
                }
                let sha256 = crate::claim_check::sha256_hex(&r.message.data);
                let Some(park) = parks.get(r.key()).filter(|p| p.data_sha256 == sha256).cloned() else {
                    if parks.of(r.key()).iter().any(|p| p.data_sha256 == sha256) {
                        verdicts[i] = Some(Verdict::HoldBack);
                    }
                    continue;
                };
                let event = match res {
                    Ok(event) => event,
                    // It fails again: the key stays parked behind it.
                    Err(why) => {
                        verdicts[i] = Some(Verdict::Nack(why.clone()));
                        continue;
                    }
                };
                let how = Release::Redriven;
                match self.store.release(&park, how, Some(event), WORKER, "the dead letter came back").await?
                {
                    Ok(released) => {
                        tracing::info!(ordering_key = %park.ordering_key, park_id = park.id, event_id = %event.event_id(), appended = released.appended.len(), "parked key released: its dead letter and the events kept aside behind it are appended in order");
                        self.metrics.releases.inc();
                        self.metrics.committed();
                        parks.remove(r.key());
                        verdicts[i] = Some(Verdict::Ack);
                    }
                    Err(why) => verdicts[i] = Some(Verdict::Nack(why)),
                }
            }
        }

        // 3. Verdicts in message order. A parked key's events are kept aside. Poison on its last
        //    delivery attempt parks its key — again, behind its open parks, when it is parked
        //    already — so the dead letter Pub/Sub makes of it is never overtaken; other poison
        //    fences its key for the rest of the batch and until it is redelivered.
        let window = self.options.lease_extension;
        // Parks and events kept aside, by message index (sorted into message order below).
        let mut steps: Vec<(usize, Parking<'_>)> = Vec::new();
        let mut parked_here: HashSet<&str> = HashSet::new();
        let mut fenced_here: HashSet<&str> = HashSet::new();
        let mut to_store: Vec<(usize, &Event)> = Vec::new();
        for (i, (r, res)) in batch.iter().zip(&resolved).enumerate() {
            if verdicts[i].is_some() {
                continue;
            }
            let key = r.key();
            // Behind poison of its key that has attempts left, a message waits — parked key or
            // not: kept aside now, it would be released ahead of that poison's dead letter.
            if fenced_here.contains(key) || fences.holds(key, &r.message.message_id) {
                verdicts[i] = Some(Verdict::HoldBack);
                continue;
            }
            match res {
                // Poison on its last attempt parks its key (again, if it is parked already);
                // other poison fences it.
                Err(why) => {
                    if self.last_attempt(r) && !key.is_empty() {
                        steps.push((i, Parking::Park(dead_letter(r, why))));
                        parked_here.insert(key);
                    } else if !key.is_empty() {
                        fenced_here.insert(key);
                        fences.fence(key, &r.message.message_id, window);
                    }
                    verdicts[i] = Some(Verdict::Nack(why.clone()));
                }
                Ok(event) if parks.contains_key(key) || parked_here.contains(key) => {
                    steps.push((i, Parking::KeepAside(event)))
                }
                Ok(event) => to_store.push((i, event)),
            }
        }

        let resolved_at = Instant::now();
        // 4. Append, in message order. A refused event holds back its key's later events; on
        //    its last attempt it parks the key and they are kept aside.
        let events: Vec<&Event> = to_store.iter().map(|(_, e)| *e).collect();
        let append = trace::append_span(to_store.iter().map(|(i, _)| &batch[*i].span), events.len());
        let appended = match self.store.append_refs(&events).instrument(append.clone()).await {
            Ok(appended) => appended,
            Err(e) => {
                trace::failed(&append, "database", &e);
                return Err(e);
            }
        };
        drop(append);
        let (mut new, mut dup) = (0u64, 0u64);
        for ((i, event), outcome) in to_store.iter().zip(appended) {
            let r = &batch[*i];
            verdicts[*i] = match outcome {
                Appended::Stored(_) => {
                    new += 1;
                    ours.insert(*i);
                    Some(Verdict::Ack)
                }
                Appended::Duplicate(_) => {
                    if !ours.contains(i) {
                        dup += 1;
                    }
                    Some(Verdict::Ack)
                }
                Appended::Rejected(why) => {
                    if self.last_attempt(r) && !r.key().is_empty() {
                        steps.push((*i, Parking::Park(dead_letter(r, &why))));
                        parked_here.insert(r.key());
                    } else {
                        fences.fence(r.key(), &r.message.message_id, window);
                    }
                    Some(Verdict::Nack(why))
                }
                Appended::HeldBack if parked_here.contains(r.key()) => {
                    steps.push((*i, Parking::KeepAside(event)));
                    None
                }
                Appended::HeldBack => Some(Verdict::HoldBack),
            };
        }

        // 5. Parks and the events kept aside, committed before anything is settled: the dead
        //    letter is nacked, the kept events acked, only once the database has them.
        if !steps.is_empty() {
            steps.sort_by_key(|(i, _)| *i);
            for (_, step) in &steps {
                if let Parking::Park(p) = step {
                    tracing::warn!(ordering_key = %p.ordering_key, message_id = %p.message_id, event_id = p.event_id.as_deref().unwrap_or(""), reason = %p.reason, "key parked: its event is dead-lettered on this nack; its later events are kept aside until it is redriven or skipped");
                }
            }
            let (indices, steps): (Vec<usize>, Vec<Parking<'_>>) = steps.into_iter().unzip();
            let outcome = self.store.park(&steps, &parks, WORKER).await?;
            if !outcome.released_meanwhile.is_empty() {
                return Err(Error::service(
                    Service::Database,
                    "keeping events aside",
                    true,
                    format!(
                        "the parked keys {:?} were released meanwhile; the batch is stored again",
                        outcome.released_meanwhile
                    ),
                ));
            }
            for (i, step) in indices.into_iter().zip(&steps) {
                if let Parking::KeepAside(_) = step {
                    self.metrics.kept_aside.inc();
                    verdicts[i] = Some(Verdict::Ack);
                }
            }
        }
        if new > 0 {
            // Committed rows count now, whatever happens to the rest of the batch.
            self.metrics.appended.inc_by(new);
            self.metrics.committed();
        }

        let appended_at = Instant::now();
        self.metrics.duplicates.inc_by(dup);
        tracing::debug!(
            messages = batch.len(),
            resolve_ms = (resolved_at - started).as_secs_f64() * 1e3,
            append_ms = (appended_at - resolved_at).as_secs_f64() * 1e3,
            "batch stored"
        );
        Ok(verdicts.into_iter().map(|v| v.expect("every message has a verdict")).collect())
    }
}

/// The park that `r`, nacked on its last delivery attempt for `why`, makes of its key.
fn dead_letter(r: &Received, why: &Poison) -> NewPark {
    let m = &r.message;
    NewPark::of_message(
        r.key(),
        &m.message_id,
        &m.data,
        r.event.as_ref().ok(),
        &m.attributes,
        why.to_string(),
    )
}

/// Of the shutdown deadline, the part kept for handing back what the worker holds: releases
/// (nacks) are sent by the subscriber on its own schedule, before its stream closes.
const RELEASE_RESERVE: Duration = Duration::from_millis(500);

/// Resolves when shutdown has been asked for and its deadline, less [`RELEASE_RESERVE`], has
/// passed: time to release what is in hand.
async fn shutdown_deadline(mut stop: watch::Receiver<Option<Instant>>) {
    let deadline = stop.wait_for(Option::is_some).await.ok().and_then(|d| *d);
    match deadline {
        Some(d) => tokio::time::sleep_until(d.checked_sub(RELEASE_RESERVE).unwrap_or(d)).await,
        // The sender is gone: no shutdown will ever be asked for.
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn park(key: &str, message_id: &str) -> Park {
        Park {
            id: 1,
            ordering_key: key.into(),
            event_id: None,
            message_id: message_id.into(),
            data_sha256: String::new(),
            reason: "claim-check object missing".into(),
            recorded_by: "worker as writer".into(),
            parked_at: String::new(),
            age_seconds: 0,
            parked_events: 0,
        }
    }

    /// Two workers: this one saw attempt 4 of m2 fail and fenced K; the other parked K when
    /// attempt 5 failed. K's next event must go aside behind the park at once, not wait here for
    /// m2, which is dead-lettered and will not come back.
    #[test]
    fn a_fence_is_lifted_when_its_failed_message_parks_the_key_elsewhere() {
        let window = Duration::from_secs(60);
        let mut fences = Fences::default();
        fences.fence("7:so:1", "m2", window);
        fences.fence("7:so:2", "m9", window);
        fences.lift_parked([&park("7:so:1", "m2"), &park("7:so:2", "m8")]);
        assert!(!fences.holds("7:so:1", "m5"), "K's fence went with its dead letter");
        assert!(
            fences.holds("7:so:2", "m10"),
            "a fence behind a poison message that is not the park's dead letter stays"
        );
    }
}
