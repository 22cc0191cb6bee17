//! Signed JSON documents (deletion receipts): the document's canonical form (RFC 8785, the
//! JSON Canonicalization Scheme) is hashed with SHA-256, and the hash is signed as a C2SP
//! signed note with the deployment's Ed25519 audit key, the key that signs checkpoints:
//!
//! ```text
//! tillit-deletion-receipt/v1
//! <hex SHA-256 of the canonical receipt>
//!
//! — <key name> <base64 of key id and signature>
//! ```
//!
//! Anyone holding the audit key (`GET /audit/key`, or `audit/key.txt` in a tenant export)
//! can check a receipt without Tillit: canonicalize, hash, verify the note.

use anyhow::{Result, anyhow, bail};
use serde_json::Value;
use tillit_audit::{CheckpointSigner, CheckpointVerifier};

/// The first line of a receipt's signed note.
pub const RECEIPT_NOTE: &str = "tillit-deletion-receipt/v1";

/// RFC 8785: object members sorted by their UTF-16 code units, no insignificant
/// whitespace, strings escaped as ECMAScript does. Receipts hold only integers, so any
/// other number is refused rather than guessed at.
pub fn canonical(v: &Value) -> Result<String> {
    let mut out = String::new();
    write_canonical(v, &mut out)?;
    Ok(out)
}

fn write_canonical(v: &Value, out: &mut String) -> Result<()> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                bail!("the document holds a number that is not an integer ({n})");
            }
        }
        Value::String(s) => out.push_str(&serde_json::to_string(s)?),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k)?);
                out.push(':');
                write_canonical(v, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn note_body(receipt: &Value) -> Result<String> {
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical(receipt)?.as_bytes());
    Ok(format!(
        "{RECEIPT_NOTE}\n{}\n",
        hex::encode(digest.as_ref())
    ))
}

/// `{"receipt": ..., "signature": {...}}`, signed by `signer`.
pub fn sign(receipt: Value, signer: &CheckpointSigner) -> Result<Value> {
    let note = signer.sign_note(&note_body(&receipt)?);
    Ok(serde_json::json!({
        "receipt": receipt,
        "signature": {
            "algorithm": "Ed25519",
            "format": "C2SP signed note over the SHA-256 of the receipt's RFC 8785 canonical form",
            "key": signer.verifier_key(),
            "note": note,
        }
    }))
}

/// Checks a signed document against `verifier` (or, with `None`, against the key written in
/// the document itself) and returns the receipt.
pub fn verify<'a>(doc: &'a Value, verifier: Option<&CheckpointVerifier>) -> Result<&'a Value> {
    let receipt = doc
        .get("receipt")
        .filter(|r| r.is_object())
        .ok_or_else(|| anyhow!("this is not a deletion receipt (no \"receipt\" object)"))?;
    let sig = doc
        .get("signature")
        .ok_or_else(|| anyhow!("the receipt is not signed (no \"signature\")"))?;
    let note = sig
        .get("note")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("the receipt's signature has no note"))?;
    let embedded = sig.get("key").and_then(Value::as_str).unwrap_or_default();
    let own;
    let verifier = match verifier {
        Some(v) => {
            if !embedded.is_empty() && embedded.trim() != v.key_text() {
                bail!(
                    "the receipt names signing key {embedded}, not the expected {}",
                    v.key_text()
                );
            }
            v
        }
        None => {
            own = CheckpointVerifier::parse(embedded)
                .map_err(|e| anyhow!("the receipt's key is unusable: {e}"))?;
            &own
        }
    };
    let body = verifier
        .verify_note(note)
        .map_err(|e| anyhow!("the signature does not verify: {e}"))?;
    if body != note_body(receipt)? {
        bail!(
            "the receipt was changed after it was signed: its content does not match the signed hash"
        );
    }
    Ok(receipt)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;
    use zeroize::Zeroizing;

    fn signer(seed: u8) -> CheckpointSigner {
        CheckpointSigner::from_seed("tillit.test/audit", &Zeroizing::new([seed; 32])).unwrap()
    }

    #[test]
    fn canonical_form_sorts_members_and_drops_whitespace() {
        let v: Value = serde_json::from_str(
            r#"{ "b": [1, {"z": null, "a": true}], "a": "x\"y\n\u00e5", "\u00e9": 2, "Z": -3 }"#,
        )
        .unwrap();
        assert_eq!(
            canonical(&v).unwrap(),
            "{\"Z\":-3,\"a\":\"x\\\"y\\n\u{e5}\",\"b\":[1,{\"a\":true,\"z\":null}],\"\u{e9}\":2}"
        );
        assert!(canonical(&json!({"x": 1.5})).is_err());
        // The order members arrive in does not matter.
        let a: Value = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap();
        assert_eq!(canonical(&a).unwrap(), canonical(&b).unwrap());
    }

    #[test]
    fn a_signed_receipt_verifies_and_any_change_is_caught() {
        let s = signer(1);
        let doc = sign(json!({"tenant": {"name": "Sørby"}, "rows": 12}), &s).unwrap();
        let v = CheckpointVerifier::parse(&s.verifier_key()).unwrap();
        assert_eq!(verify(&doc, Some(&v)).unwrap()["rows"], 12);
        assert!(verify(&doc, None).is_ok());
        // Re-formatted (members reordered, whitespace) it still verifies.
        let text = serde_json::to_string_pretty(&doc).unwrap();
        let again: Value = serde_json::from_str(&text).unwrap();
        assert!(verify(&again, Some(&v)).is_ok());
        let mut changed = doc.clone();
        changed["receipt"]["rows"] = json!(11);
        assert!(
            verify(&changed, Some(&v))
                .unwrap_err()
                .to_string()
                .contains("changed")
        );
        // Another key's signature, and a receipt re-signed by someone else, are refused.
        let other = CheckpointVerifier::parse(&signer(2).verifier_key()).unwrap();
        assert!(verify(&doc, Some(&other)).is_err());
        let forged = sign(changed["receipt"].clone(), &signer(2)).unwrap();
        assert!(verify(&forged, Some(&v)).is_err());
        let mut swapped = forged.clone();
        swapped["signature"]["key"] = json!(s.verifier_key());
        assert!(verify(&swapped, Some(&v)).is_err());
    }
}
