//! Validation of resources against the R4 structure definitions.
//!
//! The rules come from `data/r4-structure.json`, a compact table generated from the official
//! StructureDefinitions by `scripts/gen-fhir-defs.py`: each element's path, cardinality, types
//! and content reference. Checked: unknown elements, required elements, single vs. repeating,
//! empty values, choice types, primitive JSON types and formats, nested types, references,
//! codings, contained resources. Not checked: FHIRPath invariants and terminology bindings.
//! Every problem is reported, each with its FHIRPath-style location.

use crate::outcome::{Issue, IssueType};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

struct ElementDef {
    /// The last path segment (`value[x]` for choices).
    name: String,
    min: u64,
    many: bool,
    types: Vec<(String, Vec<String>)>,
    content_ref: Option<String>,
}

struct Defs {
    /// Children of every element path, for every type: "Observation.component" → defs.
    children: HashMap<String, Vec<ElementDef>>,
    kinds: HashMap<String, String>,
    primitives: Vec<String>,
}

fn defs() -> &'static Defs {
    static DEFS: OnceLock<Defs> = OnceLock::new();
    DEFS.get_or_init(|| {
        let raw: Value =
            serde_json::from_str(include_str!("../data/r4-structure.json")).unwrap_or(Value::Null);
        let mut children: HashMap<String, Vec<ElementDef>> = HashMap::new();
        let mut kinds = HashMap::new();
        for (name, t) in raw
            .get("types")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            kinds.insert(
                name.clone(),
                t.get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
            for e in t
                .get("elements")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let path = e.get("p").and_then(Value::as_str).unwrap_or("");
                let Some((parent, last)) = path.rsplit_once('.') else {
                    continue;
                };
                let types = e
                    .get("t")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| {
                        let code = t.get(0)?.as_str()?.to_string();
                        let targets = t
                            .get(1)
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default();
                        Some((code, targets))
                    })
                    .collect();
                children
                    .entry(parent.to_string())
                    .or_default()
                    .push(ElementDef {
                        name: last.to_string(),
                        min: e.get("min").and_then(Value::as_u64).unwrap_or(0),
                        many: e.get("max").and_then(Value::as_str) != Some("1")
                            && e.get("max").and_then(Value::as_str) != Some("0"),
                        types,
                        content_ref: e.get("ref").and_then(Value::as_str).map(str::to_string),
                    });
            }
        }
        let primitives = raw
            .get("primitives")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Defs {
            children,
            kinds,
            primitives,
        }
    })
}

/// Resource types the table describes (what the validator can check).
pub fn knows(resource_type: &str) -> bool {
    defs()
        .kinds
        .get(resource_type)
        .is_some_and(|k| k == "resource")
}

struct Ctx {
    issues: Vec<Issue>,
}

impl Ctx {
    fn err(&mut self, code: IssueType, path: &str, msg: impl Into<String>) {
        self.issues.push(Issue::error(code, msg).at(path));
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Validates a resource; `Ok` or every problem found.
pub fn validate(resource: &Value) -> Result<(), Vec<Issue>> {
    let mut ctx = Ctx { issues: Vec::new() };
    validate_resource(&mut ctx, resource, None);
    if ctx.issues.is_empty() {
        Ok(())
    } else {
        Err(ctx.issues)
    }
}

fn validate_resource(ctx: &mut Ctx, v: &Value, at: Option<&str>) {
    let Some(obj) = v.as_object() else {
        ctx.err(
            IssueType::Structure,
            at.unwrap_or("$"),
            "a resource must be a JSON object",
        );
        return;
    };
    let Some(rt) = obj.get("resourceType").and_then(Value::as_str) else {
        ctx.err(
            IssueType::Structure,
            at.unwrap_or("$"),
            "the resource has no resourceType",
        );
        return;
    };
    if !knows(rt) {
        ctx.err(
            IssueType::NotSupported,
            at.unwrap_or(rt),
            format!("resource type '{rt}' is not supported"),
        );
        return;
    }
    let path = at.map_or_else(|| rt.to_string(), str::to_string);
    if let Some(id) = obj.get("id") {
        match id.as_str() {
            Some(s) if is_id(s) => {}
            _ => ctx.err(
                IssueType::Value,
                &format!("{path}.id"),
                "id must be 1–64 characters of A–Z, a–z, 0–9, '-' and '.'",
            ),
        }
    }
    validate_object(ctx, rt, obj, &path, true);
}

/// Validates the children of the element `def_path` (a type name or an element path).
fn validate_object(
    ctx: &mut Ctx,
    def_path: &str,
    obj: &Map<String, Value>,
    path: &str,
    is_resource: bool,
) {
    let Some(children) = defs().children.get(def_path) else {
        ctx.err(
            IssueType::Structure,
            path,
            format!("no definition for {def_path}"),
        );
        return;
    };
    if obj.is_empty() {
        ctx.err(
            IssueType::Invalid,
            path,
            "an element must not be an empty object",
        );
        return;
    }
    let mut seen_choice: HashMap<&str, &str> = HashMap::new();
    for (key, value) in obj {
        if is_resource && key == "resourceType" {
            continue;
        }
        if is_resource && key == "id" {
            continue; // checked in validate_resource
        }
        if let Some(base) = key.strip_prefix('_') {
            // The extension sibling of a primitive (`_birthDate`): id and extensions only.
            match find_child(children, base) {
                Some((def, chosen))
                    if is_primitive(
                        chosen
                            .as_deref()
                            .or_else(|| def.types.first().map(|t| t.0.as_str()))
                            .unwrap_or(""),
                    ) =>
                {
                    check_primitive_extension(ctx, value, &format!("{path}.{key}"));
                }
                _ => ctx.err(
                    IssueType::Structure,
                    &format!("{path}.{key}"),
                    format!("unknown element '{key}'"),
                ),
            }
            continue;
        }
        let Some((def, choice_type)) = find_child(children, key) else {
            ctx.err(
                IssueType::Structure,
                &format!("{path}.{key}"),
                format!("unknown element '{key}'"),
            );
            continue;
        };
        if def.name.ends_with("[x]")
            && let Some(previous) = seen_choice.insert(def.name.as_str(), key.as_str())
        {
            ctx.err(
                IssueType::Structure,
                &format!("{path}.{key}"),
                format!(
                    "only one of the {} choices may be given (also {previous})",
                    def.name
                ),
            );
        }
        let here = format!("{path}.{key}");
        let ty = choice_type
            .unwrap_or_else(|| def.types.first().map(|t| t.0.clone()).unwrap_or_default());
        match value {
            Value::Array(items) => {
                if !def.many {
                    ctx.err(
                        IssueType::Structure,
                        &here,
                        format!("'{key}' takes one value, not an array"),
                    );
                    continue;
                }
                if items.is_empty() {
                    ctx.err(IssueType::Invalid, &here, "arrays must not be empty");
                }
                for (i, item) in items.iter().enumerate() {
                    validate_value(ctx, def, &ty, item, &format!("{here}[{i}]"), def_path);
                }
            }
            other => {
                if def.many {
                    ctx.err(
                        IssueType::Structure,
                        &here,
                        format!("'{key}' repeats: it must be an array"),
                    );
                    continue;
                }
                validate_value(ctx, def, &ty, other, &here, def_path);
            }
        }
    }
    for def in children {
        if def.min == 0 {
            continue;
        }
        let present = if let Some(prefix) = def.name.strip_suffix("[x]") {
            obj.keys()
                .any(|k| k.starts_with(prefix) && k.len() > prefix.len())
        } else {
            obj.contains_key(&def.name) || obj.contains_key(&format!("_{}", def.name))
        };
        if !present {
            ctx.err(
                IssueType::Required,
                &format!("{path}.{}", def.name),
                format!("'{}' is required", def.name),
            );
        }
    }
}

/// The child definition for a JSON key, and for a choice the chosen type.
fn find_child<'d>(
    children: &'d [ElementDef],
    key: &str,
) -> Option<(&'d ElementDef, Option<String>)> {
    if let Some(d) = children.iter().find(|d| d.name == key) {
        return Some((d, None));
    }
    children.iter().find_map(|d| {
        let prefix = d.name.strip_suffix("[x]")?;
        let suffix = key.strip_prefix(prefix)?;
        d.types
            .iter()
            .find(|(t, _)| upper_first(t) == suffix)
            .map(|(t, _)| (d, Some(t.clone())))
    })
}

fn is_primitive(t: &str) -> bool {
    defs().primitives.iter().any(|p| p == t)
        || t.chars().next().is_some_and(|c| c.is_ascii_lowercase())
}

fn check_primitive_extension(ctx: &mut Ctx, v: &Value, path: &str) {
    let check_one = |ctx: &mut Ctx, x: &Value, p: &str| match x {
        Value::Null => {}
        Value::Object(o) => {
            for k in o.keys() {
                if k != "id" && k != "extension" {
                    ctx.err(
                        IssueType::Structure,
                        &format!("{p}.{k}"),
                        "a primitive's extension element holds only id and extension",
                    );
                }
            }
            if let Some(exts) = o.get("extension").and_then(Value::as_array) {
                for (i, e) in exts.iter().enumerate() {
                    validate_complex(ctx, "Extension", e, &format!("{p}.extension[{i}]"));
                }
            }
        }
        _ => ctx.err(IssueType::Structure, p, "must be an object"),
    };
    match v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| check_one(ctx, x, &format!("{path}[{i}]"))),
        other => check_one(ctx, other, path),
    }
}

fn validate_value(
    ctx: &mut Ctx,
    def: &ElementDef,
    ty: &str,
    v: &Value,
    path: &str,
    parent_def: &str,
) {
    if v.is_null() {
        ctx.err(IssueType::Invalid, path, "null is not a value in FHIR JSON");
        return;
    }
    if let Some(target) = &def.content_ref {
        match v.as_object() {
            Some(o) => validate_object(ctx, target, o, path, false),
            None => ctx.err(IssueType::Structure, path, "must be an object"),
        }
        return;
    }
    match ty {
        "BackboneElement" | "Element" => {
            let own = format!("{parent_def}.{}", def.name);
            match v.as_object() {
                Some(o) => validate_object(ctx, &own, o, path, false),
                None => ctx.err(IssueType::Structure, path, "must be an object"),
            }
        }
        "Resource" => {
            // Contained (or bundled) resources of types outside the table (a contained
            // Medication, ValueSet, Location...) get a shallow check: an object with a
            // resource type and a valid id. Types we serve are checked in full.
            let rt = v.get("resourceType").and_then(Value::as_str).unwrap_or("");
            if !rt.is_empty() && !knows(rt) && is_resource_type_name(rt) && v.is_object() {
                if let Some(id) = v.get("id")
                    && !id.as_str().is_some_and(is_id)
                {
                    ctx.err(IssueType::Value, &format!("{path}.id"), "not a valid id");
                }
            } else {
                validate_resource(ctx, v, Some(path));
            }
        }
        t if is_primitive(t) => check_primitive(ctx, t, v, path),
        t => validate_complex(ctx, t, v, path),
    }
}

fn validate_complex(ctx: &mut Ctx, ty: &str, v: &Value, path: &str) {
    let Some(o) = v.as_object() else {
        ctx.err(
            IssueType::Structure,
            path,
            format!("a {ty} must be an object"),
        );
        return;
    };
    validate_object(ctx, ty, o, path, false);
    match ty {
        "Reference" => {
            if let Some(r) = o.get("reference").and_then(Value::as_str)
                && !is_reference(r)
            {
                ctx.err(IssueType::Value, &format!("{path}.reference"), format!("'{r}' is not a reference (Type/id, an absolute URL, urn:uuid:…, or #contained)"));
            }
        }
        "Coding" => {
            if let Some(s) = o.get("system").and_then(Value::as_str)
                && !is_absolute_uri(s)
            {
                ctx.err(
                    IssueType::Value,
                    &format!("{path}.system"),
                    format!("a code system must be an absolute URI, not '{s}'"),
                );
            }
        }
        _ => {}
    }
}

fn is_reference(r: &str) -> bool {
    if r.starts_with('#') {
        return r.len() > 1 || r == "#";
    }
    if is_absolute_uri(r) {
        return true;
    }
    // Conditional references (Type?search) are resolved in transactions.
    if let Some((t, q)) = r.split_once('?') {
        return is_resource_type_name(t) && !q.is_empty();
    }
    let parts: Vec<&str> = r.split('/').collect();
    match parts.as_slice() {
        [t, id] => is_resource_type_name(t) && is_id(id),
        [t, id, "_history", v] => is_resource_type_name(t) && is_id(id) && is_id(v),
        _ => false,
    }
}

/// A plausible FHIR resource type name (the full R4 list is not in the table; the shape is).
fn is_resource_type_name(t: &str) -> bool {
    t.len() >= 2
        && t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && t.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(char::is_whitespace)
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    match parts.as_slice() {
        [y] => digits(y, 4),
        [y, m] => digits(y, 4) && digits(m, 2) && (1..=12).contains(&m.parse::<u32>().unwrap_or(0)),
        [y, m, d] => {
            digits(y, 4) && digits(m, 2) && digits(d, 2) && crate::dates::parse_range(s).is_some()
        }
        _ => false,
    }
}

fn is_time(s: &str) -> bool {
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let p: Vec<&str> = hms.split(':').collect();
    matches!(p.as_slice(), [h, m, sec] if digits(h, 2) && digits(m, 2) && digits(sec, 2)
        && h.parse::<u32>().unwrap_or(99) < 24 && m.parse::<u32>().unwrap_or(99) < 60 && sec.parse::<u32>().unwrap_or(99) < 61)
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn is_date_time(s: &str, need_time: bool) -> bool {
    match s.split_once('T') {
        None => !need_time && is_date(s),
        Some((d, t)) => {
            let dparts = d.split('-').count();
            if dparts != 3 || !is_date(d) {
                return false;
            }
            let (clock, zone_ok) = if let Some(c) = t.strip_suffix('Z') {
                (c, true)
            } else if let Some(i) = t.rfind(['+', '-']) {
                let (c, z) = t.split_at(i);
                let z = z.get(1..).unwrap_or("");
                let ok = matches!(z.split_once(':'), Some((h, m)) if digits(h, 2) && digits(m, 2));
                (c, ok)
            } else {
                (t, false)
            };
            // With a time, a zone is required (R4 dateTime and instant).
            zone_ok && is_time(clock) && crate::dates::parse_range(s).is_some()
        }
    }
}

fn is_base64(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    compact.len().is_multiple_of(4)
        && compact
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        && compact
            .iter()
            .skip_while(|b| **b != b'=')
            .all(|b| *b == b'=')
}

fn check_primitive(ctx: &mut Ctx, ty: &str, v: &Value, path: &str) {
    let bad = |ctx: &mut Ctx, what: &str| {
        ctx.err(IssueType::Value, path, format!("not a valid {ty}: {what}"))
    };
    match ty {
        "boolean" => {
            if !v.is_boolean() {
                bad(ctx, "expected true or false");
            }
        }
        "integer" | "positiveInt" | "unsignedInt" => {
            let Some(n) = v
                .as_i64()
                .filter(|_| v.is_number() && !v.to_string().contains(['.', 'e', 'E']))
            else {
                bad(ctx, "expected a whole number");
                return;
            };
            let ok = match ty {
                "positiveInt" => n >= 1,
                "unsignedInt" => n >= 0,
                _ => true,
            } && i32::try_from(n).is_ok();
            if !ok {
                bad(ctx, "out of range");
            }
        }
        "decimal" => {
            if !v.is_number() {
                bad(ctx, "expected a JSON number");
            }
        }
        _ => {
            let Some(s) = v.as_str() else {
                bad(ctx, "expected a JSON string");
                return;
            };
            let ok = match ty {
                "string" | "markdown" => !s.trim().is_empty() || !s.is_empty(),
                "xhtml" => s.trim_start().starts_with("<div"),
                "id" => is_id(s),
                "code" => !s.is_empty() && s.trim() == s && !s.contains("  "),
                "uri" | "url" | "canonical" => !s.is_empty() && !s.chars().any(char::is_whitespace),
                "oid" => {
                    s.starts_with("urn:oid:")
                        && s.get(8..).is_some_and(|r| {
                            !r.is_empty()
                                && r.split('.')
                                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                        })
                }
                "uuid" => s.starts_with("urn:uuid:") && s.len() == 45,
                "base64Binary" => is_base64(s),
                "date" => is_date(s),
                "dateTime" => is_date_time(s, false),
                "instant" => is_date_time(s, true) && s.contains(':'),
                "time" => is_time(s),
                _ => true,
            };
            if s.is_empty() {
                ctx.err(IssueType::Value, path, "strings must not be empty");
            } else if !ok {
                bad(
                    ctx,
                    &format!("'{}'", s.chars().take(60).collect::<String>()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Validates and returns the paths of the problems found.
    fn problems(v: Value) -> Vec<String> {
        match validate(&v) {
            Ok(()) => Vec::new(),
            Err(issues) => issues
                .into_iter()
                .map(|i| i.expression.unwrap_or_default())
                .collect(),
        }
    }

    #[test]
    fn a_valid_observation_passes() {
        let obs = json!({
            "resourceType": "Observation", "id": "o-1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-03-01T08:00:00+01:00",
            "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
            "component": [{"code": {"text": "x"}, "valueString": "y"}],
            "_status": {"extension": [{"url": "http://example.org/x", "valueBoolean": true}]}
        });
        assert_eq!(problems(obs), Vec::<String>::new());
    }

    #[test]
    fn missing_required_status_is_reported_with_its_path() {
        assert_eq!(
            problems(json!({"resourceType": "Observation", "code": {"text": "x"}})),
            ["Observation.status"]
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let p = problems(json!({
            "resourceType": "Patient", "id": "bad id!", "birthDate": "1950-13-01", "gender": 5,
            "name": {"family": "x"}, "telecom": [], "nickname": "y", "active": "yes",
            "deceasedBoolean": false, "deceasedDateTime": "2020-01-01"
        }));
        for want in [
            "Patient.id",
            "Patient.birthDate",
            "Patient.gender",
            "Patient.name",
            "Patient.telecom",
            "Patient.nickname",
            "Patient.active",
            "Patient.deceasedDateTime",
        ] {
            assert!(p.iter().any(|x| x == want), "{want} not in {p:?}");
        }
    }

    #[test]
    fn primitives_are_checked_by_type_and_format() {
        let ok = |t: &str, v: Value| {
            let mut c = Ctx { issues: Vec::new() };
            check_primitive(&mut c, t, &v, "x");
            c.issues.is_empty()
        };
        assert!(
            ok("date", json!("2026"))
                && ok("date", json!("2026-02"))
                && ok("date", json!("2024-02-29"))
        );
        assert!(
            !ok("date", json!("2026-02-30"))
                && !ok("date", json!("26-01-01"))
                && !ok("date", json!(20260101))
        );
        assert!(
            ok("dateTime", json!("2026-03-01T12:00:00Z"))
                && ok("dateTime", json!("2026-03-01T12:00:00.123+01:00"))
                && ok("dateTime", json!("2026"))
        );
        assert!(
            !ok("dateTime", json!("2026-03-01T12:00:00")),
            "a time needs a zone"
        );
        assert!(
            ok("instant", json!("2026-03-01T12:00:00Z")) && !ok("instant", json!("2026-03-01"))
        );
        assert!(ok("time", json!("08:30:00")) && !ok("time", json!("25:00:00")));
        assert!(
            ok("integer", json!(-3))
                && !ok("integer", json!(1.5))
                && !ok("positiveInt", json!(0))
                && ok("unsignedInt", json!(0))
        );
        assert!(ok("decimal", json!(1.5)) && !ok("decimal", json!("1.5")));
        assert!(
            ok("code", json!("final")) && !ok("code", json!(" final")) && !ok("code", json!(""))
        );
        assert!(ok("oid", json!("urn:oid:2.16.578.1")) && !ok("oid", json!("2.16.578")));
        assert!(ok("base64Binary", json!("aGVp")) && !ok("base64Binary", json!("a%b=")));
        assert!(ok("uri", json!("http://x")) && !ok("uri", json!("a b")));
        assert!(ok("boolean", json!(true)) && !ok("boolean", json!("true")));
    }

    #[test]
    fn references_and_codings_are_checked() {
        let p = problems(json!({
            "resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "loinc", "code": "1"}]},
            "subject": {"reference": "patient 1"}, "performer": [{"reference": "Practitioner/a/b"}, {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}, {"reference": "#c1"}]
        }));
        assert_eq!(
            p,
            [
                "Observation.code.coding[0].system",
                "Observation.subject.reference",
                "Observation.performer[0].reference"
            ]
        );
    }

    #[test]
    fn choices_backbones_content_references_and_contained_resources() {
        let q = json!({
            "resourceType": "Questionnaire", "status": "active",
            "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "string", "bogus": 1}]}],
            "contained": [{"resourceType": "ValueSet", "id": "vs"}, {"resourceType": "Patient", "gender": 1}, {"resourceType": "Medication", "id": "bad id"}]
        });
        let p = problems(q);
        assert!(
            p.contains(&"Questionnaire.item[0].item[0].bogus".to_string()),
            "{p:?}"
        );
        assert!(
            p.contains(&"Questionnaire.contained[1].gender".to_string()),
            "{p:?}"
        );
        assert!(
            p.contains(&"Questionnaire.contained[2].id".to_string()),
            "{p:?}"
        );
        assert!(
            !p.iter()
                .any(|x| x.starts_with("Questionnaire.contained[0]")),
            "a contained ValueSet is checked shallowly: {p:?}"
        );
        let two = problems(
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueString": "a", "valueBoolean": true}),
        );
        assert_eq!(two, ["Observation.valueBoolean"]);
        let missing_backbone_field = problems(
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "component": [{"valueString": "a"}]}),
        );
        assert_eq!(missing_backbone_field, ["Observation.component[0].code"]);
    }

    #[test]
    fn empty_things_and_nulls_are_invalid() {
        let p = problems(
            json!({"resourceType": "Patient", "name": [{}], "gender": null, "telecom": [{"value": ""}]}),
        );
        assert!(p.contains(&"Patient.name[0]".to_string()), "{p:?}");
        assert!(p.contains(&"Patient.gender".to_string()), "{p:?}");
        assert!(p.contains(&"Patient.telecom[0].value".to_string()), "{p:?}");
    }

    #[test]
    fn unknown_or_missing_resource_types() {
        assert!(validate(&json!({"resourceType": "Medication"})).is_err());
        assert!(validate(&json!({"name": "x"})).is_err());
        assert!(validate(&json!([1])).is_err());
    }
}
