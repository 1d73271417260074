//! PHP values ⇄ JSON values.
//!
//! PHP → JSON: `null`, booleans, integers and strings map directly (strings must be UTF-8);
//! floats must be finite; a list (keys 0…n-1, including `[]`) is a JSON array, any other array
//! a JSON object; a `JsonSerializable` object is what its `jsonSerialize()` returns; a
//! `DateTimeInterface` is its instant in UTC, RFC 3339 with microseconds; any other object is
//! a JSON object of its public properties (so `new stdClass` is `{}`). Resources, closures and
//! values that refer back to themselves are refused. Every refusal names the value's path
//! (`payload.items[2].price is NAN; JSON has no NaN or infinity`).
//!
//! JSON → PHP: objects become associative arrays, except the empty object, which becomes
//! `stdClass` so that `[]` and `{}` survive a round trip; integers above PHP's range become
//! strings.

use ext_php_rs::boxed::ZBox;
use ext_php_rs::convert::IntoZval;
use ext_php_rs::flags::DataType;
use ext_php_rs::types::{ZendHashTable, ZendObject, Zval};
use ext_php_rs::zend::ClassEntry;
use serde_json::{Map, Number, Value};

/// Deeper nesting than this is refused (a recursive array loops forever otherwise).
pub const MAX_DEPTH: usize = 256;

/// What is wrong with a value and where (`path` continues with `problem`).
#[derive(Debug)]
pub struct Refused {
    pub path: String,
    pub problem: String,
}

/// Where a value sits (`payload.items[2].price`), rendered only when a value is refused: the
/// happy path allocates no path strings.
#[derive(Clone, Copy)]
pub enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    pub fn render(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Field(Path::Root, name) => name.to_string(),
            Path::Field(parent, name) => format!("{}.{name}", parent.render()),
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

fn refuse(path: &Path<'_>, problem: impl Into<String>) -> Refused {
    let path = path.render();
    // A deeply nested path says enough in its first part.
    let path = if path.len() > 120 {
        let end = (0..=100).rev().find(|&i| path.is_char_boundary(i)).unwrap_or(0);
        format!("{}…", &path[..end])
    } else {
        path
    };
    Refused { path, problem: problem.into() }
}

fn class_named(name: &str) -> Option<&'static ClassEntry> {
    ClassEntry::try_find(name)
}

/// Converts a PHP value to JSON.
pub fn to_json(z: &Zval, path: &Path<'_>) -> Result<Value, Refused> {
    to_json_at(z, path, 0, &mut Vec::new())
}

fn to_json_at(z: &Zval, path: &Path<'_>, depth: usize, objects: &mut Vec<u32>) -> Result<Value, Refused> {
    if depth > MAX_DEPTH {
        return Err(refuse(path, format!("nests deeper than {MAX_DEPTH} levels (is it recursive?)")));
    }
    let z = z.dereference();
    match z.get_type() {
        DataType::Null | DataType::Undef => Ok(Value::Null),
        DataType::False => Ok(Value::Bool(false)),
        DataType::True | DataType::Bool => Ok(Value::Bool(z.bool().unwrap_or(false))),
        DataType::Long => Ok(Value::from(z.long().unwrap_or(0))),
        DataType::Double => {
            let f = z.double().unwrap_or(f64::NAN);
            Number::from_f64(f).map(Value::Number).ok_or_else(|| {
                let what = if f.is_nan() {
                    "NAN"
                } else if f > 0.0 {
                    "INF"
                } else {
                    "-INF"
                };
                refuse(path, format!("is {what}; JSON has no NaN or infinity"))
            })
        }
        DataType::String => {
            let bytes = z.zend_str().map(|s| s.as_bytes()).unwrap_or_default();
            match std::str::from_utf8(bytes) {
                Ok(s) => Ok(Value::String(s.to_string())),
                Err(e) => Err(refuse(
                    path,
                    format!("is not valid UTF-8 (invalid byte at offset {})", e.valid_up_to()),
                )),
            }
        }
        DataType::Array => array_to_json(z.array().expect("an array"), path, depth, objects),
        DataType::Object(_) => {
            let obj = z.object().expect("an object");
            object_to_json(obj, path, depth, objects)
        }
        DataType::Resource => Err(refuse(path, "is a resource; resources cannot be sent as JSON")),
        other => Err(refuse(path, format!("is a {other}; it cannot be sent as JSON"))),
    }
}

fn array_to_json(
    ht: &ZendHashTable,
    path: &Path<'_>,
    depth: usize,
    objects: &mut Vec<u32>,
) -> Result<Value, Refused> {
    let list = ht.is_empty() || ht.has_sequential_keys();
    if list {
        let mut out = Vec::with_capacity(ht.len());
        for (i, (_, value)) in ht.iter().enumerate() {
            out.push(to_json_at(value, &Path::Index(path, i), depth + 1, objects)?);
        }
        return Ok(Value::Array(out));
    }
    let mut out = Map::new();
    for (key, value) in ht.iter() {
        let name = key.to_string();
        let v = to_json_at(value, &Path::Field(path, &name), depth + 1, objects)?;
        out.insert(name, v);
    }
    Ok(Value::Object(out))
}

fn object_to_json(
    obj: &ZendObject,
    path: &Path<'_>,
    depth: usize,
    objects: &mut Vec<u32>,
) -> Result<Value, Refused> {
    let class = obj.get_class_name().unwrap_or_else(|_| "object".into());
    if class == "Closure" {
        return Err(refuse(path, "is a Closure; closures cannot be sent as JSON"));
    }
    let id = obj.get_id();
    if objects.contains(&id) {
        return Err(refuse(
            path,
            format!(
                "refers back to itself (a {class} inside itself); recursive values cannot be sent as JSON"
            ),
        ));
    }
    objects.push(id);
    let result = (|| {
        if class_named("JsonSerializable").is_some_and(|c| obj.instance_of(c)) {
            let v = obj.try_call_method("jsonSerialize", vec![]).map_err(|e| {
                refuse(path, format!("could not be serialized: {class}::jsonSerialize() failed ({e})"))
            })?;
            return to_json_at(&v, path, depth + 1, objects);
        }
        if class_named("DateTimeInterface").is_some_and(|c| obj.instance_of(c)) {
            return date_to_json(obj, path);
        }
        let props =
            obj.get_properties().map_err(|e| refuse(path, format!("has unreadable properties ({e})")))?;
        let mut out = Map::new();
        for (key, value) in props.iter() {
            let name = key.to_string();
            if name.starts_with('\0') {
                continue; // private or protected
            }
            let v = to_json_at(value, &Path::Field(path, &name), depth + 1, objects)?;
            out.insert(name, v);
        }
        Ok(Value::Object(out))
    })();
    objects.pop();
    result
}

/// A `DateTimeInterface` as RFC 3339 UTC with microseconds.
fn date_to_json(obj: &ZendObject, path: &Path<'_>) -> Result<Value, Refused> {
    let stamp = obj
        .try_call_method("format", vec![&"U.u"])
        .ok()
        .and_then(|z| z.string())
        .ok_or_else(|| refuse(path, "is a date that could not be formatted"))?;
    let (secs, micros) = stamp.split_once('.').unwrap_or((&stamp, "0"));
    let (secs, micros): (i64, i64) = (secs.parse().unwrap_or(0), micros.parse().unwrap_or(0));
    let at = sdk::envelope::format_occurred_at(
        time_from_unix(secs, micros)
            .ok_or_else(|| refuse(path, format!("is a date out of range ({stamp})")))?,
    );
    Ok(Value::String(at))
}

fn time_from_unix(secs: i64, micros: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(secs) * 1_000_000_000 + i128::from(micros) * 1000,
    )
    .ok()
}

/// Converts JSON to a PHP value.
pub fn to_zval(v: &Value) -> Zval {
    let mut z = Zval::new();
    match v {
        Value::Null => z.set_null(),
        Value::Bool(b) => z.set_bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                z.set_long(i);
            } else if let Some(u) = n.as_u64() {
                // Beyond PHP_INT_MAX: a decimal string keeps every digit.
                let _ = z.set_string(&u.to_string(), false);
            } else {
                z.set_double(n.as_f64().unwrap_or(0.0));
            }
        }
        Value::String(s) => {
            let _ = z.set_string(s, false);
        }
        Value::Array(items) => {
            let mut ht = ZendHashTable::with_capacity(items.len() as u32);
            for item in items {
                let _ = ht.push(to_zval(item));
            }
            z.set_hashtable(ht);
        }
        Value::Object(map) if map.is_empty() => {
            z = ZendObject::new_stdclass().into_zval(false).unwrap_or_default();
        }
        Value::Object(map) => {
            let mut ht = ZendHashTable::with_capacity(map.len() as u32);
            for (k, item) in map {
                let _ = ht.insert(k.as_str(), to_zval(item));
            }
            z.set_hashtable(ht);
        }
    }
    z
}

/// A PHP associative array from string pairs.
pub fn string_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ZBox<ZendHashTable> {
    let mut ht = ZendHashTable::new();
    for (k, v) in pairs {
        let _ = ht.insert(k, v);
    }
    ht
}
