//! The audit log's checkpoints: the tenant's tree size, the latest signed checkpoint (when,
//! by which key, and whether it matches the log), "verify now" (the full verification of
//! `tillit audit verify`, [`crate::audit::checkpoints::verify_tenant`]) and "sign a
//! checkpoint now" ([`crate::audit::checkpoints::checkpoint_now`], as
//! `POST /audit/{tenant}/checkpoint`).

use super::ago;
use crate::audit::checkpoints::{self as shared, CheckpointFailure, LogCheck};
use crate::error::AppError;
use crate::web::i18n::Tr;
use crate::web::{Audience, Layout, PageError, Web, form, render};
use askama::Template;
use axum::body::Bytes;
use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use tillit_audit::verify::Problem;

impl From<CheckpointFailure> for PageError {
    fn from(e: CheckpointFailure) -> Self {
        match e {
            CheckpointFailure::Store(s) => s.into(),
            CheckpointFailure::Key(k) => AppError::Unavailable(k).into(),
        }
    }
}

/// The latest checkpoint, as the page shows it.
struct Latest {
    size: u64,
    at: String,
    age: String,
    /// Entries appended since it was signed.
    behind: u64,
    /// Its signature verifies and it matches the log at its size.
    sound: bool,
}

/// What "verify now" found, in words.
struct Outcome {
    ok: bool,
    text: String,
    detail: Option<String>,
}

#[derive(Template)]
#[template(path = "web/security/checkpoints.html")]
struct StatusPage {
    l: Layout,
    size: u64,
    count: usize,
    latest: Option<Latest>,
    key_name: String,
    key_id: String,
    log: String,
    signed: Option<&'static str>,
    result: Option<Outcome>,
}

fn words(tr: Tr, check: &LogCheck) -> Outcome {
    let bad = |text: String| Outcome {
        ok: false,
        text,
        detail: Some(tr.t("security.checkpoints.bad_advice").to_string()),
    };
    match check {
        LogCheck::Ok(v) => Outcome {
            ok: true,
            text: tr.t2("security.checkpoints.ok", v.entries, v.checkpoints),
            detail: (v.erased_payloads > 0)
                .then(|| tr.t1("security.checkpoints.erased", v.erased_payloads)),
        },
        LogCheck::Problem(p) => bad(match p {
            Problem::Changed { seq } => tr.t1("security.checkpoints.changed", seq),
            Problem::Missing { seq, found } => tr.t2("security.checkpoints.missing", seq, found),
            Problem::Reordered { seq, expected } => {
                tr.t2("security.checkpoints.reordered", seq, expected)
            }
            Problem::RootMismatch { size } => tr.t1("security.checkpoints.root_mismatch", size),
            Problem::BadSignature { size, .. } => tr.t1("security.checkpoints.bad_signature", size),
            Problem::Truncated { size, end } => tr.t2("security.checkpoints.truncated", size, end),
            Problem::WrongOrigin { found, .. } => tr.t1("security.checkpoints.wrong_origin", found),
        }),
        LogCheck::Unopened { seq } => bad(tr.t1("security.checkpoints.unopened", seq)),
        LogCheck::HeadMismatch { head, entries } => {
            bad(tr.t2("security.checkpoints.head_mismatch", head, entries))
        }
    }
}

async fn page(
    web: &Web,
    signed: Option<&'static str>,
    result: Option<Outcome>,
) -> Result<Response, PageError> {
    let tr = web.tr;
    let now = web.now();
    let (state, tenant) = (&web.state, &web.principal.tenant.id);
    let log_name = &state.config.audit.log_name;
    let head = state.store.audit_head(tenant).await?;
    let all = state.store.audit_checkpoints(tenant).await?;
    let key = shared::signer(&state.keyring, log_name)?.verifier_key();
    let mut parts = key.split('+');
    let key_name = parts.next().unwrap_or_default().to_string();
    let key_id = parts.next().unwrap_or_default().to_string();
    let latest = match all.last() {
        None => None,
        Some(cp) => {
            let verifier = shared::verifier(&state.keyring, log_name)?;
            let sound = match verifier.verify(&cp.note) {
                Ok(c) => {
                    c.origin == shared::origin(log_name, tenant)
                        && c.size == cp.size
                        && cp.size <= head.size
                        && state.store.audit_root(tenant, cp.size).await? == c.root
                }
                Err(_) => false,
            };
            Some(Latest {
                size: cp.size,
                at: tr.datetime(cp.at),
                age: ago(tr, cp.at, now),
                behind: head.size.saturating_sub(cp.size),
                sound,
            })
        }
    };
    let mut l = web.layout(tr.t("security.checkpoints.title"));
    // The result of a POST comes back to the status page (the language switch too).
    l.path = "/security/checkpoints".into();
    render(&StatusPage {
        l,
        size: head.size,
        count: all.len(),
        latest,
        key_name,
        key_id,
        log: shared::origin(log_name, tenant),
        signed,
        result,
    })
}

/// `GET /security/checkpoints`
pub async fn status(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let r = async {
        web.require(Audience::Security)?;
        let signed = match q.get("signed").map(String::as_str) {
            Some("1") => Some("security.checkpoints.signed"),
            Some("current") => Some("security.checkpoints.signed_current"),
            Some("empty") => Some("security.checkpoints.signed_empty"),
            _ => None,
        };
        page(&web, signed, None).await
    }
    .await;
    web.finish(r)
}

/// `POST /security/checkpoints/verify`: verifies the whole log now and shows the result.
pub async fn verify(web: Web, body: Bytes) -> Response {
    let r = async {
        web.check_csrf(&form(&body))?;
        web.require(Audience::Security)?;
        let state = &web.state;
        let log_name = &state.config.audit.log_name;
        let verifier = shared::verifier(&state.keyring, log_name)?;
        let check = shared::verify_tenant(
            &state.store,
            &verifier,
            log_name,
            &web.principal.tenant.id,
            |_| {},
        )
        .await?;
        if !check.is_ok() {
            tracing::error!(tenant = %web.principal.tenant.id, problem = %check, "audit log verification failed");
        }
        page(&web, None, Some(words(web.tr, &check))).await
    }
    .await;
    web.finish(r)
}

/// `POST /security/checkpoints/sign`: signs a checkpoint of the log as it is now.
pub async fn sign(web: Web, body: Bytes) -> Response {
    let r = async {
        web.check_csrf(&form(&body))?;
        web.require(Audience::Security)?;
        let tenant = &web.principal.tenant.id;
        let before = web.state.store.latest_audit_checkpoint(tenant).await?;
        let to = match shared::checkpoint_now(&web.state, tenant).await? {
            None => "empty",
            Some(cp) if before.as_ref().is_some_and(|b| b.size == cp.size) => "current",
            Some(_) => "1",
        };
        Ok(Redirect::to(&format!("/security/checkpoints?signed={to}")).into_response())
    }
    .await;
    web.finish(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::i18n::Lang;

    #[test]
    fn problems_are_told_in_words_with_the_entry() {
        let tr = Tr::new(Lang::Nb);
        let o = words(tr, &LogCheck::Problem(Problem::Changed { seq: 17 }));
        assert!(!o.ok);
        assert!(o.text.contains("17"), "{}", o.text);
        let o = words(
            tr,
            &LogCheck::HeadMismatch {
                head: 5,
                entries: 4,
            },
        );
        assert!(o.text.contains('5') && o.text.contains('4'));
        let o = words(
            Tr::new(Lang::En),
            &LogCheck::Ok(tillit_audit::verify::Verified {
                entries: 120,
                erased_payloads: 0,
                checkpoints: 3,
                root: [0; 32],
            }),
        );
        assert!(o.ok && o.text.contains("120") && o.detail.is_none());
    }
}
