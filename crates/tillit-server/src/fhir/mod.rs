//! The FHIR R4 API under `/fhir/r4`: read, vread, create (also conditional), update with
//! `If-Match`, delete, history, search, batch and transaction bundles, and the
//! CapabilityStatement. Errors are OperationOutcomes.

pub mod access;
pub mod bundle;
pub mod capability;
pub mod emergency;
pub mod query;
pub mod rights;
pub mod service;
pub mod withhold;

use crate::authz::{Action, Actor};
use crate::session::{self, Client};
use crate::state::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use service::{Fhir, FhirError, FhirResult, format_instant, new_id};
use tillit_fhir::outcome::{IssueType, operation_outcome};
use tillit_fhir::resources;
use tillit_store::StoredVersion;

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/fhir/r4/metadata", get(metadata))
        .route("/fhir/r4", axum::routing::post(post_bundle))
        .route("/fhir/r4/", axum::routing::post(post_bundle))
        .route(
            "/fhir/r4/AuditEvent",
            get(crate::audit::fhir::search).post(crate::audit::fhir::refuse),
        )
        .route(
            "/fhir/r4/AuditEvent/_search",
            axum::routing::post(crate::audit::fhir::search_post),
        )
        .route(
            "/fhir/r4/AuditEvent/{id}",
            get(crate::audit::fhir::read)
                .put(crate::audit::fhir::refuse)
                .delete(crate::audit::fhir::refuse),
        )
        .route("/fhir/r4/{rt}", get(search_get).post(create))
        .route("/fhir/r4/{rt}/_search", axum::routing::post(search_post))
        .route("/fhir/r4/{rt}/_history", get(type_history))
        .route("/fhir/r4/{rt}/{id}", get(read).put(update).delete(delete))
        .route("/fhir/r4/{rt}/{id}/_history", get(instance_history))
        .route("/fhir/r4/{rt}/{id}/_history/{vid}", get(vread))
        .route(
            "/fhir/r4/Patient/{id}/$emergency-access",
            axum::routing::post(emergency::handler),
        )
        .route(
            "/fhir/r4/{rt}/{id}/$withhold",
            axum::routing::post(withhold::withhold),
        )
        .route(
            "/fhir/r4/{rt}/{id}/$release",
            axum::routing::post(withhold::release),
        )
        // The patient's rights (docs/design/patient-rights.md).
        .route(
            "/fhir/r4/{rt}/{id}/$request-correction",
            axum::routing::post(rights::request_correction_op),
        )
        .route(
            "/fhir/r4/Task/{id}/$accept-correction",
            axum::routing::post(rights::accept_correction_op),
        )
        .route(
            "/fhir/r4/Task/{id}/$reject-correction",
            axum::routing::post(rights::reject_correction_op),
        )
        .route(
            "/fhir/r4/{rt}/{id}/$restrict",
            axum::routing::post(rights::restrict_op),
        )
        .route(
            "/fhir/r4/{rt}/{id}/$lift-restriction",
            axum::routing::post(rights::lift_restriction_op),
        )
        .route(
            "/fhir/r4/Patient/{id}/$request-erasure",
            axum::routing::post(rights::request_erasure_op),
        )
        .route(
            "/fhir/r4/Patient/{id}/$erasure-plan",
            get(rights::erasure_plan_op),
        )
        .route(
            "/fhir/r4/Patient/{id}/$erase",
            axum::routing::post(rights::erase_op),
        )
        .route(
            "/fhir/r4/Task/{id}/$reject-erasure",
            axum::routing::post(rights::reject_erasure_op),
        )
        .route("/fhir/{*rest}", axum::routing::any(unknown))
}

/// Anything else under `/fhir`: an OperationOutcome, not the web app's page.
async fn unknown(uri: axum::http::Uri) -> Response {
    FhirError::new(
        404,
        IssueType::NotSupported,
        format!("{} is not a FHIR endpoint of this server", uri.path()),
    )
    .into_response()
}

/// A FHIR JSON response.
pub fn fhir_json(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
        bytes,
    )
        .into_response()
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = fhir_json(status, &self.outcome());
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tillit\""),
            );
        }
        r
    }
}

/// `https://host/fhir/r4`, from the request's authority.
pub fn base_url(headers: &HeaderMap, uri: Option<&axum::http::Uri>) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.and_then(|u| u.authority()).map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    format!("https://{host}/fhir/r4")
}

pub(crate) async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    client: &Client,
) -> FhirResult<crate::authz::Subject> {
    let principal = match session::principal(state, headers, client).await {
        Ok(Some(p)) => p,
        Ok(None) | Err(crate::error::AppError::Unauthenticated) => {
            return Err(FhirError::new(
                401,
                IssueType::Login,
                "authentication required: send Authorization: Bearer <token>",
            ));
        }
        Err(e) => {
            return Err(FhirError::new(
                e.status().as_u16(),
                IssueType::Security,
                e.to_string(),
            ));
        }
    };
    // Acting on behalf of a colleague: `X-On-Behalf-Of: Practitioner/<id>` (or the bare id).
    let on_behalf_of = match headers.get(ON_BEHALF_OF) {
        None => None,
        Some(v) => {
            let v = v.to_str().unwrap_or_default().trim();
            let id = v.strip_prefix("Practitioner/").unwrap_or(v);
            Some(tillit_core::PersonId::parse(id).map_err(|_| {
                FhirError::new(
                    400,
                    IssueType::Value,
                    format!("{ON_BEHALF_OF} must be Practitioner/<id> of a colleague"),
                )
            })?)
        }
    };
    // A platform operator working under a tenant admin's support grant names the tenant.
    if let Some(v) = headers.get(SUPPORT_TENANT) {
        let tenant = v
            .to_str()
            .ok()
            .and_then(|t| tillit_core::TenantId::parse(t.trim()).ok())
            .ok_or_else(|| {
                FhirError::new(
                    400,
                    IssueType::Value,
                    format!("{SUPPORT_TENANT} must be a tenant id"),
                )
            })?;
        let subject = crate::authz::Subject::load_support(state, &principal, &tenant).await;
        // Every use of support access is a security event of the tenant, granted or not.
        let detail = match &subject {
            Ok(s) => format!(
                "support access under grant {} to tenant {tenant}",
                s.support
                    .as_ref()
                    .map(|g| g.id.as_str())
                    .unwrap_or_default()
            ),
            Err(_) => format!("support access refused to tenant {tenant}"),
        };
        let mut user = principal.user.clone();
        user.tenant = tenant.clone();
        session::security_event(
            state,
            tillit_store::SecurityEventKind::SupportAccess,
            subject.is_ok(),
            &detail,
            Some(&user),
            None,
            client,
        )
        .await
        .map_err(|e| FhirError::new(503, IssueType::Transient, e.to_string()))?;
        return Ok(subject?);
    }
    // The facts decisions need, loaded fresh for every request: a revoked relationship or a
    // new block takes effect on the next one.
    Ok(crate::authz::Subject::load_acting(state, &principal, on_behalf_of.as_ref()).await?)
}

/// The request header a platform operator names the tenant of a support grant with.
pub const SUPPORT_TENANT: &str = "x-support-tenant";

/// The request header naming the colleague a staff member acts on behalf of.
pub const ON_BEHALF_OF: &str = "x-on-behalf-of";

fn check_type_known(rt: &str, write: bool) -> FhirResult<()> {
    if resources::is_served(rt) || (!write && resources::is_known(rt)) {
        return Ok(());
    }
    if resources::is_known(rt) {
        return Err(FhirError::new(
            405,
            IssueType::NotSupported,
            format!("{rt} is read-only here"),
        ));
    }
    Err(FhirError::new(
        404,
        IssueType::NotSupported,
        format!("resource type '{rt}' is not supported by this server"),
    ))
}

pub(crate) fn parse_body(state: &AppState, headers: &HeaderMap, body: &[u8]) -> FhirResult<Value> {
    let ct = crate::api::content_type(headers);
    if !matches!(ct.as_str(), "application/fhir+json" | "application/json") {
        return Err(FhirError::new(
            415,
            IssueType::NotSupported,
            format!("Content-Type must be application/fhir+json (or application/json), not '{ct}'"),
        ));
    }
    tillit_fhir::json::parse(body, &state.json_limits).map_err(|e| {
        let status = if matches!(e, tillit_fhir::json::JsonError::TooLarge { .. }) {
            413
        } else {
            400
        };
        FhirError::new(status, IssueType::Structure, e.to_string())
    })
}

fn version_headers(r: &mut Response, v: &StoredVersion, base: &str, location: bool) {
    let h = r.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&format!("W/\"{}\"", v.meta.version)) {
        h.insert(header::ETAG, etag);
    }
    let lm = v.meta.last_updated.to_offset(time::UtcOffset::UTC);
    let http_date = format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        &format!("{}", lm.weekday())[..3],
        lm.day(),
        &format!("{}", lm.month())[..3],
        lm.year(),
        lm.hour(),
        lm.minute(),
        lm.second()
    );
    if let Ok(v) = HeaderValue::from_str(&http_date) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if location
        && let Ok(loc) = HeaderValue::from_str(&format!(
            "{base}/{}/{}/_history/{}",
            v.meta.resource_type, v.meta.id, v.meta.version
        ))
    {
        h.insert(header::LOCATION, loc);
    }
}

fn prefer_minimal(headers: &HeaderMap) -> bool {
    headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("return=minimal"))
}

fn prefer_strict(headers: &HeaderMap) -> bool {
    headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("handling=strict"))
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

macro_rules! fhir_try {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return e.into_response(),
        }
    };
}

async fn metadata(headers: HeaderMap) -> Response {
    fhir_json(
        StatusCode::OK,
        &capability::statement(&base_url(&headers, None)),
    )
}

async fn read(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((rt, id)): Path<(String, String)>,
) -> Response {
    let p = fhir_try!(caller(&state, &headers, &client).await);
    fhir_try!(check_type_known(&rt, false));
    let fhir = Fhir::new(&state, Actor::User(&p));
    let (v, value) = fhir_try!(fhir.read(&rt, &id).await);
    let mut r = fhir_json(StatusCode::OK, &value);
    version_headers(&mut r, &v, &base_url(&headers, None), false);
    r
}

async fn vread(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((rt, id, vid)): Path<(String, String, String)>,
) -> Response {
    let p = fhir_try!(caller(&state, &headers, &client).await);
    fhir_try!(check_type_known(&rt, false));
    let version: i64 = fhir_try!(vid.parse().map_err(|_| FhirError::new(
        400,
        IssueType::Invalid,
        format!("'{vid}' is not a version number")
    )));
    let fhir = Fhir::new(&state, Actor::User(&p));
    let (v, value) = fhir_try!(fhir.vread(&rt, &id, version).await);
    let mut r = fhir_json(StatusCode::OK, &value);
    version_headers(&mut r, &v, &base_url(&headers, None), false);
    r
}

/// Creates `resource` as a new `rt` (or returns the match of a conditional create).
pub async fn create_resource(
    fhir: &Fhir<'_>,
    rt: &str,
    resource: Value,
    if_none_exist: Option<&str>,
) -> FhirResult<(StatusCode, StoredVersion, Value)> {
    if let Some(cond) = if_none_exist {
        let pairs = query_pairs(Some(cond.trim_start_matches('?')));
        if pairs.is_empty() {
            return Err(FhirError::new(
                400,
                IssueType::Invalid,
                "If-None-Exist is empty",
            ));
        }
        let req = query::parse(fhir, rt, &pairs, true)?;
        let found = fhir
            .state
            .store
            .search_resources(fhir.tenant(), &req.query)
            .await?;
        match found.as_slice() {
            [] => {}
            [one] => {
                let (v, value) = fhir.read(rt, &one.id).await?;
                return Ok((StatusCode::OK, v, value));
            }
            _ => {
                return Err(FhirError::new(
                    412,
                    IssueType::Duplicate,
                    format!("If-None-Exist matches {} resources", found.len()),
                ));
            }
        }
    }
    let id = new_id();
    let (write, value) = fhir
        .prepare(rt, &id, 1, None, resource, Action::Create)
        .await?;
    let stored = StoredVersion {
        meta: write.meta.clone(),
        key_scope: write.key_scope,
        body: None,
    };
    // The decisions behind this write are durable before it commits.
    crate::audit::flush(fhir.state).await?;
    fhir.state
        .store
        .write_resources(fhir.tenant(), vec![write])
        .await?;
    Ok((StatusCode::CREATED, stored, value))
}

async fn create(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(rt): Path<String>,
    body: Bytes,
) -> Response {
    let p = fhir_try!(caller(&state, &headers, &client).await);
    fhir_try!(check_type_known(&rt, true));
    let resource = fhir_try!(parse_body(&state, &headers, &body));
    let fhir = Fhir::new(&state, Actor::User(&p));
    let cond = headers.get("if-none-exist").and_then(|v| v.to_str().ok());
    let (status, v, value) = fhir_try!(create_resource(&fhir, &rt, resource, cond).await);
    let mut r = if prefer_minimal(&headers) {
        status.into_response()
    } else {
        fhir_json(status, &value)
    };
    version_headers(&mut r, &v, &base_url(&headers, None), true);
    r
}

/// Plans an update (or a create with a client-chosen id) of `rt/id` without writing it:
/// id checks, the `If-Match` version check, authorization on the record as it was and as it
/// will be, then validation and sealing. Returns whether it creates, the write and the
/// resource as stored. Used by PUT and by transactions alike.
pub async fn plan_update(
    fhir: &Fhir<'_>,
    rt: &str,
    id: &str,
    resource: Value,
    if_match: Option<i64>,
) -> FhirResult<(bool, tillit_store::ResourceWrite, Value)> {
    if let Some(body_id) = resource.get("id").and_then(Value::as_str)
        && body_id != id
    {
        return Err(FhirError::new(
            400,
            IssueType::Invalid,
            format!("the body's id '{body_id}' differs from the URL's '{id}'"),
        ));
    }
    if tillit_core::PersonId::parse(id).is_err() {
        return Err(FhirError::new(
            400,
            IssueType::Invalid,
            format!("'{id}' is not a valid id"),
        ));
    }
    let current = fhir.current(rt, id).await?;
    match (if_match, &current) {
        (Some(expected), Some(cur)) if expected != cur.meta.version => {
            return Err(FhirError::new(
                412,
                IssueType::Conflict,
                format!(
                    "{rt}/{id} is at version {}, not {expected}",
                    cur.meta.version
                ),
            ));
        }
        (Some(_), None) => {
            return Err(FhirError::new(
                412,
                IssueType::Conflict,
                format!("{rt}/{id} does not exist"),
            ));
        }
        _ => {}
    }
    if let Some(cur) = &current {
        // Changing a record needs the right to change it as it was, too.
        fhir.authorize_meta(Action::Update, &cur.meta)?;
    }
    let (version, expected, action) = match &current {
        Some(c) => (c.meta.version + 1, Some(c.meta.version), Action::Update),
        None => (1, None, Action::Create),
    };
    let (write, value) = fhir
        .prepare(rt, id, version, expected, resource, action)
        .await?;
    Ok((current.is_none(), write, value))
}

/// Updates (or creates with a client-chosen id) `rt/id`. `if_match` is the expected version.
pub async fn update_resource(
    fhir: &Fhir<'_>,
    rt: &str,
    id: &str,
    resource: Value,
    if_match: Option<i64>,
) -> FhirResult<(StatusCode, StoredVersion, Value)> {
    let (created, write, value) = plan_update(fhir, rt, id, resource, if_match).await?;
    let stored = StoredVersion {
        meta: write.meta.clone(),
        key_scope: write.key_scope,
        body: None,
    };
    // The decisions behind this write are durable before it commits.
    crate::audit::flush(fhir.state).await?;
    fhir.state
        .store
        .write_resources(fhir.tenant(), vec![write])
        .await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        stored,
        value,
    ))
}

fn if_match(headers: &HeaderMap) -> FhirResult<Option<i64>> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("");
    let digits = s.trim().trim_start_matches("W/").trim_matches('"');
    digits.parse().map(Some).map_err(|_| {
        FhirError::new(
            400,
            IssueType::Invalid,
            format!("If-Match '{s}' is not a version (W/\"3\")"),
        )
    })
}

async fn update(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((rt, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let p = fhir_try!(caller(&state, &headers, &client).await);
    fhir_try!(check_type_known(&rt, true));
    let resource = fhir_try!(parse_body(&state, &headers, &body));
    let expected = fhir_try!(if_match(&headers));
    let fhir = Fhir::new(&state, Actor::User(&p));
    let (status, v, value) = fhir_try!(update_resource(&fhir, &rt, &id, resource, expected).await);
    let mut r = if prefer_minimal(&headers) {
        status.into_response()
    } else {
        fhir_json(status, &value)
    };
    version_headers(
        &mut r,
        &v,
        &base_url(&headers, None),
        status == StatusCode::CREATED,
    );
    r
}

pub async fn delete_resource(fhir: &Fhir<'_>, rt: &str, id: &str) -> FhirResult<StatusCode> {
    let current = fhir
        .current(rt, id)
        .await?
        .ok_or_else(|| FhirError::not_found(rt, id))?;
    if current.meta.deleted {
        fhir.authorize_meta(Action::Delete, &current.meta)?;
        return Ok(StatusCode::NO_CONTENT);
    }
    let write = fhir.prepare_delete(&current)?;
    // The decisions behind this write are durable before it commits.
    crate::audit::flush(fhir.state).await?;
    fhir.state
        .store
        .write_resources(fhir.tenant(), vec![write])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((rt, id)): Path<(String, String)>,
) -> Response {
    let p = fhir_try!(caller(&state, &headers, &client).await);
    fhir_try!(check_type_known(&rt, true));
    let fhir = Fhir::new(&state, Actor::User(&p));
    fhir_try!(delete_resource(&fhir, &rt, &id).await).into_response()
}

async fn history(
    state: &AppState,
    p: &crate::authz::Subject,
    headers: &HeaderMap,
    rt: &str,
    id: Option<&str>,
    raw: Option<&str>,
) -> FhirResult<Value> {
    check_type_known(rt, false)?;
    let fhir = Fhir::new(state, Actor::User(p));
    let mut count = query::DEFAULT_COUNT;
    let mut since = None;
    for (k, v) in query_pairs(raw) {
        match k.as_str() {
            "_count" => {
                count = v
                    .parse::<u32>()
                    .map_err(|_| {
                        FhirError::new(400, IssueType::Invalid, "_count must be a number")
                    })?
                    .min(query::MAX_COUNT)
            }
            "_since" => {
                let r = tillit_fhir::dates::parse_range(&v).ok_or_else(|| {
                    FhirError::new(
                        400,
                        IssueType::Invalid,
                        format!("_since: '{v}' is not an instant"),
                    )
                })?;
                since =
                    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(r.low) * 1_000_000)
                        .ok();
            }
            _ => {}
        }
    }
    let versions = state
        .store
        .resource_history(fhir.tenant(), rt, id, since, count.max(1) * 4)
        .await?;
    if let (Some(id), true) = (id, versions.is_empty()) {
        return Err(FhirError::not_found(rt, id));
    }
    let base = base_url(headers, None);
    let mut entries = Vec::new();
    for v in versions {
        let Ok(permit) = fhir.authorize_meta(Action::History, &v.meta) else {
            continue;
        };
        if entries.len() as u32 >= count {
            break;
        }
        let url = format!("{}/{}", v.meta.resource_type, v.meta.id);
        let mut entry = json!({
            "fullUrl": format!("{base}/{url}"),
            "request": { "method": if v.meta.deleted { "DELETE" } else if v.meta.version == 1 { "POST" } else { "PUT" }, "url": if v.meta.version == 1 && !v.meta.deleted { v.meta.resource_type.clone() } else { url.clone() } },
            "response": { "status": if v.meta.deleted { "204" } else if v.meta.version == 1 { "201" } else { "200" }, "etag": format!("W/\"{}\"", v.meta.version), "lastModified": format_instant(v.meta.last_updated) },
        });
        if !v.meta.deleted
            && let Some(obj) = entry.as_object_mut()
        {
            obj.insert("resource".into(), fhir.open(&permit, &v)?);
        }
        entries.push(entry);
    }
    Ok(
        json!({ "resourceType": "Bundle", "type": "history", "total": entries.len(), "entry": entries }),
    )
}

async fn type_history(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(rt): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let p = fhir_try!(caller(&state, &headers, &client).await);
    fhir_json(
        StatusCode::OK,
        &fhir_try!(history(&state, &p, &headers, &rt, None, raw.as_deref()).await),
    )
}

async fn instance_history(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((rt, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let p = fhir_try!(caller(&state, &headers, &client).await);
    fhir_json(
        StatusCode::OK,
        &fhir_try!(history(&state, &p, &headers, &rt, Some(&id), raw.as_deref()).await),
    )
}

/// Runs a search and builds the searchset Bundle.
pub async fn search(
    fhir: &Fhir<'_>,
    rt: &str,
    params: &[(String, String)],
    strict: bool,
    base: &str,
) -> FhirResult<Value> {
    check_type_known(rt, false)?;
    let req = query::parse(fhir, rt, params, strict)?;
    let metas = fhir
        .state
        .store
        .search_resources(fhir.tenant(), &req.query)
        .await?;
    // Authorization decides per match; totals count only what the caller may see.
    let visible: Vec<_> = metas
        .into_iter()
        .filter_map(|m| fhir.authorize_meta(Action::Search, &m).ok().map(|p| (m, p)))
        .collect();
    let total = visible.len();
    let self_query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(req.echo.iter())
        .finish();
    let link = |offset: u32| {
        let mut pairs: Vec<(String, String)> = req
            .echo
            .iter()
            .filter(|(k, _)| k != "_offset")
            .cloned()
            .collect();
        pairs.push(("_offset".into(), offset.to_string()));
        let q = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter())
            .finish();
        format!("{base}/{rt}?{q}")
    };
    let mut links = vec![json!({"relation": "self", "url": format!("{base}/{rt}?{self_query}")})];
    let mut entries = Vec::new();
    if !req.summary_count {
        let start = usize::try_from(req.offset).unwrap_or(usize::MAX).min(total);
        let end = start
            .saturating_add(usize::try_from(req.count).unwrap_or(0))
            .min(total);
        let mut include_ids: Vec<String> = Vec::new();
        let page = visible.get(start..end).unwrap_or_default();
        let keys: Vec<(String, i64)> = page
            .iter()
            .map(|(m, _)| (m.id.clone(), m.version))
            .collect();
        let mut loaded: std::collections::HashMap<(String, i64), StoredVersion> = fhir
            .state
            .store
            .resource_versions(fhir.tenant(), rt, &keys)
            .await?
            .into_iter()
            .map(|v| ((v.meta.id.clone(), v.meta.version), v))
            .collect();
        for (meta, permit) in page {
            let Some(stored) = loaded.remove(&(meta.id.clone(), meta.version)) else {
                continue;
            };
            let resource = fhir.open(permit, &stored)?;
            if req.include.is_some()
                && let Some(p) = &meta.patient
                && !include_ids.contains(p)
            {
                include_ids.push(p.clone());
            }
            entries.push(json!({
                "fullUrl": format!("{base}/{}/{}", meta.resource_type, meta.id),
                "resource": resource,
                "search": { "mode": "match" },
            }));
        }
        for pid in include_ids {
            if rt == "Patient" {
                break;
            }
            if let Ok((_, patient)) = fhir.read("Patient", &pid).await {
                entries.push(json!({ "fullUrl": format!("{base}/Patient/{pid}"), "resource": patient, "search": { "mode": "include" } }));
            }
        }
        if end < total {
            links.push(
                json!({"relation": "next", "url": link(u32::try_from(end).unwrap_or(u32::MAX))}),
            );
        }
        if start > 0 {
            links.push(json!({"relation": "previous", "url": link(u32::try_from(start.saturating_sub(usize::try_from(req.count).unwrap_or(0))).unwrap_or(0))}));
        }
    }
    if !req.warnings.is_empty() {
        entries.push(json!({ "resource": operation_outcome(&req.warnings), "search": { "mode": "outcome" } }));
    }
    let mut bundle = json!({ "resourceType": "Bundle", "id": new_id(), "type": "searchset", "total": total, "link": links });
    if !entries.is_empty()
        && let Some(obj) = bundle.as_object_mut()
    {
        obj.insert("entry".into(), Value::Array(entries));
    }
    Ok(bundle)
}

async fn search_get(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(rt): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let p = fhir_try!(caller(&state, &headers, &client).await);
    let fhir = Fhir::new(&state, Actor::User(&p));
    let pairs = query_pairs(raw.as_deref());
    fhir_json(
        StatusCode::OK,
        &fhir_try!(
            search(
                &fhir,
                &rt,
                &pairs,
                prefer_strict(&headers),
                &base_url(&headers, None)
            )
            .await
        ),
    )
}

async fn search_post(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(rt): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let p = fhir_try!(caller(&state, &headers, &client).await);
    if crate::api::content_type(&headers) != "application/x-www-form-urlencoded" {
        return FhirError::new(
            415,
            IssueType::NotSupported,
            "POST _search takes application/x-www-form-urlencoded",
        )
        .into_response();
    }
    let fhir = Fhir::new(&state, Actor::User(&p));
    let mut pairs = query_pairs(raw.as_deref());
    pairs.extend(form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    fhir_json(
        StatusCode::OK,
        &fhir_try!(
            search(
                &fhir,
                &rt,
                &pairs,
                prefer_strict(&headers),
                &base_url(&headers, None)
            )
            .await
        ),
    )
}

async fn post_bundle(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = fhir_try!(caller(&state, &headers, &client).await);
    let value = fhir_try!(parse_body(&state, &headers, &body));
    let fhir = Fhir::new(&state, Actor::User(&p));
    let out = fhir_try!(bundle::process(&fhir, value, &base_url(&headers, None)).await);
    fhir_json(StatusCode::OK, &out)
}
