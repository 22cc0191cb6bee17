//! "Sletting": the tenant admin's erasure requests and the tenant's retention rules. The admin
//! sees each request with what the retention rules keep and what would be erased, by category
//! and count (never a record), and carries it out or refuses it with a reason. Tillit itself
//! reads the requests and does the erasure; both decisions are security events.

use super::super::{Audience, Layout, PageError, Web, form, form_all, render};
use super::{decision_reason, status_words, when_words};
use crate::fhir::rights::{self as r, ErasurePlan};
use crate::session::security_event;
use askama::Template;
use axum::body::Bytes;
use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;
use std::collections::HashMap;
use tillit_core::PersonId;
use tillit_fhir::category::Category;
use tillit_store::SecurityEventKind;

/// One request.
struct RequestRow {
    task: String,
    patient: String,
    asked: String,
    note: String,
    open: bool,
    status: (&'static str, &'static str),
    reason: Option<String>,
    outcome: Option<String>,
    /// What erasing now would do (open requests): (category, records).
    erase: Vec<(String, usize)>,
    keep: Vec<(String, usize)>,
    requests: usize,
}

/// A category with whether the tenant keeps it.
struct CategoryRow {
    code: &'static str,
    name: &'static str,
    kept: bool,
}

#[derive(Template)]
#[template(path = "web/rights/erasure.html")]
struct ErasurePage {
    l: Layout,
    rows: Vec<RequestRow>,
    categories: Vec<CategoryRow>,
    saved: Option<&'static str>,
}

fn words(web: &Web, m: &std::collections::BTreeMap<String, usize>) -> Vec<(String, usize)> {
    m.iter()
        .map(|(c, n)| (web.tr.category_code(c).to_string(), *n))
        .collect()
}

/// `GET /manage/erasure`
pub async fn page(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let r = async {
        web.require(Audience::Admin)?;
        let tr = web.tr;
        let tenant = &web.principal.tenant.id;
        let mut rows = Vec::new();
        for t in r::erasure_requests(&web.state, tenant, None, false).await? {
            let open = t.get("status").and_then(Value::as_str) == Some("requested");
            let patient = t
                .get("for")
                .and_then(r::reference_of)
                .map(|(_, p)| p)
                .unwrap_or_default();
            let plan = match (open, PersonId::parse(&patient)) {
                (true, Ok(p)) => r::plan_erasure(&web.state, tenant, &p).await?,
                _ => ErasurePlan::default(),
            };
            rows.push(RequestRow {
                task: t
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                patient,
                asked: when_words(tr, t.get("authoredOn").and_then(Value::as_str)),
                note: r::task_input(&t, "note").unwrap_or_default(),
                open,
                status: status_words(tr, &t),
                reason: decision_reason(&t),
                outcome: super::erasure_outcome(tr, &t),
                erase: words(&web, &plan.erase),
                keep: words(&web, &plan.keep),
                requests: plan.requests,
            });
        }
        let kept = r::retained_categories(&web.state, tenant).await?;
        let categories = Category::ALL
            .into_iter()
            .filter(|c| *c != Category::Directory)
            .map(|c| CategoryRow {
                code: c.code(),
                name: tr.category(c),
                kept: kept.iter().any(|k| k == c.code()),
            })
            .collect();
        let saved = match q.get("saved").map(String::as_str) {
            Some("erased") => Some("rights.admin.saved.erased"),
            Some("refused") => Some("rights.admin.saved.refused"),
            Some("retention") => Some("rights.admin.saved.retention"),
            _ => None,
        };
        render(&ErasurePage {
            l: web.layout(tr.t("rights.admin.title")),
            rows,
            categories,
            saved,
        })
    }
    .await;
    web.finish(r)
}

/// The decision's stated reason: required, a sentence at least.
fn reason_of(web: &Web, f: &HashMap<String, String>) -> Result<String, PageError> {
    let reason = f
        .get("reason")
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    if reason.chars().count() < 10 || reason.chars().count() > 4000 {
        return Err(PageError::bad_request(
            web.tr.t("rights.admin.error.reason"),
        ));
    }
    Ok(reason)
}

/// `POST /manage/erasure/erase`
pub async fn erase(web: Web, body: Bytes) -> Response {
    let r = async {
        web.require(Audience::Admin)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let reason = reason_of(&web, &f)?;
        let patient = f
            .get("patient")
            .and_then(|p| PersonId::parse(p.trim()).ok())
            .ok_or_else(PageError::not_found)?;
        let request = f.get("task").map(|t| t.trim().to_string());
        let subject = web.subject().await?;
        r::erase(
            &web.state,
            &subject,
            &web.client,
            &patient,
            &reason,
            request.as_deref(),
        )
        .await?;
        Ok(Redirect::to("/manage/erasure?saved=erased").into_response())
    }
    .await;
    web.finish(r)
}

/// `POST /manage/erasure/refuse`
pub async fn refuse(web: Web, body: Bytes) -> Response {
    let r = async {
        web.require(Audience::Admin)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let reason = reason_of(&web, &f)?;
        let task = f
            .get("task")
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
        let subject = web.subject().await?;
        r::refuse_erasure(&web.state, &subject, &web.client, &task, &reason).await?;
        Ok(Redirect::to("/manage/erasure?saved=refused").into_response())
    }
    .await;
    web.finish(r)
}

/// `POST /manage/erasure/retention`: the categories the tenant keeps.
pub async fn retention(web: Web, body: Bytes) -> Response {
    let r = async {
        web.require(Audience::Admin)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let mut kept: Vec<String> = Vec::new();
        for c in form_all(&body, "keep") {
            let cat = Category::parse(&c)
                .filter(|c| *c != Category::Directory)
                .ok_or_else(|| PageError::bad_request(format!("unknown category {c}")))?;
            if !kept.iter().any(|k| k == cat.code()) {
                kept.push(cat.code().to_string());
            }
        }
        let tenant = &web.principal.tenant.id;
        web.state
            .store
            .set_retained_categories(tenant, &kept, web.now())
            .await?;
        security_event(
            &web.state,
            SecurityEventKind::PolicyChanged,
            true,
            &format!("retention rules: kept categories {}", kept.join(" ")),
            Some(&web.principal.user),
            None,
            &web.client,
        )
        .await?;
        Ok(Redirect::to("/manage/erasure?saved=retention").into_response())
    }
    .await;
    web.finish(r)
}
