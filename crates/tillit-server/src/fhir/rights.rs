//! The patient's rights over FHIR (docs/design/patient-rights.md): correction, restriction of
//! processing and erasure. The web app calls the same functions.
//!
//! - Correction: the patient asks (`{type}/{id}/$request-correction`), which makes a `Task`
//!   (code `change`, focus the record, for the patient, status `requested`) through the
//!   normal FHIR service, so it is authorized (`tenant.own-request`) and audited. A clinician
//!   who may change the record accepts (`Task/{id}/$accept-correction`: a new version of the
//!   record, a `Provenance` naming who, why and the request, and the Task `completed`, in one
//!   transaction) or refuses with a reason (`Task/{id}/$reject-correction`).
//! - Restriction (GDPR art. 18): `{type}/{id}/$restrict` and `$lift-restriction`, by the
//!   patient. While it stands the record is read only by the patient or under emergency
//!   access and changed by no one (`platform.restricted`); each access is flagged in the log.
//! - Erasure (art. 17): the patient asks (`Patient/{id}/$request-erasure`, a `Task`); a tenant
//!   admin sees what the tenant's retention rules keep (`$erasure-plan`) and carries it out
//!   (`Patient/{id}/$erase`) or refuses with a reason (`Task/{id}/$reject-erasure`). Erasing
//!   removes every erasable record, seals what is kept again under the tenant key, records
//!   the erasure in the keyring's ledger and destroys the patient's key, so no backup can
//!   bring the erased records back.

use super::service::{Fhir, FhirError, FhirResult, format_instant, new_id};
use super::{caller, create_resource, fhir_json, parse_body, plan_update, update_resource};
use crate::authz::{Action, Actor, Subject};
use crate::session::{Client, security_event_about};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use tillit_core::{PersonId, PersonKind, Role, TenantId};
use tillit_fhir::category::{self, Category};
use tillit_fhir::outcome::IssueType;
use tillit_store::{
    KeyScope, PatientErasure, ResealedVersion, Restriction, SecurityEventKind, StoredVersion,
};

/// FHIR's task codes (`change`: update the focal resource as asked).
pub const TASK_CODES: &str = "http://hl7.org/fhir/CodeSystem/task-code";
/// Tillit's codes for the patient's rights: the erasure request's code, the inputs of a
/// correction request and the outputs of a decision.
pub const RIGHTS_SYSTEM: &str = "https://tillit.no/fhir/CodeSystem/patient-rights";

/// The categories a tenant keeps by default: the patient-record act (pasientjournalloven,
/// journalforskriften) requires keeping the record of the care given, so notes, results,
/// medication, care plans and the demographics that identify them are never erased on
/// request. Measurements, social history, messages and appointments can be.
pub const DEFAULT_RETAINED: [Category; 7] = [
    Category::Demographics,
    Category::CarePlan,
    Category::Medications,
    Category::ClinicalNotes,
    Category::LabResults,
    Category::MentalHealth,
    Category::SexualHealth,
];

/// The longest free text a request or decision may carry.
const MAX_TEXT: usize = 4000;

/// Resource types with an `Annotation` list `note`, where an accepted correction can be
/// recorded without a corrected resource.
const NOTED: &[&str] = &[
    "AllergyIntolerance",
    "CareTeam",
    "Communication",
    "Condition",
    "Immunization",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Procedure",
];

/// Whether a record of `rt` can take a correction as an added note.
pub fn takes_note(rt: &str) -> bool {
    NOTED.contains(&rt)
}

fn bad(msg: impl Into<String>) -> FhirError {
    FhirError::new(400, IssueType::Invalid, msg)
}

fn forbidden(msg: impl Into<String>) -> FhirError {
    FhirError::new(403, IssueType::Forbidden, msg)
}

/// A named parameter of an operation's `Parameters` body (or a plain JSON object's key).
fn param<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    if body.get("resourceType").and_then(Value::as_str) == Some("Parameters") {
        let p = body
            .get("parameter")?
            .as_array()?
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?;
        return p
            .get("valueString")
            .or_else(|| p.get("valueMarkdown"))
            .or_else(|| p.get("resource"))
            .or_else(|| p.get("valueReference"));
    }
    body.get(name)
}

/// A text parameter, trimmed; `None` when absent or empty. Refused when too long.
fn text(body: &Value, name: &str) -> FhirResult<Option<String>> {
    let Some(v) = param(body, name) else {
        return Ok(None);
    };
    let s = v
        .as_str()
        .ok_or_else(|| bad(format!("'{name}' must be a string")))?
        .trim();
    if s.chars().count() > MAX_TEXT {
        return Err(bad(format!(
            "'{name}' is longer than {MAX_TEXT} characters"
        )));
    }
    Ok((!s.is_empty()).then(|| s.to_string()))
}

fn required(body: &Value, name: &str, ask: &str) -> FhirResult<String> {
    text(body, name)?.ok_or_else(|| FhirError::new(400, IssueType::Required, ask.to_string()))
}

fn coding(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

/// A Task's code, as (system, code).
fn task_code(task: &Value) -> Option<(&str, &str)> {
    let c = task.get("code")?.get("coding")?.as_array()?.first()?;
    Some((c.get("system")?.as_str()?, c.get("code")?.as_str()?))
}

/// Whether a Task is a correction request made here.
pub fn is_correction(task: &Value) -> bool {
    task_code(task) == Some((TASK_CODES, "change"))
}

/// Whether a Task is an erasure request made here.
pub fn is_erasure(task: &Value) -> bool {
    task_code(task) == Some((RIGHTS_SYSTEM, "erasure"))
}

/// The text of a Task's input `code` (a correction request's `what-is-wrong`, `should-say`).
pub fn task_input(task: &Value, code: &str) -> Option<String> {
    task.get("input")?.as_array()?.iter().find_map(|i| {
        let c = i.get("type")?.get("coding")?.as_array()?.first()?;
        (c.get("code")?.as_str()? == code)
            .then(|| i.get("valueString")?.as_str().map(str::to_string))
            .flatten()
    })
}

/// A Task's output `code`.
pub fn task_output<'a>(task: &'a Value, code: &str) -> Option<&'a Value> {
    task.get("output")?
        .as_array()?
        .iter()
        .find(|o| o.pointer("/type/coding/0/code").and_then(Value::as_str) == Some(code))
}

/// A reference's `Type/id` (a version suffix dropped).
pub fn reference_of(v: &Value) -> Option<(String, String)> {
    let r = v.get("reference")?.as_str()?;
    let mut parts = r.split('/');
    let (rt, id) = (parts.next()?, parts.next()?);
    Some((rt.to_string(), id.to_string()))
}

/// The caller must be the patient (not a relative, not staff).
fn patient_of(subject: &Subject) -> FhirResult<&PersonId> {
    let user = &subject.principal.user;
    if user.kind != PersonKind::Patient || subject.on_behalf_of.is_some() {
        return Err(forbidden(
            "only the patient can make this request about their own record",
        ));
    }
    Ok(&user.person)
}

/// The caller must be a tenant admin (erasure is the data controller's decision).
fn admin_of(subject: &Subject) -> FhirResult<()> {
    if subject.principal.user.kind == PersonKind::Staff
        && subject.principal.roles.contains(&Role::TenantAdmin)
        && subject.support.is_none()
    {
        Ok(())
    } else {
        Err(forbidden(
            "erasure is decided by a tenant admin (the data controller), on the patient's request",
        ))
    }
}

/// The record `rt/id` as the patient may see it: found, not deleted, in their own record and
/// readable by them (a withheld record is refused as everywhere). Authorized, not opened.
async fn own_record(
    fhir: &Fhir<'_>,
    me: &PersonId,
    rt: &str,
    id: &str,
) -> FhirResult<StoredVersion> {
    let v = fhir
        .current(rt, id)
        .await?
        .filter(|v| !v.meta.deleted)
        .ok_or_else(|| FhirError::not_found(rt, id))?;
    fhir.authorize_meta(Action::Read, &v.meta)?;
    if v.meta.patient.as_deref() != Some(me.as_str()) {
        return Err(FhirError::not_found(rt, id));
    }
    Ok(v)
}

// --- correction ---

/// What the patient says about a record.
#[derive(Debug, Clone)]
pub struct CorrectionRequest {
    pub what_is_wrong: String,
    pub should_say: Option<String>,
}

/// Makes the patient's correction request for `rt/id`: a `Task` in their record, with the
/// record's category as its label (so the clinicians who may see the record see the request).
pub async fn request_correction(
    fhir: &Fhir<'_>,
    subject: &Subject,
    rt: &str,
    id: &str,
    req: &CorrectionRequest,
) -> FhirResult<Value> {
    let me = patient_of(subject)?;
    if rt == "Task" || rt == "Provenance" {
        return Err(bad(format!("a {rt} is not corrected on request")));
    }
    let focus = own_record(fhir, me, rt, id).await?;
    if req.what_is_wrong.trim().is_empty() || req.what_is_wrong.chars().count() > MAX_TEXT {
        return Err(FhirError::new(
            400,
            IssueType::Required,
            "say what is wrong in the record",
        ));
    }
    let mut input = vec![json!({
        "type": coding(RIGHTS_SYSTEM, "what-is-wrong"),
        "valueString": req.what_is_wrong.trim()
    })];
    if let Some(s) = req
        .should_say
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        input.push(json!({"type": coding(RIGHTS_SYSTEM, "should-say"), "valueString": s}));
    }
    input.push(json!({
        "type": coding(RIGHTS_SYSTEM, "version"),
        "valueString": format!("{rt}/{id}/_history/{}", focus.meta.version)
    }));
    let mut task = json!({
        "resourceType": "Task",
        "status": "requested",
        "intent": "proposal",
        "code": coding(TASK_CODES, "change"),
        "description": "The patient asks for a correction of this record.",
        "focus": {"reference": format!("{rt}/{id}")},
        "for": {"reference": format!("Patient/{me}")},
        "requester": {"reference": format!("Patient/{me}")},
        "authoredOn": format_instant(subject.at),
        "lastModified": format_instant(subject.at),
        "input": input
    });
    let cat = Category::parse(&focus.meta.category).unwrap_or(Category::ClinicalNotes);
    category::label(&mut task, cat);
    let (_, _, value) = create_resource(fhir, "Task", task, None).await?;
    Ok(value)
}

/// A clinician's decision on a correction request.
#[derive(Debug, Clone)]
pub enum CorrectionDecision {
    /// Accept: the corrected resource, or a note added to the record.
    Accept {
        corrected: Option<Value>,
        note: Option<String>,
        reason: Option<String>,
    },
    Reject {
        reason: String,
    },
}

/// An open correction request `Task/{id}` as the clinician may see it.
async fn open_request(fhir: &Fhir<'_>, task_id: &str) -> FhirResult<(StoredVersion, Value)> {
    let (v, task) = fhir.read("Task", task_id).await?;
    if !is_correction(&task) {
        return Err(bad(format!("Task/{task_id} is not a correction request")));
    }
    let status = task.get("status").and_then(Value::as_str).unwrap_or("");
    if !matches!(
        status,
        "requested" | "received" | "accepted" | "in-progress"
    ) {
        return Err(FhirError::new(
            409,
            IssueType::Conflict,
            format!("Task/{task_id} was already decided ({status})"),
        ));
    }
    Ok((v, task))
}

/// Decides a correction request as the clinician `subject`. Accepting writes the record's new
/// version, a `Provenance` and the completed Task in one transaction; the clinician needs the
/// right to change the record (a care relationship and a role that writes its category).
pub async fn decide_correction(
    fhir: &Fhir<'_>,
    subject: &Subject,
    task_id: &str,
    decision: CorrectionDecision,
) -> FhirResult<Value> {
    let user = &subject.principal.user;
    if user.kind != PersonKind::Staff {
        return Err(forbidden(
            "a correction is decided by the clinician responsible for the record",
        ));
    }
    let me = format!("Practitioner/{}", user.person);
    let (task_v, mut task) = open_request(fhir, task_id).await?;
    let (rt, id) = task
        .get("focus")
        .and_then(reference_of)
        .ok_or_else(|| bad("the request names no record"))?;
    let patient = task
        .get("for")
        .and_then(reference_of)
        .map(|(_, p)| p)
        .unwrap_or_default();
    let now = format_instant(subject.at);
    let obj = task
        .as_object_mut()
        .ok_or_else(|| bad("the request is not an object"))?;
    obj.insert("owner".into(), json!({"reference": me}));
    obj.insert("lastModified".into(), json!(now));
    match decision {
        CorrectionDecision::Reject { reason } => {
            obj.insert("status".into(), json!("rejected"));
            obj.insert("statusReason".into(), json!({"text": reason}));
            obj.insert("businessStatus".into(), json!({"text": "rejected"}));
            // The clinician must be one who could have made the change.
            let current = fhir
                .current(&rt, &id)
                .await?
                .ok_or_else(|| FhirError::not_found(&rt, &id))?;
            fhir.authorize_meta(Action::Update, &current.meta)?;
            let (_, _, value) =
                update_resource(fhir, "Task", task_id, task, Some(task_v.meta.version)).await?;
            Ok(value)
        }
        CorrectionDecision::Accept {
            corrected,
            note,
            reason,
        } => {
            let (current_v, current) = fhir.read(&rt, &id).await?;
            let new_body = match (corrected, note) {
                (Some(c), _) => c,
                (None, Some(text)) => {
                    if !takes_note(&rt) {
                        return Err(bad(format!(
                            "a {rt} has no notes: send the corrected resource as the parameter 'resource'"
                        )));
                    }
                    let mut c = current.clone();
                    let annotation = json!({
                        "authorReference": {"reference": me},
                        "time": now,
                        "text": text
                    });
                    match c.get_mut("note").and_then(Value::as_array_mut) {
                        Some(notes) => notes.push(annotation),
                        None => {
                            if let Some(o) = c.as_object_mut() {
                                o.insert("note".into(), json!([annotation]));
                            }
                        }
                    }
                    c
                }
                (None, None) => {
                    return Err(FhirError::new(
                        400,
                        IssueType::Required,
                        "send the corrected resource ('resource') or the correction as a note ('note')",
                    ));
                }
            };
            let (_, record_write, _) =
                plan_update(fhir, &rt, &id, new_body, Some(current_v.meta.version)).await?;
            let new_version = record_write.meta.version;
            let prov_id = new_id();
            let provenance = json!({
                "resourceType": "Provenance",
                "target": [
                    {"reference": format!("{rt}/{id}/_history/{new_version}")},
                    {"reference": format!("Patient/{patient}")}
                ],
                "recorded": now,
                "reason": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "PATRQT", "display": "patient requested"}]}],
                "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE"}]},
                "agent": [
                    {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}]}, "who": {"reference": me}},
                    {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "informant"}]}, "who": {"reference": format!("Patient/{patient}")}}
                ],
                "entity": [
                    {"role": "source", "what": {"reference": format!("Task/{task_id}")}},
                    {"role": "revision", "what": {"reference": format!("{rt}/{id}/_history/{}", current_v.meta.version)}}
                ]
            });
            let (prov_write, _) = fhir
                .prepare("Provenance", &prov_id, 1, None, provenance, Action::Create)
                .await?;
            obj.insert("status".into(), json!("completed"));
            obj.insert("businessStatus".into(), json!({"text": "accepted"}));
            if let Some(r) = reason {
                obj.insert("statusReason".into(), json!({"text": r}));
            }
            obj.insert(
                "output".into(),
                json!([
                    {"type": coding(RIGHTS_SYSTEM, "corrected-version"), "valueReference": {"reference": format!("{rt}/{id}/_history/{new_version}")}},
                    {"type": coding(RIGHTS_SYSTEM, "provenance"), "valueReference": {"reference": format!("Provenance/{prov_id}")}}
                ]),
            );
            let (_, task_write, task_value) =
                plan_update(fhir, "Task", task_id, task, Some(task_v.meta.version)).await?;
            // The decisions behind these writes are durable before they commit.
            crate::audit::flush(fhir.state).await?;
            fhir.state
                .store
                .write_resources(fhir.tenant(), vec![record_write, prov_write, task_write])
                .await?;
            Ok(task_value)
        }
    }
}

// --- restriction ---

/// Restricts (`on`) or lifts the restriction of processing of the patient's record `rt/id`.
/// Each change is a security event in the patient's log.
pub async fn set_restriction(
    fhir: &Fhir<'_>,
    subject: &Subject,
    client: &Client,
    rt: &str,
    id: &str,
    reason: Option<String>,
    on: bool,
) -> FhirResult<Value> {
    let me = patient_of(subject)?.clone();
    let state = fhir.state;
    let tenant = fhir.tenant().clone();
    let current = fhir
        .current(rt, id)
        .await?
        .filter(|v| !v.meta.deleted)
        .ok_or_else(|| FhirError::not_found(rt, id))?;
    if current.meta.patient.as_deref() != Some(me.as_str()) {
        return Err(FhirError::not_found(rt, id));
    }
    if on {
        // The patient restricts what they can see of their own record.
        fhir.authorize_meta(Action::Read, &current.meta)?;
        let r = Restriction {
            resource_type: rt.to_string(),
            id: id.to_string(),
            patient: me.clone(),
            reason: reason.unwrap_or_default(),
            by: me.clone(),
            at: subject.at,
        };
        state
            .store
            .set_restricted(&tenant, rt, id, Some(&r))
            .await?;
    } else {
        let known = state
            .store
            .restricted_records(&tenant)
            .await?
            .into_iter()
            .any(|r| r.resource_type == rt && r.id == id);
        if !known {
            return Err(FhirError::new(
                404,
                IssueType::NotFound,
                format!("{rt}/{id} is not restricted"),
            ));
        }
        state.store.set_restricted(&tenant, rt, id, None).await?;
    }
    security_event_about(
        state,
        SecurityEventKind::RecordRestricted,
        true,
        &format!(
            "{} {rt}/{id}",
            if on {
                "restricted"
            } else {
                "lifted restriction of"
            }
        ),
        Some(&subject.principal.user),
        None,
        client,
        Some(me.as_str()),
        None,
    )
    .await
    .map_err(|e| FhirError::new(503, IssueType::Transient, e.to_string()))?;
    Ok(json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "target", "valueReference": {"reference": format!("{rt}/{id}")}},
            {"name": "restricted", "valueBoolean": on}
        ]
    }))
}

/// The patient's restricted records.
pub async fn restrictions_of(
    state: &AppState,
    tenant: &TenantId,
    patient: &PersonId,
) -> FhirResult<Vec<Restriction>> {
    Ok(state
        .store
        .restricted_records(tenant)
        .await?
        .into_iter()
        .filter(|r| &r.patient == patient)
        .collect())
}

// --- erasure ---

/// The categories the tenant keeps: its own setting, else [`DEFAULT_RETAINED`].
pub async fn retained_categories(state: &AppState, tenant: &TenantId) -> FhirResult<Vec<String>> {
    Ok(match state.store.retained_categories(tenant).await? {
        Some(c) => c,
        None => DEFAULT_RETAINED
            .iter()
            .map(|c| c.code().to_string())
            .collect(),
    })
}

/// What an erasure of a patient would do, by category: records erased and records kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasurePlan {
    pub erase: BTreeMap<String, usize>,
    pub keep: BTreeMap<String, usize>,
    /// The patient's requests and their outcomes, always kept.
    pub requests: usize,
    /// The categories kept by the tenant's rules.
    pub retained: Vec<String>,
}

impl ErasurePlan {
    pub fn erased_records(&self) -> usize {
        self.erase.values().sum()
    }

    pub fn kept_records(&self) -> usize {
        self.keep.values().sum()
    }

    pub fn to_parameters(&self, patient: &str) -> Value {
        let part = |m: &BTreeMap<String, usize>| -> Vec<Value> {
            m.iter()
                .map(|(c, n)| json!({"name": c, "valueInteger": n}))
                .collect()
        };
        json!({
            "resourceType": "Parameters",
            "parameter": [
                {"name": "patient", "valueReference": {"reference": format!("Patient/{patient}")}},
                {"name": "erase", "part": part(&self.erase)},
                {"name": "keep", "part": part(&self.keep)},
                {"name": "requests-kept", "valueInteger": self.requests},
                {"name": "retained-categories", "valueString": self.retained.join(" ")}
            ]
        })
    }
}

/// Each resource of the patient's record, by (type, id): its versions, oldest first.
fn by_resource(versions: Vec<StoredVersion>) -> BTreeMap<(String, String), Vec<StoredVersion>> {
    let mut m: BTreeMap<(String, String), Vec<StoredVersion>> = BTreeMap::new();
    for v in versions {
        m.entry((v.meta.resource_type.clone(), v.meta.id.clone()))
            .or_default()
            .push(v);
    }
    m
}

/// Whether a resource is kept: its latest version's category is retained, or it is one of
/// the patient's requests and their outcomes (the controller's record of compliance).
fn kept(rt: &str, latest: &StoredVersion, retained: &BTreeSet<&str>) -> bool {
    rt == "Task" || retained.contains(latest.meta.category.as_str())
}

/// What erasing `patient` would do now (metadata only; nothing is opened).
pub async fn plan_erasure(
    state: &AppState,
    tenant: &TenantId,
    patient: &PersonId,
) -> FhirResult<ErasurePlan> {
    let retained = retained_categories(state, tenant).await?;
    let set: BTreeSet<&str> = retained.iter().map(String::as_str).collect();
    let mut plan = ErasurePlan::default();
    for ((rt, _), versions) in by_resource(state.store.patient_versions(tenant, patient).await?) {
        let Some(latest) = versions.last() else {
            continue;
        };
        if rt == "Task" {
            plan.requests += 1;
            continue;
        }
        let side = if kept(&rt, latest, &set) {
            &mut plan.keep
        } else {
            &mut plan.erase
        };
        *side.entry(latest.meta.category.clone()).or_default() += 1;
    }
    plan.retained = retained;
    Ok(plan)
}

/// Makes the patient's request for erasure: a `Task` (code `erasure`) in their record.
pub async fn request_erasure(
    fhir: &Fhir<'_>,
    subject: &Subject,
    note: Option<String>,
) -> FhirResult<Value> {
    let me = patient_of(subject)?;
    let mut task = json!({
        "resourceType": "Task",
        "status": "requested",
        "intent": "proposal",
        "code": coding(RIGHTS_SYSTEM, "erasure"),
        "description": "The patient asks for the erasure of their data (GDPR art. 17).",
        "focus": {"reference": format!("Patient/{me}")},
        "for": {"reference": format!("Patient/{me}")},
        "requester": {"reference": format!("Patient/{me}")},
        "authoredOn": format_instant(subject.at),
        "lastModified": format_instant(subject.at)
    });
    if let Some(n) = note.filter(|n| !n.trim().is_empty()) {
        if n.chars().count() > MAX_TEXT {
            return Err(bad(format!(
                "the note is longer than {MAX_TEXT} characters"
            )));
        }
        if let Some(o) = task.as_object_mut() {
            o.insert(
                "input".into(),
                json!([{"type": coding(RIGHTS_SYSTEM, "note"), "valueString": n.trim()}]),
            );
        }
    }
    category::label(&mut task, Category::Demographics);
    let (_, _, value) = create_resource(fhir, "Task", task, None).await?;
    Ok(value)
}

/// The patient's open erasure requests (Tillit reads them for the tenant admin; the admin
/// sees requests, never records).
pub async fn erasure_requests(
    state: &AppState,
    tenant: &TenantId,
    patient: Option<&PersonId>,
    open_only: bool,
) -> FhirResult<Vec<Value>> {
    let fhir = Fhir::new(
        state,
        Actor::System {
            tenant,
            purpose: "erasure requests",
        },
    );
    let mut params = vec![
        ("code".to_string(), format!("{RIGHTS_SYSTEM}|erasure")),
        ("_count".to_string(), "1000".to_string()),
        ("_sort".to_string(), "-_lastUpdated".to_string()),
    ];
    if let Some(p) = patient {
        params.push(("patient".to_string(), format!("Patient/{p}")));
    }
    if open_only {
        params.push(("status".to_string(), "requested".to_string()));
    }
    let req = super::query::parse(&fhir, "Task", &params, false)?;
    let mut out = Vec::new();
    for m in state.store.search_resources(tenant, &req.query).await? {
        if let Ok((_, task)) = fhir.read("Task", &m.id).await {
            out.push(task);
        }
    }
    Ok(out)
}

/// What an erasure did.
#[derive(Debug, Clone, Default)]
pub struct Erased {
    pub plan: ErasurePlan,
    pub versions_removed: u64,
    pub versions_resealed: u64,
    pub key_destroyed: bool,
}

/// Erases the patient's erasable data as the tenant admin `subject` decided, for `reason`
/// (and `request`, the patient's Task, when given): see the module documentation. Safe to run
/// again after a crash (it finishes the erasure).
pub async fn erase(
    state: &AppState,
    subject: &Subject,
    client: &Client,
    patient: &PersonId,
    reason: &str,
    request: Option<&str>,
) -> FhirResult<Erased> {
    admin_of(subject)?;
    let tenant = subject.principal.tenant.id.clone();
    let t = tenant.as_str();
    let p = patient.as_str();
    let plan = plan_erasure(state, &tenant, patient).await?;
    if plan.erased_records() + plan.kept_records() + plan.requests == 0
        && !state.keyring.is_patient_erased(t, p).unwrap_or(false)
    {
        return Err(FhirError::not_found("Patient", p));
    }
    let retained = plan.retained.clone();
    let set: BTreeSet<&str> = retained.iter().map(String::as_str).collect();
    let mut done = Erased {
        plan: plan.clone(),
        ..Erased::default()
    };
    {
        // From here nothing new is sealed under the patient's key.
        let _guard = state.keyring.begin_patient_erasure(t, p);
        // A write sealed just before the guard may still commit: pass again until nothing
        // sealed under the key is left.
        for pass in 0..5 {
            let versions = state.store.patient_versions(&tenant, patient).await?;
            let mut erasure = PatientErasure {
                patient: patient.clone(),
                remove: Vec::new(),
                reseal: Vec::new(),
            };
            for ((rt, id), vs) in by_resource(versions) {
                let Some(latest) = vs.last() else { continue };
                if !kept(&rt, latest, &set) {
                    erasure.remove.push((rt, id));
                    continue;
                }
                for v in vs {
                    let (KeyScope::Patient, Some(body), Some(owner)) =
                        (v.key_scope, &v.body, v.meta.patient.as_deref())
                    else {
                        continue;
                    };
                    if owner != p {
                        continue;
                    }
                    let ctx = format!("{rt}/{id}/_history/{}", v.meta.version);
                    let plain = state
                        .keyring
                        .open_for_patient(t, p, &ctx, body)
                        .map_err(|_| {
                            FhirError::new(
                                500,
                                IssueType::Exception,
                                format!(
                                    "{rt}/{id} version {} cannot be opened to be kept",
                                    v.meta.version
                                ),
                            )
                        })?;
                    let sealed = state
                        .keyring
                        .seal_for_tenant(Some(t), &ctx, &plain)
                        .map_err(|_| {
                            FhirError::new(503, IssueType::Transient, "the keyring is unavailable")
                        })?;
                    erasure.reseal.push(ResealedVersion {
                        resource_type: rt.clone(),
                        id: id.clone(),
                        version: v.meta.version,
                        body: sealed,
                    });
                }
            }
            if pass > 0 && erasure.remove.is_empty() && erasure.reseal.is_empty() {
                break;
            }
            let d = state.store.erase_patient_data(&tenant, &erasure).await?;
            done.versions_removed += d.versions_removed;
            done.versions_resealed += d.versions_resealed;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        done.key_destroyed = state
            .keyring
            .erase_patient(t, p, subject.at.unix_timestamp())
            .map_err(|e| {
                tracing::error!(error = %e, "erasure could not be recorded in the keyring");
                FhirError::new(
                    503,
                    IssueType::Transient,
                    "the keyring could not record the erasure; run it again",
                )
            })?;
    }
    // Tell the patient: their open requests are completed.
    let system = Fhir::new(
        state,
        Actor::System {
            tenant: &tenant,
            purpose: "erasure",
        },
    );
    let summary = format!(
        "Erased {} records; kept {} records the law requires us to keep ({}).",
        plan.erased_records(),
        plan.kept_records(),
        plan.keep.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    let mut requests = erasure_requests(state, &tenant, Some(patient), true).await?;
    if let Some(id) = request
        && !requests
            .iter()
            .any(|r| r.get("id").and_then(Value::as_str) == Some(id))
    {
        let (_, task) = system.read("Task", id).await?;
        if is_erasure(&task) {
            requests.push(task);
        }
    }
    for mut task in requests {
        let Some(id) = task.get("id").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        let version = task
            .pointer("/meta/versionId")
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok());
        if let Some(o) = task.as_object_mut() {
            o.insert("status".into(), json!("completed"));
            o.insert("businessStatus".into(), json!({"text": "erased"}));
            o.insert("statusReason".into(), json!({"text": reason}));
            o.insert("lastModified".into(), json!(format_instant(subject.at)));
            o.insert(
                "owner".into(),
                json!({"reference": format!("Practitioner/{}", subject.principal.user.person)}),
            );
            o.insert(
                "output".into(),
                json!([
                    {"type": coding(RIGHTS_SYSTEM, "erased"), "valueInteger": plan.erased_records()},
                    {"type": coding(RIGHTS_SYSTEM, "kept"), "valueInteger": plan.kept_records()},
                    {"type": coding(RIGHTS_SYSTEM, "summary"), "valueString": summary}
                ]),
            );
        }
        update_resource(&system, "Task", &id, task, version).await?;
    }
    security_event_about(
        state,
        SecurityEventKind::PatientErased,
        true,
        &format!(
            "erased patient {p}: {} records removed ({} versions), {} versions kept under the tenant key, key destroyed: {}",
            plan.erased_records(),
            done.versions_removed,
            done.versions_resealed,
            done.key_destroyed
        ),
        Some(&subject.principal.user),
        None,
        client,
        Some(p),
        Some(reason),
    )
    .await
    .map_err(|e| FhirError::new(503, IssueType::Transient, e.to_string()))?;
    Ok(done)
}

/// Refuses a patient's erasure request with a reason (a tenant admin; a security event).
pub async fn refuse_erasure(
    state: &AppState,
    subject: &Subject,
    client: &Client,
    task_id: &str,
    reason: &str,
) -> FhirResult<Value> {
    admin_of(subject)?;
    let tenant = subject.principal.tenant.id.clone();
    let system = Fhir::new(
        state,
        Actor::System {
            tenant: &tenant,
            purpose: "erasure",
        },
    );
    let (v, mut task) = system.read("Task", task_id).await?;
    if !is_erasure(&task) {
        return Err(bad(format!("Task/{task_id} is not an erasure request")));
    }
    if task.get("status").and_then(Value::as_str) != Some("requested") {
        return Err(FhirError::new(
            409,
            IssueType::Conflict,
            format!("Task/{task_id} was already decided"),
        ));
    }
    let patient = task
        .get("for")
        .and_then(reference_of)
        .map(|(_, p)| p)
        .unwrap_or_default();
    if let Some(o) = task.as_object_mut() {
        o.insert("status".into(), json!("rejected"));
        o.insert("businessStatus".into(), json!({"text": "refused"}));
        o.insert("statusReason".into(), json!({"text": reason}));
        o.insert("lastModified".into(), json!(format_instant(subject.at)));
        o.insert(
            "owner".into(),
            json!({"reference": format!("Practitioner/{}", subject.principal.user.person)}),
        );
    }
    let (_, _, value) =
        update_resource(&system, "Task", task_id, task, Some(v.meta.version)).await?;
    security_event_about(
        state,
        SecurityEventKind::ErasureRefused,
        true,
        &format!("refused the erasure request Task/{task_id}"),
        Some(&subject.principal.user),
        None,
        client,
        Some(patient.as_str()),
        Some(reason),
    )
    .await
    .map_err(|e| FhirError::new(503, IssueType::Transient, e.to_string()))?;
    Ok(value)
}

// --- HTTP handlers ---

fn respond(result: FhirResult<(StatusCode, Value)>) -> Response {
    match result {
        Ok((s, v)) => fhir_json(s, &v),
        Err(e) => e.into_response(),
    }
}

/// The body as JSON, or an empty object when there is none (operations without parameters).
fn body_or_empty(state: &AppState, headers: &HeaderMap, body: &[u8]) -> FhirResult<Value> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    parse_body(state, headers, body)
}

/// `POST /fhir/r4/{type}/{id}/$request-correction`
pub async fn request_correction_op(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((rt, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    respond(
        async {
            let subject = caller(&state, &headers, &client).await?;
            let body = parse_body(&state, &headers, &body)?;
            let req = CorrectionRequest {
                what_is_wrong: required(
                    &body,
                    "what-is-wrong",
                    "say what is wrong ('what-is-wrong')",
                )?,
                should_say: text(&body, "should-say")?,
            };
            let fhir = Fhir::new(&state, Actor::User(&subject));
            Ok((
                StatusCode::CREATED,
                request_correction(&fhir, &subject, &rt, &id, &req).await?,
            ))
        }
        .await,
    )
}

/// `POST /fhir/r4/Task/{id}/$accept-correction`
pub async fn accept_correction_op(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    respond(
        async {
            let subject = caller(&state, &headers, &client).await?;
            let body = body_or_empty(&state, &headers, &body)?;
            let corrected = param(&body, "resource").filter(|v| v.is_object()).cloned();
            let decision = CorrectionDecision::Accept {
                corrected,
                note: text(&body, "note")?,
                reason: text(&body, "reason")?,
            };
            let fhir = Fhir::new(&state, Actor::User(&subject));
            Ok((
                StatusCode::OK,
                decide_correction(&fhir, &subject, &id, decision).await?,
            ))
        }
        .await,
    )
}

/// `POST /fhir/r4/Task/{id}/$reject-correction`
pub async fn reject_correction_op(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    respond(
        async {
            let subject = caller(&state, &headers, &client).await?;
            let body = parse_body(&state, &headers, &body)?;
            let reason = required(
                &body,
                "reason",
                "give the patient the reason for the refusal ('reason')",
            )?;
            let fhir = Fhir::new(&state, Actor::User(&subject));
            Ok((
                StatusCode::OK,
                decide_correction(&fhir, &subject, &id, CorrectionDecision::Reject { reason })
                    .await?,
            ))
        }
        .await,
    )
}

async fn restriction_op(
    state: AppState,
    client: Client,
    headers: HeaderMap,
    rt: String,
    id: String,
    body: Bytes,
    on: bool,
) -> Response {
    respond(
        async {
            let subject = caller(&state, &headers, &client).await?;
            let body = body_or_empty(&state, &headers, &body)?;
            let reason = text(&body, "reason")?;
            let fhir = Fhir::new(&state, Actor::User(&subject));
            Ok((
                StatusCode::OK,
                set_restriction(&fhir, &subject, &client, &rt, &id, reason, on).await?,
            ))
        }
        .await,
    )
}

/// `POST /fhir/r4/{type}/{id}/$restrict`
pub async fn restrict_op(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((rt, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    restriction_op(state, client, headers, rt, id, body, true).await
}

/// `POST /fhir/r4/{type}/{id}/$lift-restriction`
pub async fn lift_restriction_op(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((rt, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    restriction_op(state, client, headers, rt, id, body, false).await
}

/// `POST /fhir/r4/Patient/{id}/$request-erasure`
pub async fn request_erasure_op(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    respond(
        async {
            let subject = caller(&state, &headers, &client).await?;
            if subject.principal.user.person.as_str() != id {
                return Err(forbidden(
                    "only the patient can ask for the erasure of their own data",
                ));
            }
            let body = body_or_empty(&state, &headers, &body)?;
            let fhir = Fhir::new(&state, Actor::User(&subject));
            Ok((
                StatusCode::CREATED,
                request_erasure(&fhir, &subject, text(&body, "note")?).await?,
            ))
        }
        .await,
    )
}

fn patient_id(id: &str) -> FhirResult<PersonId> {
    PersonId::parse(id).map_err(|_| bad(format!("'{id}' is not a valid id")))
}

/// `GET /fhir/r4/Patient/{id}/$erasure-plan`: the patient themself or a tenant admin.
pub async fn erasure_plan_op(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    respond(
        async {
            let subject = caller(&state, &headers, &client).await?;
            let own = subject.principal.user.kind == PersonKind::Patient
                && subject.principal.user.person.as_str() == id;
            if !own {
                admin_of(&subject)?;
            }
            let patient = patient_id(&id)?;
            let plan = plan_erasure(&state, &subject.principal.tenant.id, &patient).await?;
            Ok((StatusCode::OK, plan.to_parameters(&id)))
        }
        .await,
    )
}

/// `POST /fhir/r4/Patient/{id}/$erase`: a tenant admin, with a reason.
pub async fn erase_op(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    respond(
        async {
            let subject = caller(&state, &headers, &client).await?;
            admin_of(&subject)?;
            let body = parse_body(&state, &headers, &body)?;
            let reason = required(
                &body,
                "reason",
                "state the request and the decision ('reason')",
            )?;
            let request = param(&body, "request")
                .and_then(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .or_else(|| reference_of(v).map(|(_, id)| id))
                })
                .map(|r| r.trim_start_matches("Task/").to_string());
            let patient = patient_id(&id)?;
            let done = erase(
                &state,
                &subject,
                &client,
                &patient,
                &reason,
                request.as_deref(),
            )
            .await?;
            let mut out = done.plan.to_parameters(&id);
            if let Some(params) = out.get_mut("parameter").and_then(Value::as_array_mut) {
                params.push(
                    json!({"name": "versions-removed", "valueInteger": done.versions_removed}),
                );
                params
                    .push(json!({"name": "versions-kept", "valueInteger": done.versions_resealed}));
                params.push(json!({"name": "key-destroyed", "valueBoolean": done.key_destroyed}));
            }
            Ok((StatusCode::OK, out))
        }
        .await,
    )
}

/// `POST /fhir/r4/Task/{id}/$reject-erasure`: a tenant admin, with a reason.
pub async fn reject_erasure_op(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    respond(
        async {
            let subject = caller(&state, &headers, &client).await?;
            let body = parse_body(&state, &headers, &body)?;
            let reason = required(
                &body,
                "reason",
                "give the patient the reason for the refusal ('reason')",
            )?;
            Ok((
                StatusCode::OK,
                refuse_erasure(&state, &subject, &client, &id, &reason).await?,
            ))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parameters_are_read_by_name_and_kind() {
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "what-is-wrong", "valueString": "  The date is wrong  "},
            {"name": "resource", "resource": {"resourceType": "Observation"}},
            {"name": "empty", "valueString": "   "}
        ]});
        assert_eq!(
            text(&body, "what-is-wrong").unwrap().as_deref(),
            Some("The date is wrong")
        );
        assert_eq!(text(&body, "empty").unwrap(), None);
        assert_eq!(text(&body, "absent").unwrap(), None);
        assert!(param(&body, "resource").unwrap().is_object());
        assert!(text(&json!({"note": "x".repeat(MAX_TEXT + 1)}), "note").is_err());
        assert!(text(&json!({"note": 3}), "note").is_err());
    }

    #[test]
    fn requests_are_told_apart_by_code_and_inputs_read_back() {
        let task = json!({
            "resourceType": "Task",
            "code": coding(TASK_CODES, "change"),
            "focus": {"reference": "Observation/abc"},
            "input": [{"type": coding(RIGHTS_SYSTEM, "what-is-wrong"), "valueString": "wrong"}]
        });
        assert!(is_correction(&task));
        assert!(!is_erasure(&task));
        assert_eq!(task_input(&task, "what-is-wrong").as_deref(), Some("wrong"));
        assert_eq!(task_input(&task, "should-say"), None);
        assert_eq!(
            reference_of(&json!({"reference": "Observation/abc/_history/2"})),
            Some(("Observation".into(), "abc".into()))
        );
        assert!(takes_note("Observation") && !takes_note("Patient"));
    }

    #[test]
    fn by_default_the_record_of_care_is_kept_and_everyday_data_erasable() {
        let kept: Vec<&str> = DEFAULT_RETAINED.iter().map(|c| c.code()).collect();
        assert!(kept.contains(&"clinical-notes"));
        for c in ["measurements", "social", "messages", "appointments"] {
            assert!(!kept.contains(&c), "{c}");
        }
    }
}
