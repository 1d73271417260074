//! gRPC routing: `googleapis-tonic-google-pubsub-v1` ships client stubs only, so the
//! `google.pubsub.v1.Publisher` and `google.pubsub.v1.Subscriber` methods are routed here by
//! path onto the model in [`crate::state`].

use crate::Shared;
use crate::state::StreamInfo;
use googleapis_tonic_google_pubsub_v1::google::pubsub::v1 as pb;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::body::Body;
use tonic::codec::Streaming;
use tonic::server::Grpc;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// Large enough to receive oversized publish requests and refuse them with the service's own
/// INVALID_ARGUMENT rather than a transport error.
const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;
/// How long a unary Pull waits for a message before answering empty.
const PULL_WAIT: Duration = Duration::from_secs(1);
/// How often an idle stream re-checks for deliverable messages (retry backoffs ending).
const STREAM_TICK: Duration = Duration::from_millis(50);

/// The tower service answering every Pub/Sub method.
#[derive(Clone)]
pub(crate) struct PubSub(pub(crate) Arc<Shared>);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<Body>> for PubSub {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let shared = self.0.clone();
        Box::pin(async move { Ok(route(shared, req).await) })
    }
}

/// Answers one unary method with `handler`.
async fn unary<Req, Resp, F, Fut>(
    shared: Arc<Shared>,
    req: http::Request<Body>,
    handler: F,
) -> http::Response<Body>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    F: Fn(Arc<Shared>, Req) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    let svc = tower::service_fn(move |r: Request<Req>| {
        let (shared, handler) = (shared.clone(), handler.clone());
        async move {
            let delay = shared.delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            handler(shared, r.into_inner()).await.map(Response::new)
        }
    });
    Grpc::new(ProstCodec::<Resp, Req>::default())
        .max_decoding_message_size(MAX_DECODE_BYTES)
        .unary(svc, req)
        .await
}

async fn route(shared: Arc<Shared>, req: http::Request<Body>) -> http::Response<Body> {
    match req.uri().path() {
        "/google.pubsub.v1.Publisher/CreateTopic" => {
            unary(shared, req, |s, t: pb::Topic| async move { s.with(|st| st.create_topic(t)) }).await
        }
        "/google.pubsub.v1.Publisher/GetTopic" => {
            unary(shared, req, |s, r: pb::GetTopicRequest| async move { s.with(|st| st.get_topic(&r.topic)) })
                .await
        }
        "/google.pubsub.v1.Publisher/DeleteTopic" => {
            unary(shared, req, |s, r: pb::DeleteTopicRequest| async move {
                s.with(|st| st.delete_topic(&r.topic))
            })
            .await
        }
        "/google.pubsub.v1.Publisher/Publish" => {
            unary(shared, req, |s, r: pb::PublishRequest| async move {
                let message_ids = s.with(|st| st.publish(r))?;
                s.changed();
                Ok(pb::PublishResponse { message_ids })
            })
            .await
        }
        "/google.pubsub.v1.Subscriber/CreateSubscription" => {
            unary(shared, req, |s, r: pb::Subscription| async move { s.with(|st| st.create_subscription(r)) })
                .await
        }
        "/google.pubsub.v1.Subscriber/GetSubscription" => {
            unary(shared, req, |s, r: pb::GetSubscriptionRequest| async move {
                s.with(|st| st.get_subscription(&r.subscription))
            })
            .await
        }
        "/google.pubsub.v1.Subscriber/DeleteSubscription" => {
            unary(shared, req, |s, r: pb::DeleteSubscriptionRequest| async move {
                s.with(|st| st.delete_subscription(&r.subscription))?;
                s.changed();
                Ok(())
            })
            .await
        }
        "/google.pubsub.v1.Subscriber/Acknowledge" => {
            unary(shared, req, |s, r: pb::AcknowledgeRequest| async move {
                s.with(|st| st.acknowledge(&r.subscription, &r.ack_ids))?;
                s.changed();
                Ok(())
            })
            .await
        }
        "/google.pubsub.v1.Subscriber/ModifyAckDeadline" => {
            unary(shared, req, |s, r: pb::ModifyAckDeadlineRequest| async move {
                s.with(|st| {
                    st.modify_ack_deadline(
                        &r.subscription,
                        &r.ack_ids,
                        r.ack_deadline_seconds,
                        Instant::now(),
                    )
                })?;
                s.changed();
                Ok(())
            })
            .await
        }
        "/google.pubsub.v1.Subscriber/Pull" => unary(shared, req, pull).await,
        "/google.pubsub.v1.Subscriber/StreamingPull" => {
            let svc = tower::service_fn(move |r: Request<Streaming<pb::StreamingPullRequest>>| {
                streaming_pull(shared.clone(), r.into_inner())
            });
            Grpc::new(ProstCodec::<pb::StreamingPullResponse, pb::StreamingPullRequest>::default())
                .max_decoding_message_size(MAX_DECODE_BYTES)
                .streaming(svc, req)
                .await
        }
        path => Status::unimplemented(format!("{path} is not implemented by the Pub/Sub fake")).into_http(),
    }
}

async fn pull(s: Arc<Shared>, r: pb::PullRequest) -> Result<pb::PullResponse, Status> {
    if r.max_messages <= 0 {
        return Err(Status::invalid_argument("max_messages must be positive"));
    }
    let mut changes = s.subscribe();
    let until = Instant::now() + PULL_WAIT;
    loop {
        let received_messages = s.with(|st| {
            if !st.subscription_exists(&r.subscription) {
                return Err(Status::not_found("Subscription does not exist"));
            }
            Ok(st.deliver(&r.subscription, None, r.max_messages as usize, Instant::now()))
        })?;
        #[allow(deprecated)] // the service still honours it
        let return_immediately = r.return_immediately;
        if !received_messages.is_empty() || return_immediately || Instant::now() >= until {
            return Ok(pb::PullResponse { received_messages });
        }
        let _ = tokio::time::timeout(STREAM_TICK, changes.changed()).await;
    }
}

fn apply_stream_request(s: &Shared, sub: &str, r: &pb::StreamingPullRequest) -> Result<(), Status> {
    let now = Instant::now();
    s.with(|st| {
        if !r.ack_ids.is_empty() {
            st.acknowledge(sub, &r.ack_ids)?;
        }
        if r.modify_deadline_ack_ids.len() != r.modify_deadline_seconds.len() {
            return Err(Status::invalid_argument(
                "modify_deadline_seconds and modify_deadline_ack_ids must have the same length",
            ));
        }
        for (ack_id, seconds) in r.modify_deadline_ack_ids.iter().zip(&r.modify_deadline_seconds) {
            st.modify_ack_deadline(sub, std::slice::from_ref(ack_id), *seconds, now)?;
        }
        Ok(())
    })
}

async fn streaming_pull(
    s: Arc<Shared>,
    mut inbound: Streaming<pb::StreamingPullRequest>,
) -> Result<Response<ReceiverStream<Result<pb::StreamingPullResponse, Status>>>, Status> {
    let first =
        inbound.message().await?.ok_or_else(|| Status::invalid_argument("the stream sent no request"))?;
    let sub = first.subscription.clone();
    if !s.with(|st| st.subscription_exists(&sub)) {
        return Err(Status::not_found("Subscription does not exist"));
    }
    if !(10..=600).contains(&first.stream_ack_deadline_seconds) {
        return Err(Status::invalid_argument(format!(
            "Invalid stream_ack_deadline_seconds: {}; it must be between 10 and 600",
            first.stream_ack_deadline_seconds
        )));
    }
    apply_stream_request(&s, &sub, &first)?;
    let id = s.with(|st| {
        st.open_stream(StreamInfo {
            sub: sub.clone(),
            ack_deadline: Duration::from_secs(first.stream_ack_deadline_seconds as u64),
            max_messages: first.max_outstanding_messages,
            max_bytes: first.max_outstanding_bytes,
            kill: None,
        })
    });
    let (tx, rx) = mpsc::channel(4);

    // Requests after the first carry acks, deadline changes and keepalives.
    let (closed_tx, mut closed_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = {
        let (s, sub) = (s.clone(), sub.clone());
        tokio::spawn(async move {
            while let Ok(Some(r)) = inbound.message().await {
                if apply_stream_request(&s, &sub, &r).is_ok() {
                    s.changed();
                }
            }
            let _ = closed_tx.send(());
        })
    };

    tokio::spawn(async move {
        let mut changes = s.subscribe();
        loop {
            let step = s.with(|st| match st.streams.get_mut(&id).and_then(|i| i.kill.take()) {
                Some(status) => Err(status),
                None if !st.subscription_exists(&sub) => {
                    Err(Status::not_found("Subscription does not exist"))
                }
                None => Ok(st.deliver(&sub, Some(id), usize::MAX, Instant::now())),
            });
            match step {
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    break;
                }
                Ok(received_messages) if !received_messages.is_empty() => {
                    let delay = s.delay();
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let resp = pb::StreamingPullResponse { received_messages, ..Default::default() };
                    if tx.send(Ok(resp)).await.is_err() {
                        break;
                    }
                    continue;
                }
                Ok(_) => {}
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(STREAM_TICK) => {}
                _ = &mut closed_rx => break,
                _ = tx.closed() => break,
            }
        }
        reader.abort();
        // Messages still leased to this stream stay leased until their deadline, as on the service.
        s.with(|st| st.streams.remove(&id));
    });
    Ok(Response::new(ReceiverStream::new(rx)))
}
