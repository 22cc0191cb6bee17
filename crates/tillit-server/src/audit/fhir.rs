//! The access log over FHIR: `GET /fhir/r4/AuditEvent` answers from the audit log, as
//! AuditEvent resources shaped after IHE Basic Audit Log Patterns (BALP).
//!
//! - A patient searches their own log (`patient` may be left out, or must be themself).
//! - A staff member searches the events they themself caused (`agent` is then themself).
//! - A security officer searches everything, by `patient`, `agent`, `date`, `subtype`
//!   (Tillit's action codes: read, search, create, emergency.opened, login.failure, ...),
//!   `action` (C, R, U, D, E) and `outcome` (0, 4, 8).
//!
//! Searching the log is itself logged (`audit.search`). The log is written by the server
//! only: creating, changing or deleting an AuditEvent is refused.

use super::checkpoints;
use crate::fhir::service::{FhirError, FhirResult, format_instant};
use crate::fhir::{caller, fhir_json};
use crate::session::Client;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use std::collections::HashMap;
use tillit_core::{PersonId, PersonKind, Role, TenantId};
use tillit_fhir::outcome::IssueType;
use tillit_store::{AuditEvent, AuditFilter, AuditOutcome};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const ACTION_SYSTEM: &str = "https://tillit.no/fhir/CodeSystem/audit-action";
const BASIS_SYSTEM: &str = "https://tillit.no/fhir/CodeSystem/access-basis";
const ENTRY_EXT: &str = "https://tillit.no/fhir/StructureDefinition/audit-log-entry";
const ROLE_SYSTEM: &str = "https://tillit.no/fhir/CodeSystem/role";

/// Who may search what.
enum Scope {
    /// Everything in the tenant.
    Officer,
    /// Only events about this patient.
    Patient(String),
    /// Only events this staff member caused.
    Actor(String),
}

/// Sets `key` on a JSON object (a no-op on anything else).
fn put(v: &mut Value, key: &str, value: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_string(), value);
    }
}

fn bad(msg: impl Into<String>) -> FhirError {
    FhirError::new(400, IssueType::Invalid, msg)
}

fn reference_id(v: &str, rt: &str) -> String {
    v.strip_prefix(&format!("{rt}/")).unwrap_or(v).to_string()
}

/// `date` with a FHIR prefix (ge, gt, le, lt, eq) and a date or instant.
fn date_bound(v: &str, f: &mut AuditFilter) -> FhirResult<()> {
    let (prefix, rest) = match v.get(..2) {
        Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, v.get(2..).unwrap_or_default()),
        _ => ("eq", v),
    };
    let (start, end) = match OffsetDateTime::parse(rest, &Rfc3339) {
        Ok(t) => (t, t + time::Duration::seconds(1)),
        Err(_) => {
            let d = time::Date::parse(
                rest,
                &time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map_err(|_| {
                bad(format!(
                    "date {v:?} is not a date (2026-11-30) or an instant"
                ))
            })?;
            let s = d.midnight().assume_utc();
            (s, s + time::Duration::days(1))
        }
    };
    match prefix {
        "ge" => f.from = Some(start),
        "gt" => f.from = Some(end),
        "lt" => f.to = Some(start),
        "le" => f.to = Some(end),
        _ => {
            f.from = Some(start);
            f.to = Some(end);
        }
    }
    Ok(())
}

fn fhir_action_letter(action: &str) -> &'static str {
    match action {
        "create" => "C",
        "read" | "search" | "history" | "audit.search" => "R",
        "update" => "U",
        "delete" => "D",
        _ => "E",
    }
}

fn outcome_code(o: AuditOutcome) -> &'static str {
    match o {
        AuditOutcome::Success => "0",
        AuditOutcome::Denied => "4",
        AuditOutcome::Failure => "8",
    }
}

fn purpose(basis: &str) -> Value {
    // HL7 v3 ActReason where one fits; Tillit's own basis code always.
    let v3 = match basis {
        "care-relationship" | "grant" => Some(("TREAT", "treatment")),
        "emergency" => Some(("ETREAT", "emergency treatment")),
        "own-record" => Some(("PATRQT", "patient requested")),
        "relative" => Some(("FAMRQT", "family requested")),
        "integration" | "system" => Some(("HOPERAT", "healthcare operations")),
        "support" => Some(("HSYSADMIN", "health system administration")),
        _ => None,
    };
    let mut coding = vec![json!({"system": BASIS_SYSTEM, "code": basis})];
    if let Some((code, display)) = v3 {
        coding.push(json!({
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "code": code,
            "display": display
        }));
    }
    json!({"coding": coding, "text": basis})
}

/// Names of people and org units, looked up once per search.
struct Names {
    people: HashMap<String, Option<String>>,
    units: HashMap<String, String>,
}

impl Names {
    async fn load(state: &AppState, tenant: &TenantId) -> FhirResult<Self> {
        let units = state
            .store
            .list_org_units(tenant)
            .await?
            .into_iter()
            .map(|u| (u.id.to_string(), u.name))
            .collect();
        Ok(Self {
            people: HashMap::new(),
            units,
        })
    }

    async fn person(&mut self, state: &AppState, tenant: &TenantId, id: &str) -> Option<String> {
        if let Some(n) = self.people.get(id) {
            return n.clone();
        }
        let name = match PersonId::parse(id) {
            Ok(pid) => state
                .store
                .person(tenant, &pid)
                .await
                .ok()
                .flatten()
                .and_then(|p| p.display_name),
            Err(_) => None,
        };
        self.people.insert(id.to_string(), name.clone());
        name
    }
}

async fn resource(state: &AppState, tenant: &TenantId, names: &mut Names, e: &AuditEvent) -> Value {
    let ev = &e.event;
    let is_rest = matches!(
        ev.action.as_str(),
        "read" | "search" | "history" | "create" | "update" | "delete"
    );
    let (ty, subtype, profile) = if is_rest {
        let interaction = match ev.action.as_str() {
            "search" => "search-type",
            "history" => "history-instance",
            other => other,
        };
        let profile = match ev.action.as_str() {
            "read" | "history" => "IHE.BasicAudit.PatientRead",
            "search" => "IHE.BasicAudit.PatientQuery",
            "create" => "IHE.BasicAudit.PatientCreate",
            "update" => "IHE.BasicAudit.PatientUpdate",
            _ => "IHE.BasicAudit.PatientDelete",
        };
        (
            json!({"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"}),
            json!([
                {"system": "http://hl7.org/fhir/restful-interaction", "code": interaction},
                {"system": ACTION_SYSTEM, "code": ev.action}
            ]),
            Some(format!(
                "https://profiles.ihe.net/ITI/BALP/StructureDefinition/{profile}"
            )),
        )
    } else {
        let (code, display) = if ev.action.starts_with("login") || ev.action == "logout" {
            ("110114", "User Authentication")
        } else if ev.action == "emergency.opened" {
            ("110113", "Security Alert")
        } else {
            ("110100", "Application Activity")
        };
        (
            json!({"system": "http://dicom.nema.org/resources/ontology/DCM", "code": code, "display": display}),
            json!([{"system": ACTION_SYSTEM, "code": ev.action}]),
            None,
        )
    };
    let mut agents = Vec::new();
    if let Some(person) = &ev.actor.person {
        let name = names.person(state, tenant, person).await;
        let kind = ev.actor.kind.as_deref().unwrap_or("staff");
        let rt = match kind {
            "patient" => "Patient",
            "relative" => "RelatedPerson",
            _ => "Practitioner",
        };
        let mut who = json!({"reference": format!("{rt}/{person}")});
        if let Some(n) = name {
            put(&mut who, "display", json!(n));
        }
        let mut roles: Vec<Value> = ev
            .actor
            .roles
            .iter()
            .map(|r| json!({"coding": [{"system": ROLE_SYSTEM, "code": r}], "text": r}))
            .collect();
        if roles.is_empty() {
            roles.push(json!({"coding": [{"system": ROLE_SYSTEM, "code": kind}], "text": kind}));
        }
        let mut agent = json!({
            "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153", "display": "Source Role ID"}]},
            "who": who,
            "requestor": true,
            "role": roles,
        });
        let units: Vec<Value> = ev
            .actor
            .org_units
            .iter()
            .map(|u| match names.units.get(u) {
                Some(n) => json!({"reference": format!("Organization/{u}"), "display": n}),
                None => json!({"reference": format!("Organization/{u}")}),
            })
            .collect();
        if let Some(first) = units.first() {
            put(&mut agent, "location", first.clone());
        }
        if !ev.policies.is_empty() {
            put(&mut agent, "policy", json!(ev.policies));
        }
        if let Some(ip) = &ev.client.ip {
            put(&mut agent, "network", json!({"address": ip, "type": "2"}));
        }
        if ev.actor.support {
            put(&mut agent, "purposeOfUse", json!([purpose("support")]));
        }
        agents.push(agent);
        if let Some(boss) = &ev.actor.on_behalf_of {
            let mut who = json!({"reference": format!("Practitioner/{boss}")});
            if let Some(n) = names.person(state, tenant, boss).await {
                put(&mut who, "display", json!(n));
            }
            agents.push(json!({
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "RESP", "display": "responsible party"}]},
                "who": who,
                "requestor": false
            }));
        }
    } else {
        agents.push(json!({
            "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110150", "display": "Application"}]},
            "who": {"display": "Tillit administration (CLI)"},
            "requestor": true
        }));
    }
    let mut entities = Vec::new();
    if let Some(p) = &ev.patient {
        let mut what = json!({"reference": format!("Patient/{p}")});
        if let Some(n) = names.person(state, tenant, p).await {
            put(&mut what, "display", json!(n));
        }
        entities.push(json!({
            "what": what,
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}
        }));
    }
    if let Some(rt) = &ev.resource_type {
        let labels: Vec<Value> = ev
            .categories
            .iter()
            .map(|c| json!({"system": tillit_fhir::category::SYSTEM, "code": c}))
            .collect();
        let mut entity = json!({
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4", "display": "Domain Resource"},
            "securityLabel": labels,
        });
        match &ev.resource_id {
            Some(id) => put(
                &mut entity,
                "what",
                json!({"reference": format!("{rt}/{id}")}),
            ),
            None => {
                put(&mut entity, "name", json!(rt));
                put(
                    &mut entity,
                    "detail",
                    json!([{"type": "records", "valueString": ev.count.to_string()}]),
                );
            }
        }
        entities.push(entity);
    }
    let payload_hash = tillit_audit::verify::payload_hash(&e.payload());
    let leaf = tillit_audit::verify::entry_leaf(tenant.as_str(), e.seq, &payload_hash);
    let mut r = json!({
        "resourceType": "AuditEvent",
        "id": e.seq.to_string(),
        "extension": [{
            "url": ENTRY_EXT,
            "extension": [
                {"url": "sequence", "valueString": e.seq.to_string()},
                {"url": "leafHash", "valueBase64Binary": B64.encode(leaf)},
                {"url": "log", "valueString": checkpoints::origin(&state.config.audit.log_name, tenant)}
            ]
        }],
        "type": ty,
        "subtype": subtype,
        "action": fhir_action_letter(&ev.action),
        "recorded": format_instant(ev.at),
        "outcome": outcome_code(ev.outcome),
        "agent": agents,
        "source": {
            "observer": {"display": "Tillit"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}]
        },
    });
    if let Some(p) = profile {
        put(&mut r, "meta", json!({"profile": [p]}));
    }
    let detail = match (&ev.detail, &ev.reason) {
        (Some(d), Some(reason)) => Some(format!("{d}; reason: {reason}")),
        (Some(d), None) => Some(d.clone()),
        (None, Some(reason)) => Some(format!("reason: {reason}")),
        (None, None) => None,
    };
    if let Some(d) = detail {
        put(&mut r, "outcomeDesc", json!(d));
    }
    if let Some(b) = &ev.basis {
        let mut p = purpose(b);
        if let Some(reason) = &ev.reason {
            put(&mut p, "text", json!(format!("{b}: {reason}")));
        }
        put(&mut r, "purposeOfEvent", json!([p]));
    }
    if !entities.is_empty() {
        put(&mut r, "entity", json!(entities));
    }
    r
}

/// Which part of the log `subject` may search.
fn scope_of(subject: &crate::authz::Subject) -> FhirResult<Scope> {
    let p = &subject.principal;
    let me = p.user.person.to_string();
    if p.roles.contains(&Role::SecurityOfficer) && subject.support.is_none() {
        Ok(Scope::Officer)
    } else if p.user.kind == PersonKind::Patient {
        Ok(Scope::Patient(me))
    } else if p.user.kind == PersonKind::Staff
        && !p.roles.contains(&Role::Integration)
        && subject.support.is_none()
    {
        Ok(Scope::Actor(me))
    } else {
        Err(FhirError::new(
            403,
            IssueType::Forbidden,
            "the access log is open to the patient it concerns, to staff for their own accesses, and to security officers",
        ))
    }
}

/// The events of the access log that `subject` may see and `f` asks for (a patient's own
/// events, a staff member's own accesses, or anything for a security officer), optionally
/// only those of one FHIR action letter (C, R, U, D, E). The search is itself logged
/// (`audit.search`). The AuditEvent API and the web app's log pages both search through this.
pub async fn search_events(
    state: &AppState,
    subject: &crate::authz::Subject,
    client: &Client,
    mut f: AuditFilter,
    letter: Option<&str>,
) -> FhirResult<Vec<AuditEvent>> {
    let scope = scope_of(subject)?;
    let p = &subject.principal;
    let me = p.user.person.to_string();
    match &scope {
        Scope::Officer => {}
        Scope::Patient(me) => {
            if f.patient.as_ref().is_some_and(|x| x != me) {
                return Err(FhirError::new(
                    403,
                    IssueType::Forbidden,
                    "you can see the access log of your own record only",
                ));
            }
            f.patient = Some(me.clone());
        }
        Scope::Actor(me) => {
            if f.actor.as_ref().is_some_and(|x| x != me) {
                return Err(FhirError::new(
                    403,
                    IssueType::Forbidden,
                    "you can see your own accesses only; the security officer sees others'",
                ));
            }
            f.actor = Some(me.clone());
        }
    }
    let tenant = p.tenant.id.clone();
    let mut events = state.store.audit_search(&tenant, &f).await?;
    if let Some(l) = letter {
        events.retain(|e| fhir_action_letter(&e.event.action) == l);
    }
    // Looking at the log is logged, as who looked at whose log.
    let viewed = f.patient.clone();
    let mut ev = tillit_store::NewSecurityEvent {
        at: state.clock.now(),
        tenant: Some(tenant.clone()),
        user: Some(p.user.id.clone()),
        username: Some(p.user.username.to_string()),
        kind: tillit_store::SecurityEventKind::AuditSearch,
        outcome_ok: true,
        detail: format!("{} access-log events read", events.len()),
        ip: Some(client.ip.to_string()),
        user_agent: client.user_agent.clone(),
    };
    ev.detail.push_str(match scope {
        Scope::Officer => " by the security officer",
        Scope::Patient(_) => " by the patient",
        Scope::Actor(_) => " by the staff member (own accesses)",
    });
    // The patient's own look is not an access to report back to them.
    let about = match scope {
        Scope::Patient(_) => None,
        _ => viewed.as_deref(),
    };
    state
        .audit
        .append(super::security_batch(ev, Some(&me), about, None))
        .await?;
    Ok(events)
}

async fn search_with(
    state: &AppState,
    headers: &HeaderMap,
    client: &Client,
    query: &str,
) -> FhirResult<Value> {
    let subject = caller(state, headers, client).await?;
    scope_of(&subject)?;
    let mut f = AuditFilter {
        limit: 50,
        ..AuditFilter::default()
    };
    let mut letter: Option<String> = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let v = v.trim().to_string();
        match k.as_ref() {
            "patient" | "entity" => f.patient = Some(reference_id(&v, "Patient")),
            "agent" | "who" | "user" => f.actor = Some(reference_id(&v, "Practitioner")),
            "date" => date_bound(&v, &mut f)?,
            "subtype" => {
                f.action = Some(
                    v.rsplit('|')
                        .next()
                        .unwrap_or_default()
                        .replace("search-type", "search"),
                )
            }
            "action" => {
                if !matches!(v.as_str(), "C" | "R" | "U" | "D" | "E") {
                    return Err(bad("action is one of C, R, U, D, E"));
                }
                letter = Some(v);
            }
            "outcome" => {
                f.outcome = Some(match v.as_str() {
                    "0" | "success" => AuditOutcome::Success,
                    "4" | "denied" => AuditOutcome::Denied,
                    "8" | "failure" => AuditOutcome::Failure,
                    _ => return Err(bad("outcome is 0 (success), 4 (denied) or 8 (failure)")),
                })
            }
            "_count" => {
                f.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=500).contains(n))
                    .ok_or_else(|| bad("_count is a number from 1 to 500"))?
            }
            "_before" => {
                f.before = Some(v.parse().map_err(|_| bad("_before is a sequence number"))?)
            }
            "_format" | "_sort" => {}
            other => {
                return Err(bad(format!(
                    "unknown search parameter {other:?} for AuditEvent (patient, agent, date, subtype, action, outcome, _count)"
                )));
            }
        }
    }
    let limit = f.limit;
    let events = search_events(state, &subject, client, f, letter.as_deref()).await?;
    let tenant = subject.principal.tenant.id.clone();
    let mut names = Names::load(state, &tenant).await?;
    let mut entries = Vec::with_capacity(events.len());
    for e in &events {
        entries.push(json!({
            "fullUrl": format!("AuditEvent/{}", e.seq),
            "resource": resource(state, &tenant, &mut names, e).await,
            "search": {"mode": "match"}
        }));
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": entries,
    });
    if let Some(last) = events.last()
        && events.len() as u32 >= limit
    {
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k != "_before")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        pairs.push(("_before".into(), last.seq.to_string()));
        let q = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        put(
            &mut bundle,
            "link",
            json!([{"relation": "next", "url": format!("AuditEvent?{q}")}]),
        );
    }
    Ok(bundle)
}

pub async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: Client,
    RawQuery(q): RawQuery,
) -> Response {
    match search_with(&state, &headers, &client, q.as_deref().unwrap_or_default()).await {
        Ok(b) => fhir_json(StatusCode::OK, &b),
        Err(e) => e.into_response(),
    }
}

/// `POST AuditEvent/_search` with the parameters as a form body (FHIR's search by POST).
pub async fn search_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: Client,
    RawQuery(q): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    let Ok(form) = std::str::from_utf8(&body) else {
        return bad("the search parameters are not UTF-8").into_response();
    };
    let query = match q.as_deref() {
        Some(q) if !q.is_empty() && !form.is_empty() => format!("{q}&{form}"),
        Some(q) if !q.is_empty() => q.to_string(),
        _ => form.to_string(),
    };
    match search_with(&state, &headers, &client, &query).await {
        Ok(b) => fhir_json(StatusCode::OK, &b),
        Err(e) => e.into_response(),
    }
}

pub async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: Client,
    Path(id): Path<String>,
) -> Response {
    let run = async {
        let subject = caller(&state, &headers, &client).await?;
        let seq: u64 = id
            .parse()
            .map_err(|_| FhirError::not_found("AuditEvent", &id))?;
        let p = &subject.principal;
        let Some((_, Some(event))) = state.store.audit_event(&p.tenant.id, seq).await? else {
            return Err(FhirError::not_found("AuditEvent", &id));
        };
        let me = p.user.person.to_string();
        let allowed = (p.roles.contains(&Role::SecurityOfficer) && subject.support.is_none())
            || (p.user.kind == PersonKind::Patient && event.event.patient.as_deref() == Some(&me))
            || (p.user.kind == PersonKind::Staff
                && subject.support.is_none()
                && event.event.actor.person.as_deref() == Some(&me));
        if !allowed {
            // Not told apart from one that does not exist.
            return Err(FhirError::not_found("AuditEvent", &id));
        }
        let mut names = Names::load(&state, &p.tenant.id).await?;
        Ok(resource(&state, &p.tenant.id, &mut names, &event).await)
    };
    match run.await {
        Ok(v) => fhir_json(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

/// The log is written by the server alone.
pub async fn refuse() -> Response {
    FhirError::new(
        405,
        IssueType::NotSupported,
        "AuditEvent is written by the server only: the log cannot be created, changed or deleted through the API",
    )
    .into_response()
}
