//! [`Inbox`]: pull `events.raw-sub` and settle each event yourself.
//!
//! The consuming API for callers that store events themselves (the PHP extension's `Inbox`
//! beneath `php artisan events:work`). The Rust [`Worker`](crate::worker::Worker) differs: it
//! runs StreamingPull and stores into the event store on its own.
//!
//! A caller settles each delivery in one of three ways:
//! * [`Inbox::ack_stored`] once the event is committed to the store: the inbox acks it. (The
//!   stored row reaches `events.merged` from the ledger, through the feeder of the Rust worker:
//!   docs/architecture.md §2.4.)
//! * [`Inbox::nack`] when it is poison: Pub/Sub redelivers it and dead-letters it after its
//!   last attempt;
//! * not at all for now, while the store is unavailable: the inbox keeps the lease of every
//!   delivery it handed out alive (every [`KEEP_EVERY`], in the background) until it is settled,
//!   so a database outage never costs a delivery attempt.

use super::puller::{PULL_MAX, Puller, keep_leases};
use crate::claim_check::ClaimCheck;
use crate::config::Config;
use crate::envelope::Event;
use crate::error::{Error, Poison, Result, ValidationError};
use googleapis_tonic_google_pubsub_v1::google::pubsub::v1 as pb;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

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
    /// SHA-256 (hex) of the message's body as published: how a parked key knows its dead letter
    /// when a redrive brings it back (docs/architecture.md §2.5 "Parked keys").
    pub data_sha256: String,
    /// The event's id when the body is an envelope (even one whose claim-check cannot be
    /// resolved), else the `event_id` attribute's.
    pub event_id: Option<String>,
    /// The event with its payload inline (claim-check resolved and verified), or why the
    /// message is poison (nack it; it dead-letters after the subscription's maximum delivery
    /// attempts, `SUITEX_WORKER_MAX_DELIVERY_ATTEMPTS`).
    pub event: std::result::Result<Event, Poison>,
}

/// How long one claim-check download may take in [`Inbox::pull`] before the pull gives up with
/// a transient error (the storage client alone would retry for up to five minutes).
const FETCH_DEADLINE: Duration = Duration::from_secs(10);
/// How long messages carried over after a transient failure stay leased to the inbox; past that they
/// are dropped from it and the service redelivers them.
const CARRY_LEASE: Duration = Duration::from_secs(60);
/// How often the leases of deliveries handed out and not yet settled are extended, and by how
/// much (well inside the lease, so one failed extension is survived).
const KEEP_EVERY: Duration = Duration::from_secs(5);
const KEEP_FOR: Duration = Duration::from_secs(20);

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
    carried: Mutex<Carried>,
    /// Deliveries handed out and not settled yet, by ack id; their leases are kept alive.
    leased: Arc<Mutex<HashMap<String, Leased>>>,
    keeper: tokio_util::sync::CancellationToken,
}

/// What the inbox keeps of a delivery until it is settled.
struct Leased {
    /// Whether its message is poison (and so cannot have been stored).
    poison: bool,
    message_id: String,
    /// From the pull to the settlement (crate::trace::receive_span); disabled unless spans are
    /// exported.
    span: tracing::Span,
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.keeper.cancel();
    }
}

/// Messages carried over to the next pull after a transient failure, in the order received.
#[derive(Default)]
struct Carried {
    messages: std::collections::VecDeque<pb::ReceivedMessage>,
    /// Until when all of them are leased to the inbox (meaningless while there are none).
    leased_until: Option<tokio::time::Instant>,
}

impl Inbox {
    /// An inbox on `config`'s raw subscription.
    pub async fn connect(config: Config) -> Result<Inbox> {
        let puller = Puller::connect(&config).await?;
        let subscription = config.subscription_path(&config.names().raw_subscription);
        let leased: Arc<Mutex<HashMap<String, Leased>>> = Default::default();
        let keeper = {
            let leased = leased.clone();
            keep_leases(
                puller.clone(),
                subscription.clone(),
                KEEP_EVERY,
                KEEP_FOR.as_secs() as i32,
                move || leased.lock().keys().cloned().collect(),
            )
        };
        Ok(Inbox {
            puller,
            claim_check: tokio::sync::OnceCell::new(),
            subscription,
            config,
            fetch_deadline: FETCH_DEADLINE,
            carried: Default::default(),
            leased,
            keeper,
        })
    }

    /// How long one claim-check download may take before [`Inbox::pull`] gives up on it for
    /// now (default 10 s).
    pub fn with_fetch_deadline(mut self, deadline: Duration) -> Inbox {
        self.fetch_deadline = deadline;
        self
    }

    /// Up to `max` deliveries; when none is pending, waits up to `wait` for one. Messages leased
    /// back by an earlier transient failure come first.
    ///
    /// Every delivery returned is leased to this inbox until it is settled ([`Inbox::ack`],
    /// [`Inbox::ack_stored`], [`Inbox::nack`]) or the inbox is dropped.
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
            let data_sha256 = crate::claim_check::sha256_hex(data);
            let decoded = Event::decode(data);
            let event_id = match &decoded {
                Ok(e) => Some(e.event_id().to_string()),
                Err(_) => r.message.as_ref().and_then(|m| m.attributes.get("event_id").cloned()),
            };
            let event = match decoded {
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
            let span = crate::trace::receive_span(crate::trace::Received {
                subscription: &self.config.names().raw_subscription,
                message_id: &m.message_id,
                ordering_key: &m.ordering_key,
                attributes: &m.attributes,
                event: event.as_ref().ok(),
                delivery_attempt: Some(r.delivery_attempt),
            });
            self.leased.lock().insert(
                r.ack_id.clone(),
                Leased { poison: event.is_err(), message_id: m.message_id.clone(), span },
            );
            out.push(Delivery {
                ack_id: r.ack_id,
                message_id: m.message_id,
                delivery_attempt: r.delivery_attempt,
                ordering_key: m.ordering_key,
                attributes: m.attributes,
                data_sha256,
                event_id,
                event,
            });
        }
        Ok(out)
    }

    /// Up to `max` carried messages, unless their lease has run out.
    fn take_carried(&self, max: usize) -> Vec<pb::ReceivedMessage> {
        let mut carried = self.carried.lock();
        if carried.leased_until.is_some_and(|until| tokio::time::Instant::now() >= until) {
            carried.messages.clear();
        }
        let n = max.min(carried.messages.len());
        carried.messages.drain(..n).collect()
    }

    /// Keeps `messages` for the next pull, ahead of anything still carried, and extends their
    /// lease. Messages whose lease cannot be extended are left to expire and be redelivered.
    async fn carry(&self, messages: Vec<pb::ReceivedMessage>) {
        let ids = messages.iter().map(|m| m.ack_id.clone()).collect();
        let seconds = CARRY_LEASE.as_secs() as i32;
        // Counted from before the call: the service's own deadline ends no earlier.
        let leased_until = tokio::time::Instant::now() + CARRY_LEASE;
        if self.puller.modify_deadline(&self.subscription, ids, seconds).await.is_err() {
            return;
        }
        let mut carried = self.carried.lock();
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
        if !matches!(event.payload(), crate::envelope::Payload::ClaimCheck(_)) {
            return Ok(Ok(event));
        }
        let claim_check = self.claim_check.get_or_try_init(|| ClaimCheck::connect(&self.config)).await?;
        claim_check.resolve(event, self.fetch_deadline).await
    }

    /// Acknowledges (consumes) deliveries, without publishing them anywhere. They leave the
    /// inbox's hands at once: should the ack fail, their leases run out and they come back.
    pub async fn ack(&self, ack_ids: Vec<String>) -> Result<()> {
        let settled = self.settling(&ack_ids, true);
        let result = self.puller.ack(&self.subscription, ack_ids).await;
        drop(settled);
        result
    }

    /// Releases deliveries for redelivery (counts a delivery attempt; Pub/Sub dead-letters a
    /// message after its last one). Should the release fail, their leases run out instead.
    pub async fn nack(&self, ack_ids: Vec<String>) -> Result<()> {
        let settled = self.settling(&ack_ids, false);
        let result = self.puller.release(&self.subscription, ack_ids).await;
        drop(settled);
        result
    }

    /// Settles a delivery whose event the caller has committed to the event store as row
    /// `store_id` (or found stored already, as the same event): acks it. The row reaches
    /// `events.merged` from the ledger (the feeder, docs/architecture.md §2.4), so nothing is
    /// published here and the call costs one acknowledgement.
    ///
    /// When the ack fails the delivery stays in hand, its lease kept alive, and the call can be
    /// repeated.
    pub async fn ack_stored(&self, ack_id: &str, store_id: u64) -> Result<()> {
        let settle = {
            let leased = self.leased.lock();
            let h = self.held(&leased, ack_id)?;
            crate::trace::settle_span(&h.span, &self.config.names().raw_subscription, &h.message_id, true)
        };
        if store_id == 0 {
            return Err(Error::Invalid(ValidationError::new(
                "store_id",
                "must be a positive row id of event_store",
            )));
        }
        if let Ok(id) = i64::try_from(store_id) {
            settle.record("ledger.store_id", id);
        }
        // Forgotten only once acked: a failed ack leaves it leased for the next try.
        self.puller.ack(&self.subscription, vec![ack_id.to_string()]).instrument(settle).await?;
        self.forget(&[ack_id.to_string()]);
        Ok(())
    }

    /// The database span of the caller's own INSERT of these deliveries' events into the ledger
    /// (`INSERT event_store`, `db.system = mysql`), linked to each delivery's `receive` span —
    /// what the Rust worker records for its batches. Hold it while the INSERT runs; it ends when
    /// dropped ([`AppendSpan::fail`] records a failure first). Disabled (a branch) unless spans
    /// are exported.
    ///
    /// Every ack id must be a delivery this inbox holds and whose event can be stored.
    pub fn append_span(&self, ack_ids: &[&str]) -> Result<crate::trace::AppendSpan> {
        let leased = self.leased.lock();
        let mut receives = Vec::with_capacity(ack_ids.len());
        for id in ack_ids {
            receives.push(&self.held(&leased, id)?.span);
        }
        Ok(crate::trace::AppendSpan::new(crate::trace::append_span(receives, ack_ids.len())))
    }

    /// The delivery `ack_id` leased to this inbox, whose event is not poison.
    fn held<'a>(&self, leased: &'a HashMap<String, Leased>, ack_id: &str) -> Result<&'a Leased> {
        let Some(h) = leased.get(ack_id) else {
            return Err(Error::Invalid(ValidationError::new(
                "ack_id",
                "is not a delivery this inbox holds (settled already, or pulled by another inbox)",
            )));
        };
        if h.poison {
            return Err(Error::Invalid(ValidationError::new(
                "ack_id",
                "is a delivery whose message is poison; it cannot have been stored (nack it)",
            )));
        }
        Ok(h)
    }

    /// How many deliveries are leased: handed out, not settled (their leases are kept alive).
    pub fn leased(&self) -> usize {
        self.leased.lock().len()
    }

    /// The 0.2 name of [`Inbox::leased`].
    #[deprecated(since = "0.3.0", note = "use leased: one word, leased, for handed out and not settled")]
    pub fn in_hand(&self) -> usize {
        self.leased()
    }

    /// Forgets deliveries being settled; returns their `settle` spans, each with its `receive`
    /// span, to be dropped (ended) once the settling call returns.
    fn settling(&self, ack_ids: &[String], ack: bool) -> Vec<(tracing::Span, Leased)> {
        let subscription = &self.config.names().raw_subscription;
        let mut leased = self.leased.lock();
        ack_ids
            .iter()
            .filter_map(|id| leased.remove(id))
            .map(|l| (crate::trace::settle_span(&l.span, subscription, &l.message_id, ack), l))
            .collect()
    }

    fn forget(&self, ack_ids: &[String]) {
        let mut leased = self.leased.lock();
        for id in ack_ids {
            leased.remove(id);
        }
    }
}
