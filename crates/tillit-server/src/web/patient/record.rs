//! "Min journal": the patient's own record by category, and the same view of what a relative
//! may see. Every record is found by metadata, decided by the one hook, and only then opened,
//! so each view is in the audit log (one event per type and outcome, counting the records).

use super::super::chart::{self, Series};
use super::super::i18n::Tr;
use super::super::{Audience, Layout, PageError, Web, render};
use super::me;
use crate::authz::{Action, Actor, Denial};
use crate::fhir::query;
use crate::fhir::service::Fhir;
use askama::Template;
use axum::response::Response;
use base64::Engine as _;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use tillit_fhir::category::Category;
use tillit_store::ResourceMeta;
use time::OffsetDateTime;

/// The types shown, all in the patient's compartment. Consents are on the blocks and relatives
/// pages.
pub(crate) const TYPES: [&str; 15] = [
    "Observation",
    "DiagnosticReport",
    "Condition",
    "Procedure",
    "Encounter",
    "DocumentReference",
    "QuestionnaireResponse",
    "MedicationStatement",
    "MedicationRequest",
    "Immunization",
    "AllergyIntolerance",
    "Communication",
    "Appointment",
    "CareTeam",
    "EpisodeOfCare",
];

/// One record as a line.
pub struct Entry {
    pub title: String,
    pub when: String,
    pub detail: String,
    /// (badge class, words): a document's status, an appointment's.
    pub status: Option<(&'static str, &'static str)>,
    /// A document's text, shown in a disclosure.
    pub text: Option<String>,
}

/// Measurements of one kind over time.
pub struct Chart {
    pub title: String,
    pub svg: String,
    pub latest: String,
    pub range: String,
    /// (when, value, outside the reference range)
    pub rows: Vec<(String, String, bool)>,
}

pub struct Section {
    pub code: &'static str,
    pub label: &'static str,
    pub charts: Vec<Chart>,
    pub entries: Vec<Entry>,
}

/// What the caller may see of one patient's record.
pub struct View {
    /// (label, value) from the Patient resource, when the caller may read it.
    pub facts: Vec<(&'static str, String)>,
    pub name: String,
    pub sections: Vec<Section>,
    /// Categories with records the caller may not see, where policy allows saying so.
    pub hidden_told: Vec<&'static str>,
}

/// Whether a refusal may be told: not for sensitive categories, and not when the platform's
/// baseline (a record withheld by a clinician, a block, an exclusion) is the reason.
pub(crate) fn may_tell_hidden(category: Category, d: &Denial) -> bool {
    !category.is_sensitive() && !d.policy.starts_with("platform.")
}

/// A category's place in [`Category::ALL`] (unknown codes last).
pub(crate) fn order(code: &str) -> usize {
    Category::ALL
        .iter()
        .position(|c| c.code() == code)
        .unwrap_or(Category::ALL.len())
}

/// Loads what `fhir`'s caller may see of `patient`, only in `only` when given (a relative's
/// consent: records outside it are not even asked for).
pub async fn load(
    fhir: &Fhir<'_>,
    tr: Tr,
    patient: &str,
    only: Option<&[String]>,
) -> Result<View, PageError> {
    let wanted = |code: &str| only.is_none_or(|o| o.iter().any(|c| c == code));
    let mut visible: BTreeMap<usize, Vec<Value>> = BTreeMap::new();
    let mut hidden: BTreeMap<usize, usize> = BTreeMap::new();
    for rt in TYPES {
        if tillit_fhir::search::param(rt, "patient").is_none() {
            continue;
        }
        let params = vec![
            ("patient".to_string(), format!("Patient/{patient}")),
            ("_count".to_string(), "1000".to_string()),
        ];
        let req = query::parse(fhir, rt, &params, false)?;
        let metas = fhir
            .state
            .store
            .search_resources(fhir.tenant(), &req.query)
            .await?;
        let mut permitted: Vec<(ResourceMeta, crate::authz::Permit)> = Vec::new();
        for m in metas
            .into_iter()
            .filter(|m| !m.deleted && wanted(&m.category))
        {
            let cat = Category::parse(&m.category).unwrap_or(Category::ClinicalNotes);
            match fhir.authorize_meta(Action::Search, &m) {
                Ok(p) => permitted.push((m, p)),
                Err(d) => {
                    if may_tell_hidden(cat, &d) {
                        *hidden.entry(order(&m.category)).or_default() += 1;
                    }
                }
            }
        }
        if permitted.is_empty() {
            continue;
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
                visible.entry(order(&m.category)).or_default().push(body);
            }
        }
    }
    let (facts, name) = if wanted(Category::Demographics.code()) {
        match fhir.read("Patient", patient).await {
            Ok((_, p)) => demographics(tr, &p),
            Err(e) if e.status == 403 || e.status == 404 || e.status == 410 => {
                (Vec::new(), String::new())
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        (Vec::new(), String::new())
    };
    let mut sections = Vec::new();
    let mut hidden_told = Vec::new();
    for (i, cat) in Category::ALL.iter().enumerate() {
        if hidden.get(&i).copied().unwrap_or(0) > 0 {
            hidden_told.push(tr.category(*cat));
        }
        let records = visible.remove(&i).unwrap_or_default();
        if records.is_empty() {
            continue;
        }
        let (charts, rest) = charts_of(tr, records);
        let mut entries: Vec<(Option<OffsetDateTime>, Entry)> =
            rest.iter().map(|v| entry_of(tr, v)).collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        sections.push(Section {
            code: cat.code(),
            label: tr.category(*cat),
            charts,
            entries: entries.into_iter().map(|(_, e)| e).collect(),
        });
    }
    Ok(View {
        facts,
        name,
        sections,
        hidden_told,
    })
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn human_name(n: &Value) -> String {
    if let Some(t) = s(n, "text") {
        return t.to_string();
    }
    let given: Vec<&str> = n
        .get("given")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    format!("{} {}", given.join(" "), s(n, "family").unwrap_or_default())
        .trim()
        .to_string()
}

/// A FHIR date (`YYYY-MM-DD`) as the page writes dates, without a time-zone shift.
fn fhir_date(raw: &str) -> String {
    time::Date::parse(
        raw,
        &time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map(|d| format!("{:02}.{:02}.{}", d.day(), u8::from(d.month()), d.year()))
    .unwrap_or_else(|_| raw.to_string())
}

/// The patient's own details, and their name.
fn demographics(tr: Tr, p: &Value) -> (Vec<(&'static str, String)>, String) {
    let mut out = Vec::new();
    let name = p
        .get("name")
        .and_then(Value::as_array)
        .and_then(|n| n.first())
        .map(human_name)
        .unwrap_or_default();
    if !name.is_empty() {
        out.push((tr.t("patient.record.facts.name"), name.clone()));
    }
    if let Some(b) = s(p, "birthDate") {
        out.push((tr.t("patient.record.facts.born"), fhir_date(b)));
    }
    if let Some(id) = p
        .get("identifier")
        .and_then(Value::as_array)
        .and_then(|ids| {
            ids.iter()
                .find(|i| s(i, "system") == Some(tillit_core::national_id::SYSTEM))
        })
        .and_then(|i| s(i, "value"))
    {
        out.push((tr.t("patient.record.facts.nid"), id.to_string()));
    }
    if let Some(g) = s(p, "gender") {
        let words = match g {
            "female" => tr.t("patient.record.gender.female"),
            "male" => tr.t("patient.record.gender.male"),
            "other" => tr.t("patient.record.gender.other"),
            _ => tr.t("patient.record.gender.unknown"),
        };
        out.push((tr.t("patient.record.facts.gender"), words.to_string()));
    }
    if let Some(a) = p
        .get("address")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        let mut parts: Vec<String> = a
            .get("line")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let town = [s(a, "postalCode"), s(a, "city")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !town.is_empty() {
            parts.push(town);
        }
        if !parts.is_empty() {
            out.push((tr.t("patient.record.facts.address"), parts.join(", ")));
        }
    }
    for t in p
        .get("telecom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(v) = s(t, "value") {
            let label = if s(t, "system") == Some("email") {
                tr.t("patient.record.facts.email")
            } else {
                tr.t("patient.record.facts.phone")
            };
            out.push((label, v.to_string()));
        }
    }
    (out, name)
}

/// A coded concept's words: its text, else the first coding's display.
fn concept(v: Option<&Value>) -> String {
    let Some(c) = v else {
        return String::new();
    };
    s(c, "text")
        .or_else(|| {
            c.get("coding")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|x| s(x, "display"))
        })
        .unwrap_or_default()
        .to_string()
}

fn instant(raw: &str) -> Option<OffsetDateTime> {
    tillit_fhir::dates::parse_range(raw)
        .and_then(|r| OffsetDateTime::from_unix_timestamp_nanos(i128::from(r.low) * 1_000_000).ok())
}

/// When a record happened: the first of its usual date elements.
fn when_of(v: &Value) -> Option<OffsetDateTime> {
    when_raw(v).and_then(|(_, t)| t)
}

/// When a record happened as the page says it: a date written without a time stays a date
/// (not midnight UTC shown in Norwegian time).
fn when_words(tr: Tr, v: &Value) -> String {
    match when_raw(v) {
        Some((raw, _)) if raw.len() <= 10 => fhir_date(raw),
        Some((_, Some(t))) => tr.datetime(t),
        _ => String::new(),
    }
}

/// The raw value and instant of a record's first usual date element.
fn when_raw(v: &Value) -> Option<(&str, Option<OffsetDateTime>)> {
    for key in [
        "effectiveDateTime",
        "date",
        "recordedDate",
        "authoredOn",
        "authored",
        "occurrenceDateTime",
        "performedDateTime",
        "start",
        "sent",
        "issued",
    ] {
        if let Some(raw) = s(v, key) {
            return Some((raw, instant(raw)));
        }
    }
    for key in ["effectivePeriod", "period", "performedPeriod"] {
        if let Some(raw) = v.get(key).and_then(|p| s(p, "start")) {
            return Some((raw, instant(raw)));
        }
    }
    None
}

/// A period in words ("fra 01.02.2026 til 01.03.2026", "fra 01.02.2026").
fn period_words(tr: Tr, p: Option<&Value>) -> String {
    let Some(p) = p else {
        return String::new();
    };
    let start = s(p, "start").and_then(instant).map(|t| tr.date(t));
    let end = s(p, "end").and_then(instant).map(|t| tr.date(t));
    match (start, end) {
        (Some(a), Some(b)) => tr.t2("patient.record.period.from_to", a, b),
        (Some(a), None) => tr.t1("patient.record.period.from", a),
        (None, Some(b)) => tr.t1("patient.record.period.to", b),
        (None, None) => String::new(),
    }
}

fn quantity(q: Option<&Value>) -> Option<(f64, String)> {
    let q = q?;
    Some((
        q.get("value")?.as_f64()?,
        s(q, "unit")
            .or_else(|| s(q, "code"))
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

fn range_words(tr: Tr, range: Option<(Option<f64>, Option<f64>)>, unit: &str) -> String {
    match range {
        Some((Some(l), Some(h))) => tr.t2(
            "patient.record.range.between",
            chart::number(l),
            format!("{} {unit}", chart::number(h)),
        ),
        Some((Some(l), None)) => tr.t1(
            "patient.record.range.above",
            format!("{} {unit}", chart::number(l)),
        ),
        Some((None, Some(h))) => tr.t1(
            "patient.record.range.below",
            format!("{} {unit}", chart::number(h)),
        ),
        _ => tr.t("patient.record.range.none").to_string(),
    }
}

/// The measured values of an Observation: one per component (blood pressure), or its value.
/// (label, value, unit, range)
type Measured = (String, f64, String, Option<(Option<f64>, Option<f64>)>);

fn measured(v: &Value) -> Vec<Measured> {
    let own = quantity(v.get("valueQuantity"))
        .map(|(n, u)| vec![(concept(v.get("code")), n, u, range_of(v))])
        .unwrap_or_default();
    if !own.is_empty() {
        return own;
    }
    v.get("component")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let (n, u) = quantity(c.get("valueQuantity"))?;
            Some((concept(c.get("code")), n, u, range_of(c)))
        })
        .collect()
}

/// Observations with numbers measured at least twice become charts; the rest stay records.
fn charts_of(tr: Tr, records: Vec<Value>) -> (Vec<Chart>, Vec<Value>) {
    let mut groups: BTreeMap<String, Vec<(OffsetDateTime, Vec<Measured>)>> = BTreeMap::new();
    let mut rest = Vec::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for v in &records {
        if s(v, "resourceType") == Some("Observation") && !measured(v).is_empty() {
            *counts.entry(concept(v.get("code"))).or_default() += 1;
        }
    }
    for v in records {
        let title = concept(v.get("code"));
        let m = if s(&v, "resourceType") == Some("Observation") {
            measured(&v)
        } else {
            Vec::new()
        };
        match when_of(&v) {
            Some(t) if !m.is_empty() && counts.get(&title).copied().unwrap_or(0) >= 2 => {
                groups.entry(title).or_default().push((t, m));
            }
            _ => rest.push(v),
        }
    }
    let mut charts = Vec::new();
    for (title, mut points) in groups {
        points.sort_by_key(|p| p.0);
        let mut series: Vec<Series> = Vec::new();
        let mut unit = String::new();
        for (t, ms) in &points {
            for (label, n, u, range) in ms {
                unit.clone_from(u);
                match series.iter_mut().find(|s| &s.label == label) {
                    Some(s) => {
                        s.points.push((*t, *n));
                        if s.range.is_none() {
                            s.range = *range;
                        }
                    }
                    None => series.push(Series {
                        label: label.clone(),
                        points: vec![(*t, *n)],
                        range: *range,
                    }),
                }
            }
        }
        let Some(svg) = chart::svg(&title, &series, |t| tr.date(t)) else {
            continue;
        };
        let many = series.len() > 1;
        let value = |label: &str, n: f64, u: &str| {
            if many {
                format!("{label}: {} {u}", chart::number(n))
            } else {
                format!("{} {u}", chart::number(n))
            }
        };
        let latest = points
            .last()
            .map(|(t, ms)| {
                let values: Vec<String> = ms.iter().map(|(l, n, u, _)| value(l, *n, u)).collect();
                format!("{} ({})", values.join(", "), tr.datetime(*t))
            })
            .unwrap_or_default();
        let range = series
            .iter()
            .map(|s| {
                let r = range_words(tr, s.range, &unit);
                if many { format!("{}: {r}", s.label) } else { r }
            })
            .collect::<Vec<_>>()
            .join("; ");
        let mut rows = Vec::new();
        for (t, ms) in points.iter().rev() {
            let out = ms.iter().any(|(_, n, _, r)| chart::outside(*n, *r));
            let values: Vec<String> = ms.iter().map(|(l, n, u, _)| value(l, *n, u)).collect();
            rows.push((tr.datetime(*t), values.join(", "), out));
        }
        charts.push(Chart {
            title,
            svg,
            latest,
            range,
            rows,
        });
    }
    (charts, rest)
}

/// A document's text, when it is plain text in the record.
fn document_text(v: &Value) -> Option<String> {
    let a = v
        .get("content")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(|c| c.get("attachment"))?;
    let plain = s(a, "contentType").is_none_or(|t| t.starts_with("text/plain"));
    if !plain {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s(a, "data")?)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// A record as one line.
pub(crate) fn entry_of(tr: Tr, v: &Value) -> (Option<OffsetDateTime>, Entry) {
    let rt = s(v, "resourceType").unwrap_or_default();
    let when = when_of(v);
    let mut status = None;
    let mut text = None;
    let mut detail = String::new();
    let title = match rt {
        "Observation" => {
            let m = measured(v);
            detail = if let Some((_, n, u, range)) = m.first().filter(|_| m.len() == 1) {
                let out = if chart::outside(*n, *range) {
                    tr.t("patient.record.outside")
                } else {
                    ""
                };
                format!(
                    "{} {u} ({}){}",
                    chart::number(*n),
                    tr.t1("patient.record.normal", range_words(tr, *range, u)),
                    if out.is_empty() {
                        String::new()
                    } else {
                        format!(" – {out}")
                    }
                )
            } else if !m.is_empty() {
                m.iter()
                    .map(|(l, n, u, _)| format!("{l}: {} {u}", chart::number(*n)))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                s(v, "valueString")
                    .map(str::to_string)
                    .unwrap_or_else(|| concept(v.get("valueCodeableConcept")))
            };
            concept(v.get("code"))
        }
        "DocumentReference" => {
            status = Some(match s(v, "docStatus") {
                Some("preliminary") => ("warn", tr.t("patient.record.doc.preliminary")),
                Some("amended") => ("ok", tr.t("patient.record.doc.amended")),
                Some("entered-in-error") => ("danger", tr.t("patient.record.doc.error")),
                _ => ("ok", tr.t("patient.record.doc.final")),
            });
            text = document_text(v);
            let t = concept(v.get("type"));
            if t.is_empty() {
                tr.t("patient.record.item.document").to_string()
            } else {
                t
            }
        }
        "MedicationStatement" | "MedicationRequest" => {
            detail = v
                .get("dosage")
                .or_else(|| v.get("dosageInstruction"))
                .and_then(Value::as_array)
                .and_then(|d| d.first())
                .and_then(|d| s(d, "text"))
                .unwrap_or_default()
                .to_string();
            if let Some(p) = v.get("effectivePeriod") {
                let p = period_words(tr, Some(p));
                if !p.is_empty() {
                    detail = if detail.is_empty() {
                        p
                    } else {
                        format!("{detail}, {p}")
                    };
                }
            }
            status = match s(v, "status") {
                Some("active") => Some(("ok", tr.t("patient.record.med.active"))),
                Some("stopped" | "completed") => Some(("", tr.t("patient.record.med.stopped"))),
                _ => None,
            };
            concept(v.get("medicationCodeableConcept"))
        }
        "Appointment" => {
            status = match s(v, "status") {
                Some("booked") => Some(("ok", tr.t("patient.record.appt.booked"))),
                Some("cancelled") => Some(("warn", tr.t("patient.record.appt.cancelled"))),
                Some("fulfilled") => Some(("", tr.t("patient.record.appt.fulfilled"))),
                _ => None,
            };
            s(v, "description")
                .map(str::to_string)
                .unwrap_or_else(|| tr.t("patient.record.item.appointment").to_string())
        }
        "Encounter" => {
            let class = v.get("class").and_then(|c| s(c, "code"));
            match class {
                Some("HH") => tr.t("patient.record.encounter.home"),
                Some("AMB") => tr.t("patient.record.encounter.outpatient"),
                Some("IMP" | "ACUTE" | "NONAC") => tr.t("patient.record.encounter.inpatient"),
                Some("VR") => tr.t("patient.record.encounter.virtual"),
                Some("EMER") => tr.t("patient.record.encounter.emergency"),
                _ => tr.t("patient.record.encounter.other"),
            }
            .to_string()
        }
        "CareTeam" => {
            detail = period_words(tr, v.get("period"));
            s(v, "name")
                .map(str::to_string)
                .unwrap_or_else(|| tr.t("patient.record.item.care_team").to_string())
        }
        "EpisodeOfCare" => {
            detail = period_words(tr, v.get("period"));
            tr.t("patient.record.item.episode").to_string()
        }
        "Condition" => {
            status = match v
                .get("clinicalStatus")
                .and_then(|c| c.get("coding"))
                .and_then(Value::as_array)
                .and_then(|c| c.first())
                .and_then(|c| s(c, "code"))
            {
                Some("active" | "recurrence" | "relapse") => {
                    Some(("", tr.t("patient.record.condition.active")))
                }
                Some("inactive" | "remission" | "resolved") => {
                    Some(("", tr.t("patient.record.condition.resolved")))
                }
                _ => None,
            };
            concept(v.get("code"))
        }
        "Communication" => {
            detail = v
                .get("payload")
                .and_then(Value::as_array)
                .and_then(|p| p.first())
                .and_then(|p| s(p, "contentString"))
                .unwrap_or_default()
                .to_string();
            tr.t("patient.record.item.message").to_string()
        }
        "Immunization" => concept(v.get("vaccineCode")),
        "DiagnosticReport" => {
            detail = s(v, "conclusion").unwrap_or_default().to_string();
            concept(v.get("code"))
        }
        "QuestionnaireResponse" => tr.t("patient.record.item.form").to_string(),
        _ => concept(v.get("code")),
    };
    let title = if title.is_empty() {
        tr.t("patient.record.item.record").to_string()
    } else {
        title
    };
    // Records that last a period say so in their detail.
    let lasting = matches!(
        rt,
        "CareTeam" | "EpisodeOfCare" | "MedicationStatement" | "MedicationRequest"
    ) && !detail.is_empty();
    (
        when,
        Entry {
            title,
            when: if lasting {
                String::new()
            } else {
                when_words(tr, v)
            },
            detail,
            status,
            text,
        },
    )
}

#[derive(Template)]
#[template(path = "web/patient/record.html")]
struct RecordPage {
    l: Layout,
    view: View,
}

/// `GET /me/record`
pub async fn page(web: Web) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let subject = web.subject().await?;
        let fhir = Fhir::new(&web.state, Actor::User(&subject));
        let view = load(&fhir, web.tr, &me(&web), None).await?;
        render(&RecordPage {
            l: web.layout(web.tr.t("patient.record.title")),
            view,
        })
    }
    .await;
    web.finish(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::super::super::i18n::Lang;
    use super::*;
    use serde_json::json;

    fn obs(day: u8, hr: f64) -> Value {
        json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "Puls"},
            "effectiveDateTime": format!("2026-03-{day:02}T08:00:00Z"),
            "valueQuantity": {"value": hr, "unit": "slag/min"},
            "referenceRange": [{"low": {"value": 50}, "high": {"value": 100}}]})
    }

    #[test]
    fn repeated_measurements_become_a_chart_and_single_ones_a_line() {
        let tr = Tr::new(Lang::Nb);
        let hba1c = json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "HbA1c"}, "effectiveDateTime": "2026-03-01",
            "valueQuantity": {"value": 48, "unit": "mmol/mol"},
            "referenceRange": [{"low": {"value": 20}, "high": {"value": 42}}]});
        let (charts, rest) = charts_of(tr, vec![obs(1, 70.0), obs(8, 110.0), hba1c]);
        assert_eq!(charts.len(), 1);
        assert_eq!(charts[0].rows.len(), 2);
        assert!(charts[0].rows[0].2, "110 is outside 50–100 (newest first)");
        assert!(charts[0].latest.starts_with("110 slag/min"));
        assert_eq!(rest.len(), 1);
        let (_, e) = entry_of(tr, &rest[0]);
        assert_eq!(e.title, "HbA1c");
        assert!(e.detail.contains("48 mmol/mol"), "{}", e.detail);
        assert!(e.detail.contains(tr.t("patient.record.outside")));
    }

    #[test]
    fn documents_show_their_status_and_text() {
        let tr = Tr::new(Lang::En);
        let doc = json!({"resourceType": "DocumentReference", "status": "current", "docStatus": "preliminary",
            "type": {"text": "Legenotat"}, "date": "2026-03-01T10:00:00Z",
            "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "data": "SGVpIDxiPg=="}}]});
        let (when, e) = entry_of(tr, &doc);
        assert!(when.is_some());
        assert_eq!(e.status.unwrap().1, tr.t("patient.record.doc.preliminary"));
        assert_eq!(e.text.as_deref(), Some("Hei <b>"));
    }

    #[test]
    fn demographics_in_words() {
        let tr = Tr::new(Lang::Nb);
        let p = json!({"resourceType": "Patient", "name": [{"family": "Haugland", "given": ["Astrid"]}],
            "birthDate": "1941-05-03", "gender": "female",
            "identifier": [{"system": tillit_core::national_id::SYSTEM, "value": "03054112345"}],
            "address": [{"line": ["Storgata 1"], "postalCode": "1234", "city": "Nordby"}]});
        let (facts, name) = demographics(tr, &p);
        assert_eq!(name, "Astrid Haugland");
        assert!(facts.iter().any(|(_, v)| v == "03.05.1941"));
        assert!(facts.iter().any(|(_, v)| v == "Storgata 1, 1234 Nordby"));
    }

    #[test]
    fn what_is_hidden_is_told_only_where_policy_allows() {
        let d = |p: &str| Denial {
            policy: p.into(),
            reason: String::new(),
            emergency_possible: false,
        };
        assert!(may_tell_hidden(
            Category::Appointments,
            &d("tenant.default")
        ));
        assert!(!may_tell_hidden(
            Category::MentalHealth,
            &d("tenant.default")
        ));
        assert!(!may_tell_hidden(
            Category::ClinicalNotes,
            &d("platform.withheld-from-patient")
        ));
    }
}
