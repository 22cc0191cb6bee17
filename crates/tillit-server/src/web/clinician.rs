//! The clinician's pages: "My patients", a patient's overview by category, and the refusal
//! page with the emergency access ("break the glass") flow.
//!
//! Every record shown is read through [`Fhir`] and [`Fhir::authorize_meta`], the API's own
//! hook, so each view is policy-checked and lands in the audit log before the page leaves.

use super::chart::{self, Series};
use super::patient::record::{may_tell_hidden, order};
use super::{Audience, Layout, PageError, Web, form, render, render_status};
use crate::authz::{Action, Actor, Denial, Subject};
use crate::fhir::emergency;
use crate::fhir::query;
use crate::fhir::service::Fhir;
use crate::state::AppState;
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use tillit_core::{AccessKind, national_id};
use tillit_fhir::category::Category;
use tillit_store::AccessParty;
use tillit_store::ResourceMeta;
use time::OffsetDateTime;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients", get(my_patients))
        .route("/patients/find", post(find_patient))
        .route("/patients/{id}", get(overview))
        .route("/patients/{id}/emergency", post(open_emergency))
}

// --- My patients -------------------------------------------------------------------------

/// One row of "My patients".
struct PatientRow {
    id: String,
    name: String,
    born: String,
    /// What the relationship rests on (the care team, or "personal"), with its purpose.
    basis: Vec<String>,
    /// The last day of the relationship, if it ends.
    until: Option<String>,
}

struct EmergencyRow {
    id: String,
    name: String,
    reason: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "web/clinician/patients.html")]
struct PatientsPage {
    l: Layout,
    rows: Vec<PatientRow>,
    emergency: Vec<EmergencyRow>,
    find_error: Option<&'static str>,
    nid: String,
}

/// A patient's name and birth date from their Patient resource, read through the hook (an
/// audited read of demographics). `None` when the caller may not read them.
async fn patient_name(fhir: &Fhir<'_>, tr: super::i18n::Tr, id: &str) -> Option<(String, String)> {
    let v = fhir.current("Patient", id).await.ok()??;
    let permit = fhir.authorize_meta(Action::Read, &v.meta).ok()?;
    let p = fhir.open(&permit, &v).ok()?;
    let name = p
        .get("name")
        .and_then(Value::as_array)
        .and_then(|n| n.first())
        .map(human_name)
        .unwrap_or_default();
    let born = p
        .get("birthDate")
        .and_then(Value::as_str)
        .and_then(|d| {
            time::Date::parse(d, &time::format_description::well_known::Iso8601::DATE).ok()
        })
        .map(|d| tr.date(d.midnight().assume_utc()))
        .unwrap_or_default();
    Some((name, born))
}

fn human_name(n: &Value) -> String {
    if let Some(t) = n.get("text").and_then(Value::as_str) {
        return t.to_string();
    }
    let given: Vec<&str> = n
        .get("given")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let family = n.get("family").and_then(Value::as_str).unwrap_or_default();
    format!("{} {family}", given.join(" ")).trim().to_string()
}

async fn patients_page(
    web: &Web,
    find_error: Option<&'static str>,
    nid: String,
) -> Result<Response, PageError> {
    web.require(Audience::Clinician)?;
    let subject = web.subject().await?;
    let state = &web.state;
    let tenant = &web.principal.tenant.id;
    let now = web.now();
    let tr = web.tr;
    let fhir = Fhir::new(state, Actor::User(&subject));
    let units: Vec<tillit_core::OrgUnitId> = subject
        .knowledge
        .units()
        .iter()
        .filter_map(|u| tillit_core::OrgUnitId::parse(u).ok())
        .collect();
    let person = tillit_core::PersonId::parse(subject.knowledge.person())
        .map_err(|e| PageError::bad_request(e.to_string()))?;
    let unit_names: HashMap<String, String> = state
        .store
        .list_org_units(tenant)
        .await?
        .into_iter()
        .map(|u| (u.id.to_string(), u.name))
        .collect();
    let in_care = subject.knowledge.patients_in_care(now);
    let mut by_patient: BTreeMap<String, (Vec<String>, Option<OffsetDateTime>, bool)> =
        BTreeMap::new();
    for r in state
        .store
        .access_rules_concerning(tenant, &person, &units)
        .await?
    {
        let rule = r.rule;
        let patient = rule.patient.to_string();
        if rule.kind != AccessKind::Care
            || !rule.period.contains(now)
            || !in_care.contains(&patient)
        {
            continue;
        }
        let party = match &rule.party {
            AccessParty::Person(_) => tr.t("clinician.patients.personal").to_string(),
            AccessParty::OrgUnit(u) => unit_names
                .get(u.as_str())
                .cloned()
                .unwrap_or_else(|| u.to_string()),
            AccessParty::Everyone => continue,
        };
        let basis = if rule.purpose.is_empty() {
            party
        } else {
            format!("{party}: {}", rule.purpose)
        };
        let e = by_patient
            .entry(patient)
            .or_insert((Vec::new(), None, false));
        if !e.0.contains(&basis) {
            e.0.push(basis);
        }
        // The relationship lasts as long as its longest-lasting rule; one without an end
        // makes it open-ended.
        match rule.period.end() {
            None => e.2 = true,
            Some(end) => e.1 = Some(e.1.map_or(end, |x: OffsetDateTime| x.max(end))),
        }
    }
    let mut rows = Vec::new();
    for (id, (basis, end, open)) in by_patient {
        let (name, born) = patient_name(&fhir, tr, &id).await.unwrap_or_else(|| {
            (
                tr.t("clinician.patients.name_hidden").to_string(),
                String::new(),
            )
        });
        rows.push(PatientRow {
            id,
            name,
            born,
            basis,
            until: if open { None } else { end.map(|e| tr.date(e)) },
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let mut emergency = Vec::new();
    for a in state.store.emergency_accesses(tenant, 500).await? {
        if a.staff != person || a.expires_at <= now || a.opened_at > now {
            continue;
        }
        let name = patient_name(&fhir, tr, a.patient.as_str())
            .await
            .map(|n| n.0)
            .unwrap_or_else(|| a.patient.to_string());
        emergency.push(EmergencyRow {
            id: a.patient.to_string(),
            name,
            reason: a.reason,
            expires: tr.datetime(a.expires_at),
        });
    }
    let page = PatientsPage {
        l: web.layout(tr.t("clinician.patients.title")),
        rows,
        emergency,
        find_error,
        nid,
    };
    if find_error.is_some() {
        render_status(StatusCode::BAD_REQUEST, &page)
    } else {
        render(&page)
    }
}

/// `GET /patients`
async fn my_patients(web: Web) -> Response {
    web.finish(patients_page(&web, None, String::new()).await)
}

/// `POST /patients/find`: a patient by national id (fødselsnummer), sent in a form so the
/// number never sits in a URL. Opening the patient is then decided (and logged) as any read.
async fn find_patient(web: Web, body: Bytes) -> Response {
    let r = async {
        web.require(Audience::Clinician)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let raw: String = f
            .get("nid")
            .map(|s| s.chars().filter(|c| !c.is_whitespace()).collect())
            .unwrap_or_default();
        let Ok(nid) = national_id::NationalId::parse(&raw) else {
            return patients_page(&web, Some("clinician.find.invalid"), raw).await;
        };
        let subject = web.subject().await?;
        let fhir = Fhir::new(&web.state, Actor::User(&subject));
        let params = vec![(
            "identifier".to_string(),
            format!("{}|{}", national_id::SYSTEM, nid.expose()),
        )];
        let req = query::parse(&fhir, "Patient", &params, false)?;
        let found = web
            .state
            .store
            .search_resources(&web.principal.tenant.id, &req.query)
            .await?;
        match found.into_iter().find(|m| !m.deleted) {
            Some(m) => Ok(Redirect::to(&format!("/patients/{}", m.id)).into_response()),
            None => patients_page(&web, Some("clinician.find.not_found"), raw).await,
        }
    }
    .await;
    web.finish(r)
}

// --- A patient's overview ----------------------------------------------------------------

/// The resource types shown in the overview, read from the patient's compartment.
const TYPES: [&str; 9] = [
    "Observation",
    "Condition",
    "MedicationStatement",
    "MedicationRequest",
    "DocumentReference",
    "CarePlan",
    "Encounter",
    "Appointment",
    "AllergyIntolerance",
];

/// One record in a category section.
pub struct Item {
    pub title: String,
    pub when: String,
    pub detail: String,
    /// Document status (preliminary/final) or the resource's status, in words.
    pub status: Option<(&'static str, &'static str)>,
    /// A document's text (shown in a disclosure).
    pub text: Option<String>,
}

pub struct ChartView {
    pub title: String,
    pub svg: String,
    pub latest: String,
    pub range: String,
    pub rows: Vec<(String, String, bool)>,
}

pub struct Section {
    pub code: &'static str,
    pub label: &'static str,
    pub items: Vec<Item>,
    pub charts: Vec<ChartView>,
    /// Records exist here that the caller may not see, and policy allows saying so.
    pub hidden: usize,
}

/// What the caller may see of one patient's record, by category.
pub struct RecordView {
    pub sections: Vec<Section>,
    /// Categories with hidden records whose existence may be told.
    pub hidden_told: Vec<&'static str>,
}

/// Loads the record of `patient` as `fhir`'s caller may see it: every match is decided by
/// the hook and every opened record is logged.
pub async fn load_record(
    fhir: &Fhir<'_>,
    tr: super::i18n::Tr,
    patient: &str,
) -> Result<RecordView, PageError> {
    let mut visible: BTreeMap<usize, Vec<(ResourceMeta, Value)>> = BTreeMap::new();
    let mut hidden: BTreeMap<usize, usize> = BTreeMap::new();
    for rt in TYPES {
        let params = vec![
            ("patient".to_string(), format!("Patient/{patient}")),
            ("_count".to_string(), "200".to_string()),
        ];
        let req = query::parse(fhir, rt, &params, false)?;
        let metas = fhir
            .state
            .store
            .search_resources(fhir.tenant(), &req.query)
            .await?;
        let mut permitted = Vec::new();
        for m in metas.into_iter().filter(|m| !m.deleted) {
            let cat = Category::parse(&m.category).unwrap_or(Category::Directory);
            // As the API's search: one audit event per kind of record, counting those opened.
            match fhir.authorize_meta(Action::Search, &m) {
                Ok(p) => permitted.push((m, p)),
                Err(d) => {
                    if may_tell_hidden(cat, &d) {
                        *hidden.entry(order(&m.category)).or_default() += 1;
                    }
                }
            }
        }
        let keys: Vec<(String, i64)> = permitted
            .iter()
            .map(|(m, _)| (m.id.clone(), m.version))
            .collect();
        let mut loaded: HashMap<(String, i64), tillit_store::StoredVersion> = fhir
            .state
            .store
            .resource_versions(fhir.tenant(), rt, &keys)
            .await?
            .into_iter()
            .map(|v| ((v.meta.id.clone(), v.meta.version), v))
            .collect();
        for (m, permit) in permitted {
            if let Some(v) = loaded.remove(&(m.id.clone(), m.version)) {
                let body = fhir.open(&permit, &v)?;
                visible
                    .entry(order(&m.category))
                    .or_default()
                    .push((m, body));
            }
        }
    }
    let mut sections = Vec::new();
    let mut hidden_told = Vec::new();
    for (i, cat) in Category::ALL.iter().enumerate() {
        let records = visible.remove(&i).unwrap_or_default();
        let h = hidden.get(&i).copied().unwrap_or(0);
        if h > 0 {
            hidden_told.push(tr.category(*cat));
        }
        if records.is_empty() || *cat == Category::Demographics {
            continue;
        }
        let (charts, rest) = charts_of(tr, &records);
        let mut items: Vec<(Option<OffsetDateTime>, Item)> =
            rest.iter().map(|(_, v)| item_of(tr, v)).collect();
        items.sort_by_key(|i| std::cmp::Reverse(i.0));
        sections.push(Section {
            code: cat.code(),
            label: tr.category(*cat),
            items: items.into_iter().map(|(_, i)| i).collect(),
            charts,
            hidden: h,
        });
    }
    Ok(RecordView {
        sections,
        hidden_told,
    })
}

fn text_of(v: &Value, field: &str) -> String {
    let c = v.get(field);
    c.and_then(|c| c.get("text"))
        .and_then(Value::as_str)
        .or_else(|| {
            c.and_then(|c| c.get("coding"))
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|c| c.get("display"))
                .and_then(Value::as_str)
        })
        .unwrap_or_default()
        .to_string()
}

fn instant_of(v: &Value, fields: &[&str]) -> Option<OffsetDateTime> {
    dated(v, fields).map(|d| d.0)
}

/// The first of `fields` that holds a date, and whether it is a date without a time.
fn dated(v: &Value, fields: &[&str]) -> Option<(OffsetDateTime, bool)> {
    fields.iter().find_map(|f| {
        let raw = match *f {
            "effectivePeriod.start" | "period.start" => {
                let (a, b) = f.split_once('.')?;
                v.get(a)?.get(b)?.as_str()?
            }
            f => v.get(f)?.as_str()?,
        };
        tillit_fhir::dates::parse_range(raw)
            .and_then(|r| {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(r.low) * 1_000_000).ok()
            })
            .map(|t| (t, raw.len() <= 10))
    })
}

fn quantity(q: Option<&Value>) -> Option<(f64, String)> {
    let q = q?;
    Some((
        q.get("value")?.as_f64()?,
        q.get("unit")
            .or_else(|| q.get("code"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    ))
}

fn range_of(v: &Value) -> Option<(Option<f64>, Option<f64>)> {
    let r = v.get("referenceRange")?.as_array()?.first()?;
    let low = r
        .get("low")
        .and_then(|x| x.get("value"))
        .and_then(Value::as_f64);
    let high = r
        .get("high")
        .and_then(|x| x.get("value"))
        .and_then(Value::as_f64);
    (low.is_some() || high.is_some()).then_some((low, high))
}

fn range_text(tr: super::i18n::Tr, r: Option<(Option<f64>, Option<f64>)>, unit: &str) -> String {
    match r {
        Some((Some(l), Some(h))) => tr.t2(
            "clinician.chart.range",
            format!("{}–{}", chart::number(l), chart::number(h)),
            unit,
        ),
        Some((Some(l), None)) => tr.t2(
            "clinician.chart.range",
            format!("≥ {}", chart::number(l)),
            unit,
        ),
        Some((None, Some(h))) => tr.t2(
            "clinician.chart.range",
            format!("≤ {}", chart::number(h)),
            unit,
        ),
        _ => tr.t("clinician.chart.no_range").to_string(),
    }
}

/// One series of a measurement: its label, the value with its unit, the reference range.
type Part = (
    String,
    Option<(f64, String)>,
    Option<(Option<f64>, Option<f64>)>,
);

/// Observations with numbers become charts (one per code; a panel's components are its
/// series); everything else is listed.
fn charts_of(
    tr: super::i18n::Tr,
    records: &[(ResourceMeta, Value)],
) -> (Vec<ChartView>, Vec<(ResourceMeta, Value)>) {
    let mut groups: BTreeMap<String, (String, Vec<Series>, String)> = BTreeMap::new();
    let mut rest = Vec::new();
    for (m, v) in records {
        let when = instant_of(v, &["effectiveDateTime", "issued"]);
        let title = text_of(v, "code");
        let key = v
            .get("code")
            .and_then(|c| c.get("coding"))
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|c| c.get("code"))
            .and_then(Value::as_str)
            .unwrap_or(&title)
            .to_string();
        let parts: Vec<Part> = if let Some(q) = quantity(v.get("valueQuantity")) {
            vec![(title.clone(), Some(q), range_of(v))]
        } else if let Some(comps) = v.get("component").and_then(Value::as_array) {
            comps
                .iter()
                .map(|c| {
                    let label = text_of(c, "code");
                    (label, quantity(c.get("valueQuantity")), range_of(c))
                })
                .collect()
        } else {
            Vec::new()
        };
        let (Some(when), false) = (
            when,
            parts.is_empty() || parts.iter().any(|p| p.1.is_none()),
        ) else {
            rest.push((m.clone(), v.clone()));
            continue;
        };
        let g = groups
            .entry(key)
            .or_insert_with(|| (title.clone(), Vec::new(), String::new()));
        for (label, q, range) in parts {
            let Some((value, unit)) = q else { continue };
            g.2 = unit;
            match g.1.iter_mut().find(|s| s.label == label) {
                Some(s) => s.points.push((when, value)),
                None => g.1.push(Series {
                    label,
                    points: vec![(when, value)],
                    range,
                }),
            }
        }
    }
    let charts = groups
        .into_values()
        .filter_map(|(title, series, unit)| {
            let unit = unit.as_str();
            let svg = chart::svg(&tr.t2("clinician.chart.alt", &title, unit), &series, |t| {
                tr.date(t)
            })?;
            let mut rows: Vec<(OffsetDateTime, usize, String, String, bool)> = series
                .iter()
                .enumerate()
                .flat_map(|(i, s)| {
                    s.points.iter().map(move |(t, v)| {
                        (
                            *t,
                            i,
                            s.label.clone(),
                            format!("{} {}", chart::number(*v), unit),
                            chart::outside(*v, s.range),
                        )
                    })
                })
                .collect();
            rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let latest = rows
                .first()
                .map(|r| r.0)
                .map(|t| {
                    rows.iter()
                        .filter(|r| r.0 == t)
                        .map(|r| r.3.clone())
                        .collect::<Vec<_>>()
                        .join(" / ")
                })
                .unwrap_or_default();
            let range = series
                .iter()
                .map(|s| {
                    if series.len() > 1 {
                        format!("{}: {}", s.label, range_text(tr, s.range, unit))
                    } else {
                        range_text(tr, s.range, unit)
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            Some(ChartView {
                title,
                svg,
                latest,
                range,
                rows: rows
                    .into_iter()
                    .map(|(t, _, label, v, out)| {
                        (
                            tr.datetime(t),
                            if series.len() > 1 {
                                format!("{label}: {v}")
                            } else {
                                v
                            },
                            out,
                        )
                    })
                    .collect(),
            })
        })
        .collect();
    (charts, rest)
}

/// A record as one line of a list.
fn item_of(tr: super::i18n::Tr, v: &Value) -> (Option<OffsetDateTime>, Item) {
    let rt = v
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let when_dated = dated(
        v,
        &[
            "effectiveDateTime",
            "date",
            "recordedDate",
            "authoredOn",
            "start",
            "effectivePeriod.start",
            "period.start",
            "issued",
        ],
    );
    let when = when_dated.map(|d| d.0);
    let mut status = None;
    let mut text = None;
    let mut detail = String::new();
    let title = match rt {
        "MedicationStatement" | "MedicationRequest" => {
            detail = v
                .get("dosage")
                .or_else(|| v.get("dosageInstruction"))
                .and_then(Value::as_array)
                .and_then(|d| d.first())
                .and_then(|d| d.get("text"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            text_of(v, "medicationCodeableConcept")
        }
        "DocumentReference" => {
            status = Some(match v.get("docStatus").and_then(Value::as_str) {
                Some("preliminary") => ("warn", "clinician.doc.preliminary"),
                Some("amended") => ("ok", "clinician.doc.amended"),
                Some("entered-in-error") => ("danger", "clinician.doc.error"),
                _ => ("ok", "clinician.doc.final"),
            });
            text = v
                .get("content")
                .and_then(Value::as_array)
                .and_then(|c| c.first())
                .and_then(|c| c.get("attachment"))
                .and_then(|a| a.get("data"))
                .and_then(Value::as_str)
                .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                .and_then(|b| String::from_utf8(b).ok());
            text_of(v, "type")
        }
        "Appointment" => v
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        "Encounter" => {
            let c = v.get("class");
            c.and_then(|c| c.get("display"))
                .and_then(Value::as_str)
                .unwrap_or(tr.t("clinician.item.encounter"))
                .to_string()
        }
        "CarePlan" => v
            .get("title")
            .or_else(|| v.get("description"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        "Observation" => {
            detail = v
                .get("valueString")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    quantity(v.get("valueQuantity"))
                        .map(|(n, u)| format!("{} {u}", chart::number(n)))
                })
                .unwrap_or_default();
            text_of(v, "code")
        }
        _ => text_of(v, "code"),
    };
    let title = if title.is_empty() {
        rt.to_string()
    } else {
        title
    };
    (
        when,
        Item {
            title,
            when: when_dated
                .map(|(t, date_only)| {
                    if date_only {
                        tr.date(t)
                    } else {
                        tr.datetime(t)
                    }
                })
                .unwrap_or_default(),
            detail,
            status: status.map(|(class, key)| (class, tr.t(key))),
            text,
        },
    )
}

#[derive(Template)]
#[template(path = "web/clinician/overview.html")]
struct OverviewPage {
    l: Layout,
    name: String,
    born: String,
    record: RecordView,
    emergency_until: Option<String>,
    opened_now: bool,
}

#[derive(Template)]
#[template(path = "web/clinician/refused.html")]
struct RefusedPage {
    l: Layout,
    id: String,
    reason: &'static str,
    detail: String,
    emergency_possible: bool,
    durations: Vec<(i64, String, bool)>,
    error: Option<String>,
    reason_text: String,
}

/// The refusal key for a denial: what the clinician reads instead of the policy's id.
fn refusal_key(d: &Denial) -> &'static str {
    match d.policy.as_str() {
        "platform.patient-block" => "clinician.refused.block",
        "platform.exclusion" => "clinician.refused.exclusion",
        "platform.tenant-isolation" => "clinician.refused.tenant",
        "platform.operator-denied" | "platform.support-read-only" => "clinician.refused.operator",
        "platform.emergency-read-only" => "clinician.refused.read_only",
        _ => "clinician.refused.no_care",
    }
}

async fn refused_page(
    web: &Web,
    id: &str,
    d: &Denial,
    error: Option<String>,
    reason_text: String,
    chosen: Option<i64>,
) -> Result<Response, PageError> {
    let tr = web.tr;
    let longest = emergency::longest_minutes(&web.state, &web.principal.tenant.id).await?;
    let mut options: Vec<i64> = [30, 60, 120, 240, 480, 720]
        .into_iter()
        .filter(|m| *m < longest)
        .collect();
    options.push(longest);
    let chosen = chosen.unwrap_or(longest.min(60));
    let durations = options
        .into_iter()
        .map(|m| {
            let label = if m == 60 {
                tr.t("clinician.emergency.hour").to_string()
            } else if m % 60 == 0 {
                tr.t1("clinician.emergency.hours", m / 60)
            } else {
                tr.t1("clinician.emergency.minutes", m)
            };
            (m, label, m == chosen)
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::FORBIDDEN
    };
    render_status(
        status,
        &RefusedPage {
            l: web.layout(tr.t("clinician.refused.title")),
            id: id.to_string(),
            reason: tr.t(refusal_key(d)),
            // The policies' own reasons are in English; the page's sentence says it in words.
            detail: if tr.lang == super::i18n::Lang::En {
                d.reason.clone()
            } else {
                String::new()
            },
            emergency_possible: d.emergency_possible
                && web.principal.user.kind == tillit_core::PersonKind::Staff,
            durations,
            error,
            reason_text,
        },
    )
}

async fn overview_page(web: &Web, id: &str, opened_now: bool) -> Result<Response, PageError> {
    web.require(Audience::Clinician)?;
    let subject: Subject = web.subject().await?;
    let fhir = Fhir::new(&web.state, Actor::User(&subject));
    let tr = web.tr;
    let Some(v) = fhir
        .current("Patient", id)
        .await?
        .filter(|v| !v.meta.deleted)
    else {
        return Err(PageError::not_found());
    };
    let permit = match fhir.authorize_meta(Action::Read, &v.meta) {
        Ok(p) => p,
        Err(d) => return refused_page(web, id, &d, None, String::new(), None).await,
    };
    let patient = fhir.open(&permit, &v)?;
    let name = patient
        .get("name")
        .and_then(Value::as_array)
        .and_then(|n| n.first())
        .map(human_name)
        .unwrap_or_default();
    let born = patient
        .get("birthDate")
        .and_then(Value::as_str)
        .and_then(|d| {
            time::Date::parse(d, &time::format_description::well_known::Iso8601::DATE).ok()
        })
        .map(|d| tr.date(d.midnight().assume_utc()))
        .unwrap_or_default();
    let record = load_record(&fhir, tr, id).await?;
    let now = web.now();
    let emergency_until = if subject.emergency.contains(id) {
        web.state
            .store
            .emergency_accesses(&web.principal.tenant.id, 500)
            .await?
            .into_iter()
            .filter(|a| {
                a.patient.as_str() == id
                    && a.staff == web.principal.user.person
                    && a.expires_at > now
            })
            .map(|a| a.expires_at)
            .max()
            .map(|t| tr.datetime(t))
    } else {
        None
    };
    render(&OverviewPage {
        l: web.layout(if name.is_empty() {
            tr.t("clinician.overview.title").to_string()
        } else {
            name.clone()
        }),
        name,
        born,
        record,
        emergency_until,
        opened_now,
    })
}

/// `GET /patients/{id}`: the overview, or the refusal with the reason and, where policy
/// allows it, the emergency access form.
async fn overview(
    web: Web,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let r = overview_page(&web, &id, q.contains_key("emergency")).await;
    web.finish(r)
}

/// `POST /patients/{id}/emergency`: opens an emergency window (the same path as the API's
/// `$emergency-access`), then shows the record.
async fn open_emergency(web: Web, Path(id): Path<String>, body: Bytes) -> Response {
    let r = async {
        web.require(Audience::Clinician)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let tr = web.tr;
        let reason = f
            .get("reason")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let minutes = f.get("minutes").and_then(|m| m.parse::<i64>().ok());
        let confirmed = f.get("confirm").is_some_and(|v| v == "yes");
        let subject = web.subject().await?;
        let denial = {
            let fhir = Fhir::new(&web.state, Actor::User(&subject));
            let Some(v) = fhir
                .current("Patient", &id)
                .await?
                .filter(|v| !v.meta.deleted)
            else {
                return Err(PageError::not_found());
            };
            match fhir.authorize_meta(Action::Read, &v.meta) {
                // Already allowed: nothing to open.
                Ok(_) => return Ok(Redirect::to(&format!("/patients/{id}")).into_response()),
                Err(d) => d,
            }
        };
        if !denial.emergency_possible {
            return refused_page(&web, &id, &denial, None, String::new(), None).await;
        }
        let error = if reason.chars().count() < emergency::MIN_REASON {
            Some(tr.t1("clinician.emergency.reason_short", emergency::MIN_REASON))
        } else if !confirmed {
            Some(tr.t("clinician.emergency.confirm_missing").to_string())
        } else {
            None
        };
        if let Some(error) = error {
            return refused_page(&web, &id, &denial, Some(error), reason, minutes).await;
        }
        emergency::open_window(&web.state, &web.client, &subject, &id, &reason, minutes).await?;
        Ok(Redirect::to(&format!("/patients/{id}?emergency=1")).into_response())
    }
    .await;
    web.finish(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_records_are_told_only_where_policy_allows() {
        let d = |p: &str| Denial {
            policy: p.into(),
            reason: String::new(),
            emergency_possible: false,
        };
        assert!(may_tell_hidden(Category::LabResults, &d("tenant.default")));
        assert!(!may_tell_hidden(
            Category::MentalHealth,
            &d("tenant.default")
        ));
        assert!(!may_tell_hidden(
            Category::LabResults,
            &d("platform.patient-block")
        ));
        assert!(!may_tell_hidden(
            Category::LabResults,
            &d("platform.exclusion")
        ));
    }

    #[test]
    fn names_from_fhir() {
        let n = serde_json::json!({"family": "Haugland", "given": ["Astrid", "M."]});
        assert_eq!(human_name(&n), "Astrid M. Haugland");
        assert_eq!(human_name(&serde_json::json!({"text": "A H"})), "A H");
    }
}
