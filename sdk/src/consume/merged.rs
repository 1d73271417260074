//! The `events.merged` wire form: a stored event, published from the ledger after its commit.
//!
//! It is the envelope of [`Event::to_wire_json`] with four more fields in front: `store_id`,
//! the row's id in `event_store`; `seq`, its position in the ledger (gapless, commit order);
//! `aggregate_version`, its number within its aggregate; and `replayed`, true when the message
//! comes from `suitex-events replay` rather than from the feeder. Payloads above the offload
//! threshold travel as a `payload_ref` to the claim-check bucket, as on `events.raw`.
//! Attributes are those of the envelope plus `store_id`, `seq`, `aggregate_version` and
//! `replayed`.
//!
//! The feed is at-least-once and in `seq` order per ordering key: consumers deduplicate on
//! `seq` (or `event_id`). A consumer that rebuilds from the ledger reads it up to some `seq` S,
//! then takes `events.merged` and drops every message with `seq` ≤ S: no event is missed and
//! none is handled twice (docs/architecture.md §2.4).

use crate::claim_check::ClaimCheck;
use crate::config::Config;
use crate::envelope::{ClaimCheckRef, Event, Payload};
use crate::error::{Result, ValidationError};
use google_cloud_pubsub::model::Message;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

/// An event as read from `events.merged`.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedEvent {
    /// The row id in `event_store`.
    pub store_id: u64,
    /// The row's position in the ledger.
    pub seq: u64,
    /// The event's number within its aggregate.
    pub aggregate_version: u64,
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
        let mut number = |field: &'static str| {
            map.remove(field)
                .and_then(|v| v.as_u64())
                .filter(|n| *n > 0)
                .ok_or_else(|| ValidationError::new(field, "is missing or not a positive integer"))
        };
        let seq = number("seq")?;
        let aggregate_version = number("aggregate_version")?;
        let replayed = match map.remove("replayed") {
            Some(Value::Bool(b)) => b,
            _ => return Err(ValidationError::new("replayed", "is missing or not a boolean")),
        };
        Ok(MergedEvent {
            store_id,
            seq,
            aggregate_version,
            replayed,
            event: Event::decode_value(Value::Object(map))?,
        })
    }

    /// The message for `events.merged`.
    pub fn to_message(&self) -> Message {
        let mut map = Map::new();
        map.insert("store_id".into(), self.store_id.into());
        map.insert("seq".into(), self.seq.into());
        map.insert("aggregate_version".into(), self.aggregate_version.into());
        map.insert("replayed".into(), self.replayed.into());
        if let Value::Object(envelope) = self.event.to_wire_value() {
            map.extend(envelope);
        }
        let mut attributes: Vec<(String, String)> =
            self.event.attributes().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        attributes.push(("store_id".into(), self.store_id.to_string()));
        attributes.push(("seq".into(), self.seq.to_string()));
        attributes.push(("aggregate_version".into(), self.aggregate_version.to_string()));
        attributes.push(("replayed".into(), self.replayed.to_string()));
        Message::new()
            .set_data(serde_json::to_vec(&Value::Object(map)).expect("a JSON value always serializes"))
            .set_ordering_key(self.event.ordering_key())
            .set_attributes(attributes)
    }
}

/// Turns stored events into `events.merged` messages, offloading large payloads.
///
/// Publishing them is the feeder's (`worker::feeder`) and the replayer's.
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

    /// The merged form of a stored event at `position`. `known_ref` is the claim-check the
    /// event arrived with, reused when the payload is large; without one, a large payload is
    /// offloaded again (create-only: an object still in the bucket is reused).
    pub async fn merged(
        &self,
        position: LedgerPosition,
        event: &Event,
        known_ref: Option<&ClaimCheckRef>,
        replayed: bool,
    ) -> Result<MergedEvent> {
        let text = event.payload().json_text();
        let event = match (text, known_ref) {
            (None, _) => event.clone(),
            (Some(text), _) if text.len() <= self.config.offload_threshold() => event.clone(),
            // The claim-check it arrived with holds these very bytes.
            (Some(_), Some(r)) => event.clone_without_payload().with_payload(Payload::ClaimCheck(r.clone())),
            (Some(text), None) => {
                let claim_check =
                    self.claim_check.get_or_try_init(|| ClaimCheck::connect(&self.config)).await?;
                let r = claim_check.offload(event, bytes::Bytes::copy_from_slice(text.as_bytes())).await?;
                event.clone_without_payload().with_payload(Payload::ClaimCheck(r))
            }
        };
        let LedgerPosition { store_id, seq, aggregate_version } = position;
        Ok(MergedEvent { store_id, seq, aggregate_version, replayed, event })
    }

    /// The merged form of a stored event whose payload — `size` bytes with SHA-256 `sha256` —
    /// was left in the database: a claim-check naming the object the event arrived with, when
    /// the bucket still holds it. `None` when it does not (the payload is to be read and
    /// offloaded again with [`MergedWriter::merged`]).
    pub async fn merged_by_reference(
        &self,
        position: LedgerPosition,
        event: &Event,
        size: u64,
        sha256: &str,
    ) -> Result<Option<MergedEvent>> {
        let claim_check = self.claim_check.get_or_try_init(|| ClaimCheck::connect(&self.config)).await?;
        let Some(r) = claim_check.find(event, sha256, size).await? else { return Ok(None) };
        let event = event.clone_without_payload().with_payload(Payload::ClaimCheck(r));
        let LedgerPosition { store_id, seq, aggregate_version } = position;
        Ok(Some(MergedEvent { store_id, seq, aggregate_version, replayed: false, event }))
    }
}

/// Where a stored event sits in the ledger: its row, its `seq`, its aggregate version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerPosition {
    /// The row id in `event_store`.
    pub store_id: u64,
    /// The row's position in the ledger.
    pub seq: u64,
    /// The event's number within its aggregate.
    pub aggregate_version: u64,
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
        let merged = MergedEvent { store_id: 7, seq: 5, aggregate_version: 2, replayed: false, event };
        let msg = merged.to_message();
        let text = String::from_utf8(msg.data.to_vec()).unwrap();
        assert!(
            text.starts_with(r#"{"store_id":7,"seq":5,"aggregate_version":2,"replayed":false,"event_id":""#),
            "{text}"
        );
        assert_eq!(msg.attributes["store_id"], "7");
        assert_eq!(msg.attributes["seq"], "5");
        assert_eq!(msg.attributes["aggregate_version"], "2");
        assert_eq!(msg.attributes["replayed"], "false");
        assert_eq!(msg.ordering_key, "42:customer:C-1");
        assert_eq!(MergedEvent::decode(&msg.data).unwrap(), merged);
        assert_eq!(
            Event::decode(&msg.data).unwrap_err().to_string().split(';').next().unwrap(),
            "event has unknown field \"store_id\""
        );
    }
}
