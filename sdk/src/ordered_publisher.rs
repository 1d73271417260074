//! Ordered publishing with memory that stays bounded however many ordering keys pass through.
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

use crate::config::Batching;
use crate::error::{Error, Service, gax_is_transient};
use google_cloud_pubsub::client::{BasePublisher, Publisher};
use google_cloud_pubsub::error::PublishError;
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::publisher::PublishFuture;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A point in time an operation must finish by, with the budget it was given (for messages).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// When the time runs out.
    pub at: Instant,
    /// How long the operation was given in all.
    pub budget: Duration,
}

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        Deadline { at: Instant::now() + budget, budget }
    }

    /// Time left, zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

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
        self.inner.current.lock().expect("generation lock").number
    }

    /// The generation to publish `keys` through, counting them against its limit.
    fn acquire<'a>(&self, keys: impl Iterator<Item = &'a str> + Clone) -> Publisher {
        let inner = &*self.inner;
        let hashes: Vec<u64> = keys.filter(|k| !k.is_empty()).map(|k| inner.hasher.hash_one(k)).collect();
        let mut generation = inner.current.lock().expect("generation lock");
        let new = hashes.iter().filter(|h| !generation.keys.contains(h)).count();
        if !generation.keys.is_empty() && generation.keys.len() + new > inner.max_keys {
            let number = generation.number + 1;
            *generation = Generation {
                publisher: build(&inner.base, &inner.topic, inner.batching),
                keys: HashSet::new(),
                number,
            };
        }
        generation.keys.extend(hashes);
        generation.publisher.clone()
    }

    /// Publishes `messages` in order and waits until `deadline` for their message ids.
    ///
    /// The result has one entry per message, in order. A message still pending at the deadline
    /// gets [`Error::DeadlineExceeded`]; it may still be published afterwards, and its ordering
    /// key is resumed if it then fails.
    pub async fn publish(&self, messages: Vec<Message>, deadline: Deadline) -> Vec<Result<String, Error>> {
        let publisher = self.acquire(messages.iter().map(|m| m.ordering_key.as_str()));
        let keys: Vec<String> = messages.iter().map(|m| m.ordering_key.clone()).collect();
        let mut pending: Vec<Pin<Box<PublishFuture>>> =
            messages.into_iter().map(|m| Box::pin(publisher.publish(m))).collect();
        let settled = futures::future::join_all(
            pending.iter_mut().map(|f| tokio::time::timeout_at(deadline.at, f.as_mut())),
        )
        .await;

        let mut results = Vec::with_capacity(settled.len());
        let mut paused: HashSet<&str> = HashSet::new();
        let mut abandoned = Vec::new();
        for ((outcome, key), fut) in settled.into_iter().zip(&keys).zip(pending) {
            match outcome {
                Ok(Ok(id)) => results.push(Ok(id)),
                Ok(Err(e)) => {
                    paused.insert(key);
                    results.push(Err(publish_error(&self.inner.topic, e)));
                }
                Err(_elapsed) => {
                    abandoned.push((key.clone(), fut));
                    results.push(Err(Error::DeadlineExceeded {
                        operation: format!("publishing to {}", self.inner.topic),
                        deadline: deadline.budget,
                    }));
                }
            }
        }
        for key in paused.into_iter().filter(|k| !k.is_empty()) {
            publisher.resume_publish(key);
        }
        if !abandoned.is_empty() {
            // The client keeps retrying until its retry limit; whatever fails then must not
            // leave its key paused for the next caller.
            tokio::spawn(async move {
                let mut to_resume = HashSet::new();
                for (key, fut) in abandoned {
                    if fut.await.is_err() && !key.is_empty() {
                        to_resume.insert(key);
                    }
                }
                for key in to_resume {
                    publisher.resume_publish(key);
                }
            });
        }
        results
    }

    /// Sends everything buffered in the current generation now.
    pub async fn flush(&self) {
        let publisher = self.inner.current.lock().expect("generation lock").publisher.clone();
        publisher.flush().await;
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
