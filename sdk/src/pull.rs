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
        self.modify_deadline(subscription, ack_ids, 0).await
    }

    /// Keeps messages leased for `seconds` from now (0 releases them).
    pub async fn modify_deadline(
        &self,
        subscription: &str,
        ack_ids: Vec<String>,
        seconds: i32,
    ) -> Result<()> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        let req = self
            .request(pb::ModifyAckDeadlineRequest {
                subscription: subscription.to_string(),
                ack_ids,
                ack_deadline_seconds: seconds,
            })
            .await?;
        let what = if seconds == 0 { "releasing" } else { "extending the lease of" };
        self.client
            .clone()
            .modify_ack_deadline(req)
            .await
            .map(|_| ())
            .map_err(|s| rpc_error(format!("{what} messages on {subscription}"), s, true))
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
    claim_check: tokio::sync::OnceCell<crate::claim_check::ClaimCheck>,
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
            let event = match crate::envelope::Event::decode(data) {
                Err(e) => Err(format!("bad envelope: {e}")),
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
        let fetched = tokio::time::timeout(self.fetch_deadline, claim_check.fetch(reference))
            .await
            .unwrap_or_else(|_| {
                Err(Error::DeadlineExceeded {
                    operation: format!("downloading gs://{}/{}", reference.bucket, reference.object),
                    deadline: self.fetch_deadline,
                })
            });
        match fetched {
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
