//! Strict JSON for FHIR: valid UTF-8, no duplicate keys, bounded size, depth and array
//! lengths. `serde_json` alone lets the last duplicate key win and recurses up to 128 levels;
//! an integrator's mistake must instead be refused with a message that says where.

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;

/// Limits on a request body (configurable per server).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_array: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 5 * 1024 * 1024,
            max_depth: 48,
            max_array: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("the body is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the body is not valid UTF-8 (at byte {offset})")]
    NotUtf8 { offset: usize },
    #[error("the body is empty")]
    Empty,
    #[error("{0}")]
    Invalid(String),
}

impl JsonError {
    /// The FHIRPath-like location, when the error names one.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

const NUMBER_TOKEN: &str = "$serde_json::private::Number";

struct Ctx {
    limits: Limits,
    path: RefCell<Vec<Seg>>,
}

enum Seg {
    Key(String),
    Index(usize),
}

impl Ctx {
    fn path(&self) -> String {
        let mut s = String::from("$");
        for seg in self.path.borrow().iter() {
            match seg {
                Seg::Key(k) => {
                    s.push('.');
                    s.push_str(k);
                }
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }
}

struct Seed<'a> {
    ctx: &'a Ctx,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.depth >= self.ctx.limits.max_depth {
            return Err(A::Error::custom(format!(
                "nesting deeper than {} levels at {}",
                self.ctx.limits.max_depth,
                self.ctx.path()
            )));
        }
        let mut out = Vec::new();
        loop {
            if out.len() >= self.ctx.limits.max_array {
                return Err(A::Error::custom(format!(
                    "array longer than {} items at {}",
                    self.ctx.limits.max_array,
                    self.ctx.path()
                )));
            }
            self.ctx.path.borrow_mut().push(Seg::Index(out.len()));
            let item = seq.next_element_seed(Seed {
                ctx: self.ctx,
                depth: self.depth + 1,
            });
            self.ctx.path.borrow_mut().pop();
            match item? {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.depth >= self.ctx.limits.max_depth {
            return Err(A::Error::custom(format!(
                "nesting deeper than {} levels at {}",
                self.ctx.limits.max_depth,
                self.ctx.path()
            )));
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // With serde_json's arbitrary precision, a number arrives as a one-entry map under
            // this private key, holding its exact text: FHIR decimals keep their precision
            // (1.50 stays 1.50).
            if key == NUMBER_TOKEN && out.is_empty() {
                let text: String = map.next_value()?;
                let n: serde_json::Number =
                    serde_json::from_str(&text).map_err(A::Error::custom)?;
                return Ok(Value::Number(n));
            }
            if out.contains_key(&key) {
                return Err(A::Error::custom(format!(
                    "duplicate key \"{key}\" at {}",
                    self.ctx.path()
                )));
            }
            self.ctx.path.borrow_mut().push(Seg::Key(key.clone()));
            let v = map.next_value_seed(Seed {
                ctx: self.ctx,
                depth: self.depth + 1,
            });
            self.ctx.path.borrow_mut().pop();
            out.insert(key, v?);
        }
        Ok(Value::Object(out))
    }
}

/// Parses a request body under `limits`.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Value, JsonError> {
    if bytes.len() > limits.max_bytes {
        return Err(JsonError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| JsonError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    if text.trim().is_empty() {
        return Err(JsonError::Empty);
    }
    let ctx = Ctx {
        limits: *limits,
        path: RefCell::new(Vec::new()),
    };
    // serde_json stops at 128 levels by itself; our own limit is lower and says where.
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Seed {
        ctx: &ctx,
        depth: 0,
    }
    .deserialize(&mut de)
    .map_err(|e| JsonError::Invalid(format!("invalid JSON: {e}")))?;
    de.end()
        .map_err(|e| JsonError::Invalid(format!("invalid JSON: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &[u8]) -> String {
        parse(
            s,
            &Limits {
                max_bytes: 1000,
                max_depth: 5,
                max_array: 3,
            },
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    }

    #[test]
    fn accepts_ordinary_json() {
        let v = parse(
            br#"{"resourceType":"Patient","name":[{"given":["Kari"]}],"active":true,"n":1.5}"#,
            &Limits::default(),
        );
        assert_eq!(
            v.ok()
                .and_then(|v| v["name"][0]["given"][0].as_str().map(str::to_string)),
            Some("Kari".into())
        );
    }

    #[test]
    fn refuses_duplicate_keys_naming_the_path() {
        assert!(err(br#"{"a":{"b":1,"b":2}}"#).contains("duplicate key \"b\" at $.a"));
    }

    #[test]
    fn refuses_deep_nesting_long_arrays_big_bodies_and_bad_utf8() {
        assert!(err(br#"[[[[[[1]]]]]]"#).contains("nesting deeper than 5"));
        assert!(err(br#"{"a":[1,2,3,4]}"#).contains("array longer than 3 items at $.a"));
        assert!(err(&[b' '; 1001]).contains("limit is 1000"));
        assert!(err(b"{\"a\":\"\xff\"}").contains("not valid UTF-8 (at byte 6)"));
        assert!(err(b"  ").contains("empty"));
        assert!(err(b"{\"a\":1} x").contains("invalid JSON"));
        assert!(err(b"{\"a\":").contains("invalid JSON"));
    }

    #[test]
    fn decimals_keep_their_precision() {
        let v = parse(
            br#"{"value": 1.50, "big": 12345678901234567890123, "i": 7, "neg": -0.0010}"#,
            &Limits::default(),
        )
        .unwrap_or_default();
        assert_eq!(
            serde_json::to_string(&v).unwrap_or_default(),
            r#"{"value":1.50,"big":12345678901234567890123,"i":7,"neg":-0.0010}"#
        );
        assert_eq!(v["i"].as_i64(), Some(7));
        assert_eq!(v["value"].as_f64(), Some(1.5));
    }

    #[test]
    fn the_default_depth_limit_stops_a_stack_bomb() {
        let bomb = "[".repeat(100_000);
        assert!(parse(bomb.as_bytes(), &Limits::default()).is_err());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&raw, &Limits { max_bytes: 1000, max_depth: 8, max_array: 16 });
        }

        #[test]
        fn agrees_with_serde_json_on_valid_input(v in proptest::arbitrary::any::<u8>().prop_map(|n| serde_json::json!({"x": n, "y": [n, {"z": n.to_string()}]}))) {
            let text = serde_json::to_vec(&v).unwrap_or_default();
            prop_assert_eq!(parse(&text, &Limits::default()).ok(), Some(v));
        }
    }
}
