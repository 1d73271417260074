//! `SuiteX\Events\Inbox`: pull `events.raw-sub` from a CLI process (a Laravel queue worker)
//! and settle each event explicitly. Registered only under the CLI SAPI. A thin binding over the
//! SDK's `BlockingInbox`.

// Rust parameter names are PHP's (for named arguments), which are camelCase.
#![allow(non_snake_case)]

use crate::convert::{string_map, to_zval};
use crate::emitter::options;
use crate::exceptions::{from_consume, from_sdk};
use crate::settings;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::prelude::*;
use ext_php_rs::types::ZendHashTable;
use sdk::BlockingInbox;
use std::time::Duration;

/// Pulls events for a worker that stores them itself (`php artisan events:work` of the
/// Laravel package, which writes with `EventStore::create()`).
///
/// ```php
/// $inbox = new SuiteX\Events\Inbox();
/// foreach ($inbox->pull(100, 2000) as $delivery) {
///     if ($delivery['error'] !== null) { $inbox->nack($delivery['ack_id']); continue; }
///     $row = EventStore::create(...$delivery['event']...);
///     $inbox->ackStored($delivery['ack_id'], $row->id);   // ack: the row is stored
/// }
/// ```
///
/// Every delivery pulled stays leased to this process (kept alive in the background) until it is
/// settled with `ackStored`, `ack` or `nack`: a worker that cannot reach its database simply
/// keeps the delivery and retries, and no delivery attempt is spent.
#[php_class]
#[php(name = "SuiteX\\Events\\Inbox")]
pub struct Inbox {
    inner: BlockingInbox,
}

impl Inbox {
    fn open(options: Option<&ZendHashTable>) -> PhpResult<BlockingInbox> {
        let config =
            settings::config(self::options(options)?).map_err(|e| from_sdk(&sdk::Error::Config(e)))?;
        // Receive and settle spans of `php artisan events:work`, when OTEL_* asks for them.
        crate::trace_context::export_spans()?;
        Ok(BlockingInbox::new(config))
    }

    fn deliveries(&self, max: Option<i64>, wait_ms: Option<i64>) -> PhpResult<ZBox<ZendHashTable>> {
        let max = max.unwrap_or(100).clamp(1, 1000) as usize;
        let wait = Duration::from_millis(wait_ms.unwrap_or(2000).clamp(0, 600_000) as u64);
        let deliveries = self.inner.pull(max, wait).map_err(|e| from_consume(&e))?;
        let mut out = ZendHashTable::with_capacity(deliveries.len() as u32);
        for d in deliveries {
            let mut entry = ZendHashTable::new();
            let _ = entry.insert("ack_id", d.ack_id.as_str());
            let _ = entry.insert("message_id", d.message_id.as_str());
            let _ = entry.insert("delivery_attempt", i64::from(d.delivery_attempt));
            let _ = entry.insert("ordering_key", d.ordering_key.as_str());
            let _ = entry
                .insert("attributes", string_map(d.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
            let _ = entry.insert("data_sha256", d.data_sha256.as_str());
            let _ = entry.insert("event_id", d.event_id.as_deref());
            match d.event {
                Ok(e) => {
                    event_entry(&mut entry, &e);
                    let _ = entry.insert("error", ());
                }
                Err(why) => {
                    for field in ["event", "event_json", "payload_json", "metadata_json"] {
                        let _ = entry.insert(field, ());
                    }
                    let _ = entry.insert("error", why.to_string().as_str());
                }
            }
            let _ = out.push(entry);
        }
        Ok(out)
    }
}

/// Sets `event` (the envelope as an array), `event_json` (its wire text, payload inline: what a
/// parked key keeps aside) and the exact JSON texts of its payload and metadata, for a store
/// that must keep them as they are (a PHP array cannot tell `{}` from `[]`).
fn event_entry(entry: &mut ZendHashTable, e: &sdk::Event) {
    let _ = entry.insert("event", to_zval(&e.to_wire_value()));
    let _ = entry.insert("event_json", String::from_utf8_lossy(&e.to_wire_json()).as_ref());
    let payload = e.payload().json_text().unwrap_or_default();
    let _ = entry.insert("payload_json", payload.as_ref());
    match e.metadata() {
        Some(m) => {
            let text = serde_json::to_string(m).unwrap_or_default();
            let _ = entry.insert("metadata_json", text.as_str());
        }
        None => {
            let _ = entry.insert("metadata_json", ());
        }
    }
}

#[php_impl]
impl Inbox {
    /// `$options` as for `Emitter` (plus `SUITEX_EVENTS_RAW_SUBSCRIPTION`).
    pub fn __construct(options: Option<&ZendHashTable>) -> PhpResult<Self> {
        Ok(Inbox { inner: Self::open(options)? })
    }

    /// Up to `$max` deliveries (1–1000), waiting up to `$waitMs` milliseconds for the first.
    /// Each is `['ack_id', 'message_id', 'delivery_attempt', 'ordering_key', 'attributes',
    /// 'data_sha256' => SHA-256 (hex) of the message body, 'event_id' => the event's id (also
    /// of poison whose envelope reads) or null, 'event' => the envelope with its full payload
    /// (claim-checks resolved and verified) or null, 'event_json' => its wire text,
    /// 'payload_json' / 'metadata_json' => the payload's and metadata's exact JSON text (null
    /// for poison; metadata_json null when there is none), 'error' => why the message cannot be
    /// used (then nack it) or null]`.
    pub fn pull(&self, max: Option<i64>, waitMs: Option<i64>) -> PhpResult<ZBox<ZendHashTable>> {
        self.deliveries(max, waitMs)
    }

    /// Acknowledges a delivery: it is consumed.
    pub fn ack(&self, ackId: String) -> PhpResult<()> {
        self.inner.ack(vec![ackId]).map_err(|e| from_consume(&e))
    }

    /// Releases a delivery: it is redelivered (and dead-lettered after the subscription's
    /// maximum delivery attempts, `SUITEX_WORKER_MAX_DELIVERY_ATTEMPTS`).
    pub fn nack(&self, ackId: String) -> PhpResult<()> {
        self.inner.nack(vec![ackId]).map_err(|e| from_consume(&e))
    }

    /// Settles a delivery whose event is committed to the event store as row `$storeId` (or was
    /// found stored already as the same event): acks it. The row reaches `events.merged` from
    /// the ledger (the worker's feeder), not from here. On failure the delivery stays leased
    /// (its lease kept alive) and the call can be repeated.
    pub fn ackStored(&self, ackId: String, storeId: i64) -> PhpResult<()> {
        let store_id = u64::try_from(storeId).unwrap_or(0);
        self.inner.ack_stored(&ackId, store_id).map_err(|e| from_consume(&e))
    }

    /// The database span of the caller's INSERT of this delivery's event (`INSERT event_store`,
    /// `db.system = mysql`, linked to the delivery's `receive` span) when spans are exported:
    /// hold it while `EventStore::create()` runs, then `end()` it — with the error's message
    /// when the INSERT failed. A ValidationException names an `ackId` this inbox does not hold
    /// or whose message is poison.
    pub fn appendSpan(&self, ackId: String) -> PhpResult<AppendSpan> {
        let span = self.inner.append_span(&[&ackId]).map_err(|e| from_consume(&e))?;
        Ok(AppendSpan { span: Some(span) })
    }

    /// An event's wire text (as `event_json` of a delivery, or as a parked key keeps it aside)
    /// decoded into a delivery's event fields: `['event', 'event_json', 'payload_json',
    /// 'metadata_json']`. A ValidationException names what is wrong with it.
    pub fn decodeEvent(eventJson: String) -> PhpResult<ZBox<ZendHashTable>> {
        let event =
            sdk::Event::decode(eventJson.as_bytes()).map_err(|e| from_sdk(&sdk::Error::Invalid(e)))?;
        let mut entry = ZendHashTable::new();
        event_entry(&mut entry, &event);
        Ok(entry)
    }

    /// How many deliveries this inbox has leased: pulled, not yet settled.
    pub fn leased(&self) -> i64 {
        self.inner.leased() as i64
    }

    /// The 0.2 name of `leased()` (deprecated).
    pub fn inHand(&self) -> i64 {
        self.inner.leased() as i64
    }
}

/// The database span of one INSERT a PHP worker runs itself (from `Inbox::appendSpan()`). It
/// ends at `end()`, or when the object is destroyed.
#[php_class]
#[php(name = "SuiteX\\Events\\AppendSpan")]
pub struct AppendSpan {
    span: Option<sdk::trace::AppendSpan>,
}

#[php_impl]
impl AppendSpan {
    /// Ends the span; `$error` (the database's message) marks the INSERT as failed. A second
    /// call does nothing.
    pub fn end(&mut self, error: Option<String>) {
        if let Some(span) = self.span.take() {
            if let Some(why) = error {
                span.fail(&why);
            }
            span.end();
        }
    }

    /// Whether the span is recorded (the `OTEL_*` variables ask for spans to be exported).
    pub fn isRecorded(&self) -> bool {
        self.span.as_ref().is_some_and(sdk::trace::AppendSpan::is_recorded)
    }
}

/// The old name of [`Inbox`], kept for callers written against 0.1 (deprecated).
#[php_class]
#[php(name = "SuiteX\\Events\\Consumer")]
pub struct Consumer {
    inbox: Inbox,
}

#[php_impl]
impl Consumer {
    /// See `Inbox::__construct`.
    pub fn __construct(options: Option<&ZendHashTable>) -> PhpResult<Self> {
        Ok(Consumer { inbox: Inbox { inner: Inbox::open(options)? } })
    }

    /// See `Inbox::pull`.
    pub fn pull(&self, max: Option<i64>, waitMs: Option<i64>) -> PhpResult<ZBox<ZendHashTable>> {
        self.inbox.deliveries(max, waitMs)
    }

    /// See `Inbox::ack`.
    pub fn ack(&self, ackId: String) -> PhpResult<()> {
        self.inbox.ack(ackId)
    }

    /// See `Inbox::nack`.
    pub fn nack(&self, ackId: String) -> PhpResult<()> {
        self.inbox.nack(ackId)
    }
}
