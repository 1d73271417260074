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
//! directly (the generated stubs of `googleapis-tonic-google-pubsub-v1`) on a channel from
//! [`crate::clients`]: Application Default Credentials over TLS in production, anonymous plain
//! text on the emulator. The [`Inbox`](super::Inbox) is built on it.

use crate::config::Config;
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
pub(super) const PULL_MAX: i32 = 1000;

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
    /// Connects to `config`'s Pub/Sub endpoint (the channel and credentials come from
    /// [`crate::clients`], like every other client's).
    pub async fn connect(config: &Config) -> Result<Puller> {
        let (channel, credentials) = crate::clients::subscriber_channel(config)?;
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

