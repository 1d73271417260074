//! The fake's model of Pub/Sub: topics, subscriptions, messages and their leases.
//!
//! Semantics follow the service's documentation:
//! * a message is leased to one receiver at a time until its ack deadline; an expired deadline
//!   or a nack (`ModifyAckDeadline` with 0) makes it deliverable again;
//! * with a dead-letter policy, `delivery_attempt` is 1 + nacks + expired deadlines, and a
//!   message whose attempts reached `max_delivery_attempts` is forwarded to the dead-letter
//!   topic (with the `CloudPubSubDeadLetterSource*` attributes) instead of being redelivered;
//! * with message ordering, the messages of an ordering key are delivered in publish order, and
//!   several of them may be outstanding at once, as on the real service (the limit per key is
//!   [`State::max_outstanding_per_key`], unlimited by default; 1 gives the stricter behaviour of
//!   one message per key at a time). A message waiting out its retry backoff holds back every
//!   later message of its key; a nacked message is redelivered before anything after it; and a
//!   key is with one receiver at a time (while a stream holds messages of a key, no other
//!   receiver gets any of it);
//! * a retry policy delays redelivery after a nack (exponential between its two backoffs);
//! * publish requests over Pub/Sub's limits are refused with `INVALID_ARGUMENT`.

use googleapis_tonic_google_pubsub_v1::google::pubsub::v1 as pb;
use prost::Message as _;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};
use tonic::Status;

/// Largest publish request, in bytes.
pub const MAX_REQUEST_BYTES: usize = 10_000_000;
/// Most messages in one publish request.
pub const MAX_MESSAGES_PER_REQUEST: usize = 1000;
/// Most attributes on one message.
pub const MAX_ATTRIBUTES: usize = 100;
/// Longest attribute key, in bytes.
pub const MAX_ATTRIBUTE_KEY_BYTES: usize = 256;
/// Longest attribute value, in bytes.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1024;
/// Longest ordering key, in bytes.
pub const MAX_ORDERING_KEY_BYTES: usize = 1024;
/// Ack deadline bounds, in seconds.
const ACK_DEADLINE_RANGE: std::ops::RangeInclusive<i32> = 10..=600;
/// Default `max_delivery_attempts` when a dead-letter policy leaves it 0.
const DEFAULT_MAX_DELIVERY_ATTEMPTS: i32 = 5;

#[derive(Default)]
pub(crate) struct State {
    topics: HashMap<String, TopicEntry>,
    subs: HashMap<String, Sub>,
    /// ack id → (subscription, message sequence number).
    acks: HashMap<String, (String, u64)>,
    next_message_id: u64,
    next_seq: u64,
    next_ack: u64,
    next_stream: u64,
    /// Statuses the next publish calls on a topic fail with.
    pub(crate) publish_faults: HashMap<String, VecDeque<Status>>,
    /// Acknowledgements to lose, per subscription (the message is redelivered later).
    pub(crate) lost_acks: HashMap<String, usize>,
    pub(crate) streams: HashMap<u64, StreamInfo>,
    /// Most messages of one ordering key outstanding at once (0: no limit).
    pub(crate) max_outstanding_per_key: usize,
    /// Every acknowledgement and nack, in the order they arrived.
    pub(crate) settlements: Vec<Settlement>,
    /// Messages handed out, per subscription (each delivery counts).
    pub(crate) delivered: HashMap<String, u64>,
    /// No lease expires before this (`None`: no lease since the last expiry scan): the periodic
    /// expiry scans every message only when a lease may have run out. Never later than the
    /// earliest lease's expiry — a new or shortened lease lowers it; an extended or ended lease
    /// leaves it early, which costs one scan that finds nothing and sets it again.
    earliest_expiry: Option<Instant>,
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged.
    Ack,
    /// Nacked (`ModifyAckDeadline` with 0).
    Nack,
}

/// One acknowledgement or nack the fake received for a leased message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The subscription's full name.
    pub subscription: String,
    /// The message id.
    pub message_id: String,
    /// The message's ordering key.
    pub ordering_key: String,
    /// The delivery attempt that was settled (1 for the first delivery).
    pub attempt: i32,
    /// Ack or nack.
    pub outcome: Outcome,
}

struct TopicEntry {
    topic: pb::Topic,
    subs: Vec<String>,
}

struct Sub {
    config: pb::Subscription,
    /// Unacknowledged messages by publish order.
    messages: BTreeMap<u64, Msg>,
}

struct Msg {
    message: pb::PubsubMessage,
    deliveries: i32,
    lease: Option<Lease>,
    available_at: Instant,
}

struct Lease {
    ack_id: String,
    expires: Instant,
    stream: Option<u64>,
}

/// An open StreamingPull stream.
pub(crate) struct StreamInfo {
    pub sub: String,
    pub ack_deadline: Duration,
    pub max_messages: i64,
    pub max_bytes: i64,
    /// Set by fault injection: the stream ends with this status.
    pub kill: Option<Status>,
}

fn invalid(msg: impl Into<String>) -> Status {
    Status::invalid_argument(msg)
}

fn check_name(name: &str, collection: &str) -> Result<(), Status> {
    let parts: Vec<&str> = name.split('/').collect();
    let id_ok = |id: &str| {
        (3..=255).contains(&id.len())
            && id.starts_with(|c: char| c.is_ascii_alphabetic())
            && !id.starts_with("goog")
            && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(c))
    };
    if parts.len() == 4
        && parts[0] == "projects"
        && !parts[1].is_empty()
        && parts[2] == collection
        && id_ok(parts[3])
    {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid resource name given (name={name}). Refer to https://cloud.google.com/pubsub/docs/pubsub-basics#resource_names for more information."
        )))
    }
}

fn to_duration(d: &Option<prost_types::Duration>) -> Option<Duration> {
    d.as_ref().map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32))
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

fn rfc3339(t: &prost_types::Timestamp) -> String {
    // Civil-from-days (proleptic Gregorian), enough for publish times.
    let secs = t.seconds;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        t.nanos / 1000
    )
}

impl State {
    pub(crate) fn create_topic(&mut self, topic: pb::Topic) -> Result<pb::Topic, Status> {
        check_name(&topic.name, "topics")?;
        if self.topics.contains_key(&topic.name) {
            return Err(Status::already_exists("Topic already exists"));
        }
        self.topics.insert(topic.name.clone(), TopicEntry { topic: topic.clone(), subs: Vec::new() });
        Ok(topic)
    }

    pub(crate) fn get_topic(&self, name: &str) -> Result<pb::Topic, Status> {
        self.topics.get(name).map(|t| t.topic.clone()).ok_or_else(|| Status::not_found("Topic not found"))
    }

    pub(crate) fn delete_topic(&mut self, name: &str) -> Result<(), Status> {
        let entry = self.topics.remove(name).ok_or_else(|| Status::not_found("Topic not found"))?;
        for sub in entry.subs {
            if let Some(s) = self.subs.get_mut(&sub) {
                s.config.topic = "_deleted-topic_".into();
            }
        }
        Ok(())
    }

    pub(crate) fn create_subscription(
        &mut self,
        mut config: pb::Subscription,
    ) -> Result<pb::Subscription, Status> {
        check_name(&config.name, "subscriptions")?;
        if self.subs.contains_key(&config.name) {
            return Err(Status::already_exists("Subscription already exists"));
        }
        if !self.topics.contains_key(&config.topic) {
            return Err(Status::not_found("Topic not found"));
        }
        if config.ack_deadline_seconds == 0 {
            config.ack_deadline_seconds = 10;
        }
        if !ACK_DEADLINE_RANGE.contains(&config.ack_deadline_seconds) {
            return Err(invalid(format!(
                "Invalid ack_deadline_seconds: {}; it must be between 10 and 600",
                config.ack_deadline_seconds
            )));
        }
        if let Some(dlp) = config.dead_letter_policy.as_mut() {
            if dlp.max_delivery_attempts == 0 {
                dlp.max_delivery_attempts = DEFAULT_MAX_DELIVERY_ATTEMPTS;
            }
            if !(5..=100).contains(&dlp.max_delivery_attempts) {
                return Err(invalid(format!(
                    "Invalid max_delivery_attempts: {}; it must be between 5 and 100",
                    dlp.max_delivery_attempts
                )));
            }
            if !self.topics.contains_key(&dlp.dead_letter_topic) {
                return Err(Status::not_found(format!(
                    "Dead letter topic not found: {}",
                    dlp.dead_letter_topic
                )));
            }
        }
        if let Some(rp) = &config.retry_policy {
            let (min, max) = (to_duration(&rp.minimum_backoff), to_duration(&rp.maximum_backoff));
            if min.is_some_and(|m| m > Duration::from_secs(600))
                || max.is_some_and(|m| m > Duration::from_secs(600))
            {
                return Err(invalid("retry_policy backoffs must be at most 600s"));
            }
        }
        self.topics.get_mut(&config.topic).expect("checked").subs.push(config.name.clone());
        self.subs.insert(config.name.clone(), Sub { config: config.clone(), messages: BTreeMap::new() });
        Ok(config)
    }

    pub(crate) fn get_subscription(&self, name: &str) -> Result<pb::Subscription, Status> {
        self.subs
            .get(name)
            .map(|s| s.config.clone())
            .ok_or_else(|| Status::not_found("Subscription does not exist"))
    }

    pub(crate) fn delete_subscription(&mut self, name: &str) -> Result<(), Status> {
        let sub = self.subs.remove(name).ok_or_else(|| Status::not_found("Subscription does not exist"))?;
        if let Some(t) = self.topics.get_mut(&sub.config.topic) {
            t.subs.retain(|s| s != name);
        }
        self.acks.retain(|_, (s, _)| s != name);
        for stream in self.streams.values_mut().filter(|s| s.sub == name) {
            stream.kill = Some(Status::not_found("Subscription does not exist"));
        }
        Ok(())
    }

    pub(crate) fn subscription_exists(&self, name: &str) -> bool {
        self.subs.contains_key(name)
    }

    /// Unacknowledged messages on a subscription.
    pub(crate) fn backlog(&self, name: &str) -> usize {
        self.subs.get(name).map_or(0, |s| s.messages.len())
    }

    /// Checks a publish request against the service's limits, then fans it out.
    pub(crate) fn publish(&mut self, req: pb::PublishRequest) -> Result<Vec<String>, Status> {
        if let Some(status) = self.publish_faults.get_mut(&req.topic).and_then(VecDeque::pop_front) {
            return Err(status);
        }
        let size = req.encoded_len();
        if size > MAX_REQUEST_BYTES {
            return Err(invalid(format!(
                "The value for request_size is too large. You passed {size} in the request, but the maximum value is {MAX_REQUEST_BYTES}."
            )));
        }
        if req.messages.is_empty() {
            return Err(invalid("The request contains no messages."));
        }
        if req.messages.len() > MAX_MESSAGES_PER_REQUEST {
            return Err(invalid(format!(
                "The value for message_count is too large. You passed {} in the request, but the maximum value is {MAX_MESSAGES_PER_REQUEST}.",
                req.messages.len()
            )));
        }
        for m in &req.messages {
            if m.data.is_empty() && m.attributes.is_empty() {
                return Err(invalid(
                    "Some messages are empty. Each message must contain non-empty data, or at least one attribute.",
                ));
            }
            if m.attributes.len() > MAX_ATTRIBUTES {
                return Err(invalid(format!(
                    "The value for attribute_count is too large. You passed {} in the request, but the maximum value is {MAX_ATTRIBUTES}.",
                    m.attributes.len()
                )));
            }
            for (k, v) in &m.attributes {
                if k.is_empty() || k.len() > MAX_ATTRIBUTE_KEY_BYTES {
                    return Err(invalid(format!(
                        "The value for attribute_key_size is too large. You passed {} in the request, but the maximum value is {MAX_ATTRIBUTE_KEY_BYTES}.",
                        k.len()
                    )));
                }
                if k.starts_with("goog") {
                    return Err(invalid(format!("Attribute key {k:?} is reserved (goog prefix).")));
                }
                if v.len() > MAX_ATTRIBUTE_VALUE_BYTES {
                    return Err(invalid(format!(
                        "The value for attribute_value_size is too large. You passed {} in the request, but the maximum value is {MAX_ATTRIBUTE_VALUE_BYTES}.",
                        v.len()
                    )));
                }
            }
            if m.ordering_key.len() > MAX_ORDERING_KEY_BYTES {
                return Err(invalid(format!(
                    "The value for ordering_key_size is too large. You passed {} in the request, but the maximum value is {MAX_ORDERING_KEY_BYTES}.",
                    m.ordering_key.len()
                )));
            }
        }
        if !self.topics.contains_key(&req.topic) {
            return Err(Status::not_found("Topic not found"));
        }
        Ok(self.fan_out(&req.topic, req.messages))
    }

    fn fan_out(&mut self, topic: &str, messages: Vec<pb::PubsubMessage>) -> Vec<String> {
        let now = Instant::now();
        let publish_time = timestamp(SystemTime::now());
        let subs = self.topics.get(topic).map(|t| t.subs.clone()).unwrap_or_default();
        let mut ids = Vec::with_capacity(messages.len());
        for mut m in messages {
            self.next_message_id += 1;
            m.message_id = self.next_message_id.to_string();
            m.publish_time = Some(publish_time);
            ids.push(m.message_id.clone());
            for sub in &subs {
                self.next_seq += 1;
                if let Some(s) = self.subs.get_mut(sub) {
                    s.messages.insert(
                        self.next_seq,
                        Msg { message: m.clone(), deliveries: 0, lease: None, available_at: now },
                    );
                }
            }
        }
        ids
    }

    pub(crate) fn open_stream(&mut self, info: StreamInfo) -> u64 {
        self.next_stream += 1;
        self.streams.insert(self.next_stream, info);
        self.next_stream
    }

    /// Leases up to `max` deliverable messages of `sub` to `stream` (None for unary Pull).
    pub(crate) fn deliver(
        &mut self,
        sub_name: &str,
        stream: Option<u64>,
        max: usize,
        now: Instant,
    ) -> Vec<pb::ReceivedMessage> {
        let (deadline, max_messages, max_bytes) = match stream.and_then(|id| self.streams.get(&id)) {
            Some(info) => (info.ack_deadline, info.max_messages, info.max_bytes),
            None => match self.subs.get(sub_name) {
                Some(s) => (Duration::from_secs(s.config.ack_deadline_seconds as u64), 0, 0),
                None => return Vec::new(),
            },
        };
        let Some(sub) = self.subs.get_mut(sub_name) else { return Vec::new() };
        let (mut held_messages, mut held_bytes) = (0i64, 0i64);
        if stream.is_some() {
            for m in sub.messages.values() {
                if m.lease.as_ref().is_some_and(|l| l.stream == stream) {
                    held_messages += 1;
                    held_bytes += m.message.data.len() as i64;
                }
            }
        }
        let ordered = sub.config.enable_message_ordering;
        let dead_lettering = sub.config.dead_letter_policy.is_some();
        let per_key = self.max_outstanding_per_key;
        let mut blocked: HashSet<String> = HashSet::new();
        // Outstanding (leased) messages per ordering key, counted in publish order.
        let mut outstanding: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        for (&seq, m) in sub.messages.iter_mut() {
            if out.len() >= max
                || (max_messages > 0 && held_messages >= max_messages)
                || (max_bytes > 0 && held_bytes >= max_bytes)
            {
                break;
            }
            let keyed = ordered && !m.message.ordering_key.is_empty();
            if keyed && blocked.contains(&m.message.ordering_key) {
                continue;
            }
            if let Some(lease) = &m.lease {
                if keyed {
                    let n = outstanding.entry(m.message.ordering_key.clone()).or_default();
                    *n += 1;
                    // A key is with one receiver at a time: while another one holds messages
                    // of it, nothing more of it goes anywhere else.
                    if (per_key > 0 && *n >= per_key) || lease.stream != stream {
                        blocked.insert(m.message.ordering_key.clone());
                    }
                }
                continue;
            }
            if m.available_at > now {
                // Waiting out a retry backoff: nothing after it on its key may overtake it.
                if keyed {
                    blocked.insert(m.message.ordering_key.clone());
                }
                continue;
            }
            self.next_ack += 1;
            let ack_id = format!("ack-{}-{seq}", self.next_ack);
            m.deliveries += 1;
            m.lease = Some(Lease { ack_id: ack_id.clone(), expires: now + deadline, stream });
            lower_to(&mut self.earliest_expiry, now + deadline);
            self.acks.insert(ack_id.clone(), (sub_name.to_string(), seq));
            held_messages += 1;
            held_bytes += m.message.data.len() as i64;
            out.push(pb::ReceivedMessage {
                ack_id,
                message: Some(m.message.clone()),
                delivery_attempt: if dead_lettering { m.deliveries } else { 0 },
            });
            if keyed {
                let n = outstanding.entry(m.message.ordering_key.clone()).or_default();
                *n += 1;
                if per_key > 0 && *n >= per_key {
                    blocked.insert(m.message.ordering_key.clone());
                }
            }
        }
        *self.delivered.entry(sub_name.to_string()).or_default() += out.len() as u64;
        out
    }

    /// Records how a leased message was settled.
    fn record(&mut self, sub: &str, seq: u64, outcome: Outcome) {
        if let Some(m) = self.subs.get(sub).and_then(|s| s.messages.get(&seq)) {
            self.settlements.push(Settlement {
                subscription: sub.to_string(),
                message_id: m.message.message_id.clone(),
                ordering_key: m.message.ordering_key.clone(),
                attempt: m.deliveries,
                outcome,
            });
        }
    }

    /// The message an ack id currently leases, if the lease is still that one.
    fn leased(&self, sub: &str, ack_id: &str) -> Option<u64> {
        let (s, seq) = self.acks.get(ack_id)?;
        let m = self.subs.get(s)?.messages.get(seq)?;
        (s == sub && m.lease.as_ref().is_some_and(|l| l.ack_id == ack_id)).then_some(*seq)
    }

    pub(crate) fn acknowledge(&mut self, sub: &str, ack_ids: &[String]) -> Result<(), Status> {
        if !self.subs.contains_key(sub) {
            return Err(Status::not_found("Subscription does not exist"));
        }
        for ack_id in ack_ids {
            if let Some(lost) = self.lost_acks.get_mut(sub).filter(|n| **n > 0) {
                // The ack never arrives: the lease runs out (brought forward to now).
                *lost -= 1;
                if let Some(seq) = self.leased(sub, ack_id) {
                    self.acks.remove(ack_id);
                    self.release(sub, seq, Instant::now());
                }
                continue;
            }
            if let Some(seq) = self.leased(sub, ack_id) {
                self.record(sub, seq, Outcome::Ack);
                self.subs.get_mut(sub).expect("checked").messages.remove(&seq);
            }
            self.acks.remove(ack_id);
        }
        Ok(())
    }

    pub(crate) fn modify_ack_deadline(
        &mut self,
        sub: &str,
        ack_ids: &[String],
        seconds: i32,
        now: Instant,
    ) -> Result<(), Status> {
        if !self.subs.contains_key(sub) {
            return Err(Status::not_found("Subscription does not exist"));
        }
        if !(0..=600).contains(&seconds) {
            return Err(invalid(format!(
                "Invalid ack_deadline_seconds: {seconds}; it must be between 0 and 600"
            )));
        }
        for ack_id in ack_ids {
            let Some(seq) = self.leased(sub, ack_id) else { continue };
            if seconds == 0 {
                self.record(sub, seq, Outcome::Nack);
                self.acks.remove(ack_id);
                self.release(sub, seq, now);
            } else if let Some(lease) =
                self.subs.get_mut(sub).and_then(|s| s.messages.get_mut(&seq)).and_then(|m| m.lease.as_mut())
            {
                lease.expires = now + Duration::from_secs(seconds as u64);
                // A deadline may be shortened as well as extended.
                lower_to(&mut self.earliest_expiry, lease.expires);
            }
        }
        Ok(())
    }

    /// Ends the lease on a message (nack or expiry): redeliver later, or dead-letter it.
    fn release(&mut self, sub_name: &str, seq: u64, now: Instant) {
        let Some(sub) = self.subs.get_mut(sub_name) else { return };
        let Some(m) = sub.messages.get_mut(&seq) else { return };
        m.lease = None;
        if let Some(dlp) = &sub.config.dead_letter_policy
            && m.deliveries >= dlp.max_delivery_attempts
            && self.topics.contains_key(&dlp.dead_letter_topic)
        {
            let dead_letter_topic = dlp.dead_letter_topic.clone();
            let m = sub.messages.remove(&seq).expect("present");
            let (project, subscription) = match sub_name.split('/').collect::<Vec<_>>()[..] {
                [_, project, _, subscription] => (project.to_string(), subscription.to_string()),
                _ => (String::new(), sub_name.to_string()),
            };
            let mut attributes = m.message.attributes.clone();
            attributes.insert("CloudPubSubDeadLetterSourceDeliveryCount".into(), m.deliveries.to_string());
            attributes.insert("CloudPubSubDeadLetterSourceSubscription".into(), subscription);
            attributes.insert("CloudPubSubDeadLetterSourceSubscriptionProject".into(), project);
            attributes.insert(
                "CloudPubSubDeadLetterSourceTopicPublishTime".into(),
                m.message.publish_time.as_ref().map(rfc3339).unwrap_or_default(),
            );
            let forwarded = pb::PubsubMessage {
                data: m.message.data,
                attributes,
                ordering_key: m.message.ordering_key,
                ..Default::default()
            };
            self.fan_out(&dead_letter_topic, vec![forwarded]);
            return;
        }
        if let Some(rp) = &sub.config.retry_policy {
            let min = to_duration(&rp.minimum_backoff).unwrap_or(Duration::from_secs(10));
            let max = to_duration(&rp.maximum_backoff).unwrap_or(Duration::from_secs(600)).max(min);
            let factor = 2u32.saturating_pow((m.deliveries - 1).clamp(0, 20) as u32);
            m.available_at = now + min.saturating_mul(factor).min(max);
        }
    }

    /// Expires leases whose deadline passed. Returns whether anything changed.
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        if self.earliest_expiry.is_none_or(|e| e > now) {
            return false;
        }
        let mut expired = Vec::new();
        let mut earliest: Option<Instant> = None;
        for (name, sub) in &self.subs {
            for (&seq, m) in &sub.messages {
                match &m.lease {
                    Some(l) if l.expires <= now => expired.push((name.clone(), seq, l.ack_id.clone())),
                    Some(l) => lower_to(&mut earliest, l.expires),
                    None => {}
                }
            }
        }
        self.earliest_expiry = earliest;
        let changed = !expired.is_empty();
        for (sub, seq, ack_id) in expired {
            self.acks.remove(&ack_id);
            self.release(&sub, seq, now);
        }
        changed
    }
}

/// Lowers `mark` to `at` (a `None` mark is none yet: it becomes `at`).
fn lower_to(mark: &mut Option<Instant>, at: Instant) {
    *mark = Some(mark.map_or(at, |m| m.min(at)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_publish_times() {
        let t = prost_types::Timestamp { seconds: 1_795_651_200, nanos: 123_456_789 };
        assert_eq!(rfc3339(&t), "2026-11-26T00:00:00.123456Z");
        assert_eq!(rfc3339(&prost_types::Timestamp { seconds: 0, nanos: 0 }), "1970-01-01T00:00:00.000000Z");
    }

    /// A state with topic `topic`, subscription `sub` (10 s ack deadline) and one message leased
    /// by a unary pull: the message's ack id and when it was leased.
    fn one_leased(st: &mut State) -> (String, Instant) {
        st.create_topic(pb::Topic { name: "projects/p/topics/topic".into(), ..Default::default() }).unwrap();
        st.create_subscription(pb::Subscription {
            name: "projects/p/subscriptions/sub".into(),
            topic: "projects/p/topics/topic".into(),
            ack_deadline_seconds: 10,
            ..Default::default()
        })
        .unwrap();
        st.publish(pb::PublishRequest {
            topic: "projects/p/topics/topic".into(),
            messages: vec![pb::PubsubMessage { data: b"m".to_vec(), ..Default::default() }],
        })
        .unwrap();
        let now = Instant::now();
        let got = st.deliver("projects/p/subscriptions/sub", None, 10, now);
        assert_eq!(got.len(), 1);
        (got[0].ack_id.clone(), now)
    }

    #[test]
    fn a_lease_expires_at_its_deadline_however_it_was_changed() {
        const SUB: &str = "projects/p/subscriptions/sub";
        let secs = |t0: Instant, n: u64| t0 + Duration::from_secs(n);

        // As leased: nothing before 10 s, released at 10 s.
        let mut st = State::default();
        let (_, t0) = one_leased(&mut st);
        let secs = |n: u64| secs(t0, n);
        assert!(!st.expire(secs(9)));
        assert!(st.expire(secs(10)));
        assert_eq!(st.deliver(SUB, None, 10, secs(10)).len(), 1, "redelivered");

        // Extended to 60 s: the scan at 10 s finds nothing, and the lease still runs out at 60.
        let mut st = State::default();
        let (ack, t0) = one_leased(&mut st);
        let secs = |n: u64| t0 + Duration::from_secs(n);
        st.modify_ack_deadline(SUB, std::slice::from_ref(&ack), 60, t0).unwrap();
        assert!(!st.expire(secs(10)));
        assert!(!st.expire(secs(59)));
        assert!(st.expire(secs(60)));

        // Extended, then shortened: it runs out at the shorter deadline.
        let mut st = State::default();
        let (ack, t0) = one_leased(&mut st);
        let secs = |n: u64| t0 + Duration::from_secs(n);
        st.modify_ack_deadline(SUB, std::slice::from_ref(&ack), 60, t0).unwrap();
        assert!(!st.expire(secs(10)));
        st.modify_ack_deadline(SUB, std::slice::from_ref(&ack), 15, secs(10)).unwrap();
        assert!(!st.expire(secs(24)));
        assert!(st.expire(secs(25)));

        // Acked: nothing to expire.
        let mut st = State::default();
        let (ack, t0) = one_leased(&mut st);
        let secs = |n: u64| t0 + Duration::from_secs(n);
        st.acknowledge(SUB, &[ack]).unwrap();
        assert!(!st.expire(secs(100)));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("projects/p/topics/events.raw", "topics").is_ok());
        assert!(check_name("projects/p/topics/x", "topics").is_err());
        assert!(check_name("projects/p/subscriptions/events.raw", "topics").is_err());
        assert!(check_name("topics/events.raw", "topics").is_err());
    }
}
