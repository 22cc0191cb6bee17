//! The patient's rights in the web app (docs/design/patient-rights.md): the patient's own
//! pages (everything held about them as a printable page, requests for correction and their
//! outcomes, restricting a record, asking for erasure), the clinician's queue of correction
//! requests, and the tenant admin's erasure requests and retention rules.
//!
//! Every action calls the same functions as the FHIR operations ([`crate::fhir::rights`]), so a
//! page is decided, logged and refused exactly as the API.

mod admin;
mod clinician;
mod patient;

use super::i18n::Tr;
use crate::state::AppState;
use axum::Router;
use axum::routing::{get, post};
use serde_json::Value;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me/rights", get(patient::overview))
        .route("/me/rights/record", get(patient::printable))
        .route("/me/rights/records", get(patient::records))
        .route(
            "/me/rights/correct",
            get(patient::correct_form).post(patient::correct),
        )
        .route("/me/rights/restrict", post(patient::restrict))
        .route("/me/rights/lift", post(patient::lift))
        .route("/me/rights/erasure", post(patient::request_erasure))
        .route("/rights/corrections", get(clinician::list))
        .route("/rights/corrections/{task}/accept", post(clinician::accept))
        .route("/rights/corrections/{task}/reject", post(clinician::reject))
        .route("/manage/erasure", get(admin::page))
        .route("/manage/erasure/erase", post(admin::erase))
        .route("/manage/erasure/refuse", post(admin::refuse))
        .route("/manage/erasure/retention", post(admin::retention))
}

/// A request's state in words: (badge class, text).
fn status_words(tr: Tr, task: &Value) -> (&'static str, &'static str) {
    match task.get("status").and_then(Value::as_str).unwrap_or("") {
        "requested" | "received" | "accepted" | "in-progress" => {
            ("warn", tr.t("rights.status.pending"))
        }
        "completed" => ("ok", tr.t("rights.status.done")),
        "rejected" => ("danger", tr.t("rights.status.refused")),
        _ => ("", tr.t("rights.status.other")),
    }
}

/// The reason a decision gave (a refusal's, or an accepted correction's).
fn decision_reason(task: &Value) -> Option<String> {
    task.get("statusReason")
        .and_then(|r| r.get("text"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// What an erasure did, in words, from its request's outputs.
fn erasure_outcome(tr: Tr, task: &Value) -> Option<String> {
    let n = |code: &str| {
        crate::fhir::rights::task_output(task, code)
            .and_then(|o| o.get("valueInteger"))
            .and_then(Value::as_u64)
    };
    Some(tr.t2("rights.erasure.outcome", n("erased")?, n("kept")?))
}

/// A FHIR instant or date as words, Norwegian local time.
fn when_words(tr: Tr, raw: Option<&str>) -> String {
    raw.and_then(|r| {
        time::OffsetDateTime::parse(r, &time::format_description::well_known::Rfc3339).ok()
    })
    .map(|t| tr.datetime(t))
    .unwrap_or_default()
}

/// A person's name from a Patient resource ("Astrid Haugland").
fn patient_name(p: &Value) -> String {
    let Some(n) = p
        .get("name")
        .and_then(Value::as_array)
        .and_then(|n| n.first())
    else {
        return String::new();
    };
    let mut parts: Vec<String> = n
        .get("given")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if let Some(f) = n.get("family").and_then(Value::as_str) {
        parts.push(f.to_string());
    }
    parts.join(" ")
}

/// The Tillit category label of a resource.
fn category_of(v: &Value) -> Option<String> {
    v.pointer("/meta/security")?
        .as_array()?
        .iter()
        .find(|c| c.get("system").and_then(Value::as_str) == Some(tillit_fhir::category::SYSTEM))?
        .get("code")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::i18n::Lang;
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_and_names_in_words() {
        let tr = Tr::new(Lang::En);
        assert_eq!(
            status_words(tr, &json!({"status": "requested"})).1,
            tr.t("rights.status.pending")
        );
        assert_eq!(status_words(tr, &json!({"status": "rejected"})).0, "danger");
        assert_eq!(
            patient_name(&json!({"name": [{"given": ["Astrid", "M."], "family": "Haugland"}]})),
            "Astrid M. Haugland"
        );
        assert_eq!(
            category_of(&json!({"meta": {"security": [{"system": tillit_fhir::category::SYSTEM, "code": "measurements"}]}})).as_deref(),
            Some("measurements")
        );
        assert_eq!(
            when_words(tr, Some("2026-01-15T12:00:00Z")),
            "15.01.2026 13:00"
        );
    }
}
