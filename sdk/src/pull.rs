//! Unary Pull, for tools that look at a subscription without consuming it.
//!
//! The worker uses StreamingPull with automatic lease management. Tools (`dlq`, `peek`) need
//! something else: take what is pending, hold it, and then ack some and *release* the rest so
//! it is immediately available again. With StreamingPull a release races the stream itself: a
//! nack sent while the stream is open is redelivered onto that same stream, and the emulator
//! ignores acknowledgements for a stream that has closed. Unary Pull has neither problem: its
//! ack ids belong to no stream, and `ModifyAckDeadline(0)` releases them.
//!
//! The official client has no unary Pull, so this speaks `google.pubsub.v1.Subscriber`
//! directly (the generated stubs of `googleapis-tonic-google-pubsub-v1`), with Application
//! Default Credentials over TLS in production and anonymous plain text on the emulator.

use crate::config::{Config, Endpoint};
use crate::error::{Error, Result, Service};
use google_cloud_auth::credentials::{CacheableResource, Credentials};
use googleapis_tonic_google_pubsub_v1::google::pubsub::v1 as pb;
use pb::subscriber_client::SubscriberClient;
use std::time::Duration;
use tonic::transport::Channel;

/// Deadline of one Pull call.
const PULL_TIMEOUT: Duration = Duration::from_secs(30);
/// Empty pulls in a row that mean the backlog has been taken (the service may answer an
/// immediate Pull with nothing while messages are pending).
const EMPTY_PULLS: u32 = 3;
/// Most messages one Pull asks for.
const PULL_MAX: i32 = 1000;

/// A unary Pub/Sub subscriber client.
#[derive(Clone)]
pub struct Puller {
    client: SubscriberClient<Channel>,
    credentials: Option<Credentials>,
}

fn rpc_error(operation: String, e: impl Into<crate::error::BoxError>, transient: bool) -> Error {
    Error::service(Service::PubSub, operation, transient, e)
}

impl Puller {
    /// Connects to `config`'s Pub/Sub endpoint.
    pub async fn connect(config: &Config) -> Result<Puller> {
        let (url, credentials) = match config.pubsub_endpoint() {
            Endpoint::Emulator(url) => (url.clone(), None),
            Endpoint::Google => {
                let creds = google_cloud_auth::credentials::Builder::default()
                    .with_scopes(["https://www.googleapis.com/auth/pubsub"])
                    .build()
                    .map_err(|e| rpc_error("loading Application Default Credentials".into(), e, false))?;
                ("https://pubsub.googleapis.com".to_string(), Some(creds))
            }
        };
        let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())
            .map_err(|e| rpc_error(format!("parsing the Pub/Sub endpoint {url}"), e, false))?
            .connect_timeout(Duration::from_secs(10));
        if credentials.is_some() {
            endpoint = endpoint
                .tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots())
                .map_err(|e| rpc_error("configuring TLS for Pub/Sub".into(), e, false))?;
        }
        let channel = endpoint.connect_lazy();
        Ok(Puller { client: SubscriberClient::new(channel).max_decoding_message_size(64 << 20), credentials })
    }

    async fn request<T>(&self, message: T) -> Result<tonic::Request<T>> {
        let mut req = tonic::Request::new(message);
        if let Some(creds) = &self.credentials {
            let headers = match creds
                .headers(http::Extensions::new())
                .await
                .map_err(|e| rpc_error("obtaining an access token".into(), e, true))?
            {
                CacheableResource::New { data, .. } => data,
                CacheableResource::NotModified => unreachable!("no entity tag was sent"),
            };
            for (name, value) in &headers {
                if let (Ok(k), Ok(v)) = (
                    tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes()),
                    tonic::metadata::MetadataValue::try_from(value.as_bytes()),
                ) {
                    req.metadata_mut().insert(k, v);
                }
            }
        }
        Ok(req)
    }

    /// Pulls up to `max` messages that are pending now, without waiting for new ones.
    ///
    /// `return_immediately` is deprecated for consumers that poll, but it is exactly what a
    /// look at the current backlog needs. A long-polling Pull abandoned on a client-side
    /// timeout would instead keep running on the server and swallow (lease) messages released
    /// meanwhile.
    pub async fn pull(&self, subscription: &str, max: i32) -> Result<Vec<pb::ReceivedMessage>> {
        #[allow(deprecated)]
        let message = pb::PullRequest {
            subscription: subscription.to_string(),
            max_messages: max,
            return_immediately: true,
        };
        let mut req = self.request(message).await?;
        req.set_timeout(PULL_TIMEOUT);
        match self.client.clone().pull(req).await {
            Ok(resp) => Ok(resp.into_inner().received_messages),
            Err(status) => {
                let transient =
                    matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded);
                Err(rpc_error(format!("pulling from {subscription}"), status, transient))
            }
        }
    }

    /// Acknowledges (consumes) messages.
    pub async fn ack(&self, subscription: &str, ack_ids: Vec<String>) -> Result<()> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        let req =
            self.request(pb::AcknowledgeRequest { subscription: subscription.to_string(), ack_ids }).await?;
        self.client
            .clone()
            .acknowledge(req)
            .await
            .map(|_| ())
            .map_err(|s| rpc_error(format!("acknowledging on {subscription}"), s, true))
    }

    /// Releases messages for immediate redelivery.
    pub async fn release(&self, subscription: &str, ack_ids: Vec<String>) -> Result<()> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        let req = self
            .request(pb::ModifyAckDeadlineRequest {
                subscription: subscription.to_string(),
                ack_ids,
                ack_deadline_seconds: 0,
            })
            .await?;
        self.client
            .clone()
            .modify_ack_deadline(req)
            .await
            .map(|_| ())
            .map_err(|s| rpc_error(format!("releasing messages on {subscription}"), s, true))
    }
}

/// Messages taken from a subscription and held until [`Pending::settle`].
pub struct Pending {
    puller: Puller,
    subscription: String,
    /// What was pending, in the order received.
    pub messages: Vec<pb::ReceivedMessage>,
}

/// Takes what `subscription` (full path) holds now: pulls until several pulls in a row come
/// back empty, or `limit` messages are held (0: no limit).
pub async fn take_pending(config: &Config, subscription: &str, limit: usize) -> Result<Pending> {
    let puller = Puller::connect(config).await?;
    let mut messages = Vec::new();
    let mut empty = 0;
    loop {
        let want = if limit == 0 { PULL_MAX } else { (limit - messages.len()).min(PULL_MAX as usize) as i32 };
        if want == 0 {
            break;
        }
        let got = puller.pull(subscription, want).await?;
        if got.is_empty() {
            empty += 1;
            if empty >= EMPTY_PULLS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        empty = 0;
        messages.extend(got);
    }
    Ok(Pending { puller, subscription: subscription.to_string(), messages })
}

impl Pending {
    /// Acks the messages at `consume` (indices into [`Pending::messages`]) and releases all
    /// the others for immediate redelivery.
    pub async fn settle(self, consume: &[usize]) -> Result<()> {
        let (mut ack, mut release) = (Vec::new(), Vec::new());
        for (i, m) in self.messages.into_iter().enumerate() {
            if consume.contains(&i) { ack.push(m.ack_id) } else { release.push(m.ack_id) }
        }
        self.puller.ack(&self.subscription, ack).await?;
        self.puller.release(&self.subscription, release).await
    }
}

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
    pub event: std::result::Result<crate::envelope::Event, String>,
}

/// Pulls `events.raw-sub` for consumers that store events themselves.
pub struct Inbox {
    puller: Puller,
    claim_check: tokio::sync::OnceCell<crate::claim_check::ClaimCheck>,
    config: Config,
    subscription: String,
}

impl Inbox {
    /// An inbox on `config`'s raw subscription.
    pub async fn connect(config: Config) -> Result<Inbox> {
        Ok(Inbox {
            puller: Puller::connect(&config).await?,
            claim_check: tokio::sync::OnceCell::new(),
            subscription: config.subscription_path(&config.names().raw_subscription),
            config,
        })
    }

    /// Up to `max` deliveries; when none is pending, waits up to `wait` for one.
    pub async fn pull(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let until = tokio::time::Instant::now() + wait;
        let max = max.clamp(1, PULL_MAX as usize) as i32;
        let received = loop {
            let got = self.puller.pull(&self.subscription, max).await?;
            if !got.is_empty() || tokio::time::Instant::now() >= until {
                break got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut out = Vec::with_capacity(received.len());
        for r in received {
            let m = r.message.unwrap_or_default();
            let event = match crate::envelope::Event::decode(&m.data) {
                Err(e) => Err(format!("bad envelope: {e}")),
                Ok(e) => self.resolve(e).await?,
            };
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

    /// The event with its payload inline; `Err(reason)` for a claim-check that cannot be
    /// resolved; `Err` of the outer result for a failure worth retrying.
    async fn resolve(
        &self,
        event: crate::envelope::Event,
    ) -> Result<std::result::Result<crate::envelope::Event, String>> {
        let crate::envelope::Payload::Offloaded(reference) = event.payload() else { return Ok(Ok(event)) };
        let claim_check = self
            .claim_check
            .get_or_try_init(|| crate::claim_check::ClaimCheck::connect(&self.config))
            .await?;
        match claim_check.fetch(reference).await {
            Ok(bytes) => Ok(match serde_json::from_slice(&bytes) {
                Ok(payload) => Ok(event.with_payload(crate::envelope::Payload::Inline(payload))),
                Err(e) => Err(format!("claim-check {} is not JSON: {e}", reference.object)),
            }),
            Err(e @ Error::ClaimCheckInvalid { .. }) => Ok(Err(e.to_string())),
            Err(e) => Err(e),
        }
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
