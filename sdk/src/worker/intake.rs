//! The worker's intake: a task of its own takes messages from `events.raw-sub`'s stream and
//! decodes them, ahead of the batch loop, so that decoding the next batch overlaps storing the
//! one before it (docs/architecture.md §7, "Where the worker's time goes").
//!
//! Nothing about the order changes: one task reads the stream and hands each message on through
//! one FIFO channel, so the batch loop sees exactly the stream's order. At most `ahead` decoded
//! messages wait in the channel — leased, like the messages the subscriber itself prefetched
//! (bounded by `max_outstanding`). When the intake stops, what was decoded and not taken is
//! released (nacked) for redelivery, as the subscriber releases its prefetched messages.

use super::metrics::Metrics;
use crate::envelope::{Event, Payload};
use crate::error::{Error, Poison, Result, Service};
use crate::trace;
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::subscriber::MessageStream;
use google_cloud_pubsub::subscriber::handler::Handler;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One received message and what is known about it.
pub(super) struct Received {
    pub(super) message: Message,
    pub(super) handler: Handler,
    /// The decoded event, or why it is poison.
    pub(super) event: std::result::Result<Event, Poison>,
    /// From receipt to settlement (`events.raw-sub receive`), a child of the producer's
    /// `create` span (crate::trace); disabled unless spans are exported.
    pub(super) span: tracing::Span,
}

impl Received {
    /// Bytes of payload this message brings into the batch once resolved.
    pub(super) fn payload_bytes(&self, max_payload: usize) -> u64 {
        match &self.event {
            Ok(e) => match e.payload() {
                // A reference above the maximum is refused without a download.
                Payload::ClaimCheck(r) if r.size > max_payload as u64 => 0,
                Payload::ClaimCheck(r) => r.size,
                _ => self.message.data.len() as u64,
            },
            Err(_) => self.message.data.len() as u64,
        }
    }

    pub(super) fn key(&self) -> &str {
        &self.message.ordering_key
    }

    pub(super) fn attempt(&self) -> Option<i32> {
        self.handler.delivery_attempt()
    }
}

/// Turns a message off the stream into a [`Received`].
#[derive(Clone)]
pub(super) struct Decoder {
    pub(super) metrics: Arc<Metrics>,
    /// The subscription's name (for spans) and its full path (for errors).
    pub(super) subscription: String,
    pub(super) subscription_path: String,
}

impl Decoder {
    /// Decodes `message` strictly (a failure is the message's poison) and opens its span. The
    /// message counts as in flight from here until it is settled or released.
    pub(super) fn received(&self, message: Message, handler: Handler) -> Received {
        self.metrics.in_flight.inc();
        let event = Event::decode(&message.data).map_err(Poison::BadEnvelope);
        let span = trace::receive_span(trace::Received {
            subscription: &self.subscription,
            message_id: &message.message_id,
            ordering_key: &message.ordering_key,
            attributes: &message.attributes,
            event: event.as_ref().ok(),
            delivery_attempt: handler.delivery_attempt(),
        });
        Received { message, handler, event, span }
    }

    /// Lets a received message go unsettled: Pub/Sub redelivers it.
    pub(super) fn release(&self, r: Received) {
        self.metrics.in_flight.dec();
        drop(r);
    }

    /// [`Decoder::release`] for what the intake holds: a message (a stream failure holds none).
    fn release_item(&self, item: Result<Received>) {
        if let Ok(r) = item {
            self.release(r);
        }
    }
}

/// Why [`Intake::try_next`] has no message.
pub(super) enum Waiting {
    /// Nothing decoded yet.
    Empty,
    /// The stream has ended (or failed, which was handed on before).
    Ended,
}

/// The intake task and the channel it fills (see the module's documentation).
pub(super) struct Intake {
    rx: mpsc::Receiver<Result<Received>>,
    stop: CancellationToken,
    task: JoinHandle<MessageStream>,
    decoder: Decoder,
}

impl Intake {
    /// Starts taking from `stream`, keeping at most `ahead` (≥ 1) decoded messages waiting.
    pub(super) fn start(mut stream: MessageStream, decoder: Decoder, ahead: usize) -> Intake {
        let (tx, rx) = mpsc::channel(ahead.max(1));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (stop, decoder) = (stop.clone(), decoder.clone());
            async move {
                loop {
                    let next = tokio::select! {
                        biased;
                        _ = stop.cancelled() => break,
                        next = stream.next() => next,
                    };
                    let item = match next {
                        None => break,
                        Some(Err(e)) => Err(Error::service(
                            Service::PubSub,
                            format!("pulling from {}", decoder.subscription_path),
                            false,
                            e,
                        )),
                        Some(Ok((message, handler))) => Ok(decoder.received(message, handler)),
                    };
                    let failed = item.is_err();
                    let permit = tokio::select! {
                        biased;
                        _ = stop.cancelled() => None,
                        permit = tx.reserve() => permit.ok(),
                    };
                    let Some(permit) = permit else {
                        decoder.release_item(item);
                        break;
                    };
                    permit.send(item);
                    if failed {
                        break;
                    }
                }
                stream
            }
        });
        Intake { rx, stop, task, decoder }
    }

    /// The next message in stream order, waiting for one; `None` once the stream has ended.
    pub(super) async fn next(&mut self) -> Option<Result<Received>> {
        self.rx.recv().await
    }

    /// The next message (or the stream's permanent failure) if one is decoded already.
    pub(super) fn try_next(&mut self) -> std::result::Result<Result<Received>, Waiting> {
        self.rx.try_recv().map_err(|e| match e {
            TryRecvError::Empty => Waiting::Empty,
            TryRecvError::Disconnected => Waiting::Ended,
        })
    }

    /// Lets a message taken from the intake go unsettled ([`Decoder::release`]).
    pub(super) fn release(&self, r: Received) {
        self.decoder.release(r);
    }

    /// Stops taking messages and releases what was decoded but not taken; returns the stream,
    /// to be closed by the caller (which also releases what the subscriber prefetched).
    pub(super) async fn stop(mut self) -> Option<MessageStream> {
        self.stop.cancel();
        self.rx.close();
        while let Some(item) = self.rx.recv().await {
            self.decoder.release_item(item);
        }
        match self.task.await {
            Ok(stream) => Some(stream),
            Err(e) => {
                tracing::warn!(error = %e, "the worker's intake task ended abnormally");
                None
            }
        }
    }
}
