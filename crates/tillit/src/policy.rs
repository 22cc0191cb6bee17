//! `tillit policy check FILE` and `tillit policy test CASES`: a tenant's policies validated
//! against the schema, and table-driven decision tests a tenant can write.
//!
//! A cases file is a JSON array:
//! `{"name": "...", "principal": {"kind": "staff", "roles": ["nurse"]}, "action": "read",
//!   "record": {"category": "mental-health"}, "facts": {"care_relationship": true},
//!   "expect": "permit" | "deny", "policy": "tenant.nurse" (optional)}`.
//! Tenants default to one shared name; `resource_type` to Observation; facts to false.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::Path;
use tillit_authz::{Action, Engine, Facts, Principal, Record};

fn load(engine: &Engine, policies: Option<&Path>) -> Result<tillit_authz::TenantPolicies> {
    let text = match policies {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        None => tillit_authz::DEFAULT_TENANT_POLICIES.to_string(),
    };
    Ok(engine.compile(&text)?)
}

pub fn check(file: &Path) -> Result<()> {
    let engine = Engine::new()?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    engine
        .compile(&text)
        .with_context(|| format!("{} is not a valid policy set", file.display()))?;
    let n = text.matches("@id(").count();
    println!(
        "{}: {n} policies, valid against the Tillit schema",
        file.display()
    );
    Ok(())
}

fn action(s: &str) -> Result<Action> {
    Action::ALL
        .into_iter()
        .find(|a| a.code() == s)
        .with_context(|| format!("unknown action '{s}'"))
}

fn text<'a>(v: &'a Value, key: &str, default: &'a str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or(default)
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

pub fn test(cases_file: &Path, policies: Option<&Path>) -> Result<()> {
    let engine = Engine::new()?;
    let pol = load(&engine, policies)?;
    let cases: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(cases_file)
            .with_context(|| format!("cannot read {}", cases_file.display()))?,
    )
    .with_context(|| format!("{} is not a JSON array of cases", cases_file.display()))?;
    let mut failed = 0;
    for (i, c) in cases.iter().enumerate() {
        let name = text(c, "name", "");
        let name = if name.is_empty() {
            format!("case {i}")
        } else {
            name.to_string()
        };
        let p = c.get("principal").cloned().unwrap_or(Value::Null);
        let r = c.get("record").cloned().unwrap_or(Value::Null);
        let f = c.get("facts").cloned().unwrap_or(Value::Null);
        let principal = Principal {
            id: text(&p, "id", "user").into(),
            tenant: text(&p, "tenant", "tenant").into(),
            kind: text(&p, "kind", "staff").into(),
            roles: p
                .get("roles")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let record = Record {
            tenant: text(&r, "tenant", "tenant").into(),
            resource_type: text(&r, "resource_type", "Observation").into(),
            category: text(&r, "category", "clinical-notes").into(),
            withheld: flag(&r, "withheld"),
            restricted: flag(&r, "restricted"),
        };
        let facts = Facts {
            care_relationship: flag(&f, "care_relationship"),
            own_record: flag(&f, "own_record"),
            relative_categories: f
                .get("relative_categories")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            emergency: flag(&f, "emergency"),
            emergency_overrides_block: flag(&f, "emergency_overrides_block"),
            blocked: flag(&f, "blocked"),
            excluded: flag(&f, "excluded"),
            granted: flag(&f, "granted"),
            support_access: flag(&f, "support_access"),
            no_patient: flag(&f, "no_patient"),
            registration_only: flag(&f, "registration_only"),
        };
        let expect = text(c, "expect", "");
        if expect != "permit" && expect != "deny" {
            bail!("{name}: \"expect\" must be \"permit\" or \"deny\"");
        }
        let d = engine.decide(
            &pol,
            &principal,
            action(text(c, "action", "read"))?,
            &record,
            &facts,
        );
        let mut ok = d.permitted == (expect == "permit");
        if let Some(want) = c.get("policy").and_then(Value::as_str) {
            ok &= d.policies.iter().any(|p| p == want);
        }
        let got = if d.permitted { "permit" } else { "deny" };
        println!(
            "{} {name}: {got} by [{}] — {}",
            if ok { "ok  " } else { "FAIL" },
            d.policies.join(", "),
            d.reason
        );
        if !ok {
            failed += 1;
        }
    }
    println!("{} passed, {} failed", cases.len() - failed, failed);
    if failed > 0 {
        bail!("{failed} policy test case(s) failed");
    }
    Ok(())
}
