//! `/manage/policies`: the tenant's Cedar policies, edited in place and saved through the
//! same validation as `PUT /admin/policies` (a refusal shows the validator's message and the
//! line, with the text kept); the platform baseline, read only; and the log-review rules,
//! read only (the security officer changes them).

use super::admin;
use crate::web::{Layout, PageError, Web, form, render, render_status};
use askama::Template;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use tillit_audit::review::Severity;

/// A validation refusal: the validator's message, and where in the text when known.
struct Problem {
    message: String,
    line: Option<(usize, usize)>,
}

struct ReviewRule {
    id: String,
    enabled: bool,
    severity: &'static str,
    severity_class: &'static str,
    settings: String,
}

#[derive(Template)]
#[template(path = "web/admin/policies.html")]
struct PoliciesPage {
    l: Layout,
    text: String,
    is_default: bool,
    saved: Option<&'static str>,
    problem: Option<Problem>,
    platform: &'static str,
    review_rules: Vec<ReviewRule>,
    review_custom: bool,
    lines: usize,
}

async fn policies_page(
    web: &Web,
    text: Option<String>,
    problem: Option<Problem>,
    saved: Option<&'static str>,
) -> Result<Response, PageError> {
    admin(web)?;
    let tenant = &web.principal.tenant.id;
    let store = &web.state.store;
    let stored = store.tenant_policies(tenant).await?;
    let is_default = stored.is_none();
    let text = text.unwrap_or_else(|| {
        stored.unwrap_or_else(|| tillit_authz::DEFAULT_TENANT_POLICIES.to_string())
    });
    let review_text = store.review_rules(tenant).await?;
    let tr = web.tr;
    let review_rules = crate::audit::review::rules_of(review_text.as_deref())
        .rules
        .into_iter()
        .map(|r| {
            let (severity, severity_class) = match r.severity {
                Severity::High => (tr.t("admin.policies.severity.high"), "danger"),
                Severity::Medium => (tr.t("admin.policies.severity.medium"), "warn"),
                Severity::Low => (tr.t("admin.policies.severity.low"), ""),
            };
            ReviewRule {
                id: r.id,
                enabled: r.enabled,
                severity,
                severity_class,
                settings: serde_json::to_string(&r.kind).unwrap_or_default(),
            }
        })
        .collect();
    let page = PoliciesPage {
        l: web.layout(tr.t("admin.policies.title")),
        lines: text.lines().count().clamp(12, 40),
        text,
        is_default,
        saved,
        platform: tillit_authz::PLATFORM_POLICIES,
        review_rules,
        review_custom: review_text.is_some(),
        problem,
    };
    if page.problem.is_some() {
        render_status(StatusCode::BAD_REQUEST, &page)
    } else {
        render(&page)
    }
}

/// `GET /manage/policies`
pub async fn page(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let saved = if q.contains_key("saved") {
        Some("admin.policies.saved")
    } else if q.contains_key("reset") {
        Some("admin.policies.reset_done")
    } else {
        None
    };
    let r = policies_page(&web, None, None, saved).await;
    web.finish(r)
}

/// `POST /manage/policies`: saves the text (or, with `reset`, the shipped defaults) after
/// the API's validation; on a refusal the page comes back with the message and the text.
pub async fn save(web: Web, body: Bytes) -> Response {
    let r = async {
        admin(&web)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let reset = f.contains_key("reset");
        let text = if reset {
            tillit_authz::DEFAULT_TENANT_POLICIES.to_string()
        } else {
            f.get("policies")
                .map(|t| t.replace("\r\n", "\n"))
                .unwrap_or_default()
        };
        match crate::admin::save_policies(&web.state, &web.principal, &web.client, &text).await? {
            Ok(_) => Ok(Redirect::to(if reset {
                "/manage/policies?reset=1"
            } else {
                "/manage/policies?saved=1"
            })
            .into_response()),
            Err(message) => {
                let line = crate::authz::locate_policy_problem(&text);
                policies_page(&web, Some(text), Some(Problem { message, line }), None).await
            }
        }
    }
    .await;
    web.finish(r)
}
