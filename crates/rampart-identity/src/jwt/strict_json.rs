//! JSON objects for JOSE headers and claim sets, parsed with duplicate member names
//! refused at every depth (RFC 7515 §4, RFC 7519 §4). serde_json keeps the last of two
//! equal names while other verifiers keep the first, so a token such as
//! `{"sub":"alice","sub":"admin"}` would mean one thing to Rampart and another to an
//! upstream that re-reads it.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON value whose objects had no repeated member names.
struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Unique, E> {
        Ok(Unique(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Unique, E> {
        Ok(Unique(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Unique, E> {
        Ok(Unique(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Unique, E> {
        Ok(Unique(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Unique, E> {
        Ok(Unique(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Unique, E> {
        Ok(Unique(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        let mut out = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Unique(Value::Array(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let Unique(v) = map.next_value()?;
            if out.contains_key(&k) {
                return Err(de::Error::custom("duplicate member name"));
            }
            out.insert(k, v);
        }
        Ok(Unique(Value::Object(out)))
    }
}

/// Parses `bytes` as one JSON object with unique member names at every depth.
pub fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Unique>(bytes).ok()? {
        Unique(Value::Object(m)) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_objects_with_unique_names() {
        let m =
            parse_object(br#"{"a":1,"b":{"c":[1,{"d":null}]},"e":"x","f":1.5,"g":-3}"#).unwrap();
        assert_eq!(m["b"]["c"][1]["d"], Value::Null);
        assert_eq!(m["g"], Value::from(-3));
    }

    #[test]
    fn rejects_duplicate_names_at_any_depth() {
        assert!(parse_object(br#"{"sub":"alice","sub":"admin"}"#).is_none());
        assert!(parse_object(br#"{"a":{"x":1,"x":2}}"#).is_none());
        assert!(parse_object(br#"{"a":[{"x":1,"x":1}]}"#).is_none());
        assert!(parse_object(br#"[1,2]"#).is_none());
        assert!(parse_object(br#"{"a":1} x"#).is_none());
    }
}
