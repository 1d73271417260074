//! What the ledger can hold exactly (docs/architecture.md §2.1, "Exact payloads").
//!
//! The production event store is MySQL 8, whose `JSON` type keeps an integer exactly only
//! within 64 bits (`-2^63` … `2^64-1`), keeps every other number as a double, keeps the last of
//! duplicate object keys, and refuses documents nested more than 100 deep; MariaDB 10.11, the
//! development database, refuses more than 31. A payload the ledger would alter is therefore
//! refused — at emit (Rust, C, PHP, the CLI) and, from any other producer, by the worker as
//! poison — with a [`ValidationError`] naming the value's path and the limit:
//!
//! * an integer outside `-2^63` … `2^64-1` (send it as a string);
//! * a number with a fraction or an exponent whose value a double does not give back exactly:
//!   the literal must equal, as a decimal, the shortest text that reads back as the same double
//!   (`0.1`, `1.5e300` and `100.0` pass; `12345678901234567890.123456789`, a 40-digit decimal,
//!   `1e400` and `1e-400` do not). Zero keeps its sign as a double: `-0` comes back as `-0.0`;
//! * an object with the same key twice (compared after unescaping, so `"a"` and `"\u0061"`
//!   collide) — anywhere in the event, not only in the payload;
//! * a payload whose arrays and objects nest more than [`PAYLOAD_MAX_NESTING`] deep.
//!
//! The checks read the JSON *text*: numbers are judged by their literal, never after a parse
//! into `f64`, so they hold whatever features of `serde_json` a build unifies (with
//! `arbitrary_precision`, say). Every accepted number keeps its value through
//! `serde_json::Value`, a MySQL `JSON` column and back; its text may be respelled (`1E2` is
//! stored as `100.0`, `1.5e300` as `1.5e+300`), never its value.

use super::ValidationError;
use serde::Deserializer as _;
use serde::de::{Error as _, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// How deep a payload's arrays and objects may nest (`[[1]]` is 2): the least of MySQL 8's
/// limit (100) and MariaDB 10.11's (31), so that a payload stores on either.
pub const PAYLOAD_MAX_NESTING: usize = 31;

/// Checks the JSON text of one envelope: no duplicate keys anywhere; in `payload`, only numbers
/// the ledger holds exactly and at most [`PAYLOAD_MAX_NESTING`] levels. Run it before the
/// parse: text that is not JSON passes here and is left to the parser's own error, while a
/// number beyond a double (`1e400`), which the parser would call a syntax error, is named here.
pub fn check_event_json(text: &str) -> Result<(), ValidationError> {
    check_envelope(text, &mut Path::default())
}

/// [`check_event_json`] for a JSON array of envelopes; a broken rule names `events[i]…`.
pub fn check_events_json(text: &str) -> Result<(), ValidationError> {
    // Not an array of JSON values: the caller's parse says so.
    let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) else { return Ok(()) };
    let mut path = Path::default();
    for (i, item) in items.iter().enumerate() {
        path.within(|p| {
            p.key("events");
            p.index(i);
            check_envelope(item.get(), p)
        })?;
    }
    Ok(())
}

/// Checks a payload given as JSON text (a resolved claim-check): exact numbers, no duplicate
/// keys, at most [`PAYLOAD_MAX_NESTING`] levels. Errors name `payload…`.
pub fn check_payload_json(text: &str) -> Result<(), ValidationError> {
    let mut path = Path::default();
    path.key("payload");
    walk(text, &mut path, Some(0))
}

/// Checks a payload given as a parsed value (Rust and PHP callers): its nesting. Its numbers
/// are held exactly already — a `Value` holds 64-bit integers and finite doubles only.
pub fn check_payload_value(payload: &Value) -> Result<(), ValidationError> {
    fn walk(v: &Value, level: usize, path: &mut Path) -> Result<(), ValidationError> {
        let container = matches!(v, Value::Array(_) | Value::Object(_));
        if container && level + 1 > PAYLOAD_MAX_NESTING {
            return Err(too_deep(path));
        }
        match v {
            Value::Array(a) => a.iter().enumerate().try_for_each(|(i, v)| {
                path.within(|p| {
                    p.index(i);
                    walk(v, level + 1, p)
                })
            }),
            Value::Object(m) => m.iter().try_for_each(|(k, v)| {
                path.within(|p| {
                    p.key(k);
                    walk(v, level + 1, p)
                })
            }),
            _ => Ok(()),
        }
    }
    let mut path = Path::default();
    path.key("payload");
    walk(payload, 0, &mut path)
}

/// A JSON path as the errors name it — `payload.lines[3].amount`, `payload["a b"]` — built up
/// and taken down as the walk descends, so a valid document costs no allocation per value.
#[derive(Default)]
struct Path(String);

impl Path {
    fn key(&mut self, k: &str) {
        let plain = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match (self.0.is_empty(), plain) {
            (true, true) => self.0.push_str(k),
            (false, true) => {
                self.0.push('.');
                self.0.push_str(k);
            }
            (_, false) => {
                self.0.push('[');
                self.0.push_str(&Value::String(k.to_string()).to_string());
                self.0.push(']');
            }
        }
    }

    fn index(&mut self, i: usize) {
        use std::fmt::Write as _;
        let _ = write!(self.0, "[{i}]");
    }

    /// Runs `f` with segments it adds, then takes them off again.
    fn within<T>(&mut self, f: impl FnOnce(&mut Path) -> T) -> T {
        let len = self.0.len();
        let out = f(self);
        self.0.truncate(len);
        out
    }

    fn field(&self) -> &str {
        if self.0.is_empty() { "event" } else { &self.0 }
    }
}

fn too_deep(path: &Path) -> ValidationError {
    ValidationError::new(
        path.field(),
        format!(
            "nests arrays and objects more than {PAYLOAD_MAX_NESTING} levels deep; the limit is {PAYLOAD_MAX_NESTING} (what MariaDB stores; MySQL 8 stops at 100)"
        ),
    )
}

/// The top level of an envelope: duplicate keys everywhere; numbers and nesting in `payload`.
fn check_envelope(text: &str, path: &mut Path) -> Result<(), ValidationError> {
    if !text.trim_start().starts_with('{') {
        // Not an object: the envelope's own rules say so.
        return Ok(());
    }
    for (key, value) in object(text, path)? {
        let nesting = (key == "payload").then_some(0);
        path.within(|p| {
            p.key(&key);
            walk(value.get(), p, nesting)
        })?;
    }
    Ok(())
}

/// Checks one JSON value: duplicate keys always; with `nesting` (the levels above it, in a
/// payload), its numbers and how deep it nests.
fn walk(text: &str, path: &mut Path, nesting: Option<usize>) -> Result<(), ValidationError> {
    let text = text.trim_start();
    let first = text.as_bytes().first().copied();
    let level = nesting.map(|n| n + 1);
    if matches!(first, Some(b'{' | b'[')) && level.is_some_and(|l| l > PAYLOAD_MAX_NESTING) {
        return Err(too_deep(path));
    }
    match first {
        Some(b'{') => {
            for (key, value) in object(text, path)? {
                path.within(|p| {
                    p.key(&key);
                    walk(value.get(), p, level)
                })?;
            }
        }
        Some(b'[') => {
            // Not JSON: left to the caller's parse.
            let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) else { return Ok(()) };
            for (i, item) in items.iter().enumerate() {
                path.within(|p| {
                    p.index(i);
                    walk(item.get(), p, level)
                })?;
            }
        }
        Some(b'-' | b'0'..=b'9') if nesting.is_some() => {
            if let Some(problem) = inexact(text.trim_end()) {
                return Err(ValidationError::new(path.field(), problem));
            }
        }
        _ => {}
    }
    Ok(())
}

/// An object's key: borrowed from the text unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Text)
    }
}

/// Members of an object up to which a repeated key is looked for by scanning them; above it, in
/// a set.
const SCAN_MEMBERS: usize = 32;

type Members<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// An object's members in order, refusing a key that appears twice; none for text that is not
/// a JSON object (left to the caller's parse).
fn object<'a>(text: &'a str, path: &mut Path) -> Result<Members<'a>, ValidationError> {
    /// Collects the members; a repeated key is left in the slot and ends the parse.
    struct Collect<'s>(&'s mut Option<String>);
    impl<'de> Visitor<'de> for Collect<'_> {
        type Value = Members<'de>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members: Members<'de> = Vec::new();
            let mut seen: Option<HashSet<Cow<'de, str>>> = None;
            while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                let value: &RawValue = map.next_value()?;
                let repeated = match &mut seen {
                    Some(set) => !set.insert(key.clone()),
                    None => {
                        let repeated = members.iter().any(|(k, _)| *k == key);
                        if members.len() >= SCAN_MEMBERS {
                            let mut set: HashSet<Cow<'de, str>> =
                                members.iter().map(|(k, _)| k.clone()).collect();
                            set.insert(key.clone());
                            seen = Some(set);
                        }
                        repeated
                    }
                };
                if repeated {
                    *self.0 = Some(key.into_owned());
                    return Err(A::Error::custom("duplicate key"));
                }
                members.push((key, value));
            }
            Ok(members)
        }
    }
    let mut duplicate = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let members = de.deserialize_map(Collect(&mut duplicate));
    match (members, duplicate) {
        (Ok(members), _) => Ok(members),
        (Err(_), Some(key)) => {
            path.key(&key);
            Err(ValidationError::new(
                path.field(),
                "appears twice in one object; the ledger refuses duplicate keys (MySQL keeps only the last, other readers the first)",
            ))
        }
        (Err(_), None) => Ok(Vec::new()),
    }
}

/// Why a JSON number literal would not come back from the ledger as the same number, if so.
fn inexact(literal: &str) -> Option<String> {
    let integer = !literal.contains(['.', 'e', 'E']);
    if integer {
        if literal.parse::<i64>().is_ok() || literal.parse::<u64>().is_ok() {
            return None;
        }
        return Some(format!(
            "is the integer {literal}, outside the range the ledger stores exactly ({} to {}); send it as a string",
            i64::MIN,
            u64::MAX
        ));
    }
    let double: f64 = match literal.parse() {
        Ok(d) => d,
        Err(_) => return Some(format!("is {literal}, which is not a JSON number")),
    };
    if !double.is_finite() {
        return Some(format!(
            "is {literal}, beyond the range of a double (±{:e}), the largest number the ledger stores; send it as a string",
            f64::MAX
        ));
    }
    let shortest = format!("{double:e}");
    if Decimal::of(literal) == Decimal::of(&shortest) {
        return None;
    }
    Some(format!(
        "is {literal}, which the ledger would store as the double {shortest}: a number with a fraction or an exponent is stored exactly only when a double holds it (at most 17 significant digits); send it as a string"
    ))
}

/// A number literal's exact decimal value: sign, significant digits (no leading or trailing
/// zeros), and the power of ten of the last digit. Zero is zero whatever its sign.
#[derive(PartialEq, Eq, Debug)]
enum Decimal {
    Zero,
    /// `None` for an exponent too large to compare (never equal to a double's).
    NonZero {
        negative: bool,
        digits: String,
        exponent: Option<i64>,
    },
}

impl Decimal {
    fn of(literal: &str) -> Decimal {
        let (negative, rest) = match literal.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, literal),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all = format!("{int}{frac}");
        let trimmed = all.trim_start_matches('0');
        if trimmed.is_empty() {
            return Decimal::Zero;
        }
        let digits = trimmed.trim_end_matches('0');
        let trailing = (trimmed.len() - digits.len()) as i64;
        let exponent = exp
            .map_or(Some(0), |e| e.strip_prefix('+').unwrap_or(e).parse::<i64>().ok())
            .and_then(|e| e.checked_sub(frac.len() as i64))
            .and_then(|e| e.checked_add(trailing));
        Decimal::NonZero { negative, digits: digits.to_string(), exponent }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(text: &str) -> Result<(), ValidationError> {
        check_payload_json(text)
    }

    fn refused(text: &str) -> (String, String) {
        let e = payload(text).expect_err(text);
        (e.field().to_string(), e.to_string())
    }

    #[test]
    fn integers_within_64_bits_pass_and_beyond_them_are_refused_naming_the_path() {
        for ok in ["0", "-0", "9223372036854775807", "-9223372036854775808", "18446744073709551615"] {
            payload(&format!("{{\"n\":{ok}}}")).expect(ok);
        }
        for big in ["18446744073709551616", "-9223372036854775809", "1180591620717411303424"] {
            let (field, message) = refused(&format!("{{\"big\":{big}}}"));
            assert_eq!(field, "payload.big");
            assert!(message.contains(big) && message.contains("18446744073709551615"), "{message}");
        }
    }

    #[test]
    fn numbers_a_double_gives_back_pass_and_others_are_refused() {
        for ok in [
            "0.1",
            "1.5",
            "-2.25",
            "1e2",
            "1E+2",
            "100.0",
            "1.5e300",
            "-0.0",
            "0.0",
            "5e-324",
            "1.7976931348623157e308",
            "0.30000000000000004",
        ] {
            payload(&format!("[{ok}]")).expect(ok);
        }
        for bad in [
            "12345678901234567890.123456789",
            "0.1234567890123456789012345678901234567890",
            "1e400",
            "-1e400",
            "1e-400",
            "0.10000000000000000001",
            "9007199254740993.0",
        ] {
            let (field, message) = refused(&format!("{{\"a\":[1,{bad}]}}"));
            assert_eq!(field, "payload.a[1]", "{bad}");
            assert!(message.contains(bad), "{message}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_anywhere_even_escaped() {
        let (field, message) = refused(r#"{"x":{"a":1,"b":{"c":1,"c":2}}}"#);
        assert_eq!(field, "payload.x.b.c");
        assert!(message.contains("appears twice"), "{message}");
        assert_eq!(refused(r#"{"a":1,"\u0061":2}"#).0, "payload.a");
        assert_eq!(refused(r#"[{"k":1},{"a b":1,"a b":2}]"#).0, r#"payload[1]["a b"]"#);
        // In the envelope itself too.
        let e = check_event_json(r#"{"account_id":1,"account_id":2}"#).unwrap_err();
        assert_eq!(e.field(), "account_id");
        let e = check_events_json(r#"[{"payload":{}},{"payload":{"n":1e400}}]"#).unwrap_err();
        assert_eq!(e.field(), "events[1].payload.n");
    }

    #[test]
    fn duplicates_are_found_in_large_objects_too() {
        let members = |n: usize| (0..n).map(|i| format!("\"k{i}\":{i}")).collect::<Vec<_>>().join(",");
        payload(&format!("{{{}}}", members(100))).unwrap();
        // Repeating a key from before and after the scan turns into a set.
        for (n, repeated) in [(40, 3), (40, 35), (SCAN_MEMBERS, 0), (SCAN_MEMBERS + 1, SCAN_MEMBERS)] {
            let (field, _) = refused(&format!("{{{},\"k{repeated}\":0}}", members(n)));
            assert_eq!(field, format!("payload.k{repeated}"), "{n} members, k{repeated} again");
        }
    }

    #[test]
    fn nesting_is_allowed_to_the_limit_and_refused_beyond_it() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        payload(&nested(PAYLOAD_MAX_NESTING)).unwrap();
        let (field, message) = refused(&nested(PAYLOAD_MAX_NESTING + 1));
        assert!(field.starts_with("payload[0][0]"), "{field}");
        assert!(message.contains("31"), "{message}");
        let value: Value = serde_json::from_str(&nested(PAYLOAD_MAX_NESTING)).unwrap();
        check_payload_value(&value).unwrap();
        let value: Value = serde_json::from_str(&nested(PAYLOAD_MAX_NESTING + 1)).unwrap();
        assert_eq!(check_payload_value(&value).unwrap_err().field(), field);
        // Scalars do not count as a level: 31 objects around a string pass.
        let objects =
            format!("{}\"s\"{}", "{\"k\":".repeat(PAYLOAD_MAX_NESTING), "}".repeat(PAYLOAD_MAX_NESTING));
        payload(&objects).unwrap();
    }

    #[test]
    fn outside_the_payload_only_duplicates_are_checked() {
        // The envelope's own fields have rules of their own (account_id's message, say).
        check_event_json(r#"{"account_id":1e400,"payload":null}"#).unwrap();
    }

    #[test]
    fn every_accepted_number_keeps_its_value_through_serde_json() {
        for lit in
            ["0.1", "1e2", "-0.0", "123456789.125", "18446744073709551615", "-9223372036854775808", "2.5e-8"]
        {
            payload(lit).unwrap();
            let v: Value = serde_json::from_str(lit).unwrap();
            let back = serde_json::to_string(&v).unwrap();
            assert_eq!(Decimal::of(lit), Decimal::of(&back), "{lit} came back as {back}");
        }
    }

    #[test]
    fn decimals_compare_by_value() {
        assert_eq!(Decimal::of("1e2"), Decimal::of("100.0"));
        assert_eq!(Decimal::of("0.0"), Decimal::of("-0e5"));
        assert_eq!(Decimal::of("1.50"), Decimal::of("15e-1"));
        assert_ne!(Decimal::of("1.5"), Decimal::of("-1.5"));
        assert_ne!(Decimal::of("1e99999999999999999999"), Decimal::of("1e0"));
    }
}
