//! The emitter: size check → claim-check → ordered publish to `events.raw`.
//!
//! This is all the web tier does with events. It never touches the event store.
//!
//! ```no_run
//! use suitex_events::{Config, Emitter, envelope::Event};
//! use serde_json::json;
//!
//! # async fn demo() -> suitex_events::Result<()> {
//! let emitter = Emitter::connect(Config::from_env()?).await?;
//! let receipt = emitter
//!     .emit(
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

use crate::claim_check::ClaimCheck;
use crate::config::{Config, PUBSUB_MESSAGE_MAX_BYTES};
use crate::envelope::{Event, Payload, PayloadLocation};
use crate::error::{Error, Result, ValidationError};
use crate::ordered_publisher::{Deadline, OrderedPublisher};
use bytes::Bytes;
use futures::StreamExt;
use google_cloud_pubsub::model::Message;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
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
    /// Whether the payload travelled inline or via the claim-check bucket.
    pub payload_location: PayloadLocation,
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
}

/// An event ready to publish, and what its payload needs.
struct Prepared {
    event: Event,
    offload: Option<Bytes>,
}

impl Emitter {
    /// Creates the Pub/Sub connection for `config` (no network round trip happens here).
    pub async fn connect(config: Config) -> Result<Emitter> {
        let base = crate::clients::base_publisher(&config, config.publish_deadline()).await?;
        let publisher = OrderedPublisher::new(
            &base,
            config.raw_topic_path(),
            config.batching(),
            config.max_ordering_keys(),
        );
        Ok(Emitter { inner: Arc::new(Inner { config, publisher, claim_check: OnceCell::new() }) })
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
    pub async fn emit(&self, event: Event) -> Result<EmitReceipt> {
        self.emit_within(event, self.inner.config.publish_deadline()).await
    }

    /// Emits one event; fails with [`Error::DeadlineExceeded`] if the upload and publish take
    /// longer than `deadline`.
    pub async fn emit_within(&self, event: Event, deadline: Duration) -> Result<EmitReceipt> {
        let prepared = self.prepare(event).map_err(Error::Invalid)?;
        let mut results = self.send(vec![prepared], Deadline::after(deadline)).await;
        results.pop().expect("one result per event")
    }

    /// Emits several events with one deadline for all of them.
    ///
    /// Every event is checked first: if any payload is over the hard maximum, the whole batch is
    /// refused (`Err`, field `events[i].payload`) and nothing is uploaded or published. Otherwise
    /// the result holds one outcome per event, in order. Events of one ordering key are published
    /// in batch order; once one of them fails, the later ones of that key are not sent (they fail
    /// too), so a key never has a gap followed by later events.
    pub async fn emit_batch(&self, events: Vec<Event>) -> Result<Vec<Result<EmitReceipt>>> {
        self.emit_batch_within(events, self.inner.config.publish_deadline()).await
    }

    /// [`Emitter::emit_batch`] with an explicit deadline.
    pub async fn emit_batch_within(
        &self,
        events: Vec<Event>,
        deadline: Duration,
    ) -> Result<Vec<Result<EmitReceipt>>> {
        let prepared = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| self.prepare(e).map_err(|v| v.within(&format!("events[{i}]"))))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(self.send(prepared, Deadline::after(deadline)).await)
    }

    /// Waits until everything buffered has been sent.
    pub async fn flush(&self) {
        self.inner.publisher.flush().await;
    }

    /// Size checks; decides whether the payload is offloaded.
    fn prepare(&self, event: Event) -> std::result::Result<Prepared, ValidationError> {
        let config = &self.inner.config;
        let offload = match event.payload() {
            Payload::Offloaded(_) => None,
            Payload::Inline(value) => {
                let bytes = serde_json::to_vec(value).expect("a JSON value always serializes");
                if bytes.len() > config.max_payload() {
                    return Err(ValidationError::new(
                        "payload",
                        format!("is {} bytes as JSON; the limit is {}", bytes.len(), config.max_payload()),
                    ));
                }
                (bytes.len() > config.offload_threshold()).then(|| Bytes::from(bytes))
            }
        };
        Ok(Prepared { event, offload })
    }

    async fn claim_check(&self) -> Result<&ClaimCheck> {
        self.inner.claim_check.get_or_try_init(|| ClaimCheck::connect(&self.inner.config)).await
    }

    /// Uploads what must be offloaded, then publishes everything that is still intact.
    async fn send(&self, prepared: Vec<Prepared>, deadline: Deadline) -> Vec<Result<EmitReceipt>> {
        let total = prepared.len();
        let mut outcome: Vec<Option<Result<EmitReceipt>>> = (0..total).map(|_| None).collect();

        // 1. Claim-check uploads, bounded in number, all inside the deadline.
        let uploads = futures::stream::iter(prepared.into_iter().enumerate())
            .map(|(i, p)| async move {
                let Prepared { event, offload } = p;
                let key = event.ordering_key();
                let Some(bytes) = offload else { return (i, key, Ok(event)) };
                let upload = async {
                    let claim_check = self.claim_check().await?;
                    let payload_ref = claim_check.offload(&event, bytes).await?;
                    Ok::<_, Error>(event.with_payload(Payload::Offloaded(payload_ref)))
                };
                let result = tokio::time::timeout_at(deadline.at, upload).await.unwrap_or_else(|_| {
                    Err(Error::DeadlineExceeded {
                        operation: format!(
                            "uploading the payload to gs://{}",
                            self.inner.config.names().payload_bucket
                        ),
                        deadline: deadline.budget,
                    })
                });
                (i, key, result)
            })
            .buffered(UPLOAD_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;

        // 2. Messages, in order; a key with a failed event sends nothing after it.
        let mut broken_keys: HashSet<String> = HashSet::new();
        let mut to_publish = Vec::with_capacity(total);
        for (i, key, result) in uploads {
            if broken_keys.contains(&key) {
                outcome[i] = Some(Err(earlier_failure(&key)));
                continue;
            }
            let prepared = result.and_then(|event| {
                let msg = message(&event).map_err(Error::Invalid)?;
                Ok((event.event_id(), event.payload_location(), msg))
            });
            match prepared {
                Ok((id, location, msg)) => to_publish.push((i, id, location, msg)),
                Err(e) => {
                    broken_keys.insert(key);
                    outcome[i] = Some(Err(e));
                }
            }
        }

        // 3. Publish.
        let (meta, messages): (Vec<_>, Vec<_>) =
            to_publish.into_iter().map(|(i, id, loc, msg)| ((i, id, loc), msg)).unzip();
        let published = self.inner.publisher.publish(messages, deadline).await;
        for ((i, event_id, payload_location), result) in meta.into_iter().zip(published) {
            outcome[i] =
                Some(result.map(|message_id| EmitReceipt { event_id, message_id, payload_location }));
        }
        outcome.into_iter().map(|o| o.expect("every event has an outcome")).collect()
    }
}

fn earlier_failure(key: &str) -> Error {
    Error::service(
        crate::error::Service::PubSub,
        format!("publishing ordering key {key}"),
        true,
        "not sent: an earlier event of the same ordering key in this batch failed",
    )
}

/// The Pub/Sub message for an event, checked against Pub/Sub's message limit.
fn message(event: &Event) -> std::result::Result<Message, ValidationError> {
    let data = event.to_wire_json();
    let attributes = event.attributes();
    let key = event.ordering_key();
    let size = data.len() + key.len() + attributes.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    if size > PUBSUB_MESSAGE_MAX_BYTES {
        return Err(ValidationError::new(
            "event",
            format!("is {size} bytes as a Pub/Sub message; the limit is {PUBSUB_MESSAGE_MAX_BYTES}"),
        ));
    }
    Ok(Message::new().set_data(data).set_ordering_key(key).set_attributes(attributes))
}
