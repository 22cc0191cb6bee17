//! `/manage/support`: time-limited support access for the platform operator, through the same
//! functions as `/admin/support` ([`crate::admin::grant_support`],
//! [`crate::admin::revoke_support`]): the list, a grant with a time limit and a reason, and
//! revoking one early.

use super::{Directory, FieldError, admin};
use crate::error::AppError;
use crate::web::{Layout, PageError, Web, form, render, render_status};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use tillit_core::Username;

/// The durations offered, in minutes.
const DURATIONS: [i64; 6] = [30, 60, 120, 240, 480, 1440];

struct GrantRow {
    id: String,
    operator: String,
    reason: String,
    granted_by: String,
    from: String,
    to: String,
    state: &'static str,
    state_class: &'static str,
    active: bool,
}

#[derive(Default)]
struct GrantForm {
    operator: String,
    minutes: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "web/admin/support.html")]
struct SupportPage {
    l: Layout,
    rows: Vec<GrantRow>,
    form: GrantForm,
    error: Option<FieldError>,
    saved: Option<&'static str>,
    durations: Vec<(String, String)>,
}

impl SupportPage {
    /// The field the error is about, for `aria-invalid` (empty without an error).
    fn err_field(&self) -> &'static str {
        self.error.as_ref().map_or("", |e| e.field)
    }
}

async fn support_page(
    web: &Web,
    form: GrantForm,
    error: Option<FieldError>,
    saved: Option<&'static str>,
) -> Result<Response, PageError> {
    admin(web)?;
    let tenant = &web.principal.tenant.id;
    let store = &web.state.store;
    let now = web.now();
    let tr = web.tr;
    let dir = Directory::load(web).await?;
    let mut rows = Vec::new();
    for g in store.support_grants(tenant).await? {
        let operator = store
            .user(&g.operator)
            .await?
            .map_or_else(|| g.operator.0.clone(), |u| u.username.to_string());
        let (state, state_class, active) = if g.revoked_at.is_some() {
            (tr.t("admin.support.revoked"), "", false)
        } else if g.active_at(now) {
            (tr.t("admin.support.active"), "warn", true)
        } else {
            (tr.t("admin.support.expired"), "", false)
        };
        let to = match (g.revoked_at, g.period.end()) {
            (Some(r), _) => r,
            (None, Some(e)) => e,
            (None, None) => now,
        };
        rows.push(GrantRow {
            id: g.id.clone(),
            operator,
            reason: g.reason.clone(),
            granted_by: g.granted_by.as_ref().map_or_else(
                || tr.t("admin.support.by_console").to_string(),
                |p| dir.name(p),
            ),
            from: tr.datetime(g.period.start()),
            to: tr.datetime(to),
            state,
            state_class,
            active,
        });
    }
    let durations = DURATIONS
        .iter()
        .map(|m| {
            let label = if *m == 60 {
                tr.t("admin.support.one_hour").to_string()
            } else if m % 60 == 0 {
                tr.t1("admin.support.hours", m / 60)
            } else {
                tr.t1("admin.support.minutes", m)
            };
            (m.to_string(), label)
        })
        .collect();
    let page = SupportPage {
        l: web.layout(tr.t("admin.support.title")),
        rows,
        form,
        saved,
        durations,
        error,
    };
    if page.error.is_some() {
        render_status(StatusCode::BAD_REQUEST, &page)
    } else {
        render(&page)
    }
}

/// `GET /manage/support`
pub async fn page(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let saved = if q.contains_key("granted") {
        Some("admin.support.granted")
    } else if q.contains_key("revoked") {
        Some("admin.support.revoked_ok")
    } else {
        None
    };
    let r = support_page(&web, GrantForm::default(), None, saved).await;
    web.finish(r)
}

/// `POST /manage/support`: lets a platform operator read the tenant's data for a while.
pub async fn grant(web: Web, body: Bytes) -> Response {
    let r = async {
        admin(&web)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let field = |k: &str| f.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
        let input = GrantForm {
            operator: field("operator").to_lowercase(),
            minutes: field("minutes"),
            reason: field("reason"),
        };
        let tr = web.tr;
        let w = &web;
        let refuse = |input, field, key: &'static str| async move {
            support_page(w, input, Some(FieldError::new(field, tr.t(key))), None).await
        };
        let Ok(operator) = Username::parse(&input.operator) else {
            return refuse(input, "operator", "admin.support.error.operator").await;
        };
        let minutes = match input.minutes.parse::<i64>() {
            Ok(m) if (1..=crate::admin::SUPPORT_MAX_MINUTES).contains(&m) => m,
            _ => return refuse(input, "minutes", "admin.support.error.minutes").await,
        };
        if input.reason.chars().count() < crate::admin::SUPPORT_REASON_MIN_CHARS
            || input.reason.chars().count() > 500
        {
            return refuse(input, "reason", "admin.support.error.reason").await;
        }
        match crate::admin::grant_support(
            &web.state,
            &web.principal,
            &web.client,
            &operator,
            minutes,
            &input.reason,
        )
        .await
        {
            Ok(_) => Ok(Redirect::to("/manage/support?granted=1").into_response()),
            Err(AppError::BadRequest(m)) if m == crate::admin::NO_SUCH_OPERATOR => {
                refuse(input, "operator", "admin.support.error.no_operator").await
            }
            Err(e) => Err(e.into()),
        }
    }
    .await;
    web.finish(r)
}

/// `POST /manage/support/{id}/revoke`: ends a grant now.
pub async fn revoke(web: Web, Path(id): Path<String>, body: Bytes) -> Response {
    let r = async {
        admin(&web)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        crate::admin::revoke_support(&web.state, &web.principal, &web.client, &id).await?;
        Ok(Redirect::to("/manage/support?revoked=1").into_response())
    }
    .await;
    web.finish(r)
}
