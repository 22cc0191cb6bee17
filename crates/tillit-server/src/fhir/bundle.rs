//! Batch and transaction Bundles. A transaction is all or nothing: every entry is validated,
//! authorized, sealed and indexed first, then all versions are written in one store
//! transaction. A batch runs each entry on its own.

use super::service::{Fhir, FhirError, FhirResult, format_instant, new_id};
use super::{create_resource, delete_resource, query, search, update_resource};
use crate::authz::Action;
use serde_json::{Value, json};
use std::collections::HashMap;
use tillit_fhir::outcome::{Issue, IssueType, operation_outcome};
use tillit_fhir::resources;
use tillit_store::ResourceWrite;

struct Entry {
    index: usize,
    full_url: Option<String>,
    resource: Option<Value>,
    method: String,
    url: String,
    if_none_exist: Option<String>,
    if_match: Option<i64>,
}

fn at(i: usize, issue: Issue) -> Issue {
    let path = match &issue.expression {
        Some(e) => format!(
            "Bundle.entry[{i}].resource.{}",
            e.split_once('.').map_or(e.as_str(), |(_, rest)| rest)
        ),
        None => format!("Bundle.entry[{i}]"),
    };
    issue.at(path)
}

fn entry_error(i: usize, e: FhirError) -> FhirError {
    FhirError {
        status: e.status,
        issues: e.issues.into_iter().map(|x| at(i, x)).collect(),
    }
}

fn parse_entries(bundle: &Value) -> FhirResult<(String, Vec<Entry>)> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(FhirError::new(
            400,
            IssueType::Invalid,
            "POST to the base URL takes a Bundle",
        ));
    }
    let kind = bundle
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if kind != "batch" && kind != "transaction" {
        return Err(FhirError::new(
            400,
            IssueType::Invalid,
            format!("Bundle.type must be batch or transaction, not '{kind}'"),
        )
        .map_at("Bundle.type"));
    }
    let mut out = Vec::new();
    for (i, e) in bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let req = e.get("request").ok_or_else(|| {
            FhirError::new(400, IssueType::Required, "entry has no request")
                .map_at(format!("Bundle.entry[{i}].request"))
        })?;
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let method = s(req.get("method")).unwrap_or_default();
        if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "DELETE") {
            return Err(FhirError::new(
                400,
                IssueType::NotSupported,
                format!("request.method '{method}' is not supported"),
            )
            .map_at(format!("Bundle.entry[{i}].request.method")));
        }
        let if_match = match s(req.get("ifMatch")) {
            Some(m) => Some(
                m.trim_start_matches("W/")
                    .trim_matches('"')
                    .parse()
                    .map_err(|_| {
                        FhirError::new(
                            400,
                            IssueType::Invalid,
                            format!("ifMatch '{m}' is not a version"),
                        )
                        .map_at(format!("Bundle.entry[{i}].request.ifMatch"))
                    })?,
            ),
            None => None,
        };
        out.push(Entry {
            index: i,
            full_url: s(e.get("fullUrl")),
            resource: e.get("resource").cloned(),
            method,
            url: s(req.get("url")).unwrap_or_default(),
            if_none_exist: s(req.get("ifNoneExist")),
            if_match,
        });
    }
    Ok((kind, out))
}

trait MapAt {
    fn map_at(self, path: impl Into<String>) -> Self;
}

impl MapAt for FhirError {
    fn map_at(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.issues = self
            .issues
            .into_iter()
            .map(|i| i.at(path.clone()))
            .collect();
        self
    }
}

/// `Type/id` or `Type` from a request url (relative, or absolute under our base).
fn split_url<'u>(url: &'u str, base: &str) -> (&'u str, Option<&'u str>, Option<&'u str>) {
    let url = url
        .strip_prefix(base)
        .map(|u| u.trim_start_matches('/'))
        .unwrap_or(url);
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (url, None),
    };
    let mut parts = path.split('/');
    (
        parts.next().unwrap_or(""),
        parts.next().filter(|s| !s.is_empty()),
        query,
    )
}

/// Rewrites every `reference` string found in `map` (fullUrl → `Type/id`).
fn rewrite_references(v: &mut Value, map: &HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                if k == "reference" {
                    if let Value::String(s) = child
                        && let Some(new) = map.get(s.as_str())
                    {
                        *s = new.clone();
                    }
                } else {
                    rewrite_references(child, map);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rewrite_references(c, map)),
        _ => {}
    }
}

/// Conditional references (`Type?identifier=...`) inside resources: resolved by search to
/// exactly one resource, as the transaction rules require.
async fn conditional_references(
    fhir: &Fhir<'_>,
    v: &Value,
    out: &mut HashMap<String, String>,
) -> FhirResult<()> {
    let mut refs = Vec::new();
    collect_refs(v, &mut refs);
    for r in refs {
        if out.contains_key(&r) {
            continue;
        }
        let Some((rt, q)) = r.split_once('?') else {
            continue;
        };
        if !resources::is_known(rt) {
            continue;
        }
        let pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let req = query::parse(fhir, rt, &pairs, true)?;
        let found = fhir
            .state
            .store
            .search_resources(fhir.tenant(), &req.query)
            .await?;
        match found.as_slice() {
            [one] => {
                out.insert(r.clone(), format!("{rt}/{}", one.id));
            }
            [] => {
                return Err(FhirError::new(
                    400,
                    IssueType::NotFound,
                    format!("conditional reference {r} matches nothing"),
                ));
            }
            _ => {
                return Err(FhirError::new(
                    412,
                    IssueType::Duplicate,
                    format!(
                        "conditional reference {r} matches {} resources",
                        found.len()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, c) in o {
                match (k.as_str(), c) {
                    ("reference", Value::String(s)) if s.contains('?') => out.push(s.clone()),
                    _ => collect_refs(c, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}

pub async fn process(fhir: &Fhir<'_>, bundle: Value, base: &str) -> FhirResult<Value> {
    let (kind, entries) = parse_entries(&bundle)?;
    if kind == "transaction" {
        transaction(fhir, entries, base).await
    } else {
        Ok(batch(fhir, entries, base).await)
    }
}

fn response_entry(
    status: &str,
    rt: &str,
    id: &str,
    version: i64,
    last_updated: time::OffsetDateTime,
    base: &str,
    resource: Option<Value>,
) -> Value {
    let mut e = json!({
        "response": {
            "status": status,
            "location": format!("{base}/{rt}/{id}/_history/{version}"),
            "etag": format!("W/\"{version}\""),
            "lastModified": format_instant(last_updated),
        }
    });
    if let (Some(r), Some(o)) = (resource, e.as_object_mut()) {
        o.insert("fullUrl".into(), json!(format!("{base}/{rt}/{id}")));
        o.insert("resource".into(), r);
    }
    e
}

async fn batch(fhir: &Fhir<'_>, entries: Vec<Entry>, base: &str) -> Value {
    let mut out = Vec::new();
    for e in entries {
        let result = run_one(fhir, &e, base).await;
        out.push(match result {
            Ok(v) => v,
            Err(err) => json!({ "response": { "status": err.status.to_string(), "outcome": err.outcome() } }),
        });
    }
    json!({ "resourceType": "Bundle", "id": new_id(), "type": "batch-response", "entry": out })
}

async fn run_one(fhir: &Fhir<'_>, e: &Entry, base: &str) -> FhirResult<Value> {
    let (rt, id, q) = split_url(&e.url, base);
    match e.method.as_str() {
        "GET" => match id {
            Some(id) => {
                let (v, r) = fhir.read(rt, id).await?;
                Ok(response_entry(
                    "200 OK",
                    rt,
                    id,
                    v.meta.version,
                    v.meta.last_updated,
                    base,
                    Some(r),
                ))
            }
            None => {
                let pairs: Vec<(String, String)> = q
                    .map(|q| {
                        form_urlencoded::parse(q.as_bytes())
                            .map(|(k, v)| (k.into_owned(), v.into_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                let b = search(fhir, rt, &pairs, false, base).await?;
                Ok(json!({ "resource": b, "response": { "status": "200 OK" } }))
            }
        },
        "POST" => {
            let resource = e.resource.clone().ok_or_else(|| {
                FhirError::new(400, IssueType::Required, "POST entry has no resource")
            })?;
            super::check_type_known(rt, true)?;
            let (status, v, r) =
                create_resource(fhir, rt, resource, e.if_none_exist.as_deref()).await?;
            let s = if status.as_u16() == 201 {
                "201 Created"
            } else {
                "200 OK"
            };
            Ok(response_entry(
                s,
                rt,
                &v.meta.id,
                v.meta.version,
                v.meta.last_updated,
                base,
                Some(r),
            ))
        }
        "PUT" => {
            let id = id.ok_or_else(|| {
                FhirError::new(400, IssueType::Invalid, "PUT needs Type/id in request.url")
            })?;
            let resource = e.resource.clone().ok_or_else(|| {
                FhirError::new(400, IssueType::Required, "PUT entry has no resource")
            })?;
            super::check_type_known(rt, true)?;
            let (status, v, r) = update_resource(fhir, rt, id, resource, e.if_match).await?;
            let s = if status.as_u16() == 201 {
                "201 Created"
            } else {
                "200 OK"
            };
            Ok(response_entry(
                s,
                rt,
                id,
                v.meta.version,
                v.meta.last_updated,
                base,
                Some(r),
            ))
        }
        _ => {
            let id = id.ok_or_else(|| {
                FhirError::new(
                    400,
                    IssueType::Invalid,
                    "DELETE needs Type/id in request.url",
                )
            })?;
            super::check_type_known(rt, true)?;
            delete_resource(fhir, rt, id).await?;
            Ok(json!({ "response": { "status": "204 No Content" } }))
        }
    }
}

enum Planned {
    Write {
        rt: String,
        id: String,
        status: &'static str,
        write: Box<ResourceWrite>,
        resource: Option<Value>,
    },
    Existing {
        rt: String,
        id: String,
        version: i64,
        last_updated: time::OffsetDateTime,
        resource: Value,
    },
    Read,
}

async fn transaction(fhir: &Fhir<'_>, entries: Vec<Entry>, base: &str) -> FhirResult<Value> {
    // 1. Ids for new resources, matches for conditional creates, and the reference map.
    let mut refmap: HashMap<String, String> = HashMap::new();
    let mut assigned: HashMap<usize, (String, String)> = HashMap::new();
    let mut existing: HashMap<usize, (String, String)> = HashMap::new();
    for e in &entries {
        let (rt, id, _) = split_url(&e.url, base);
        let rt_owned = e
            .resource
            .as_ref()
            .and_then(|r| r.get("resourceType"))
            .and_then(Value::as_str)
            .unwrap_or(rt)
            .to_string();
        match e.method.as_str() {
            "POST" => {
                super::check_type_known(&rt_owned, true).map_err(|x| entry_error(e.index, x))?;
                if let Some(cond) = &e.if_none_exist {
                    let pairs: Vec<(String, String)> =
                        form_urlencoded::parse(cond.trim_start_matches('?').as_bytes())
                            .map(|(k, v)| (k.into_owned(), v.into_owned()))
                            .collect();
                    let req = query::parse(fhir, &rt_owned, &pairs, true)
                        .map_err(|x| entry_error(e.index, x))?;
                    let found = fhir
                        .state
                        .store
                        .search_resources(fhir.tenant(), &req.query)
                        .await?;
                    match found.as_slice() {
                        [] => {}
                        [one] => {
                            if let Some(f) = &e.full_url {
                                refmap.insert(f.clone(), format!("{rt_owned}/{}", one.id));
                            }
                            existing.insert(e.index, (rt_owned.clone(), one.id.clone()));
                            continue;
                        }
                        _ => {
                            return Err(entry_error(
                                e.index,
                                FhirError::new(
                                    412,
                                    IssueType::Duplicate,
                                    format!("ifNoneExist matches {} resources", found.len()),
                                ),
                            ));
                        }
                    }
                }
                let id = new_id();
                if let Some(f) = &e.full_url {
                    refmap.insert(f.clone(), format!("{rt_owned}/{id}"));
                }
                assigned.insert(e.index, (rt_owned, id));
            }
            "PUT" | "DELETE" => {
                let id = id.ok_or_else(|| {
                    entry_error(
                        e.index,
                        FhirError::new(400, IssueType::Invalid, "request.url must be Type/id"),
                    )
                })?;
                if let Some(f) = &e.full_url {
                    refmap.insert(f.clone(), format!("{rt}/{id}"));
                }
            }
            _ => {}
        }
    }
    for e in &entries {
        if let Some(r) = &e.resource {
            conditional_references(fhir, r, &mut refmap)
                .await
                .map_err(|x| entry_error(e.index, x))?;
        }
    }

    // 2. Plan every write (validate, authorize, seal, index) without writing anything.
    let mut order: Vec<&Entry> = entries.iter().collect();
    let rank = |m: &str| match m {
        "DELETE" => 0,
        "POST" => 1,
        "PUT" => 2,
        _ => 3,
    };
    order.sort_by_key(|e| (rank(&e.method), e.index));
    let mut planned: HashMap<usize, Planned> = HashMap::new();
    let mut writes: Vec<ResourceWrite> = Vec::new();
    let mut touched: Vec<(String, String)> = Vec::new();
    for e in order {
        let i = e.index;
        let (url_rt, url_id, _) = split_url(&e.url, base);
        let plan = match e.method.as_str() {
            "POST" => {
                if let Some((rt, id)) = existing.get(&i) {
                    let (v, r) = fhir.read(rt, id).await.map_err(|x| entry_error(i, x))?;
                    Planned::Existing {
                        rt: rt.clone(),
                        id: id.clone(),
                        version: v.meta.version,
                        last_updated: v.meta.last_updated,
                        resource: r,
                    }
                } else {
                    let (rt, id) = assigned.get(&i).cloned().unwrap_or_default();
                    let mut resource = e.resource.clone().ok_or_else(|| {
                        entry_error(
                            i,
                            FhirError::new(400, IssueType::Required, "POST entry has no resource"),
                        )
                    })?;
                    rewrite_references(&mut resource, &refmap);
                    let (write, value) = fhir
                        .prepare(&rt, &id, 1, None, resource, Action::Create)
                        .await
                        .map_err(|x| entry_error(i, x))?;
                    Planned::Write {
                        rt,
                        id,
                        status: "201 Created",
                        write: Box::new(write),
                        resource: Some(value),
                    }
                }
            }
            "PUT" => {
                let id = url_id.unwrap_or_default().to_string();
                super::check_type_known(url_rt, true).map_err(|x| entry_error(i, x))?;
                let mut resource = e.resource.clone().ok_or_else(|| {
                    entry_error(
                        i,
                        FhirError::new(400, IssueType::Required, "PUT entry has no resource"),
                    )
                })?;
                rewrite_references(&mut resource, &refmap);
                let (created, write, value) =
                    super::plan_update(fhir, url_rt, &id, resource, e.if_match)
                        .await
                        .map_err(|x| entry_error(i, x))?;
                let status = if created { "201 Created" } else { "200 OK" };
                Planned::Write {
                    rt: url_rt.to_string(),
                    id,
                    status,
                    write: Box::new(write),
                    resource: Some(value),
                }
            }
            "DELETE" => {
                let id = url_id.unwrap_or_default().to_string();
                super::check_type_known(url_rt, true).map_err(|x| entry_error(i, x))?;
                let current = fhir
                    .current(url_rt, &id)
                    .await?
                    .ok_or_else(|| entry_error(i, FhirError::not_found(url_rt, &id)))?;
                let write = fhir
                    .prepare_delete(&current)
                    .map_err(|x| entry_error(i, x))?;
                Planned::Write {
                    rt: url_rt.to_string(),
                    id,
                    status: "204 No Content",
                    write: Box::new(write),
                    resource: None,
                }
            }
            _ => Planned::Read,
        };
        if let Planned::Write { rt, id, write, .. } = &plan {
            if touched.contains(&(rt.clone(), id.clone())) {
                return Err(entry_error(
                    i,
                    FhirError::new(
                        400,
                        IssueType::Duplicate,
                        format!("{rt}/{id} appears twice in the transaction"),
                    ),
                ));
            }
            touched.push((rt.clone(), id.clone()));
            writes.push((**write).clone());
        }
        planned.insert(i, plan);
    }

    // 3. All or nothing.
    // The decisions behind this write are durable before it commits.
    crate::audit::flush(fhir.state).await?;
    fhir.state
        .store
        .write_resources(fhir.tenant(), writes)
        .await
        .map_err(|e| {
            let mut fe: FhirError = e.into();
            fe.issues.iter_mut().for_each(|i| {
                i.diagnostics = format!("transaction not applied: {}", i.diagnostics)
            });
            fe
        })?;

    // 4. The response, in the order of the request.
    let mut out = Vec::new();
    for e in &entries {
        let entry = match planned.remove(&e.index) {
            Some(Planned::Write { rt, id, status, write, resource }) => {
                if resource.is_none() {
                    json!({ "response": { "status": status } })
                } else {
                    response_entry(status, &rt, &id, write.meta.version, write.meta.last_updated, base, resource)
                }
            }
            Some(Planned::Existing { rt, id, version, last_updated, resource }) => response_entry("200 OK", &rt, &id, version, last_updated, base, Some(resource)),
            _ => run_one(fhir, e, base).await.unwrap_or_else(|err| json!({ "response": { "status": err.status.to_string(), "outcome": err.outcome() } })),
        };
        out.push(entry);
    }
    let _ = operation_outcome;
    Ok(
        json!({ "resourceType": "Bundle", "id": new_id(), "type": "transaction-response", "entry": out }),
    )
}
