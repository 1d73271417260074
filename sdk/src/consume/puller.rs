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
use parking_lot::Mutex;
use pb::subscriber_client::SubscriberClient;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Default deadline of one Pull call ([`Puller::with_deadlines`] sets another).
const PULL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default deadline of one Acknowledge or ModifyAckDeadline call.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
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
    /// Deadline of one Pull call.
    pull_deadline: Duration,
    /// Deadline of one Acknowledge or ModifyAckDeadline call.
    rpc_deadline: Duration,
}

fn rpc_error(operation: String, e: impl Into<crate::error::BoxError>, transient: bool) -> Error {
    Error::service(Service::PubSub, operation, transient, e)
}

impl Puller {
    /// Connects to `config`'s Pub/Sub endpoint (the channel and credentials come from
    /// [`crate::clients`], like every other client's).
    pub async fn connect(config: &Config) -> Result<Puller> {
        let (channel, credentials) = crate::clients::subscriber_channel(config)?;
        Ok(Puller {
            client: SubscriberClient::new(channel).max_decoding_message_size(64 << 20),
            credentials,
            pull_deadline: PULL_TIMEOUT,
            rpc_deadline: RPC_TIMEOUT,
        })
    }

    /// The same client with other deadlines for each Pull call and for each Acknowledge or
    /// ModifyAckDeadline call (by default 30 s and 10 s).
    pub fn with_deadlines(mut self, pull: Duration, rpc: Duration) -> Puller {
        self.pull_deadline = pull;
        self.rpc_deadline = rpc;
        self
    }

    /// The deadlines of a Pull call and of an Acknowledge or ModifyAckDeadline call.
    pub fn deadlines(&self) -> (Duration, Duration) {
        (self.pull_deadline, self.rpc_deadline)
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

    /// Runs one RPC within `deadline` (sent to the server as its deadline too, and enforced
    /// here as well, so a server that never answers cannot hold the caller).
    async fn call<T>(
        &self,
        operation: impl FnOnce() -> String,
        deadline: Duration,
        transient: impl Fn(tonic::Code) -> bool,
        rpc: impl std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    ) -> Result<T> {
        let exceeded =
            |operation: String| Error::DeadlineExceeded { service: Service::PubSub, operation, deadline };
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(deadline, rpc).await {
            Ok(Ok(v)) => Ok(v),
            // The request carries its deadline (`grpc-timeout`), which tonic's channel and the
            // server keep too: whichever ends the call first, it is the same missed deadline
            // (tonic reports its own expiry as `Cancelled`, Pub/Sub as `DeadlineExceeded`).
            Ok(Err(status))
                if matches!(status.code(), tonic::Code::Cancelled | tonic::Code::DeadlineExceeded)
                    && started.elapsed() >= deadline =>
            {
                Err(exceeded(operation()))
            }
            Ok(Err(status)) => {
                let t = transient(status.code());
                Err(rpc_error(operation(), status, t))
            }
            Err(_) => Err(exceeded(operation())),
        }
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
        req.set_timeout(self.pull_deadline);
        let transient = |c| matches!(c, tonic::Code::Unavailable | tonic::Code::DeadlineExceeded);
        self.call(
            || format!("pulling from {subscription}"),
            self.pull_deadline,
            transient,
            self.client.clone().pull(req),
        )
        .await
        .map(|resp| resp.into_inner().received_messages)
    }

    /// Acknowledges (consumes) messages.
    pub async fn ack(&self, subscription: &str, ack_ids: Vec<String>) -> Result<()> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        let mut req =
            self.request(pb::AcknowledgeRequest { subscription: subscription.to_string(), ack_ids }).await?;
        req.set_timeout(self.rpc_deadline);
        self.call(
            || format!("acknowledging on {subscription}"),
            self.rpc_deadline,
            |_| true,
            self.client.clone().acknowledge(req),
        )
        .await
        .map(|_| ())
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
        let mut req = self
            .request(pb::ModifyAckDeadlineRequest {
                subscription: subscription.to_string(),
                ack_ids,
                ack_deadline_seconds: seconds,
            })
            .await?;
        req.set_timeout(self.rpc_deadline);
        let what = if seconds == 0 { "releasing" } else { "extending the lease of" };
        self.call(
            || format!("{what} messages on {subscription}"),
            self.rpc_deadline,
            |_| true,
            self.client.clone().modify_ack_deadline(req),
        )
        .await
        .map(|_| ())
    }
}

/// Every `every`, extends the leases of the ack ids `leased` returns by `seconds`, until the
/// returned token is cancelled (when the messages are settled, or their holder is dropped). A
/// failed extension is logged and tried again on the next tick, so `every` must be well inside
/// `seconds`.
pub(super) fn keep_leases(
    puller: Puller,
    subscription: String,
    every: Duration,
    seconds: i32,
    leased: impl Fn() -> Vec<String> + Send + 'static,
) -> CancellationToken {
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            for chunk in leased().chunks(PULL_MAX as usize) {
                if let Err(e) = puller.modify_deadline(&subscription, chunk.to_vec(), seconds).await {
                    tracing::warn!(error = %e, "extending the leases of messages in hand failed; retrying");
                }
            }
        }
    });
    stop
}

/// How often the leases of leased messages are extended, and how far.
const KEEP_EVERY: Duration = Duration::from_secs(5);
const KEEP_FOR_SECONDS: i32 = 60;

/// Messages taken from a subscription and *leased* — their leases kept alive in the background
/// — until they are acked or released. Each message is leased once: a redelivery of one already
/// leased (its lease ran out on the way) replaces the old ack id instead of adding a copy.
pub struct Pending {
    puller: Puller,
    subscription: String,
    /// What was taken, in the order first received (each message once, with its latest ack id).
    pub messages: Vec<pb::ReceivedMessage>,
    by_id: HashMap<String, usize>,
    /// Indices already acked or released.
    settled: HashSet<usize>,
    /// The ack ids whose leases the keeper extends.
    leased: Arc<Mutex<HashSet<String>>>,
    keeper: CancellationToken,
    empty_pulls: u32,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.keeper.cancel();
    }
}

impl Pending {
    /// Starts holding messages of `subscription` (full path); nothing is pulled yet.
    pub async fn open(config: &Config, subscription: &str) -> Result<Pending> {
        let puller = Puller::connect(config).await?;
        let leased: Arc<Mutex<HashSet<String>>> = Default::default();
        let keeper = {
            let leased = leased.clone();
            keep_leases(puller.clone(), subscription.to_string(), KEEP_EVERY, KEEP_FOR_SECONDS, move || {
                leased.lock().iter().cloned().collect()
            })
        };
        Ok(Pending {
            puller,
            subscription: subscription.to_string(),
            messages: Vec::new(),
            by_id: HashMap::new(),
            settled: HashSet::new(),
            leased,
            keeper,
            empty_pulls: 0,
        })
    }

    /// Pulls up to `max` more messages; returns the indices (into [`Pending::messages`]) of
    /// those not leased before. `None` once the backlog is exhausted (several pulls in a row came
    /// back with nothing new).
    pub async fn pull_more(&mut self, max: usize) -> Result<Option<Vec<usize>>> {
        loop {
            if self.empty_pulls >= EMPTY_PULLS {
                return Ok(None);
            }
            let got = self.puller.pull(&self.subscription, max.clamp(1, PULL_MAX as usize) as i32).await?;
            // Leased for KEEP_FOR_SECONDS from now, whatever the subscription's ack deadline.
            let ids: Vec<String> = got.iter().map(|r| r.ack_id.clone()).collect();
            self.puller.modify_deadline(&self.subscription, ids, KEEP_FOR_SECONDS).await?;
            let mut new = Vec::new();
            for r in got {
                let message_id = r.message.as_ref().map(|m| m.message_id.clone()).unwrap_or_default();
                let mut leased = self.leased.lock();
                match self.by_id.get(&message_id) {
                    Some(&i) => {
                        // Delivered again: only the newest ack id counts.
                        leased.remove(&self.messages[i].ack_id);
                        if !self.settled.contains(&i) {
                            leased.insert(r.ack_id.clone());
                        }
                        self.messages[i].ack_id = r.ack_id;
                    }
                    None => {
                        leased.insert(r.ack_id.clone());
                        self.by_id.insert(message_id, self.messages.len());
                        new.push(self.messages.len());
                        self.messages.push(r);
                    }
                }
            }
            if new.is_empty() {
                self.empty_pulls += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            self.empty_pulls = 0;
            return Ok(Some(new));
        }
    }

    /// Acks (consumes) the messages at `indices` now.
    pub async fn ack(&mut self, indices: &[usize]) -> Result<()> {
        let ids = self.take(indices);
        self.puller.ack(&self.subscription, ids).await
    }

    fn take(&mut self, indices: &[usize]) -> Vec<String> {
        let mut leased = self.leased.lock();
        let mut ids = Vec::new();
        for &i in indices {
            if self.settled.insert(i) {
                leased.remove(&self.messages[i].ack_id);
                ids.push(self.messages[i].ack_id.clone());
            }
        }
        ids
    }

    /// Acks the messages at `consume` (indices into [`Pending::messages`]) and releases all
    /// the others for immediate redelivery.
    pub async fn settle(mut self, consume: &[usize]) -> Result<()> {
        self.keeper.cancel();
        let ack = self.take(consume);
        let rest: Vec<usize> = (0..self.messages.len()).filter(|i| !self.settled.contains(i)).collect();
        let release = self.take(&rest);
        self.puller.ack(&self.subscription, ack).await?;
        for chunk in release.chunks(PULL_MAX as usize) {
            self.puller.release(&self.subscription, chunk.to_vec()).await?;
        }
        Ok(())
    }
}

/// Takes what `subscription` (full path) holds now: pulls until several pulls in a row bring
/// nothing new, or `limit` messages are leased (0: no limit).
pub async fn take_pending(config: &Config, subscription: &str, limit: usize) -> Result<Pending> {
    let mut pending = Pending::open(config, subscription).await?;
    loop {
        let want = if limit == 0 { PULL_MAX as usize } else { limit - pending.messages.len() };
        if want == 0 || pending.pull_more(want).await?.is_none() {
            return Ok(pending);
        }
    }
}
