//! [`Inbox`]: pull `events.raw-sub` and settle each event yourself.
//!
//! The consuming API for callers that store events themselves (the PHP extension's `Inbox`
//! beneath Laravel queue workers). The Rust [`Worker`](crate::worker::Worker) differs: it runs
//! StreamingPull and stores into the event store on its own.

use super::puller::{PULL_MAX, Puller};
use crate::claim_check::ClaimCheck;
use crate::config::Config;
use crate::envelope::Event;
use crate::error::{Poison, Result};
use googleapis_tonic_google_pubsub_v1::google::pubsub::v1 as pb;
use std::time::Duration;

/// One message pulled from `events.raw-sub`, decoded.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Settle it with this id (ack or nack).
    pub ack_id: String,
    /// The Pub/Sub message id.
    pub message_id: String,
    /// 1 + earlier nacks and expired leases (0 when the subscription has no dead-letter policy).
    pub delivery_attempt: i32,
    /// The message's ordering key.
    pub ordering_key: String,
    /// The message's attributes.
    pub attributes: std::collections::HashMap<String, String>,
    /// The event with its payload inline (claim-check resolved and verified), or why the
    /// message is poison (nack it; it dead-letters after 5 attempts).
    pub event: std::result::Result<Event, Poison>,
}

/// How long one claim-check download may take in [`Inbox::pull`] before the pull gives up with
/// a transient error (the storage client alone would retry for up to five minutes).
const FETCH_DEADLINE: Duration = Duration::from_secs(10);
/// How long messages held back by a transient failure stay leased to the inbox; past that they
/// are dropped from it and the service redelivers them.
const CARRY_LEASE: Duration = Duration::from_secs(60);

/// Pulls `events.raw-sub` for consumers that store events themselves.
///
/// A claim-check that cannot be downloaded *for now* (Cloud Storage unreachable or failing)
/// never costs a delivery attempt and never loses the batch: the deliveries resolved before it
/// are returned, and it and the rest of its batch are kept, still leased (extended to
/// [`CARRY_LEASE`]), and handed out first by the next [`Inbox::pull`]. When nothing could be
/// resolved the pull returns the transient error.
pub struct Inbox {
    puller: Puller,
    claim_check: tokio::sync::OnceCell<ClaimCheck>,
    config: Config,
    subscription: String,
    fetch_deadline: Duration,
    carried: std::sync::Mutex<Carried>,
}

/// Messages held back by a transient failure, in the order received.
#[derive(Default)]
struct Carried {
    messages: std::collections::VecDeque<pb::ReceivedMessage>,
    /// Until when all of them are leased to the inbox (meaningless while there are none).
    leased_until: Option<tokio::time::Instant>,
}

impl Inbox {
    /// An inbox on `config`'s raw subscription.
    pub async fn connect(config: Config) -> Result<Inbox> {
        Ok(Inbox {
            puller: Puller::connect(&config).await?,
            claim_check: tokio::sync::OnceCell::new(),
            subscription: config.subscription_path(&config.names().raw_subscription),
            config,
            fetch_deadline: FETCH_DEADLINE,
            carried: Default::default(),
        })
    }

    /// How long one claim-check download may take before [`Inbox::pull`] gives up on it for
    /// now (default 10 s).
    pub fn with_fetch_deadline(mut self, deadline: Duration) -> Inbox {
        self.fetch_deadline = deadline;
        self
    }

    /// Up to `max` deliveries; when none is pending, waits up to `wait` for one. Messages held
    /// back by an earlier transient failure come first.
    pub async fn pull(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let max = max.clamp(1, PULL_MAX as usize);
        let mut received = self.take_carried(max);
        if received.is_empty() {
            let until = tokio::time::Instant::now() + wait;
            received = loop {
                let got = self.puller.pull(&self.subscription, max as i32).await?;
                if !got.is_empty() || tokio::time::Instant::now() >= until {
                    break got;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
        }
        let mut out = Vec::with_capacity(received.len());
        let mut received = received.into_iter();
        while let Some(r) = received.next() {
            let data = r.message.as_ref().map(|m| &m.data[..]).unwrap_or_default();
            let event = match Event::decode(data) {
                Err(e) => Err(Poison::BadEnvelope(e)),
                Ok(e) => match self.resolve(e).await {
                    Ok(resolved) => resolved,
                    Err(e) => {
                        self.carry(std::iter::once(r).chain(received).collect()).await;
                        return if out.is_empty() { Err(e) } else { Ok(out) };
                    }
                },
            };
            let m = r.message.unwrap_or_default();
            out.push(Delivery {
                ack_id: r.ack_id,
                message_id: m.message_id,
                delivery_attempt: r.delivery_attempt,
                ordering_key: m.ordering_key,
                attributes: m.attributes,
                event,
            });
        }
        Ok(out)
    }

    /// Up to `max` carried messages, unless their lease has run out.
    fn take_carried(&self, max: usize) -> Vec<pb::ReceivedMessage> {
        let mut carried = self.carried.lock().unwrap_or_else(|p| p.into_inner());
        if carried.leased_until.is_some_and(|until| tokio::time::Instant::now() >= until) {
            carried.messages.clear();
        }
        let n = max.min(carried.messages.len());
        carried.messages.drain(..n).collect()
    }

    /// Holds `messages` for the next pull, ahead of anything still carried, and extends their
    /// lease. Messages whose lease cannot be extended are left to expire and be redelivered.
    async fn carry(&self, messages: Vec<pb::ReceivedMessage>) {
        let ids = messages.iter().map(|m| m.ack_id.clone()).collect();
        let seconds = CARRY_LEASE.as_secs() as i32;
        // Counted from before the call: the service's own deadline ends no earlier.
        let leased_until = tokio::time::Instant::now() + CARRY_LEASE;
        if self.puller.modify_deadline(&self.subscription, ids, seconds).await.is_err() {
            return;
        }
        let mut carried = self.carried.lock().unwrap_or_else(|p| p.into_inner());
        // Messages still carried keep their own, earlier lease.
        carried.leased_until = match carried.leased_until {
            Some(earlier) if !carried.messages.is_empty() => Some(earlier.min(leased_until)),
            _ => Some(leased_until),
        };
        for m in messages.into_iter().rev() {
            carried.messages.push_front(m);
        }
    }

    /// The event with its payload inline, or why it is poison; `Err` for a failure worth
    /// retrying (see [`ClaimCheck::resolve`]).
    async fn resolve(&self, event: Event) -> Result<std::result::Result<Event, Poison>> {
        if !matches!(event.payload(), crate::envelope::Payload::Offloaded(_)) {
            return Ok(Ok(event));
        }
        let claim_check = self.claim_check.get_or_try_init(|| ClaimCheck::connect(&self.config)).await?;
        claim_check.resolve(event, self.fetch_deadline).await
    }

    /// Acknowledges (consumes) deliveries.
    pub async fn ack(&self, ack_ids: Vec<String>) -> Result<()> {
        self.puller.ack(&self.subscription, ack_ids).await
    }

    /// Releases deliveries for redelivery.
    pub async fn nack(&self, ack_ids: Vec<String>) -> Result<()> {
        self.puller.release(&self.subscription, ack_ids).await
    }
}
