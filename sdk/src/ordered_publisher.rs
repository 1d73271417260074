//! Ordered publishing with memory that stays bounded however many ordering keys pass through:
//! what the emitter publishes to `events.raw`, the worker and the inbox to `events.merged`, and
//! replay and redrive to either, all through this one publisher.
//!
//! The official `Publisher` runs one sequential worker per ordering key and never frees it, so a
//! long-lived process grows by ~9 KiB for every aggregate it ever emitted for. Its workers are
//! freed when the `Publisher` (all its clones) is dropped, so [`OrderedPublisher`] serves
//! publishes from a *generation*: a `Publisher` made from a shared [`BasePublisher`] connection,
//! retired once it has seen `max_keys` distinct keys. A retired generation finishes what it holds
//! and then frees its workers.
//!
//! Ordering across a switch is preserved because every call publishes all of its messages
//! through one generation and waits for their results: a later call for the same key starts only
//! after the earlier one settled. Concurrent calls for one key have no order between them in any
//! case.
//!
//! A failed publish pauses its ordering key in the client; the key is resumed as soon as that
//! call's results are in (or, after a deadline, when the abandoned publishes settle), so later
//! events of the key are never stuck.

use crate::config::{Batching, Config};
use crate::deadline::Deadline;
use crate::error::{Error, Service, gax_is_transient};
use futures::FutureExt;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use google_cloud_pubsub::client::{BasePublisher, Publisher};
use google_cloud_pubsub::error::PublishError;
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::publisher::PublishFuture;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Publishes ordered messages to one topic through bounded publisher generations.
#[derive(Clone, Debug)]
pub struct OrderedPublisher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: BasePublisher,
    topic: String,
    batching: Batching,
    max_keys: usize,
    hasher: std::collections::hash_map::RandomState,
    current: Mutex<Generation>,
}

#[derive(Debug)]
struct Generation {
    publisher: Publisher,
    keys: HashSet<u64>,
    number: u64,
}

impl OrderedPublisher {
    /// A publisher for `topic` (full path) with `config`'s connection, credentials, batching and
    /// generation size; the client's retries stop at `config`'s publish deadline. Must be called
    /// inside a Tokio runtime.
    pub async fn connect(
        config: &Config,
        topic: impl Into<String>,
    ) -> crate::error::Result<OrderedPublisher> {
        let base = crate::clients::base_publisher(config, config.publish_deadline()).await?;
        Ok(OrderedPublisher::new(&base, topic, config.batching(), config.max_ordering_keys()))
    }

    /// A publisher for `topic` (full path) on the `base` connection, retiring each generation
    /// after `max_keys` distinct ordering keys. Must be called inside a Tokio runtime.
    pub fn new(base: &BasePublisher, topic: impl Into<String>, batching: Batching, max_keys: usize) -> Self {
        let topic = topic.into();
        let publisher = build(base, &topic, batching);
        OrderedPublisher {
            inner: Arc::new(Inner {
                base: base.clone(),
                topic,
                batching,
                max_keys: max_keys.max(1),
                hasher: Default::default(),
                current: Mutex::new(Generation { publisher, keys: HashSet::new(), number: 0 }),
            }),
        }
    }

    /// The topic path.
    pub fn topic(&self) -> &str {
        &self.inner.topic
    }

    /// How many generations have been retired so far.
    pub fn generations_retired(&self) -> u64 {
        self.inner.current.lock().number
    }

    /// The generation to publish `keys` through, counting them against its limit.
    fn acquire<'a>(&self, keys: impl Iterator<Item = &'a str> + Clone) -> Publisher {
        let inner = &*self.inner;
        let hashes: Vec<u64> = keys.filter(|k| !k.is_empty()).map(|k| inner.hasher.hash_one(k)).collect();
        let mut generation = inner.current.lock();
        let new = hashes.iter().filter(|h| !generation.keys.contains(h)).count();
        if !generation.keys.is_empty() && generation.keys.len() + new > inner.max_keys {
            let number = generation.number + 1;
            *generation = Generation {
                publisher: build(&inner.base, &inner.topic, inner.batching),
                keys: HashSet::new(),
                number,
            };
            release_freed_memory();
        }
        generation.keys.extend(hashes);
        generation.publisher.clone()
    }

    /// Starts a batch for messages with these ordering keys; all of them go through one
    /// generation. Messages are sent as soon as they are pushed.
    pub fn batch<'a>(&self, keys: impl Iterator<Item = &'a str> + Clone) -> PublishBatch {
        PublishBatch {
            publisher: self.acquire(keys),
            topic: self.inner.topic.clone(),
            inflight: FuturesUnordered::new(),
            sent: Vec::new(),
        }
    }

    /// Publishes `messages` in order and waits until `deadline` for their message ids
    /// (see [`PublishBatch::finish`]).
    pub async fn publish(&self, messages: Vec<Message>, deadline: Deadline) -> Vec<Result<String, Error>> {
        let mut batch = self.batch(messages.iter().map(|m| m.ordering_key.as_str()));
        for m in messages {
            batch.push(m);
        }
        batch.finish(deadline).await
    }

    /// Sends everything buffered in the current generation now.
    pub async fn flush(&self) {
        let publisher = self.inner.current.lock().publisher.clone();
        publisher.flush().await;
    }
}

type Inflight =
    FuturesUnordered<futures::future::Map<PublishFuture, Box<dyn FnOnce(PublishResult) -> Settled + Send>>>;
type PublishResult = Result<String, PublishError>;
type Settled = (usize, String, PublishResult);

/// Messages being published through one generation; see [`OrderedPublisher::batch`].
pub struct PublishBatch {
    publisher: Publisher,
    topic: String,
    inflight: Inflight,
    /// A copy of every pushed message (cheap: the data is shared), for the one retry after a
    /// pause that another call caused.
    sent: Vec<Message>,
}

impl PublishBatch {
    /// Sends `message` now (the client batches and orders it per key).
    pub fn push(&mut self, message: Message) {
        let i = self.sent.len();
        self.sent.push(message.clone());
        self.send(i, message);
    }

    fn send(&mut self, i: usize, message: Message) {
        let key = message.ordering_key.clone();
        let settle: Box<dyn FnOnce(PublishResult) -> Settled + Send> = Box::new(move |r| (i, key, r));
        self.inflight.push(self.publisher.publish(message).map(settle));
    }

    /// Collects results until everything in flight settled or the deadline passed.
    async fn drive(&mut self, results: &mut [Option<PublishResult>], deadline: Deadline) {
        let inflight = &mut self.inflight;
        let _ = tokio::time::timeout_at(deadline.at, async {
            while let Some((i, _, r)) = inflight.next().await {
                results[i] = Some(r);
            }
        })
        .await;
    }

    /// Resumes every key with a failure in `results`.
    fn resume_failed(&self, results: &[Option<PublishResult>]) {
        let failed: HashSet<&str> = results
            .iter()
            .zip(&self.sent)
            .filter(|(r, m)| matches!(r, Some(Err(_))) && !m.ordering_key.is_empty())
            .map(|(_, m)| m.ordering_key.as_str())
            .collect();
        for key in failed {
            self.publisher.resume_publish(key);
        }
    }

    /// Waits until `deadline` for the message ids, one result per pushed message, in push order.
    ///
    /// Keys whose publish failed are resumed before this returns. A key whose *first* failure
    /// in this batch is "paused" was paused by another call (typically a publish abandoned at
    /// its deadline that failed later); it is resumed and its messages are sent once more, in
    /// order. A key paused by a failure in this batch is not retried: later events of the key
    /// must not overtake the failed one. A message still pending at the deadline gets
    /// [`Error::DeadlineExceeded`]; it may still be published afterwards, and its key is resumed
    /// if it then fails.
    pub async fn finish(mut self, deadline: Deadline) -> Vec<Result<String, Error>> {
        let mut results: Vec<Option<PublishResult>> = (0..self.sent.len()).map(|_| None).collect();
        self.drive(&mut results, deadline).await;
        self.resume_failed(&results);

        if self.inflight.is_empty() {
            let mut first_failure: std::collections::HashMap<&str, bool> = Default::default();
            for (r, m) in results.iter().zip(&self.sent) {
                if let Some(Err(e)) = r {
                    first_failure
                        .entry(m.ordering_key.as_str())
                        .or_insert(matches!(e, PublishError::OrderingKeyPaused));
                }
            }
            let retry: Vec<usize> = (0..results.len())
                .filter(|&i| {
                    matches!(results[i], Some(Err(PublishError::OrderingKeyPaused)))
                        && first_failure.get(self.sent[i].ordering_key.as_str()) == Some(&true)
                })
                .collect();
            if !retry.is_empty() {
                for i in retry {
                    results[i] = None;
                    let message = self.sent[i].clone();
                    self.send(i, message);
                }
                self.drive(&mut results, deadline).await;
                self.resume_failed(&results);
            }
        }

        let PublishBatch { publisher, topic, mut inflight, .. } = self;
        if !inflight.is_empty() {
            // The client keeps retrying until its retry limit; whatever fails then must not
            // leave its key paused for the next caller.
            tokio::spawn(async move {
                let mut to_resume = HashSet::new();
                while let Some((_, key, r)) = inflight.next().await {
                    if r.is_err() && !key.is_empty() {
                        to_resume.insert(key);
                    }
                }
                for key in to_resume {
                    publisher.resume_publish(key);
                }
            });
        }
        results.into_iter().map(|r| outcome(&topic, r, deadline)).collect()
    }
}

/// One message's outcome. The client gives up retrying at the same budget as the call
/// (`clients::base_publisher` is built with the publish deadline as its time limit), so its own
/// time-out is this call's deadline passing, whichever of the two timers fired first: both are
/// [`Error::DeadlineExceeded`], never a service failure.
fn outcome(topic: &str, result: Option<PublishResult>, deadline: Deadline) -> Result<String, Error> {
    let exceeded = || Error::DeadlineExceeded {
        service: Service::PubSub,
        operation: format!("publishing to {topic}"),
        deadline: deadline.budget,
    };
    match result {
        Some(Ok(id)) => Ok(id),
        Some(Err(PublishError::Rpc(e))) if e.is_timeout() => Err(exceeded()),
        Some(Err(e)) => Err(publish_error(topic, e)),
        None => Err(exceeded()),
    }
}

/// Hands memory freed by earlier generations back to the OS.
///
/// The key workers of a generation are allocated on whichever runtime threads ran them, so
/// glibc spreads them over several malloc arenas and keeps the freed pages mapped: without this,
/// resident memory settles ~1.6× above a one-generation process instead of staying flat. By the
/// time a generation is retired, the one before it has long finished and freed its workers.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // Off the caller's path: trimming walks every arena.
        drop(tokio::task::spawn_blocking(|| {
            // SAFETY: malloc_trim only returns free memory to the OS; it has no preconditions.
            unsafe { libc::malloc_trim(0) };
        }));
    }
}

fn build(base: &BasePublisher, topic: &str, batching: Batching) -> Publisher {
    base.publisher(topic)
        .set_message_count_threshold(batching.max_messages)
        .set_byte_threshold(batching.max_bytes)
        .set_delay_threshold(batching.max_delay)
        .build()
}

fn publish_error(topic: &str, e: PublishError) -> Error {
    let transient = match &e {
        PublishError::Rpc(inner) => gax_is_transient(inner),
        // A paused key or a shut-down publisher: the same publish can succeed on a later call.
        _ => true,
    };
    Error::service(Service::PubSub, format!("publishing to {topic}"), transient, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_own_time_out_is_the_calls_deadline_passing() {
        let deadline = Deadline::after(std::time::Duration::from_secs(2));
        let timed_out =
            PublishError::Rpc(std::sync::Arc::new(google_cloud_gax::error::Error::timeout("expired")));
        let err = outcome("projects/p/topics/t", Some(Err(timed_out)), deadline).unwrap_err();
        assert!(err.is_deadline_exceeded(), "{err}");
        assert_eq!(err.to_string(), "publishing to projects/p/topics/t did not complete within 2s");
        let pending = outcome("projects/p/topics/t", None, deadline).unwrap_err();
        assert_eq!(pending.to_string(), err.to_string(), "the same error whichever timer fired first");
        let paused =
            outcome("projects/p/topics/t", Some(Err(PublishError::OrderingKeyPaused)), deadline).unwrap_err();
        assert!(!paused.is_deadline_exceeded(), "{paused}");
    }
}
