//! Dead letters: list, show and redrive what `events.dlq-sub` holds.
//!
//! Reading a subscription is destructive only when a message is acked, so listing pulls what
//! is pending, holds it while it looks (its leases kept alive), and releases it again. A limit
//! stops the pulling as soon as enough matching dead letters are found: the rest of the backlog
//! is never taken. Redrive works through the backlog a pull at a time: it re-publishes each
//! selected dead letter to `events.raw` — same data, same ordering key, original attributes
//! without Pub/Sub's `CloudPubSubDeadLetter*` ones — and acks it only after that publish
//! succeeded, so nothing is lost if it fails. Each dead letter is held once: one delivered again
//! while the run goes on (a lease that ran out, an ack that got lost) is never published twice.

use crate::config::Config;
use crate::consume::puller::Pending;
use crate::deadline::Deadline;
use crate::error::Result;
use crate::ordered_publisher::OrderedPublisher;
use google_cloud_pubsub::model::Message;
use googleapis_tonic_google_pubsub_v1::google::pubsub::v1 as pb;
use serde::Serialize;
use std::collections::BTreeMap;

/// Prefix of the attributes Pub/Sub adds when it dead-letters a message.
const DEAD_LETTER_PREFIX: &str = "CloudPubSubDeadLetter";

/// A message on the dead-letter subscription, with what is known about its event.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Pub/Sub message id on the dead-letter topic.
    pub message_id: String,
    /// When it was published to the dead-letter topic (RFC 3339).
    pub publish_time: Option<String>,
    /// The original ordering key.
    pub ordering_key: String,
    /// Attributes, including Pub/Sub's `CloudPubSubDeadLetterSource*`.
    pub attributes: BTreeMap<String, String>,
    /// Delivery attempts before it was dead-lettered.
    pub delivery_count: Option<u32>,
    /// The subscription that gave up on it.
    pub source_subscription: Option<String>,
    /// The event's id, from the attributes or the body, when readable.
    pub event_id: Option<String>,
    /// The tenant, from the attributes or the body, when readable.
    pub account_id: Option<u64>,
    /// The event type, when readable.
    pub event_type: Option<String>,
    /// What is wrong with the body by the envelope's rules, read again here (`None` when it is
    /// a valid envelope: the reason was elsewhere, e.g. its claim-check object, or the event
    /// was healthy and Pub/Sub gave up on its own).
    pub envelope_error: Option<String>,
    /// The message body as text (lossy for binary data).
    pub data: String,
}

impl DeadLetter {
    fn from_message(m: &pb::PubsubMessage) -> DeadLetter {
        let body: Option<serde_json::Value> = serde_json::from_slice(&m.data).ok();
        let from_body = |k: &str| body.as_ref().and_then(|b| b.get(k)).cloned();
        let attr = |k: &str| m.attributes.get(k).cloned();
        DeadLetter {
            message_id: m.message_id.clone(),
            publish_time: m.publish_time.as_ref().map(|t| {
                time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos),
                )
                .map(crate::envelope::format_occurred_at)
                .unwrap_or_default()
            }),
            ordering_key: m.ordering_key.clone(),
            attributes: m.attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            delivery_count: attr("CloudPubSubDeadLetterSourceDeliveryCount").and_then(|v| v.parse().ok()),
            source_subscription: attr("CloudPubSubDeadLetterSourceSubscription"),
            event_id: attr("event_id")
                .or_else(|| from_body("event_id").and_then(|v| v.as_str().map(String::from))),
            account_id: attr("account_id")
                .and_then(|v| v.parse().ok())
                .or_else(|| from_body("account_id").and_then(|v| v.as_u64())),
            event_type: attr("event_type")
                .or_else(|| from_body("event_type").and_then(|v| v.as_str().map(String::from))),
            envelope_error: crate::envelope::Event::decode(&m.data).err().map(|e| e.to_string()),
            data: String::from_utf8_lossy(&m.data).into_owned(),
        }
    }
}

/// Which dead letters to act on.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this tenant's.
    pub account_id: Option<u64>,
    /// Only the one with this event id.
    pub event_id: Option<String>,
    /// Only the one with this Pub/Sub message id.
    pub message_id: Option<String>,
    /// Only this ordering key's (a parked key's dead letters).
    pub ordering_key: Option<String>,
    /// At most this many (0: no limit).
    pub limit: usize,
}

impl Filter {
    fn matches(&self, d: &DeadLetter) -> bool {
        self.account_id.is_none_or(|a| d.account_id == Some(a))
            && self.event_id.as_ref().is_none_or(|e| d.event_id.as_ref() == Some(e))
            && self.message_id.as_ref().is_none_or(|m| &d.message_id == m)
            && self.ordering_key.as_ref().is_none_or(|k| &d.ordering_key == k)
    }
}

/// Dead letters matching `filter`, left on the subscription. With a limit, pulling stops once
/// that many are found.
pub async fn list(config: &Config, filter: &Filter) -> Result<Vec<DeadLetter>> {
    let sub = config.subscription_path(&config.names().dlq_subscription);
    let mut pending = Pending::open(config, &sub).await?;
    let mut out: Vec<DeadLetter> = Vec::new();
    while filter.limit == 0 || out.len() < filter.limit {
        let want = if filter.limit == 0 { 1000 } else { filter.limit - out.len() };
        let Some(new) = pending.pull_more(want).await? else { break };
        for i in new {
            let Some(m) = &pending.messages[i].message else { continue };
            let d = DeadLetter::from_message(m);
            if filter.matches(&d) && (filter.limit == 0 || out.len() < filter.limit) {
                out.push(d);
            }
        }
    }
    // Everything is released again: listing consumes nothing.
    pending.settle(&[]).await?;
    Ok(out)
}

/// What a redrive did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Redriven {
    /// Dead letters re-published to `events.raw` and then acked: (dead-letter message id,
    /// new message id on events.raw).
    pub redriven: Vec<(String, String)>,
    /// Dead letters whose re-publish failed; they stay on the dead-letter subscription.
    pub failed: Vec<(String, String)>,
}

/// Re-publishes the dead letters matching `filter` to `events.raw`; each is acked only after
/// its publish succeeded.
pub async fn redrive(config: &Config, filter: &Filter) -> Result<Redriven> {
    redrive_with(config, filter, false, |_, _| {}).await
}

/// [`redrive`], calling `progress(redriven, taken)` after each pull's dead letters are handled;
/// with `dry_run`, nothing is published or acked (the report lists what would be redriven,
/// with empty new message ids).
pub async fn redrive_with(
    config: &Config,
    filter: &Filter,
    dry_run: bool,
    mut progress: impl FnMut(usize, usize),
) -> Result<Redriven> {
    let sub = config.subscription_path(&config.names().dlq_subscription);
    let mut pending = Pending::open(config, &sub).await?;
    let raw =
        if dry_run { None } else { Some(OrderedPublisher::connect(config, config.raw_topic_path()).await?) };
    let mut report = Redriven::default();
    let mut selected_count = 0;
    loop {
        let room = if filter.limit == 0 { 1000 } else { filter.limit - selected_count };
        if room == 0 {
            break;
        }
        let Some(new) = pending.pull_more(room.min(1000)).await? else { break };
        let selected: Vec<usize> = new
            .into_iter()
            .filter(|&i| {
                pending.messages[i]
                    .message
                    .as_ref()
                    .is_some_and(|m| filter.matches(&DeadLetter::from_message(m)))
            })
            .take(room)
            .collect();
        selected_count += selected.len();
        let Some(raw) = &raw else {
            for &i in &selected {
                let m = pending.messages[i].message.as_ref().expect("selected messages have one");
                report.redriven.push((m.message_id.clone(), String::new()));
            }
            progress(report.redriven.len(), pending.messages.len());
            continue;
        };
        let mut batch = raw.batch(
            selected
                .iter()
                .map(|&i| pending.messages[i].message.as_ref().map_or("", |m| m.ordering_key.as_str())),
        );
        for &i in &selected {
            let m = pending.messages[i].message.as_ref().expect("selected messages have one");
            let attributes = m
                .attributes
                .iter()
                .filter(|(k, _)| !k.starts_with(DEAD_LETTER_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()));
            batch.push(
                Message::new()
                    .set_data(bytes::Bytes::copy_from_slice(&m.data))
                    .set_ordering_key(m.ordering_key.clone())
                    .set_attributes(attributes),
            );
        }
        let results = batch.finish(Deadline::after(config.publish_deadline())).await;
        let mut published = Vec::new();
        for (&i, result) in selected.iter().zip(results) {
            let id = pending.messages[i].message.as_ref().map(|m| m.message_id.clone()).unwrap_or_default();
            match result {
                Ok(new_id) => {
                    published.push(i);
                    report.redriven.push((id, new_id));
                }
                Err(e) => report.failed.push((id, e.to_string())),
            }
        }
        // Acked as soon as it is re-published; a failed one stays on the dead-letter subscription.
        pending.ack(&published).await?;
        progress(report.redriven.len(), pending.messages.len());
    }
    // What was not selected (or not re-published) is released for whoever looks next.
    pending.settle(&[]).await?;
    Ok(report)
}
