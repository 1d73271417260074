//! The emitter: size check → claim-check → ordered publish to `events.raw`.
//!
//! This is all the web tier does with events. It never touches the event store.
//!
//! ```no_run
//! use suitex_events::{Config, Emitter, Event};
//! use serde_json::json;
//!
//! # async fn demo() -> suitex_events::Result<()> {
//! let emitter = Emitter::connect(Config::from_env()?).await?;
//! let receipt = emitter
//!     .emit_event(
//!         Event::builder()
//!             .account_id(42)
//!             .aggregate("customer", "C-1001")
//!             .event_type("customer.updated")
//!             .payload(json!({"name": "Ada"}))
//!             .build()?,
//!     )
//!     .await?;
//! println!("{} published as {}", receipt.event_id, receipt.message_id);
//! # Ok(()) }
//! ```

use super::send::{Prepared, PreparedPayload, SendRun};
use super::spool::{Entry, Spool};
use super::spool_privacy::SpoolAccess;
use crate::claim_check::ClaimCheck;
use crate::config::Config;
use crate::deadline::Deadline;
use crate::envelope::{ClaimCheckRef, Event, Payload, PayloadLocation};
use crate::error::{Error, Result, ValidationError};
use crate::ordered_publisher::OrderedPublisher;
use crate::trace::{self, TraceContext};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tracing::Instrument;
use uuid::Uuid;

/// Claim-check uploads of one batch that run at once.
const UPLOAD_CONCURRENCY: usize = 8;

/// What `emit` returns for a published event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmitReceipt {
    /// The event's idempotency key.
    pub event_id: Uuid,
    /// The Pub/Sub message id.
    pub message_id: String,
    /// Whether the payload travelled inline or via the claim-check bucket (in spool mode: will
    /// travel, as the relay decides the same way).
    pub payload_location: PayloadLocation,
    /// Spool mode: the event was appended durably to the spool and the relay publishes it;
    /// `message_id` is empty (there is none yet).
    pub spooled: bool,
}

/// Where the events of an emit come from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// The caller creates them now.
    Caller,
    /// The spool: created, and traced, when they were spooled.
    Spool,
}

/// Emits events to `events.raw`. Cheap to clone; share one per process.
#[derive(Clone, Debug)]
pub struct Emitter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    publisher: OrderedPublisher,
    // Most processes never emit an oversized payload; the storage client is made on first need.
    claim_check: OnceCell<ClaimCheck>,
    /// Spool mode: where emits go instead of Pub/Sub.
    spool: Option<Spool>,
}

impl Emitter {
    /// Creates the Pub/Sub connection for `config` (no network round trip happens here).
    /// In spool mode ([`Config::spool`]) it opens (creating) the spool as well.
    pub async fn connect(config: Config) -> Result<Emitter> {
        let publisher = OrderedPublisher::connect(&config, config.raw_topic_path()).await?;
        let spool = match config.spool() {
            Some(dir) => Some(Spool::open(dir, config.spool_max_bytes(), &SpoolAccess::of(&config)?)?),
            None => None,
        };
        Ok(Emitter { inner: Arc::new(Inner { config, publisher, claim_check: OnceCell::new(), spool }) })
    }

    /// The spool, in spool mode.
    pub fn spool(&self) -> Option<&Spool> {
        self.inner.spool.as_ref()
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// How many publisher generations have been retired (each after
    /// [`Config::max_ordering_keys`] distinct ordering keys).
    pub fn publisher_generations_retired(&self) -> u64 {
        self.inner.publisher.generations_retired()
    }

    /// Emits one event within the configured publish deadline.
    pub async fn emit_event(&self, event: Event) -> Result<EmitReceipt> {
        self.emit_event_within(event, self.inner.config.publish_deadline()).await
    }

    /// Emits one event; fails with [`Error::DeadlineExceeded`] if the upload and publish take
    /// longer than `deadline`.
    pub async fn emit_event_within(&self, event: Event, deadline: Duration) -> Result<EmitReceipt> {
        let ambient = if trace::recording() { event.trace_context() } else { None };
        let prepared = self.prepare(event, Origin::Caller).map_err(Error::Invalid)?;
        if let Some(spool) = &self.inner.spool {
            return Ok(self.spool_all(spool, vec![prepared])?.pop().expect("one receipt per event"));
        }
        let prepared = vec![prepared];
        let publish = self.publish_span(trace::Publishing::Caller(ambient.as_ref()), &prepared);
        let mut results = self.send(prepared, Deadline::after(deadline)).instrument(publish).await;
        results.pop().expect("one result per event")
    }

    /// Emits several events with one deadline for all of them.
    ///
    /// Every event is checked first: if any payload is over the hard maximum, the whole batch is
    /// refused (`Err`, field `events[i].payload`) and nothing is uploaded or published. Otherwise
    /// the result holds one outcome per event, in order. Events of one ordering key are published
    /// in batch order; once one of them fails, the later ones of that key are not sent (they fail
    /// with [`Error::EarlierEventFailed`]), so a key never has a gap followed by later events.
    pub async fn emit_events(&self, events: Vec<Event>) -> Result<Vec<Result<EmitReceipt>>> {
        self.emit_events_within(events, self.inner.config.publish_deadline()).await
    }

    /// [`Emitter::emit_events`] with an explicit deadline.
    pub async fn emit_events_within(
        &self,
        events: Vec<Event>,
        deadline: Duration,
    ) -> Result<Vec<Result<EmitReceipt>>> {
        // The caller's context, when every event of the call carries the same one (read only
        // when spans are recorded: it is what the publish span hangs from).
        let ambient = if trace::recording() {
            events.first().and_then(Event::trace_context).filter(|first| {
                events.iter().all(|e| e.trace_context().is_some_and(|cx| cx.traceparent == first.traceparent))
            })
        } else {
            None
        };
        let prepared = self.prepare_all(events, Origin::Caller)?;
        if let Some(spool) = &self.inner.spool {
            return Ok(self.spool_all(spool, prepared)?.into_iter().map(Ok).collect());
        }
        let publish = self.publish_span(trace::Publishing::Caller(ambient.as_ref()), &prepared);
        Ok(self.send(prepared, Deadline::after(deadline)).instrument(publish).await)
    }

    /// The relay's publish of spooled events: created (and traced) by the web tier already, so
    /// each keeps its trace context unchanged; the publish span is linked to every one of them.
    pub(crate) async fn relay_events(&self, events: Vec<Event>) -> Result<Vec<Result<EmitReceipt>>> {
        let prepared = self.prepare_all(events, Origin::Spool)?;
        let publish = self.publish_span(trace::Publishing::OnBehalf, &prepared);
        Ok(self
            .send(prepared, Deadline::after(self.inner.config.publish_deadline()))
            .instrument(publish)
            .await)
    }

    fn prepare_all(
        &self,
        events: Vec<Event>,
        origin: Origin,
    ) -> std::result::Result<Vec<Prepared>, ValidationError> {
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| self.prepare(e, origin).map_err(|v| v.within(&format!("events[{i}]"))))
            .collect()
    }

    /// The `create` span of one event (OpenTelemetry's messaging conventions), a child of the
    /// event's own trace context where the caller gave one, else of the current span. Once it
    /// is recorded, the event carries its context instead ([`crate::trace`]).
    fn create_span(&self, event: Event, key: &str) -> Event {
        let topic = &self.inner.config.names().raw_topic;
        let span = tracing::info_span!(
            "create",
            otel.name = format!("{topic} create"),
            otel.kind = "producer",
            messaging.system = trace::MESSAGING_SYSTEM,
            messaging.operation.type = "create",
            messaging.operation.name = "create",
            messaging.destination.name = %topic,
            messaging.gcp_pubsub.message.ordering_key = key,
            event_id = %event.event_id(),
            account_id = event.account_id(),
        );
        if span.is_disabled() {
            return event;
        }
        trace::continue_from(&span, event.trace_context().as_ref());
        match TraceContext::of_span(&span) {
            Some(cx) => event.with_trace_context(cx),
            None => event,
        }
    }

    /// The `publish` span of one call ([`trace::publish_span`]): in the caller's emit (`Some`
    /// ambient context or the current span), or on behalf of the spool's producers.
    fn publish_span(&self, publishing: trace::Publishing<'_>, prepared: &[Prepared]) -> tracing::Span {
        trace::publish_span(
            &self.inner.config.names().raw_topic,
            prepared.len(),
            publishing,
            prepared.iter().map(|p| p.event.trace_context()),
        )
    }

    /// Spool mode: appends the checked events to the spool in one durable transaction, payloads
    /// inline (the relay uploads the oversized ones). All are spooled, or none (`Err`).
    fn spool_all(&self, spool: &Spool, prepared: Vec<Prepared>) -> Result<Vec<EmitReceipt>> {
        let mut receipts = Vec::with_capacity(prepared.len());
        let entries: Vec<Entry> = prepared
            .into_iter()
            .map(|p| {
                let (body, location) = match &p.payload {
                    PreparedPayload::Inline(raw) => (p.event.to_wire_json_with(raw), PayloadLocation::Inline),
                    // Spooled inline either way; the relay uploads (or keeps the reference).
                    PreparedPayload::Offload(_) | PreparedPayload::Reference => {
                        (p.event.to_wire_json(), PayloadLocation::ClaimCheck)
                    }
                };
                receipts.push(EmitReceipt {
                    event_id: p.event.event_id(),
                    message_id: String::new(),
                    payload_location: location,
                    spooled: true,
                });
                Entry { ordering_key: p.key, event_id: p.event.event_id().hyphenated().to_string(), body }
            })
            .collect();
        spool.append(&entries)?;
        Ok(receipts)
    }

    /// Deprecated name of [`Emitter::emit_event`].
    #[deprecated(since = "0.2.0", note = "use emit_event, the operation's name in every language")]
    pub async fn emit(&self, event: Event) -> Result<EmitReceipt> {
        self.emit_event(event).await
    }

    /// Deprecated name of [`Emitter::emit_event_within`].
    #[deprecated(since = "0.2.0", note = "use emit_event_within")]
    pub async fn emit_within(&self, event: Event, deadline: Duration) -> Result<EmitReceipt> {
        self.emit_event_within(event, deadline).await
    }

    /// Deprecated name of [`Emitter::emit_events`].
    #[deprecated(since = "0.2.0", note = "use emit_events, the operation's name in every language")]
    pub async fn emit_batch(&self, events: Vec<Event>) -> Result<Vec<Result<EmitReceipt>>> {
        self.emit_events(events).await
    }

    /// Deprecated name of [`Emitter::emit_events_within`].
    #[deprecated(since = "0.2.0", note = "use emit_events_within")]
    pub async fn emit_batch_within(
        &self,
        events: Vec<Event>,
        deadline: Duration,
    ) -> Result<Vec<Result<EmitReceipt>>> {
        self.emit_events_within(events, deadline).await
    }

    /// Waits until everything buffered has been sent.
    pub async fn flush(&self) {
        self.inner.publisher.flush().await;
    }

    /// Size checks; decides whether the payload is offloaded; records the `create` span of an
    /// event the caller creates now.
    fn prepare(&self, event: Event, origin: Origin) -> std::result::Result<Prepared, ValidationError> {
        let config = &self.inner.config;
        let raw = match event.payload() {
            Payload::ClaimCheck(_) => None,
            Payload::Raw(raw) => Some(raw.clone()),
            Payload::Inline(value) => {
                Some(serde_json::value::to_raw_value(value).expect("a JSON value always serializes"))
            }
        };
        let payload = match raw {
            None => PreparedPayload::Reference,
            Some(raw) => {
                let size = raw.get().len();
                if size > config.max_payload() {
                    return Err(ValidationError::new(
                        "payload",
                        format!("is {size} bytes as JSON; the limit is {}", config.max_payload()),
                    ));
                }
                if size > config.offload_threshold() {
                    PreparedPayload::Offload(Bytes::from(String::from(Box::<str>::from(raw))))
                } else {
                    PreparedPayload::Inline(raw)
                }
            }
        };
        let key = event.ordering_key();
        let event = match origin {
            Origin::Caller => self.create_span(event, &key),
            Origin::Spool => event,
        };
        Ok(Prepared { key, event, payload })
    }

    async fn claim_check(&self) -> Result<&ClaimCheck> {
        self.inner.claim_check.get_or_try_init(|| ClaimCheck::connect(&self.inner.config)).await
    }

    async fn offload(&self, event: &Event, bytes: Bytes, deadline: Deadline) -> Result<ClaimCheckRef> {
        let upload = async { self.claim_check().await?.offload(event, bytes).await };
        tokio::time::timeout_at(deadline.at, upload).await.unwrap_or_else(|_| {
            Err(Error::DeadlineExceeded {
                service: crate::error::Service::Storage,
                operation: format!(
                    "uploading the payload to gs://{}",
                    self.inner.config.names().payload_bucket
                ),
                deadline: deadline.budget,
            })
        })
    }

    /// Publishes every event, in order per ordering key, uploading oversized payloads first.
    ///
    /// Each key is walked in batch order: events are pushed to the publisher as soon as nothing
    /// before them on their key is pending, so an upload delays only its own key. A failed
    /// upload fails the rest of its key; other keys are unaffected.
    async fn send(&self, prepared: Vec<Prepared>, deadline: Deadline) -> Vec<Result<EmitReceipt>> {
        let mut run =
            SendRun::new(self.inner.publisher.batch(prepared.iter().map(|p| p.key.as_str())), prepared);
        let limit = tokio::sync::Semaphore::new(UPLOAD_CONCURRENCY);
        let mut uploads = FuturesUnordered::new();
        let start_upload = |(i, event, bytes): (usize, Event, Bytes)| {
            let limit = &limit;
            async move {
                let _permit = limit.acquire().await;
                (i, self.offload(&event, bytes, deadline).await)
            }
        };
        for key in run.keys() {
            uploads.extend(run.advance(&key).map(start_upload));
        }
        while let Some((i, result)) = uploads.next().await {
            uploads.extend(run.uploaded(i, result).map(start_upload));
        }
        run.finish(deadline).await
    }
}
