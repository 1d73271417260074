//! Emitting: `emit_event()`, `emit_events()` and the `Emitter` class.

use crate::convert::{Path, string_map, to_json};
use crate::exceptions::{from_refused, from_sdk, invalid};
use crate::settings;
use crate::trace_context;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::exception::PhpException;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ArrayKey, ZendHashTable};
use parking_lot::Mutex;
use sdk::{BlockingEmitter, EmitReceipt, Event};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The per-process emitter of `emit_event()` / `emit_events()`, made on first use.
static DEFAULT: Mutex<Option<Arc<BlockingEmitter>>> = Mutex::new(None);

fn default_emitter() -> PhpResult<Arc<BlockingEmitter>> {
    let mut slot = DEFAULT.lock();
    if let Some(e) = slot.as_ref() {
        return Ok(e.clone());
    }
    let config = settings::config(HashMap::new()).map_err(|e| from_sdk(&sdk::Error::Config(e)))?;
    trace_context::export_spans()?;
    let emitter = Arc::new(BlockingEmitter::new(config));
    *slot = Some(emitter.clone());
    Ok(emitter)
}

/// The envelope of a PHP event array (`payload_json` carries a pre-encoded JSON document).
/// `at` is where the array sits (`events[3]` in a batch); errors name fields below it.
pub fn event_from_php(event: &ZendHashTable, at: &Path<'_>) -> Result<Event, PhpException> {
    let field = |name: &str| Path::Field(at, name).render();
    let mut map = Map::new();
    for (key, value) in event.iter() {
        let name = match &key {
            ArrayKey::Long(i) => {
                return Err(invalid(
                    &field(&i.to_string()),
                    "is a numeric key; an event is an array keyed by field name",
                ));
            }
            other => other.to_string(),
        };
        if name == "payload_json" {
            if map.contains_key("payload") {
                return Err(invalid(&field("payload_json"), "must not be given together with payload"));
            }
            let text = value
                .str()
                .ok_or_else(|| invalid(&field("payload_json"), "must be a string of JSON text"))?;
            // Held to what the ledger stores exactly on the text, which the parse would lose.
            sdk::envelope::exact::check_payload_json(text).map_err(|e| {
                let e = match at {
                    Path::Root => e,
                    _ => e.within(&at.render()),
                };
                from_sdk(&sdk::Error::Invalid(e))
            })?;
            let parsed: Value = serde_json::from_str(text)
                .map_err(|e| invalid(&field("payload_json"), &format!("is not valid JSON: {e}")))?;
            map.insert("payload".into(), parsed);
            continue;
        }
        if name == "payload" && map.contains_key("payload") {
            return Err(invalid(&field("payload"), "must not be given together with payload_json"));
        }
        let v = to_json(value, &Path::Field(at, &name)).map_err(from_refused)?;
        map.insert(name, v);
    }
    Event::from_input(Value::Object(map)).map_err(|e| {
        let e = match at {
            Path::Root => e,
            _ => e.within(&at.render()),
        };
        from_sdk(&sdk::Error::Invalid(e))
    })
}

fn events_from_php(events: &ZendHashTable) -> Result<Vec<Event>, PhpException> {
    let mut out = Vec::with_capacity(events.len());
    for (i, (_, value)) in events.iter().enumerate() {
        let at = Path::Index(&Path::Field(&Path::Root, "events"), i);
        let ht = value.array().ok_or_else(|| invalid(&at.render(), "must be an array (one event)"))?;
        out.push(event_from_php(ht, &at)?);
    }
    Ok(out)
}

fn receipt(r: &EmitReceipt) -> ZBox<ZendHashTable> {
    let id = r.event_id.to_string();
    let mut out = string_map([
        ("event_id", id.as_str()),
        ("message_id", r.message_id.as_str()),
        ("payload_location", r.payload_location.as_str()),
    ]);
    let _ = out.insert("spooled", r.spooled);
    out
}

fn emit_one(
    emitter: &BlockingEmitter,
    event: &ZendHashTable,
    options: Option<&ZendHashTable>,
) -> PhpResult<ZBox<ZendHashTable>> {
    let cx = trace_context::of_call(options)?;
    let event = trace_context::continuing(event_from_php(event, &Path::Root)?, cx.as_ref());
    emitter.emit_event(event).map(|r| receipt(&r)).map_err(|e| from_sdk(&e))
}

/// One receipt per event; a failed one has `message_id` null and `error` set.
fn emit_many(
    emitter: &BlockingEmitter,
    events: &ZendHashTable,
    options: Option<&ZendHashTable>,
) -> PhpResult<ZBox<ZendHashTable>> {
    let cx = trace_context::of_call(options)?;
    let events: Vec<Event> =
        events_from_php(events)?.into_iter().map(|e| trace_context::continuing(e, cx.as_ref())).collect();
    let ids: Vec<String> = events.iter().map(|e| e.event_id().to_string()).collect();
    let results = emitter.emit_events(events).map_err(|e| from_sdk(&e))?;
    let mut out = ZendHashTable::with_capacity(results.len() as u32);
    for (id, result) in ids.iter().zip(results) {
        let mut entry = ZendHashTable::new();
        let _ = entry.insert("event_id", id.as_str());
        match result {
            Ok(r) => {
                let _ = entry.insert("message_id", r.message_id.as_str());
                let _ = entry.insert("payload_location", r.payload_location.as_str());
                let _ = entry.insert("spooled", r.spooled);
                let _ = entry.insert("error", ());
            }
            Err(e) => {
                let _ = entry.insert("message_id", ());
                let _ = entry.insert("payload_location", ());
                let _ = entry.insert("spooled", false);
                let _ = entry.insert("error", e.to_string().as_str());
            }
        }
        let _ = out.push(entry);
    }
    Ok(out)
}

/// `emit_event()`: one event through the per-process emitter.
pub fn emit_with_default(
    event: &ZendHashTable,
    options: Option<&ZendHashTable>,
) -> PhpResult<ZBox<ZendHashTable>> {
    emit_one(&*default_emitter()?, event, options)
}

/// `emit_events()`: several events through the per-process emitter.
pub fn emit_batch_with_default(
    events: &ZendHashTable,
    options: Option<&ZendHashTable>,
) -> PhpResult<ZBox<ZendHashTable>> {
    emit_many(&*default_emitter()?, events, options)
}

/// An emitter with explicit configuration.
#[php_class]
#[php(name = "SuiteX\\Events\\Emitter")]
pub struct Emitter {
    inner: Arc<BlockingEmitter>,
}

/// Option arrays: keys are the environment variables' names, values strings or integers.
pub fn options(config: Option<&ZendHashTable>) -> PhpResult<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (key, value) in config.into_iter().flat_map(|c| c.iter()) {
        let name = key.to_string();
        if !settings::names().any(|n| n == name) {
            return Err(from_sdk(&sdk::Error::Config(sdk::ConfigError::new(
                name,
                format!(
                    "is not a setting; the settings are {}",
                    settings::names().collect::<Vec<_>>().join(", ")
                ),
            ))));
        }
        let text = value.long().map(|l| l.to_string()).or_else(|| value.string()).ok_or_else(|| {
            from_sdk(&sdk::Error::Config(sdk::ConfigError::new(
                name.clone(),
                "must be a string or an integer",
            )))
        })?;
        out.insert(name, text);
    }
    Ok(out)
}

#[php_impl]
impl Emitter {
    /// `$options` keys are the settings' environment variable names (e.g.
    /// `'SUITEX_EVENTS_PUBLISH_DEADLINE' => '5s'`); settings not given come from php.ini, then
    /// the environment. Connects nothing until the first emit.
    pub fn __construct(options: Option<&ZendHashTable>) -> PhpResult<Self> {
        let config =
            settings::config(self::options(options)?).map_err(|e| from_sdk(&sdk::Error::Config(e)))?;
        trace_context::export_spans()?;
        Ok(Emitter { inner: Arc::new(BlockingEmitter::new(config)) })
    }

    /// Emits one event (see `emit_event()`; `$options` the same).
    pub fn emit_event(
        &self,
        event: &ZendHashTable,
        options: Option<&ZendHashTable>,
    ) -> PhpResult<ZBox<ZendHashTable>> {
        emit_one(&self.inner, event, options)
    }

    /// Emits several events (see `emit_events()`; `$options` the same).
    pub fn emit_events(
        &self,
        events: &ZendHashTable,
        options: Option<&ZendHashTable>,
    ) -> PhpResult<ZBox<ZendHashTable>> {
        emit_many(&self.inner, events, options)
    }

    /// Deprecated name of `emitEvent()`.
    pub fn emit(&self, event: &ZendHashTable) -> PhpResult<ZBox<ZendHashTable>> {
        emit_one(&self.inner, event, None)
    }

    /// Deprecated name of `emitEvents()`.
    pub fn emit_batch(&self, events: &ZendHashTable) -> PhpResult<ZBox<ZendHashTable>> {
        emit_many(&self.inner, events, None)
    }
}
