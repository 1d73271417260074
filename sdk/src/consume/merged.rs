//! The `events.merged` wire form: a stored event, re-published after its commit.
//!
//! It is the envelope of [`Event::to_wire_json`] with two more fields in front: `store_id`, the
//! row's id in `event_store`, and `replayed`, true when the message comes from
//! `suitex-events replay` rather than from the live worker. Payloads above the offload
//! threshold travel as a `payload_ref` to the claim-check bucket, as on `events.raw`.
//! Attributes are those of the envelope plus `store_id` and `replayed`.
//!
//! The feed is at-least-once: consumers deduplicate on `event_id` (or `store_id`).

use crate::claim_check::ClaimCheck;
use crate::config::Config;
use crate::envelope::{Event, Payload, PayloadRef};
use crate::error::{Result, ValidationError};
use google_cloud_pubsub::model::Message;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

/// An event as read from `events.merged`.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedEvent {
    /// The row id in `event_store`.
    pub store_id: u64,
    /// Whether it was re-published by a replay.
    pub replayed: bool,
    /// The event (payload inline, or a claim-check reference for large payloads).
    pub event: Event,
}

impl MergedEvent {
    /// Strictly decodes a message body from `events.merged`.
    pub fn decode(bytes: &[u8]) -> std::result::Result<MergedEvent, ValidationError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| ValidationError::new("event", format!("is not valid JSON: {e}")))?;
        let Value::Object(mut map) = value else {
            return Err(ValidationError::new("event", "must be a JSON object"));
        };
        let store_id = map
            .remove("store_id")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| ValidationError::new("store_id", "is missing or not a positive integer"))?;
        let replayed = match map.remove("replayed") {
            Some(Value::Bool(b)) => b,
            _ => return Err(ValidationError::new("replayed", "is missing or not a boolean")),
        };
        Ok(MergedEvent { store_id, replayed, event: Event::decode_value(Value::Object(map))? })
    }

    /// The message for `events.merged`.
    pub fn to_message(&self) -> Message {
        let mut map = Map::new();
        map.insert("store_id".into(), self.store_id.into());
        map.insert("replayed".into(), self.replayed.into());
        if let Value::Object(envelope) = self.event.to_wire_value() {
            map.extend(envelope);
        }
        let mut attributes: Vec<(String, String)> =
            self.event.attributes().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        attributes.push(("store_id".into(), self.store_id.to_string()));
        attributes.push(("replayed".into(), self.replayed.to_string()));
        Message::new()
            .set_data(serde_json::to_vec(&Value::Object(map)).expect("a JSON value always serializes"))
            .set_ordering_key(self.event.ordering_key())
            .set_attributes(attributes)
    }
}

/// Turns stored events into `events.merged` messages, offloading large payloads.
#[derive(Debug)]
pub struct MergedWriter {
    config: Config,
    claim_check: OnceCell<ClaimCheck>,
}

impl MergedWriter {
    /// For `config`'s bucket and offload threshold.
    pub fn new(config: &Config) -> MergedWriter {
        MergedWriter { config: config.clone(), claim_check: OnceCell::new() }
    }

    /// The merged form of a stored event. `known_ref` is the claim-check the event arrived
    /// with, reused when the payload is large; without one, a large payload is offloaded again
    /// (create-only: an object still in the bucket is reused).
    pub async fn merged(
        &self,
        store_id: u64,
        event: &Event,
        known_ref: Option<&PayloadRef>,
        replayed: bool,
    ) -> Result<MergedEvent> {
        let text = event.payload().json_text();
        let event = match (text, known_ref) {
            (None, _) => event.clone(),
            (Some(text), _) if text.len() <= self.config.offload_threshold() => event.clone(),
            // The claim-check it arrived with holds these very bytes.
            (Some(_), Some(r)) => event.clone_without_payload().with_payload(Payload::Offloaded(r.clone())),
            (Some(text), None) => {
                let claim_check =
                    self.claim_check.get_or_try_init(|| ClaimCheck::connect(&self.config)).await?;
                let r = claim_check.offload(event, bytes::Bytes::copy_from_slice(text.as_bytes())).await?;
                event.clone_without_payload().with_payload(Payload::Offloaded(r))
            }
        };
        Ok(MergedEvent { store_id, replayed, event })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merged_form_round_trips_with_store_id_first() {
        let event = Event::builder()
            .account_id(42)
            .aggregate("customer", "C-1")
            .event_type("customer.updated")
            .payload(json!({"a": 1}))
            .build()
            .unwrap();
        let merged = MergedEvent { store_id: 7, replayed: false, event };
        let msg = merged.to_message();
        let text = String::from_utf8(msg.data.to_vec()).unwrap();
        assert!(text.starts_with(r#"{"store_id":7,"replayed":false,"event_id":""#), "{text}");
        assert_eq!(msg.attributes["store_id"], "7");
        assert_eq!(msg.attributes["replayed"], "false");
        assert_eq!(msg.ordering_key, "42:customer:C-1");
        assert_eq!(MergedEvent::decode(&msg.data).unwrap(), merged);
        assert_eq!(
            Event::decode(&msg.data).unwrap_err().to_string().split(';').next().unwrap(),
            "event has unknown field \"store_id\""
        );
    }
}
