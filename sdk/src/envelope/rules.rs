//! The rules of the event envelope (docs/architecture.md §2.1): parsing the input and wire
//! forms, and checking every field against its limit. Each broken rule is a [`ValidationError`]
//! naming the field, what is wrong with its value, and the limit.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn assemble(
    event_id: Uuid,
    account_id: u64,
    aggregate_type: String,
    aggregate_id: String,
    event_type: String,
    occurred_at: OffsetDateTime,
    payload: Payload,
    metadata: Option<Map<String, Value>>,
) -> Result<Event, ValidationError> {
    // With the field limits above the key is at most 341 bytes; the check keeps the Pub/Sub
    // limit explicit should those limits ever grow.
    let key_len = ordering_key(account_id, &aggregate_type, &aggregate_id).len();
    if let Payload::Inline(v) = &payload {
        exact::check_payload_value(v)?;
    }
    if key_len > ORDERING_KEY_MAX_BYTES {
        return Err(ValidationError::new(
            "ordering_key",
            format!(
                "(account_id:aggregate_type:aggregate_id) is {key_len} bytes; the limit is {ORDERING_KEY_MAX_BYTES}"
            ),
        ));
    }
    Ok(Event {
        event_id,
        account_id,
        aggregate_type,
        aggregate_id,
        event_type,
        occurred_at,
        payload,
        metadata,
    })
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Form {
    Input,
    Wire,
}

/// Parses an envelope's JSON text, holding it to what the ledger stores exactly ([`exact`]):
/// first the text's numbers and keys (which a parsed value no longer shows), then its syntax.
pub(super) fn parse_json(bytes: &[u8]) -> Result<Value, ValidationError> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        exact::check_event_json(text)?;
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ValidationError::new("event", format!("is not valid JSON: {e}")))
}

pub(super) fn parse(value: Value, form: Form) -> Result<Event, ValidationError> {
    let mut obj = match value {
        Value::Object(m) => m,
        other => {
            return Err(ValidationError::new(
                "event",
                format!("must be a JSON object; got {}", type_name(&other)),
            ));
        }
    };
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ValidationError::new(
            "event",
            format!("has unknown field {unknown:?}; the fields are {}", FIELDS.join(", ")),
        ));
    }
    // schema_version first: a document of another version may follow other rules entirely.
    match obj.remove("schema_version") {
        None if form == Form::Input => {}
        None => return Err(missing("schema_version")),
        Some(v) => match v.as_u64() {
            Some(version) if version == u64::from(SCHEMA_VERSION) => {}
            Some(version) => {
                return Err(ValidationError::new(
                    "schema_version",
                    format!("{version} is not supported; this SDK reads version {SCHEMA_VERSION}"),
                ));
            }
            None => {
                return Err(ValidationError::new(
                    "schema_version",
                    format!("must be the integer {SCHEMA_VERSION}; got {}", type_name(&v)),
                ));
            }
        },
    }
    let event_id = match obj.remove("event_id") {
        None if form == Form::Input => Uuid::now_v7(),
        None => return Err(missing("event_id")),
        Some(v) => parse_event_id(v)?,
    };
    let account_id = parse_account_id(required(&mut obj, "account_id")?)?;
    let aggregate_type =
        check_aggregate_type(string(required(&mut obj, "aggregate_type")?, "aggregate_type")?)?;
    let aggregate_id = check_aggregate_id(string(required(&mut obj, "aggregate_id")?, "aggregate_id")?)?;
    let event_type = check_event_type(string(required(&mut obj, "event_type")?, "event_type")?)?;
    let occurred_at = match obj.remove("occurred_at") {
        None if form == Form::Input => check_occurred_at(OffsetDateTime::now_utc())?,
        None => return Err(missing("occurred_at")),
        Some(v) => parse_occurred_at(v)?,
    };
    let payload = match (obj.remove("payload"), obj.remove("payload_ref"), form) {
        (Some(_), Some(_), _) => {
            return Err(ValidationError::new("payload_ref", "must not be given together with payload"));
        }
        (Some(p), None, _) => Payload::Inline(p),
        (None, Some(_), Form::Input) => {
            return Err(ValidationError::new(
                "payload_ref",
                "is set by the SDK when it offloads a payload; give the payload inline",
            ));
        }
        (None, Some(r), Form::Wire) => Payload::ClaimCheck(parse_payload_ref(r)?),
        (None, None, Form::Input) => {
            return Err(ValidationError::new(
                "payload",
                "is missing; give null for an event without a payload",
            ));
        }
        (None, None, Form::Wire) => {
            return Err(ValidationError::new("payload", "is missing and there is no payload_ref"));
        }
    };
    let metadata = match obj.remove("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(check_metadata(m)?),
        Some(other) => {
            return Err(ValidationError::new(
                "metadata",
                format!("must be a JSON object; got {}", type_name(&other)),
            ));
        }
    };
    assemble(event_id, account_id, aggregate_type, aggregate_id, event_type, occurred_at, payload, metadata)
}

pub(super) fn missing(field: &str) -> ValidationError {
    ValidationError::new(field, "is missing")
}

pub(super) fn required(obj: &mut Map<String, Value>, field: &str) -> Result<Value, ValidationError> {
    obj.remove(field).ok_or_else(|| missing(field))
}

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn string(v: Value, field: &str) -> Result<String, ValidationError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(ValidationError::new(field, format!("must be a string; got {}", type_name(&other)))),
    }
}

pub(super) fn parse_event_id(v: Value) -> Result<Uuid, ValidationError> {
    let s = string(v, "event_id")?;
    // Only the canonical 36-character form: the id is compared as text across PHP, SQL and logs.
    let parsed = (s.len() == 36).then(|| Uuid::try_parse(&s).ok()).flatten();
    match parsed {
        Some(id) => check_event_id(id),
        None => Err(ValidationError::new(
            "event_id",
            format!("{:?} is not a UUID in the 8-4-4-4-12 hex form", truncate_for_message(&s)),
        )),
    }
}

pub(super) fn check_event_id(id: Uuid) -> Result<Uuid, ValidationError> {
    if id.is_nil() || id.is_max() {
        return Err(ValidationError::new("event_id", format!("{id} is reserved; use a UUID v7")));
    }
    Ok(id)
}

pub(super) const ACCOUNT_ID_RANGE: &str = "must be an integer from 1 to 18446744073709551615";

pub(super) fn parse_account_id(v: Value) -> Result<u64, ValidationError> {
    match &v {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(id), _) => check_account_id(id),
            // Integers beyond u64 arrive as floats; say so rather than print 1.8e19.
            (None, Some(f)) if f.fract() == 0.0 && f >= 1.8e19 => {
                Err(ValidationError::new("account_id", format!("{ACCOUNT_ID_RANGE}; got a larger number")))
            }
            (None, _) => Err(ValidationError::new("account_id", format!("{ACCOUNT_ID_RANGE}; got {n}"))),
        },
        other => {
            Err(ValidationError::new("account_id", format!("{ACCOUNT_ID_RANGE}; got {}", type_name(other))))
        }
    }
}

pub(super) fn check_account_id(id: u64) -> Result<u64, ValidationError> {
    if id == 0 {
        return Err(ValidationError::new("account_id", format!("{ACCOUNT_ID_RANGE}; got 0")));
    }
    Ok(id)
}

pub(super) fn check_name(
    field: &str,
    value: String,
    allowed: fn(char) -> bool,
    allowed_text: &str,
) -> Result<String, ValidationError> {
    let chars = value.chars().count();
    if chars == 0 {
        return Err(ValidationError::new(field, "is empty; it must be 1 to 128 characters"));
    }
    if let Some((pos, c)) = value.chars().enumerate().find(|(_, c)| !allowed(*c)) {
        return Err(ValidationError::new(
            field,
            format!("contains {} at character {}; allowed are {allowed_text}", describe_char(c), pos + 1),
        ));
    }
    // Only ASCII passes the character check, so characters and bytes agree here.
    if chars > 128 {
        return Err(ValidationError::new(field, format!("is {chars} characters; the limit is 128")));
    }
    Ok(value)
}

pub(super) fn check_aggregate_type(value: String) -> Result<String, ValidationError> {
    const _: () = assert!(AGGREGATE_TYPE_MAX_CHARS == 128);
    check_name(
        "aggregate_type",
        value,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'),
        "a-z, 0-9, '_', '.', '-'",
    )
}

pub(super) fn check_event_type(value: String) -> Result<String, ValidationError> {
    const _: () = assert!(EVENT_TYPE_MAX_CHARS == 128);
    check_name(
        "event_type",
        value,
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
        "a-z, A-Z, 0-9, '_', '.', '-'",
    )
}

/// Characters that are not printable or that make text display differently from its bytes:
/// C0/C1 controls, line and paragraph separators, bidirectional overrides, the BOM.
pub(super) fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{FEFF}')
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

pub(super) fn check_aggregate_id(value: String) -> Result<String, ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(
            "aggregate_id",
            format!("is empty; it must be 1 to {AGGREGATE_ID_MAX_BYTES} bytes"),
        ));
    }
    if value.len() > AGGREGATE_ID_MAX_BYTES {
        return Err(ValidationError::new(
            "aggregate_id",
            format!("is {} bytes; the limit is {AGGREGATE_ID_MAX_BYTES}", value.len()),
        ));
    }
    if let Some((pos, c)) = value.char_indices().find(|(_, c)| is_unprintable(*c)) {
        return Err(ValidationError::new(
            "aggregate_id",
            format!("contains unprintable character {} at byte {pos}", describe_char(c)),
        ));
    }
    if value.trim() != value {
        return Err(ValidationError::new("aggregate_id", "has leading or trailing whitespace"));
    }
    Ok(value)
}

pub(super) fn describe_char(c: char) -> String {
    if c.is_control() || is_unprintable(c) || c.is_whitespace() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("{c:?} (U+{:04X})", c as u32)
    }
}

pub(super) fn truncate_for_message(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(64).collect::<String>())
    }
}

pub(super) fn check_occurred_at(at: OffsetDateTime) -> Result<OffsetDateTime, ValidationError> {
    let at = at.to_offset(UtcOffset::UTC);
    let at =
        at.replace_nanosecond(at.nanosecond() / 1000 * 1000).expect("a truncated nanosecond is in range");
    if !(1000..=9999).contains(&at.year()) {
        return Err(ValidationError::new(
            "occurred_at",
            format!("is in year {}; it must be between 1000 and 9999", at.year()),
        ));
    }
    Ok(at)
}

pub(super) fn parse_occurred_at(v: Value) -> Result<OffsetDateTime, ValidationError> {
    let s = string(v, "occurred_at")?;
    let bad = |why: &str| {
        ValidationError::new(
            "occurred_at",
            format!(
                "{:?} {why}; expected RFC 3339 UTC like 2026-11-26T15:24:00.123456Z",
                truncate_for_message(&s)
            ),
        )
    };
    let body = if let Some(b) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        b
    } else if let Some(b) = s.strip_suffix("+00:00") {
        b
    } else {
        return Err(bad("is not UTC (it must end in Z or +00:00)"));
    };
    if let Some((_, frac)) = body.split_once('.')
        && frac.len() > 6
    {
        return Err(bad("has more than 6 fractional digits (the precision is microseconds)"));
    }
    let at = OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| bad(&format!("is not a valid timestamp ({e})")))?;
    check_occurred_at(at)
}

pub(super) fn check_metadata(m: Map<String, Value>) -> Result<Map<String, Value>, ValidationError> {
    for key in METADATA_STRING_KEYS {
        match m.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.len() > METADATA_STRING_MAX_BYTES => {
                return Err(ValidationError::new(
                    format!("metadata.{key}"),
                    format!("is {} bytes; the limit is {METADATA_STRING_MAX_BYTES}", s.len()),
                ));
            }
            Some(Value::String(_)) => {}
            Some(other) => {
                return Err(ValidationError::new(
                    format!("metadata.{key}"),
                    format!("must be a string; got {}", type_name(other)),
                ));
            }
        }
    }
    // The trace context (crate::trace): W3C form, so every reader can continue it.
    match (m.get(crate::trace::TRACEPARENT), m.get(crate::trace::TRACESTATE)) {
        (None | Some(Value::Null), None | Some(Value::Null)) => {}
        (Some(Value::String(parent)), state) => {
            let state = match state {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(other) => {
                    return Err(ValidationError::new(
                        "metadata.tracestate",
                        format!("must be a string; got {}", type_name(other)),
                    ));
                }
            };
            crate::trace::TraceContext::parse("metadata.traceparent", parent, state)?;
        }
        (None | Some(Value::Null), Some(_)) => {
            return Err(ValidationError::new(
                "metadata.tracestate",
                "is given without metadata.traceparent; W3C Trace Context carries it only beside one",
            ));
        }
        (Some(other), _) => {
            return Err(ValidationError::new(
                "metadata.traceparent",
                format!("must be a string; got {}", type_name(other)),
            ));
        }
    }
    let size = serde_json::to_vec(&m).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > METADATA_MAX_BYTES {
        return Err(ValidationError::new(
            "metadata",
            format!("is {size} bytes as JSON; the limit is {METADATA_MAX_BYTES}"),
        ));
    }
    Ok(m)
}

pub(super) fn parse_payload_ref(v: Value) -> Result<ClaimCheckRef, ValidationError> {
    let Value::Object(mut m) = v else {
        return Err(ValidationError::new(
            "payload_ref",
            format!("must be a JSON object; got {}", type_name(&v)),
        ));
    };
    const KEYS: [&str; 5] = ["bucket", "object", "generation", "sha256", "size"];
    if let Some(unknown) = m.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(ValidationError::new(
            "payload_ref",
            format!("has unknown field {unknown:?}; the fields are {}", KEYS.join(", ")),
        ));
    }
    let mut take = |k: &str| m.remove(k).ok_or_else(|| missing(&format!("payload_ref.{k}")));
    let bucket = string(take("bucket")?, "payload_ref.bucket")?;
    let object = string(take("object")?, "payload_ref.object")?;
    let generation = take("generation")?;
    let sha256 = string(take("sha256")?, "payload_ref.sha256")?;
    let size = take("size")?;
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if !bucket_ok {
        return Err(ValidationError::new(
            "payload_ref.bucket",
            format!("{bucket:?} is not a bucket name (3 to 63 of a-z, 0-9, '-', '_', '.')"),
        ));
    }
    if object.is_empty() || object.len() > 1024 {
        return Err(ValidationError::new(
            "payload_ref.object",
            format!("is {} bytes; it must be 1 to 1024", object.len()),
        ));
    }
    // 0: the writer found the object already written and could not read its generation (a
    // create-only account). The name and sha256 identify the bytes either way.
    let generation = generation.as_i64().filter(|g| *g >= 0).ok_or_else(|| {
        ValidationError::new(
            "payload_ref.generation",
            format!("must be a non-negative integer (0: not known to the writer); got {generation}"),
        )
    })?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(ValidationError::new("payload_ref.sha256", "must be 64 lowercase hex digits"));
    }
    let size = size.as_u64().ok_or_else(|| {
        ValidationError::new("payload_ref.size", format!("must be a non-negative integer; got {size}"))
    })?;
    Ok(ClaimCheckRef { bucket, object, generation, sha256, size })
}
