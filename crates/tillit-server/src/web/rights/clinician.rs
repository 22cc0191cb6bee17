//! "Ønsker om retting": the correction requests of the clinician's patients that they may see
//! (a request carries its record's category, so it reaches those who may read the record),
//! with accept (the correction added to the record as a note, with provenance) and refuse
//! (with a reason the patient reads).

use super::super::patient::record::entry_of;
use super::super::{Audience, Layout, PageError, Web, form, render};
use super::{patient_name, when_words};
use crate::authz::Actor;
use crate::fhir::rights::{self as r, CorrectionDecision, TASK_CODES};
use crate::fhir::service::Fhir;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;
use std::collections::HashMap;
use tillit_core::Role;

/// One open request.
struct RequestRow {
    task: String,
    patient: String,
    record: String,
    record_detail: String,
    record_when: String,
    what_is_wrong: String,
    should_say: String,
    asked: String,
    /// The record can take the correction as a note here; otherwise it is corrected in
    /// the record system and accepted there (the API takes the corrected resource).
    takes_note: bool,
}

#[derive(Template)]
#[template(path = "web/rights/corrections.html")]
struct CorrectionsPage {
    l: Layout,
    rows: Vec<RequestRow>,
    /// The caller's role writes records (the decision itself is the policy's).
    decides: bool,
    saved: Option<&'static str>,
}

/// `GET /rights/corrections`
pub async fn list(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let r = async {
        web.require(Audience::Clinician)?;
        let tr = web.tr;
        let subject = web.subject().await?;
        let fhir = Fhir::new(&web.state, Actor::User(&subject));
        let params: Vec<(String, String)> = vec![
            ("status".into(), "requested".into()),
            ("code".into(), format!("{TASK_CODES}|change")),
            ("_sort".into(), "_lastUpdated".into()),
            ("_count".into(), "200".into()),
        ];
        let bundle = crate::fhir::search(&fhir, "Task", &params, false, "").await?;
        let tasks: Vec<Value> = bundle
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|e| e.pointer("/search/mode").and_then(Value::as_str) == Some("match"))
            .filter_map(|e| e.get("resource").cloned())
            .collect();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut rows = Vec::new();
        for t in tasks {
            let Some(task) = t.get("id").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            let Some((rt, id)) = t.get("focus").and_then(r::reference_of) else {
                continue;
            };
            // Only requests about records the clinician may read are shown.
            let Ok((_, record)) = fhir.read(&rt, &id).await else {
                continue;
            };
            let (title, detail, when) = if rt == "Patient" {
                (patient_name(&record), String::new(), String::new())
            } else {
                let (_, e) = entry_of(tr, &record);
                (e.title, e.detail, e.when)
            };
            let pid = t
                .get("for")
                .and_then(r::reference_of)
                .map(|(_, p)| p)
                .unwrap_or_default();
            let patient = match names.get(&pid) {
                Some(n) => n.clone(),
                None => {
                    let n = match fhir.read("Patient", &pid).await {
                        Ok((_, p)) => patient_name(&p),
                        Err(_) => tr.t("rights.corrections.unknown_patient").to_string(),
                    };
                    names.insert(pid.clone(), n.clone());
                    n
                }
            };
            rows.push(RequestRow {
                task,
                patient,
                record: title,
                record_detail: detail,
                record_when: when,
                what_is_wrong: r::task_input(&t, "what-is-wrong").unwrap_or_default(),
                should_say: r::task_input(&t, "should-say").unwrap_or_default(),
                asked: when_words(tr, t.get("authoredOn").and_then(Value::as_str)),
                takes_note: r::takes_note(&rt),
            });
        }
        let saved = match q.get("saved").map(String::as_str) {
            Some("accepted") => Some("rights.corrections.saved.accepted"),
            Some("refused") => Some("rights.corrections.saved.refused"),
            _ => None,
        };
        render(&CorrectionsPage {
            l: web.layout(tr.t("rights.corrections.title")),
            rows,
            decides: web.has_role(Role::Physician) || web.has_role(Role::Nurse),
            saved,
        })
    }
    .await;
    web.finish(r)
}

async fn decide(web: Web, task: String, body: Bytes, accept: bool) -> Response {
    let r = async {
        web.require(Audience::Clinician)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        let decision = if accept {
            let note = get("note");
            if note.is_empty() {
                return Err(PageError::bad_request(
                    web.tr.t("rights.corrections.error.note"),
                ));
            }
            let reason = get("reason");
            CorrectionDecision::Accept {
                corrected: None,
                note: Some(note),
                reason: (!reason.is_empty()).then_some(reason),
            }
        } else {
            let reason = get("reason");
            if reason.is_empty() {
                return Err(PageError::bad_request(
                    web.tr.t("rights.corrections.error.reason"),
                ));
            }
            CorrectionDecision::Reject { reason }
        };
        let subject = web.subject().await?;
        let fhir = Fhir::new(&web.state, Actor::User(&subject));
        r::decide_correction(&fhir, &subject, &task, decision).await?;
        Ok(Redirect::to(if accept {
            "/rights/corrections?saved=accepted"
        } else {
            "/rights/corrections?saved=refused"
        })
        .into_response())
    }
    .await;
    web.finish(r)
}

/// `POST /rights/corrections/{task}/accept`
pub async fn accept(web: Web, Path(task): Path<String>, body: Bytes) -> Response {
    decide(web, task, body, true).await
}

/// `POST /rights/corrections/{task}/reject`
pub async fn reject(web: Web, Path(task): Path<String>, body: Bytes) -> Response {
    decide(web, task, body, false).await
}
