//! The patient's rights pages: "Mine rettigheter" (requests and their outcomes, restricted
//! records, erasure), everything held about me as a printable page, my records with
//! "ask for a correction" and "restrict", and the correction form.

use super::super::patient::record::{self, TYPES, entry_of};
use super::super::{Audience, Layout, PageError, Web, form, render, render_status};
use super::{decision_reason, status_words, when_words};
use crate::authz::{Actor, Subject};
use crate::fhir::rights::{self as r, CorrectionRequest, RIGHTS_SYSTEM, TASK_CODES};
use crate::fhir::service::Fhir;
use askama::Template;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use tillit_fhir::category::Category;

/// One of my records, as a line with what I can do about it.
pub struct RecordRow {
    pub rt: String,
    pub id: String,
    pub title: String,
    pub detail: String,
    pub when: String,
    pub category: String,
    pub restricted: bool,
}

/// One of my requests and what became of it.
pub struct RequestRow {
    pub about: String,
    pub asked: String,
    pub when: String,
    pub status: (&'static str, &'static str),
    pub reason: Option<String>,
    pub outcome: Option<String>,
}

/// A record I have restricted.
pub struct RestrictedRow {
    pub rt: String,
    pub id: String,
    pub title: String,
    pub since: String,
}

fn me(web: &Web) -> String {
    web.principal.user.person.to_string()
}

/// The entries a search Bundle matched.
fn matches(bundle: &Value) -> Vec<Value> {
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| e.pointer("/search/mode").and_then(Value::as_str) == Some("match"))
        .filter_map(|e| e.get("resource").cloned())
        .collect()
}

async fn search(
    fhir: &Fhir<'_>,
    rt: &str,
    params: &[(&str, String)],
) -> Result<Vec<Value>, PageError> {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    Ok(matches(
        &crate::fhir::search(fhir, rt, &params, false, "").await?,
    ))
}

/// A record's title as the record page shows it, or its kind when it cannot be read.
async fn title_of(web: &Web, fhir: &Fhir<'_>, rt: &str, id: &str) -> String {
    match fhir.read(rt, id).await {
        Ok((_, v)) if rt == "Patient" => web
            .tr
            .t1("rights.records.demographics", super::patient_name(&v)),
        Ok((_, v)) => entry_of(web.tr, &v).1.title,
        Err(_) => web.tr.t("rights.records.unreadable").to_string(),
    }
}

/// Every record of mine I may see, newest first within each kind.
async fn my_records(
    web: &Web,
    fhir: &Fhir<'_>,
    restricted: &HashSet<(String, String)>,
) -> Result<Vec<RecordRow>, PageError> {
    let tr = web.tr;
    let me = me(web);
    let mut rows = Vec::new();
    match fhir.read("Patient", &me).await {
        Ok((_, p)) => rows.push(RecordRow {
            rt: "Patient".into(),
            id: me.clone(),
            title: tr.t1("rights.records.demographics", super::patient_name(&p)),
            detail: String::new(),
            when: String::new(),
            category: tr.category(Category::Demographics).to_string(),
            restricted: restricted.contains(&("Patient".to_string(), me.clone())),
        }),
        Err(e) if matches!(e.status, 403 | 404 | 410) => {}
        Err(e) => return Err(e.into()),
    }
    for rt in TYPES {
        let found = search(
            fhir,
            rt,
            &[
                ("patient", format!("Patient/{me}")),
                ("_count", "1000".into()),
            ],
        )
        .await?;
        let mut lines: Vec<(Option<time::OffsetDateTime>, RecordRow)> = found
            .iter()
            .filter_map(|v| {
                let id = v.get("id")?.as_str()?.to_string();
                let (when, e) = entry_of(tr, v);
                let category = super::category_of(v)
                    .map(|c| tr.category_code(&c).to_string())
                    .unwrap_or_default();
                Some((
                    when,
                    RecordRow {
                        restricted: restricted.contains(&(rt.to_string(), id.clone())),
                        rt: rt.to_string(),
                        id,
                        title: e.title,
                        detail: e.detail,
                        when: e.when,
                        category,
                    },
                ))
            })
            .collect();
        lines.sort_by_key(|l| std::cmp::Reverse(l.0));
        rows.extend(lines.into_iter().map(|l| l.1));
    }
    Ok(rows)
}

fn restricted_set(list: &[tillit_store::Restriction]) -> HashSet<(String, String)> {
    list.iter()
        .map(|r| (r.resource_type.clone(), r.id.clone()))
        .collect()
}

#[derive(Template)]
#[template(path = "web/rights/overview.html")]
struct OverviewPage {
    l: Layout,
    saved: Option<&'static str>,
    corrections: Vec<RequestRow>,
    restricted: Vec<RestrictedRow>,
    erasures: Vec<RequestRow>,
    erase: Vec<(String, usize)>,
    keep: Vec<(String, usize)>,
    /// The patient's requests, always kept.
    requests: usize,
    /// An erasure request is waiting for its decision.
    erasure_pending: bool,
}

async fn requests(web: &Web, fhir: &Fhir<'_>, code: String) -> Result<Vec<Value>, PageError> {
    search(
        fhir,
        "Task",
        &[
            ("patient", format!("Patient/{}", me(web))),
            ("code", code),
            ("_sort", "-_lastUpdated".into()),
            ("_count", "200".into()),
        ],
    )
    .await
}

/// `GET /me/rights`
pub async fn overview(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let tr = web.tr;
        let subject = web.subject().await?;
        let fhir = Fhir::new(&web.state, Actor::User(&subject));
        let tenant = &web.principal.tenant.id;
        let mut corrections = Vec::new();
        for t in requests(&web, &fhir, format!("{TASK_CODES}|change")).await? {
            let about = match t.get("focus").and_then(r::reference_of) {
                Some((rt, id)) => title_of(&web, &fhir, &rt, &id).await,
                None => String::new(),
            };
            let outcome = (t.pointer("/businessStatus/text").and_then(Value::as_str)
                == Some("accepted"))
            .then(|| tr.t("rights.corrections.accepted").to_string());
            corrections.push(RequestRow {
                about,
                asked: r::task_input(&t, "what-is-wrong").unwrap_or_default(),
                when: when_words(tr, t.get("authoredOn").and_then(Value::as_str)),
                status: status_words(tr, &t),
                reason: decision_reason(&t),
                outcome,
            });
        }
        let mut erasures = Vec::new();
        let mut erasure_pending = false;
        for t in requests(&web, &fhir, format!("{RIGHTS_SYSTEM}|erasure")).await? {
            erasure_pending |= t.get("status").and_then(Value::as_str) == Some("requested");
            erasures.push(RequestRow {
                about: tr.t("rights.erasure.whole").to_string(),
                asked: r::task_input(&t, "note").unwrap_or_default(),
                when: when_words(tr, t.get("authoredOn").and_then(Value::as_str)),
                status: status_words(tr, &t),
                reason: decision_reason(&t),
                outcome: super::erasure_outcome(tr, &t),
            });
        }
        let person = &web.principal.user.person;
        let mut restricted = Vec::new();
        for x in r::restrictions_of(&web.state, tenant, person).await? {
            restricted.push(RestrictedRow {
                title: title_of(&web, &fhir, &x.resource_type, &x.id).await,
                since: tr.date(x.at),
                rt: x.resource_type,
                id: x.id,
            });
        }
        let plan = r::plan_erasure(&web.state, tenant, person).await?;
        let words = |m: &std::collections::BTreeMap<String, usize>| -> Vec<(String, usize)> {
            m.iter()
                .map(|(c, n)| (tr.category_code(c).to_string(), *n))
                .collect()
        };
        let saved = match q.get("saved").map(String::as_str) {
            Some("correction") => Some("rights.saved.correction"),
            Some("erasure") => Some("rights.saved.erasure"),
            Some("lifted") => Some("rights.saved.lifted"),
            _ => None,
        };
        render(&OverviewPage {
            l: web.layout(tr.t("rights.title")),
            saved,
            corrections,
            restricted,
            erasures,
            erase: words(&plan.erase),
            keep: words(&plan.keep),
            requests: plan.requests,
            erasure_pending,
        })
    }
    .await;
    web.finish(r)
}

#[derive(Template)]
#[template(path = "web/rights/record.html")]
struct PrintablePage {
    l: Layout,
    view: record::View,
    printed: String,
}

/// `GET /me/rights/record`: everything held about me that I may see, as one printable page.
pub async fn printable(web: Web) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let subject = web.subject().await?;
        let fhir = Fhir::new(&web.state, Actor::User(&subject));
        let view = record::load(&fhir, web.tr, &me(&web), None).await?;
        render(&PrintablePage {
            l: web.layout(web.tr.t("rights.printable.title")),
            view,
            printed: web.tr.datetime(web.now()),
        })
    }
    .await;
    web.finish(r)
}

#[derive(Template)]
#[template(path = "web/rights/records.html")]
struct RecordsPage {
    l: Layout,
    rows: Vec<RecordRow>,
    saved: Option<&'static str>,
}

/// `GET /me/rights/records`: my records, each with "ask for a correction" and "restrict".
pub async fn records(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let subject = web.subject().await?;
        let fhir = Fhir::new(&web.state, Actor::User(&subject));
        let list = r::restrictions_of(
            &web.state,
            &web.principal.tenant.id,
            &web.principal.user.person,
        )
        .await?;
        let rows = my_records(&web, &fhir, &restricted_set(&list)).await?;
        let saved = match q.get("saved").map(String::as_str) {
            Some("restricted") => Some("rights.saved.restricted"),
            Some("lifted") => Some("rights.saved.lifted"),
            _ => None,
        };
        render(&RecordsPage {
            l: web.layout(web.tr.t("rights.records.title")),
            rows,
            saved,
        })
    }
    .await;
    web.finish(r)
}

#[derive(Template)]
#[template(path = "web/rights/correct.html")]
struct CorrectPage {
    l: Layout,
    rt: String,
    id: String,
    title: String,
    detail: String,
    when: String,
    what_is_wrong: String,
    should_say: String,
    error: Option<&'static str>,
}

/// The record a form names, read as the patient (their own, not withheld).
async fn named_record(
    web: &Web,
    subject: &Subject,
    rt: &str,
    id: &str,
) -> Result<(String, String, String), PageError> {
    if !tillit_fhir::resources::is_served(rt) || rt == "Task" || rt == "Provenance" {
        return Err(PageError::not_found());
    }
    let fhir = Fhir::new(&web.state, Actor::User(subject));
    let (v, value) = fhir.read(rt, id).await?;
    if v.meta.patient.as_deref() != Some(me(web).as_str()) {
        return Err(PageError::not_found());
    }
    if rt == "Patient" {
        return Ok((
            web.tr
                .t1("rights.records.demographics", super::patient_name(&value)),
            String::new(),
            String::new(),
        ));
    }
    let (_, e) = entry_of(web.tr, &value);
    Ok((e.title, e.detail, e.when))
}

async fn correct_page(
    web: &Web,
    rt: &str,
    id: &str,
    asked: (String, String),
    error: Option<&'static str>,
) -> Result<Response, PageError> {
    web.require(Audience::Patient)?;
    let subject = web.subject().await?;
    let (title, detail, when) = named_record(web, &subject, rt, id).await?;
    render_status(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        &CorrectPage {
            l: web.layout(web.tr.t("rights.correct.title")),
            rt: rt.to_string(),
            id: id.to_string(),
            title,
            detail,
            when,
            what_is_wrong: asked.0,
            should_say: asked.1,
            error,
        },
    )
}

/// `GET /me/rights/correct?type=..&id=..`
pub async fn correct_form(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let (rt, id) = (
        q.get("type").cloned().unwrap_or_default(),
        q.get("id").cloned().unwrap_or_default(),
    );
    let r = correct_page(&web, &rt, &id, (String::new(), String::new()), None).await;
    web.finish(r)
}

/// `POST /me/rights/correct`
pub async fn correct(web: Web, body: Bytes) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        let (rt, id) = (get("type"), get("id"));
        let asked = (get("what_is_wrong"), get("should_say"));
        if asked.0.is_empty() {
            return correct_page(&web, &rt, &id, asked, Some("rights.correct.error.empty")).await;
        }
        if asked.0.chars().count() > 4000 || asked.1.chars().count() > 4000 {
            return correct_page(&web, &rt, &id, asked, Some("rights.correct.error.long")).await;
        }
        let subject = web.subject().await?;
        let fhir = Fhir::new(&web.state, Actor::User(&subject));
        let req = CorrectionRequest {
            what_is_wrong: asked.0,
            should_say: (!asked.1.is_empty()).then_some(asked.1),
        };
        r::request_correction(&fhir, &subject, &rt, &id, &req).await?;
        Ok(Redirect::to("/me/rights?saved=correction").into_response())
    }
    .await;
    web.finish(r)
}

async fn restriction(web: Web, body: Bytes, on: bool) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        let subject = web.subject().await?;
        let fhir = Fhir::new(&web.state, Actor::User(&subject));
        r::set_restriction(
            &fhir,
            &subject,
            &web.client,
            &get("type"),
            &get("id"),
            None,
            on,
        )
        .await?;
        let to = match (get("back").as_str(), on) {
            ("overview", _) => "/me/rights?saved=lifted",
            (_, true) => "/me/rights/records?saved=restricted",
            (_, false) => "/me/rights/records?saved=lifted",
        };
        Ok(Redirect::to(to).into_response())
    }
    .await;
    web.finish(r)
}

/// `POST /me/rights/restrict`
pub async fn restrict(web: Web, body: Bytes) -> Response {
    restriction(web, body, true).await
}

/// `POST /me/rights/lift`
pub async fn lift(web: Web, body: Bytes) -> Response {
    restriction(web, body, false).await
}

/// `POST /me/rights/erasure`: the request for erasure.
pub async fn request_erasure(web: Web, body: Bytes) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let note = f.get("note").map(|v| v.trim().to_string());
        let subject = web.subject().await?;
        let fhir = Fhir::new(&web.state, Actor::User(&subject));
        r::request_erasure(&fhir, &subject, note).await?;
        Ok(Redirect::to("/me/rights?saved=erasure").into_response())
    }
    .await;
    web.finish(r)
}
