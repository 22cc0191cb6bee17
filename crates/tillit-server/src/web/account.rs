//! `/account`: who I am, change password, the way to TOTP enrolment.

use super::{PageError, Web, form, render, render_status};
use crate::error::AppError;
use crate::session::{self, clear_session_cookie};
use crate::state::AppState;
use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use tillit_crypto::{PasswordHasher, SecretString};
use tillit_store::SecurityEventKind;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/account", get(page))
        .route("/account/password", post(change_password))
}

#[derive(Template)]
#[template(path = "web/account/account.html")]
struct AccountPage {
    l: super::Layout,
    username: String,
    tenant: String,
    roles: Vec<&'static str>,
    totp: bool,
    saved: bool,
    error: Option<String>,
    error_field: &'static str,
    min_len: usize,
}

fn account_page(
    web: &Web,
    saved: bool,
    error: Option<(String, &'static str)>,
) -> Result<Response, PageError> {
    let (error, error_field) = match error {
        Some((m, f)) => (Some(m), f),
        None => (None, ""),
    };
    let page = AccountPage {
        l: web.layout(web.tr.t("common.account.heading")),
        username: web.principal.user.username.to_string(),
        tenant: web.principal.tenant.name.clone(),
        roles: web
            .principal
            .roles
            .iter()
            .map(|r| web.tr.role(*r))
            .collect(),
        totp: web.principal.user.totp_secret.is_some(),
        saved,
        error_field,
        error,
        min_len: tillit_crypto::PASSWORD_MIN_LEN,
    };
    if page.error.is_some() {
        render_status(StatusCode::BAD_REQUEST, &page)
    } else {
        render(&page)
    }
}

/// `GET /account`
async fn page(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    web.finish(account_page(&web, q.contains_key("saved"), None))
}

/// `POST /account/password`: checks the current password, sets the new one, ends every
/// session of the user (this one too) and sends them to log in again.
async fn change_password(web: Web, body: Bytes) -> Response {
    let result = async {
        let f = form(&body);
        web.check_csrf(&f)?;
        let tr = web.tr;
        let field = |k: &str| SecretString::new(f.get(k).cloned().unwrap_or_default());
        let (current, new, repeat) = (field("current"), field("new"), field("repeat"));
        let user = web.principal.user.clone();
        let hasher = web.state.hasher.clone();
        let stored = Some(user.password_hash.clone());
        let current_ok =
            tokio::task::spawn_blocking(move || hasher.verify(stored.as_deref(), &current))
                .await
                .map_err(|e| AppError::Internal(e.to_string()))?;
        if !current_ok {
            session::security_event(
                &web.state,
                SecurityEventKind::PasswordChanged,
                false,
                "wrong current password",
                Some(&user),
                None,
                &web.client,
            )
            .await?;
            return account_page(
                &web,
                false,
                Some((tr.t("common.account.password.wrong").into(), "current")),
            );
        }
        if new.expose() != repeat.expose() {
            return account_page(
                &web,
                false,
                Some((tr.t("common.account.password.mismatch").into(), "repeat")),
            );
        }
        if let Err(e) = PasswordHasher::check_policy(&new) {
            return account_page(
                &web,
                false,
                Some((tr.t1("common.account.password.weak", e), "new")),
            );
        }
        let hasher = web.state.hasher.clone();
        let hash = tokio::task::spawn_blocking(move || hasher.hash(&new))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?
            .map_err(|e| AppError::Internal(e.to_string()))?;
        web.state.store.set_password(&user.id, &hash).await?;
        web.state.store.delete_sessions_of_user(&user.id).await?;
        session::security_event(
            &web.state,
            SecurityEventKind::PasswordChanged,
            true,
            "changed by the user",
            Some(&user),
            None,
            &web.client,
        )
        .await?;
        Ok((
            [(header::SET_COOKIE, clear_session_cookie())],
            Redirect::to("/login?password_changed=1"),
        )
            .into_response())
    }
    .await;
    web.finish(result)
}
