//! `POST /fhir/r4/{type}/{id}/$withhold` and `.../$release`: a clinician withholds a record
//! from the patient (and relatives) under the law, with a stated reason, or releases it
//! again. Staff who may change the record may withhold it; every change is a security event.

use super::emergency::stated_reason;
use super::service::{Fhir, FhirError, FhirResult};
use super::{caller, fhir_json, parse_body};
use crate::authz::{Action, Actor};
use crate::session::{Client, security_event};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tillit_core::{PersonId, PersonKind};
use tillit_fhir::outcome::IssueType;
use tillit_store::{SecurityEventKind, Withheld};

async fn change(
    state: &AppState,
    client: &Client,
    headers: &HeaderMap,
    rt: &str,
    id: &str,
    body: &[u8],
    withhold: bool,
) -> FhirResult<Value> {
    let subject = caller(state, headers, client).await?;
    let user = &subject.principal.user;
    if user.kind != PersonKind::Staff {
        return Err(FhirError::new(
            403,
            IssueType::Forbidden,
            "only health personnel can withhold a record",
        ));
    }
    let fhir = Fhir::new(state, Actor::User(&subject));
    let current = fhir
        .current(rt, id)
        .await?
        .filter(|v| !v.meta.deleted)
        .ok_or_else(|| FhirError::not_found(rt, id))?;
    // Withholding changes what the patient sees of this record: it needs the right to
    // change the record itself.
    fhir.authorize_meta(Action::Update, &current.meta)?;
    let Some(patient) = current
        .meta
        .patient
        .as_deref()
        .and_then(|p| PersonId::parse(p).ok())
    else {
        return Err(FhirError::new(
            400,
            IssueType::NotSupported,
            format!("{rt}/{id} is not in a patient's record"),
        ));
    };
    let tenant = &subject.principal.tenant.id;
    if withhold {
        let body = parse_body(state, headers, body)?;
        let reason = stated_reason(&body, "state the legal reason for withholding")?;
        let w = Withheld {
            resource_type: rt.to_string(),
            id: id.to_string(),
            patient,
            reason,
            by: user.person.clone(),
            at: state.clock.now(),
        };
        state.store.set_withheld(tenant, rt, id, Some(&w)).await?;
    } else {
        state.store.set_withheld(tenant, rt, id, None).await?;
    }
    security_event(
        state,
        SecurityEventKind::RecordWithheld,
        true,
        &format!(
            "{} {rt}/{id}",
            if withhold { "withheld" } else { "released" }
        ),
        Some(user),
        None,
        client,
    )
    .await
    .map_err(|e| FhirError::new(503, IssueType::Transient, e.to_string()))?;
    Ok(json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "target", "valueReference": {"reference": format!("{rt}/{id}")}},
            {"name": "withheld", "valueBoolean": withhold}
        ]
    }))
}

pub async fn withhold(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((rt, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    respond(change(&state, &client, &headers, &rt, &id, &body, true).await)
}

pub async fn release(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((rt, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    respond(change(&state, &client, &headers, &rt, &id, &body, false).await)
}

fn respond(result: FhirResult<Value>) -> Response {
    match result {
        Ok(v) => fhir_json(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}
