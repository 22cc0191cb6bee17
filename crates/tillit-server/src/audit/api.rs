//! The log's public face: the verifier key, each tenant's latest signed checkpoint, and
//! inclusion and consistency proofs. These carry hashes and sizes only, never an event, so
//! a patient's app or an outside witness can fetch them without an account.
//!
//! - `GET /audit/key`: the verifier key (signed-note text form).
//! - `GET /audit/{tenant}/checkpoint`: the latest checkpoint (signed note, `text/plain`).
//! - `POST /audit/{tenant}/checkpoint`: sign one now (a security officer or tenant admin of
//!   that tenant).
//! - `GET /audit/{tenant}/proof/inclusion?leaf=N&size=M`
//! - `GET /audit/{tenant}/proof/consistency?from=M&to=N`

use super::checkpoints::{self, CheckpointFailure};
use crate::error::{AppError, AppResult};
use crate::session::Principal;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::json;
use tillit_core::{Role, TenantId};

impl From<CheckpointFailure> for AppError {
    fn from(e: CheckpointFailure) -> Self {
        match e {
            CheckpointFailure::Store(s) => s.into(),
            CheckpointFailure::Key(k) => AppError::Unavailable(k),
        }
    }
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// A tenant that exists; anything else answers 404 like an unknown path.
async fn tenant(state: &AppState, raw: &str) -> AppResult<TenantId> {
    let id = TenantId::parse(raw).map_err(|_| AppError::NotFound)?;
    state.store.tenant(&id).await?.ok_or(AppError::NotFound)?;
    Ok(id)
}

pub async fn key(State(state): State<AppState>) -> AppResult<Response> {
    let s = checkpoints::signer(&state.keyring, &state.config.audit.log_name)?;
    Ok(text(format!("{}\n", s.verifier_key())))
}

pub async fn checkpoint(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> AppResult<Response> {
    let t = tenant(&state, &raw).await?;
    let cp = match state.store.latest_audit_checkpoint(&t).await? {
        Some(cp) if cp.size == state.store.audit_head(&t).await?.size => Some(cp),
        // Behind the log (or none yet): sign one, so the answer always covers the log.
        _ => checkpoints::checkpoint_now(&state, &t).await?,
    };
    match cp {
        Some(cp) => Ok(text(cp.note)),
        None => Err(AppError::BadRequest(
            "this tenant's audit log is still empty; there is no checkpoint yet".into(),
        )),
    }
}

pub async fn sign_now(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    p: Principal,
) -> AppResult<Response> {
    p.check_csrf(headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))?;
    let t = tenant(&state, &raw).await?;
    if p.tenant.id != t {
        return Err(AppError::NotFound);
    }
    if !p
        .roles
        .iter()
        .any(|r| matches!(r, Role::SecurityOfficer | Role::TenantAdmin))
    {
        return Err(AppError::Forbidden(
            "signing a checkpoint needs the role security_officer or tenant_admin".into(),
        ));
    }
    match checkpoints::checkpoint_now(&state, &t).await? {
        Some(cp) => Ok(text(cp.note)),
        None => Err(AppError::BadRequest(
            "this tenant's audit log is still empty; there is no checkpoint yet".into(),
        )),
    }
}

#[derive(Debug, Deserialize)]
pub struct InclusionQuery {
    leaf: Option<String>,
    size: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ConsistencyQuery {
    from: Option<String>,
    to: Option<String>,
}

fn number(name: &str, v: Option<&str>) -> AppResult<u64> {
    let v = v.ok_or_else(|| AppError::BadRequest(format!("the parameter {name} is required")))?;
    v.parse::<u64>().map_err(|_| {
        AppError::BadRequest(format!(
            "the parameter {name} must be a whole number, not {v:?}"
        ))
    })
}

fn hashes(h: &[tillit_audit::Hash]) -> Vec<String> {
    h.iter().map(|x| B64.encode(x)).collect()
}

pub async fn inclusion(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<InclusionQuery>,
) -> AppResult<Response> {
    let t = tenant(&state, &raw).await?;
    let leaf = number("leaf", q.leaf.as_deref())?;
    let size = number("size", q.size.as_deref())?;
    let have = state.store.audit_head(&t).await?.size;
    if size == 0 || size > have || leaf >= size {
        return Err(AppError::BadRequest(format!(
            "need leaf < size <= {have} (the log's size now); got leaf={leaf}, size={size}"
        )));
    }
    let proof = state.store.audit_inclusion_proof(&t, leaf, size).await?;
    let (hash, _) = state
        .store
        .audit_event(&t, leaf)
        .await?
        .ok_or(AppError::NotFound)?;
    let leaf_hash = tillit_audit::verify::entry_leaf(t.as_str(), leaf, &hash);
    let root = state.store.audit_root(&t, size).await?;
    Ok(Json(json!({
        "leaf_index": leaf,
        "tree_size": size,
        "leaf_hash": B64.encode(leaf_hash),
        "payload_hash": B64.encode(hash),
        "root_hash": B64.encode(root),
        "hashes": hashes(&proof),
    }))
    .into_response())
}

pub async fn consistency(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<ConsistencyQuery>,
) -> AppResult<Response> {
    let t = tenant(&state, &raw).await?;
    let from = number("from", q.from.as_deref())?;
    let to = number("to", q.to.as_deref())?;
    let have = state.store.audit_head(&t).await?.size;
    if from > to || to > have {
        return Err(AppError::BadRequest(format!(
            "need from <= to <= {have} (the log's size now); got from={from}, to={to}"
        )));
    }
    let proof = state.store.audit_consistency_proof(&t, from, to).await?;
    Ok(Json(json!({
        "from": from,
        "to": to,
        "from_root_hash": B64.encode(state.store.audit_root(&t, from).await?),
        "to_root_hash": B64.encode(state.store.audit_root(&t, to).await?),
        "hashes": hashes(&proof),
    }))
    .into_response())
}
