//! The worker: `events.raw-sub` → `event_store` → `events.merged` → ack.
//!
//! Messages are taken in batches (bounded by [`WorkerOptions::batch_size`] and
//! [`WorkerOptions::batch_wait`]); a batch holds many aggregates, which is how different keys
//! are worked on together, and batches are handled one after the other, which is how each key
//! keeps its order. For a batch the worker
//!
//! 1. decodes every message strictly; resolves claim-checks (download, verify size and sha256);
//! 2. appends all events in one idempotent multi-row INSERT (in message order);
//! 3. publishes every stored event — new or duplicate — to `events.merged` with its store id,
//!    ordered per key; only then
//! 4. acks them.
//!
//! Failure classes (DESIGN §3.4):
//! * **poison** — bad envelope, unsupported schema version, claim-check missing or tampered,
//!   a row the database refuses: that message is nacked; Pub/Sub dead-letters it after 5
//!   delivery attempts. The rest of the batch carries on.
//! * **transient** — database, Cloud Storage or Pub/Sub unavailable: nothing is nacked (that
//!   would burn delivery attempts). The worker stops taking messages, keeps the batch's leases
//!   alive, backs off and retries the whole batch, which is idempotent.
//! * **duplicate** — the event_id is already stored: it is re-published to `events.merged` (an
//!   earlier attempt may have died between commit and publish) and acked.
//!
//! Several worker processes may share the subscription; with message ordering on, Pub/Sub
//! hands each ordering key to one of them at a time.

use super::WorkerOptions;
use super::metrics::Metrics;
use crate::claim_check::ClaimCheck;
use crate::config::Config;
use crate::consume::merged::MergedWriter;
use crate::emit::ordered_publisher::{Deadline, OrderedPublisher};
use crate::envelope::{Event, Payload, PayloadRef};
use crate::error::{Error, Poison, Result};
use crate::store::{Appended, EventStore};
use backon::BackoffBuilder;
use futures::StreamExt;
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::subscriber::ShutdownBehavior;
use google_cloud_pubsub::subscriber::handler::Handler;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OnceCell, watch};
use tokio::time::Instant;

/// Claim-check downloads of one batch that run at once.
const FETCH_CONCURRENCY: usize = 8;
/// How long one claim-check download may take before the batch is retried.
const FETCH_DEADLINE: Duration = Duration::from_secs(60);

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Batches handled.
    pub batches: u64,
    /// Messages still in hand at the shutdown deadline, released for redelivery.
    pub released: u64,
}

/// One received message and what is known about it.
struct Received {
    message: Message,
    handler: Handler,
    /// The decoded event, or why it is poison.
    event: std::result::Result<Event, Poison>,
}

/// A message's event with its payload inline (and the claim-check it came with), or why it is
/// poison.
type Resolved = std::result::Result<(Event, Option<PayloadRef>), Poison>;

/// What to do with a message once its batch is through.
enum Verdict {
    Ack,
    Nack(Poison),
}

/// Consumes `events.raw-sub` into the event store.
pub struct Worker {
    config: Config,
    store: EventStore,
    merged: MergedWriter,
    merged_publisher: OrderedPublisher,
    claim_check: OnceCell<ClaimCheck>,
    metrics: Arc<Metrics>,
    options: WorkerOptions,
}

impl Worker {
    /// A worker for `config`'s subscription and topics, storing into `store`.
    pub async fn new(config: Config, store: EventStore, options: WorkerOptions) -> Result<Worker> {
        let merged_publisher =
            OrderedPublisher::connect(&config, config.topic_path(&config.names().merged_topic)).await?;
        Ok(Worker {
            merged: MergedWriter::new(&config),
            config,
            store,
            merged_publisher,
            claim_check: OnceCell::new(),
            metrics: Arc::new(Metrics::default()),
            options,
        })
    }

    /// The worker's metrics (serve them with [`super::metrics::spawn`]).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Pulls and stores until `shutdown` completes, then stops pulling, finishes (or, after
    /// [`WorkerOptions::shutdown_deadline`], releases) what it holds, and returns.
    /// `Err` only for a permanent subscription error (e.g. the subscription does not exist).
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<RunSummary> {
        let subscription = self.config.subscription_path(&self.config.names().raw_subscription);
        let subscriber = crate::clients::subscriber(&self.config).await?;
        let mut stream = subscriber
            .subscribe(&subscription)
            .set_max_outstanding_messages(self.options.max_outstanding)
            .set_max_lease(self.options.max_lease)
            .set_max_lease_extension(self.options.lease_extension)
            .set_shutdown_behavior(ShutdownBehavior::WaitForProcessing)
            .build();
        // `Some(deadline)` once shutdown has been asked for.
        let (stop_tx, stop) = watch::channel::<Option<Instant>>(None);
        let deadline_after = self.options.shutdown_deadline;
        let mut shutdown = Box::pin(async move {
            shutdown.await;
            let _ = stop_tx.send(Some(Instant::now() + deadline_after));
        });
        let mut summary = RunSummary::default();
        tracing::info!(%subscription, "worker started");

        'run: loop {
            let mut batch: Vec<Received> = Vec::new();
            let first = tokio::select! {
                biased;
                _ = &mut shutdown => break 'run,
                next = stream.next() => next,
            };
            match first {
                None => break 'run,
                Some(Err(e)) => {
                    return Err(Error::service(
                        crate::error::Service::PubSub,
                        format!("pulling from {subscription}"),
                        false,
                        e,
                    ));
                }
                Some(Ok((m, h))) => batch.push(self.received(m, h)),
            }
            let fill_until = Instant::now() + self.options.batch_wait;
            while batch.len() < self.options.batch_size {
                tokio::select! {
                    biased;
                    _ = tokio::time::sleep_until(fill_until) => break,
                    next = stream.next() => match next {
                        Some(Ok((m, h))) => batch.push(self.received(m, h)),
                        _ => break,
                    },
                }
            }
            summary.batches += 1;
            if let Some(released) = self.handle(batch, &stop).await {
                summary.released += released;
                break 'run;
            }
            if stop.borrow().is_some() {
                break 'run;
            }
        }

        // Stop pulling; let the subscriber flush acks and release what it prefetched.
        let remaining = stop
            .borrow()
            .map_or(self.options.shutdown_deadline, |d| d.saturating_duration_since(Instant::now()));
        crate::clients::close_stream(stream, || {}, remaining).await;
        tracing::info!(batches = summary.batches, released = summary.released, "worker stopped");
        Ok(summary)
    }

    fn received(&self, message: Message, handler: Handler) -> Received {
        self.metrics.in_flight.inc();
        let event = Event::decode(&message.data).map_err(Poison::BadEnvelope);
        Received { message, handler, event }
    }

    /// Handles one batch until it is through. Returns `Some(n)` when shutdown's deadline
    /// passed while retrying and `n` messages were released instead.
    async fn handle(&self, batch: Vec<Received>, stop: &watch::Receiver<Option<Instant>>) -> Option<u64> {
        let mut backoff = self.options.backoff().build();
        // Messages of this batch that an earlier attempt stored: not duplicates on a retry.
        let mut ours: HashSet<usize> = HashSet::new();
        loop {
            match self.store_and_publish(&batch, &mut ours).await {
                Ok(verdicts) => {
                    self.settle(batch, verdicts);
                    return None;
                }
                Err(e) => {
                    self.metrics.transient_retries.inc();
                    let backoff = backoff.next().unwrap_or(self.options.backoff_max);
                    if e.is_transient() {
                        tracing::warn!(error = %e, retry_in = ?backoff, messages = batch.len(), "transient failure; batch kept and retried");
                    } else {
                        tracing::error!(error = %e, retry_in = ?backoff, messages = batch.len(), "batch failed; kept and retried (no message is nacked for this)");
                    }
                    let deadline = *stop.borrow();
                    let wake = Instant::now() + backoff;
                    match deadline {
                        Some(d) if d <= wake => {
                            tokio::time::sleep_until(d).await;
                            let n = batch.len() as u64;
                            self.metrics.in_flight.dec_by(n as i64);
                            tracing::warn!(
                                messages = n,
                                "shutdown deadline reached; releasing the batch for redelivery"
                            );
                            return Some(n);
                        }
                        _ => tokio::time::sleep_until(wake).await,
                    }
                }
            }
        }
    }

    fn settle(&self, batch: Vec<Received>, verdicts: Vec<Verdict>) {
        for (r, verdict) in batch.into_iter().zip(verdicts) {
            self.metrics.in_flight.dec();
            match verdict {
                Verdict::Ack => r.handler.ack(),
                Verdict::Nack(reason) => {
                    self.metrics.poison.inc();
                    tracing::warn!(
                        message_id = %r.message.message_id,
                        event_id = r.message.attributes.get("event_id").map(String::as_str).unwrap_or(""),
                        delivery_attempt = r.handler.delivery_attempt().unwrap_or(0),
                        %reason,
                        "poison message nacked"
                    );
                    r.handler.nack();
                }
            }
        }
    }

    async fn claim_check(&self) -> Result<&ClaimCheck> {
        self.claim_check.get_or_try_init(|| ClaimCheck::connect(&self.config)).await
    }

    /// The event of a message with its payload inline (and the claim-check it came with), or
    /// why it is poison. `Err` for a failure worth retrying (storage unavailable or too slow).
    async fn resolve(&self, r: &Received) -> Result<Resolved> {
        let event = match &r.event {
            Err(reason) => return Ok(Err(reason.clone())),
            Ok(e) => e,
        };
        let Payload::Offloaded(reference) = event.payload() else { return Ok(Ok((event.clone(), None))) };
        let reference = reference.clone();
        Ok(self
            .claim_check()
            .await?
            .resolve(event.clone(), FETCH_DEADLINE)
            .await?
            .map(|resolved| (resolved, Some(reference))))
    }

    /// One attempt at a batch: resolve, append, publish. `Err` is a batch-wide failure (to be
    /// retried whole); per-message poison comes back as a verdict.
    async fn store_and_publish(&self, batch: &[Received], ours: &mut HashSet<usize>) -> Result<Vec<Verdict>> {
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

        // 2. Append, in message order.
        let to_store: Vec<Event> =
            resolved.iter().filter_map(|r| r.as_ref().ok().map(|(e, _)| e.clone())).collect();
        let mut appended = self.store.append(&to_store).await?.into_iter();
        let mut verdicts = Vec::with_capacity(batch.len());
        let mut stored: Vec<(u64, &Event, Option<&PayloadRef>)> = Vec::new();
        let (mut new, mut dup) = (0u64, 0u64);
        for (i, r) in resolved.iter().enumerate() {
            match r {
                Err(reason) => verdicts.push(Verdict::Nack(reason.clone())),
                Ok((event, reference)) => match appended.next().expect("one outcome per event") {
                    Appended::Stored(id) => {
                        new += 1;
                        ours.insert(i);
                        stored.push((id, event, reference.as_ref()));
                        verdicts.push(Verdict::Ack);
                    }
                    Appended::Duplicate(id) => {
                        if !ours.contains(&i) {
                            dup += 1;
                        }
                        stored.push((id, event, reference.as_ref()));
                        verdicts.push(Verdict::Ack);
                    }
                    Appended::Rejected(reason) => verdicts.push(Verdict::Nack(reason)),
                },
            }
        }
        if new > 0 {
            // Committed rows count now, whatever happens to the rest of the batch.
            self.metrics.appended.inc_by(new);
            self.metrics.committed();
        }

        // 3. Re-publish to events.merged (new and duplicate alike), ordered per key.
        if !stored.is_empty() {
            let deadline = Deadline::after(self.config.publish_deadline());
            let keys: Vec<String> = stored.iter().map(|(_, e, _)| e.ordering_key()).collect();
            let mut publish = self.merged_publisher.batch(keys.iter().map(String::as_str));
            for (id, event, reference) in &stored {
                publish.push(self.merged.merged(*id, event, *reference, false).await?.to_message());
            }
            for result in publish.finish(deadline).await {
                result?;
            }
            self.metrics.merged_published.inc_by(stored.len() as u64);
        }
        self.metrics.duplicates.inc_by(dup);
        Ok(verdicts)
    }
}
