//! The state machine of one send: a batch's events walked per ordering key, each pushed to the
//! publisher as soon as nothing before it on its key is pending, claim-check uploads started as
//! they block a key, and a failure failing the rest of its key. The emitter (`emitter.rs`)
//! drives it; this file only decides.

use super::emitter::EmitReceipt;
use crate::config::PUBSUB_MESSAGE_MAX_BYTES;
use crate::deadline::Deadline;
use crate::envelope::{ClaimCheckRef, Event, Payload};
use crate::error::{Error, Result, ValidationError};
use crate::ordered_publisher::PublishBatch;
use bytes::Bytes;
use google_cloud_pubsub::model::Message;
use serde_json::value::RawValue;
use std::collections::{HashMap, VecDeque};

/// An event ready to publish, and what its payload needs.
pub(super) struct Prepared {
    pub(super) event: Event,
    pub(super) key: String,
    pub(super) payload: PreparedPayload,
}

pub(super) enum PreparedPayload {
    /// Inline, already serialized (serialized once for the size check and the message).
    Inline(Box<RawValue>),
    /// Too large for a message: to be uploaded.
    Offload(Bytes),
    /// Already a claim-check reference.
    Reference,
}

/// The state of one `send`: which events are pushed, pending or failed.
pub(super) struct SendRun {
    batch: PublishBatch,
    slots: Vec<Option<Prepared>>,
    outcome: Vec<Option<Result<EmitReceipt>>>,
    /// Per key, the indices of its events not yet pushed, in order.
    queues: HashMap<String, VecDeque<usize>>,
    /// Event index of each pushed message, in push order.
    pushed: Vec<usize>,
}

impl SendRun {
    pub(super) fn new(batch: PublishBatch, prepared: Vec<Prepared>) -> SendRun {
        let mut queues: HashMap<String, VecDeque<usize>> = HashMap::new();
        for (i, p) in prepared.iter().enumerate() {
            queues.entry(p.key.clone()).or_default().push_back(i);
        }
        SendRun {
            batch,
            outcome: (0..prepared.len()).map(|_| None).collect(),
            slots: prepared.into_iter().map(Some).collect(),
            queues,
            pushed: Vec::new(),
        }
    }

    pub(super) fn keys(&self) -> Vec<String> {
        self.queues.keys().cloned().collect()
    }

    /// Pushes what is ready at the front of `key`'s queue. Returns the upload that blocks the
    /// key, if one must start.
    pub(super) fn advance(&mut self, key: &str) -> Option<(usize, Event, Bytes)> {
        while let Some(&i) = self.queues[key].front() {
            let p = self.slots[i].as_mut().expect("a queued event is present");
            if matches!(p.payload, PreparedPayload::Offload(_)) {
                let PreparedPayload::Offload(bytes) =
                    std::mem::replace(&mut p.payload, PreparedPayload::Reference)
                else {
                    unreachable!("checked above")
                };
                return Some((i, p.event.clone_without_payload(), bytes));
            }
            self.queues.get_mut(key).expect("queued").pop_front();
            let p = self.slots[i].take().expect("a queued event is present");
            let data = match &p.payload {
                PreparedPayload::Inline(raw) => p.event.to_wire_json_with(raw),
                _ => p.event.to_wire_json(),
            };
            match message(&p.event, &p.key, data) {
                Ok(msg) => {
                    self.batch.push(msg);
                    self.pushed.push(i);
                    self.outcome[i] = Some(Ok(EmitReceipt {
                        event_id: p.event.event_id(),
                        message_id: String::new(),
                        payload_location: p.event.payload_location(),
                        spooled: false,
                    }));
                }
                Err(e) => {
                    self.outcome[i] = Some(Err(e));
                    self.fail_rest(key);
                }
            }
        }
        None
    }

    /// Records the end of event `i`'s upload and carries on with its key.
    pub(super) fn uploaded(
        &mut self,
        i: usize,
        result: Result<ClaimCheckRef>,
    ) -> Option<(usize, Event, Bytes)> {
        let key = self.slots[i].as_ref().expect("an uploading event is present").key.clone();
        match result {
            Ok(r) => {
                self.slots[i].as_mut().expect("present").event.replace_payload(Payload::ClaimCheck(r));
                self.advance(&key)
            }
            Err(e) => {
                self.queues.get_mut(&key).expect("queued").pop_front();
                self.slots[i] = None;
                self.outcome[i] = Some(Err(e));
                self.fail_rest(&key);
                None
            }
        }
    }

    /// Fails every event still queued on `key`: something before it failed.
    fn fail_rest(&mut self, key: &str) {
        for j in std::mem::take(self.queues.get_mut(key).expect("queued")) {
            self.slots[j] = None;
            self.outcome[j] = Some(Err(earlier_failure(key)));
        }
    }

    pub(super) async fn finish(self, deadline: Deadline) -> Vec<Result<EmitReceipt>> {
        let SendRun { batch, mut outcome, pushed, .. } = self;
        for (i, result) in pushed.into_iter().zip(batch.finish(deadline).await) {
            let slot = outcome[i].as_mut().expect("a pushed event has an outcome");
            match (result, slot) {
                (Ok(message_id), Ok(receipt)) => receipt.message_id = message_id,
                (Err(e), slot) => *slot = Err(e),
                (Ok(_), Err(_)) => unreachable!("only successfully built messages are pushed"),
            }
        }
        outcome.into_iter().map(|o| o.expect("every event has an outcome")).collect()
    }
}

fn earlier_failure(key: &str) -> Error {
    Error::EarlierEventFailed { ordering_key: key.to_string() }
}

/// The Pub/Sub message for an event, checked against Pub/Sub's message limit.
fn message(event: &Event, key: &str, data: Vec<u8>) -> Result<Message> {
    let attributes = event.attributes();
    let size = data.len() + key.len() + attributes.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    if size > PUBSUB_MESSAGE_MAX_BYTES {
        return Err(Error::Invalid(ValidationError::new(
            "event",
            format!("is {size} bytes as a Pub/Sub message; the limit is {PUBSUB_MESSAGE_MAX_BYTES}"),
        )));
    }
    Ok(Message::new().set_data(Bytes::from(data)).set_ordering_key(key).set_attributes(attributes))
}
