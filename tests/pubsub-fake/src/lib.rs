//! # pubsub-fake
//!
//! An in-process `google.pubsub.v1` gRPC server for tests of what the official emulator cannot
//! do: it crashes on a subscription with message ordering AND a dead-letter policy (which is
//! exactly what `events.raw-sub` is), enforces no message limits, and cannot inject failures.
//!
//! The fake implements the Publisher methods CreateTopic, GetTopic, DeleteTopic, Publish and the
//! Subscriber methods CreateSubscription, GetSubscription, DeleteSubscription, StreamingPull,
//! Pull, Acknowledge, ModifyAckDeadline, with the semantics described in [`state`]. Point the
//! official client at [`PubSubFake::endpoint`] with anonymous credentials.
//!
//! ```no_run
//! # async fn demo() {
//! let fake = pubsub_fake::start().await;
//! fake.create_topic("projects/p/topics/events.raw").unwrap();
//! fake.fail_next_publishes("projects/p/topics/events.raw", 1, tonic::Code::Unavailable);
//! // Publisher::builder(...).with_endpoint(fake.endpoint()) …
//! # }
//! ```
//!
//! The server stops when the handle is dropped.

pub mod state;

mod service;

use googleapis_tonic_google_pubsub_v1::google::pubsub::v1 as pb;
pub use pb::{DeadLetterPolicy, RetryPolicy, Subscription, Topic};
use state::State;
pub use state::{Outcome, Settlement};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tonic::{Code, Status};

/// How often expired ack deadlines are collected.
const EXPIRY_TICK: Duration = Duration::from_millis(50);

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Bumped on every change a receiver may be waiting for.
    changes: watch::Sender<u64>,
    delay: Mutex<Duration>,
}

impl Shared {
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("fake state lock"))
    }
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
    pub(crate) fn delay(&self) -> Duration {
        *self.delay.lock().expect("delay lock")
    }
}

/// A running fake. Dropping it stops the server.
pub struct PubSubFake {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

/// Starts a fake on an ephemeral port of 127.0.0.1.
pub async fn start() -> PubSubFake {
    start_on("127.0.0.1:0".parse().expect("a valid address")).await.expect("bind 127.0.0.1:0")
}

/// Starts a fake on `addr`.
pub async fn start_on(addr: SocketAddr) -> std::io::Result<PubSubFake> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (changes, _) = watch::channel(0);
    let shared =
        Arc::new(Shared { state: Mutex::new(State::default()), changes, delay: Mutex::new(Duration::ZERO) });
    let (stop_tx, stop_rx) = oneshot::channel::<()>();

    let expiry = {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(EXPIRY_TICK).await;
                if shared.with(|st| st.expire(Instant::now())) {
                    shared.changed();
                }
            }
        })
    };
    let service = service::PubSub(shared.clone());
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .serve_with_incoming_shutdown(service, incoming, async {
                let _ = stop_rx.await;
            })
            .await;
        expiry.abort();
    });
    Ok(PubSubFake { shared, addr, _stop: stop_tx })
}

impl PubSubFake {
    /// `http://127.0.0.1:PORT`, for `with_endpoint` (plain-text gRPC).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates a topic (`projects/P/topics/T`), as CreateTopic would.
    pub fn create_topic(&self, name: &str) -> Result<Topic, Status> {
        self.shared.with(|st| st.create_topic(Topic { name: name.to_string(), ..Default::default() }))
    }

    /// Creates a subscription, as CreateSubscription would (same validation and defaults).
    pub fn create_subscription(&self, subscription: Subscription) -> Result<Subscription, Status> {
        self.shared.with(|st| st.create_subscription(subscription))
    }

    /// Makes the next `n` Publish calls on `topic` fail with `code`.
    pub fn fail_next_publishes(&self, topic: &str, n: usize, code: Code) {
        self.shared.with(|st| {
            let q = st.publish_faults.entry(topic.to_string()).or_default();
            for _ in 0..n {
                q.push_back(Status::new(code, "injected failure"));
            }
        });
    }

    /// Loses the next `n` acknowledgements on `subscription`, as if they were lost in transit:
    /// the message is redelivered as when its ack deadline passes (counting a delivery
    /// attempt), with the deadline brought forward to now so tests need not wait for it.
    pub fn lose_next_acks(&self, subscription: &str, n: usize) {
        self.shared.with(|st| *st.lost_acks.entry(subscription.to_string()).or_default() += n);
    }

    /// Ends every open StreamingPull stream on `subscription` with `code` (the client reconnects
    /// on retryable codes). Returns how many streams were ended.
    pub fn end_streaming_pulls(&self, subscription: &str, code: Code) -> usize {
        let n = self.shared.with(|st| {
            let mut n = 0;
            for s in st.streams.values_mut().filter(|s| s.sub == subscription) {
                s.kill = Some(Status::new(code, "injected stream end"));
                n += 1;
            }
            n
        });
        self.shared.changed();
        n
    }

    /// Delays every response by `delay` (zero to stop).
    pub fn set_response_delay(&self, delay: Duration) {
        *self.shared.delay.lock().expect("delay lock") = delay;
    }

    /// How many messages of one ordering key an ordered subscription may have outstanding at
    /// once: `None` (the default) for no limit, as on the real service, which hands out several
    /// messages of a key together; `Some(1)` for one at a time.
    pub fn set_max_outstanding_per_key(&self, limit: Option<usize>) {
        self.shared.with(|st| st.max_outstanding_per_key = limit.unwrap_or(0));
        self.shared.changed();
    }

    /// Every acknowledgement and nack received on `subscription`, in arrival order.
    pub fn settlements(&self, subscription: &str) -> Vec<Settlement> {
        self.shared
            .with(|st| st.settlements.iter().filter(|s| s.subscription == subscription).cloned().collect())
    }

    /// How many deliveries `subscription` has handed out (each redelivery counts).
    pub fn delivered(&self, subscription: &str) -> u64 {
        self.shared.with(|st| st.delivered.get(subscription).copied().unwrap_or(0))
    }

    /// Unacknowledged messages on `subscription`.
    pub fn backlog(&self, subscription: &str) -> usize {
        self.shared.with(|st| st.backlog(subscription))
    }

    /// Open StreamingPull streams on `subscription`.
    pub fn open_streams(&self, subscription: &str) -> usize {
        self.shared.with(|st| st.streams.values().filter(|s| s.sub == subscription).count())
    }
}
