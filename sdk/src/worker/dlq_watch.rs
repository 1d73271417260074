//! The dead-letter watch: parks the key of a dead letter that the worker did not park itself
//! (docs/architecture.md §2.5, "Parked keys").
//!
//! The worker parks a key *before* its nack on a message's last delivery attempt. Pub/Sub also
//! dead-letters without that nack: when a worker stops during the last attempt (a crash, a
//! SIGKILL, a lost node), the lease runs out and the attempt counts; when acks are lost, a
//! stored event is delivered again until its attempts are spent. The watch pulls the workers'
//! own subscription on the dead-letter topic (`events.dlq-watch`,
//! [`crate::config::Names::dlq_watch_subscription`], beside the operators' `events.dlq-sub`,
//! which it leaves alone; `SUITEX_WORKER_DLQ_WATCH=off` turns it off) and, for each dead letter:
//!
//! * a key parked already for this very message (same body), or its event already stored or
//!   kept aside (lost acks: it is in order already) — nothing to do;
//! * otherwise the key is parked behind it, exactly as the worker would have (behind its open
//!   parks, when it is parked already).
//!
//! Then the dead letter is acked off the watch's subscription (it stays on `events.dlq-sub`
//! for the operator). A dead letter the watch could not consider (the database unavailable)
//! is not acked and comes back.
//!
//! **The window.** Between Pub/Sub publishing the dead letter and the watch parking its key, a
//! later event of the key can be appended ahead of it: the watch polls every [`POLL`], so the
//! window is at most one poll plus one pull and a few queries while a worker runs
//! (`sdk/tests/parking.rs` measures it). A dead letter made while no worker ran is considered
//! before the next worker takes its first message ([`DlqWatch::drain`]).

use super::metrics::Metrics;
use crate::config::Config;
use crate::consume::puller::Puller;
use crate::envelope::Event;
use crate::error::Result;
use crate::store::{EventStore, NewPark, Parking};
use googleapis_tonic_google_pubsub_v1::google::pubsub::v1 as pb;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the watch looks at its subscription when it found nothing.
pub const POLL: Duration = Duration::from_millis(500);
/// How long the watch waits after a failure before it tries again.
const RETRY: Duration = Duration::from_secs(5);
/// Dead letters taken per pull.
const PULL: i32 = 100;
/// Who the watch's parking records name (with its database account).
const WATCH: &str = "dead-letter watch";

/// The watch of one worker process (every worker runs one; they share the subscription).
pub struct DlqWatch {
    config: Config,
    store: EventStore,
    subscription: String,
    metrics: Arc<Metrics>,
}

impl DlqWatch {
    /// A watch on `config`'s dead-letter watch subscription.
    pub fn new(config: Config, store: EventStore, metrics: Arc<Metrics>) -> DlqWatch {
        let subscription = config.subscription_path(&config.names().dlq_watch_subscription());
        DlqWatch { config, store, subscription, metrics }
    }

    /// Watches until `stop` is cancelled. Failures are logged and waited out; none ends it.
    pub async fn run(&self, stop: CancellationToken) {
        let mut puller: Option<Puller> = None;
        let mut failing = false;
        while !stop.is_cancelled() {
            let wait = match self.round(&mut puller).await {
                Ok(0) => POLL,
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    // One warning per outage, not one per retry.
                    if !failing {
                        tracing::warn!(subscription = %self.subscription, error = %e, "the dead-letter watch cannot read its subscription; dead letters made without the worker's nack park their keys once it can");
                    }
                    failing = true;
                    RETRY
                }
            };
            if wait > Duration::ZERO {
                if failing && wait == POLL {
                    failing = false;
                    tracing::info!(subscription = %self.subscription, "the dead-letter watch reads its subscription again");
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// Considers what the subscription holds now, until a pull finds nothing, a failure, or
    /// `within` has passed: what a worker does before it takes its first message, so that a
    /// dead letter Pub/Sub made while no worker ran (a worker killed during its last attempt)
    /// parks its key before any later event of the key can be appended. Returns the dead
    /// letters considered; a failure is logged and left to [`DlqWatch::run`].
    pub async fn drain(&self, within: Duration) -> usize {
        let mut puller = None;
        let mut considered = 0;
        let until = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < until {
            match tokio::time::timeout_at(until, self.round(&mut puller)).await {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => considered += n,
                Ok(Err(e)) => {
                    tracing::warn!(subscription = %self.subscription, error = %e, "the dead-letter watch cannot read its subscription before the worker starts; it goes on trying beside the worker");
                    break;
                }
            }
        }
        considered
    }

    /// One pull: considers and acks what it got; returns how many dead letters.
    async fn round(&self, puller: &mut Option<Puller>) -> Result<usize> {
        if puller.is_none() {
            *puller = Some(Puller::connect(&self.config).await?);
        }
        let puller = puller.as_ref().expect("connected above");
        let got = puller.pull(&self.subscription, PULL).await?;
        let mut done = Vec::with_capacity(got.len());
        let mut failure = None;
        for m in &got {
            match self.consider(m).await {
                Ok(()) => done.push(m.ack_id.clone()),
                // Not acked: it comes back once the database answers again.
                Err(e) => failure = Some(e),
            }
        }
        puller.ack(&self.subscription, done).await?;
        match failure {
            Some(e) => Err(e),
            None => Ok(got.len()),
        }
    }

    /// Parks the dead letter's key unless there is nothing to keep in order.
    async fn consider(&self, received: &pb::ReceivedMessage) -> Result<()> {
        let Some(m) = &received.message else { return Ok(()) };
        let key = &m.ordering_key;
        if key.is_empty() {
            return Ok(()); // no order to keep
        }
        let event = Event::decode(&m.data).ok();
        let attempts =
            m.attributes.get("CloudPubSubDeadLetterSourceDeliveryCount").map_or("?", String::as_str);
        let reason = format!(
            "dead-lettered by Pub/Sub after {attempts} delivery attempts without the worker's last nack (a worker stopped during its last attempt, or its acks were lost)"
        );
        let park =
            NewPark::of_message(key, &m.message_id, &m.data, event.as_ref(), &m.attributes, reason.clone());
        if self.store.parked_for(key, &park.data_sha256).await? {
            return Ok(()); // the worker parked it on its nack (or the watch did before)
        }
        if let Some(e) = &event
            && (self.store.is_stored(e.event_id()).await? || self.store.is_kept_aside(e.event_id()).await?)
        {
            // Stored, in order, or kept aside behind its key's park, in order: its acks were
            // lost.
            return Ok(());
        }
        // Parked already (behind an earlier dead letter)? Then behind that one too.
        let open = self.store.open_parks().await?;
        self.store.park(&[Parking::Park(park)], &open, WATCH).await?;
        self.metrics.watch_parks.inc();
        tracing::warn!(ordering_key = %key, message_id = %m.message_id, %reason, "key parked by the dead-letter watch");
        Ok(())
    }
}
