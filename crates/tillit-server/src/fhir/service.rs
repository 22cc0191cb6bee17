//! The FHIR operations, independent of HTTP: used by the API, by bundles and by import.
//! Every path to patient data runs authorize → load → open, in that order.

use crate::authz::{self, Action, Actor, Permit, Target};
use crate::state::AppState;
use serde_json::{Value, json};
use tillit_core::TenantId;
use tillit_fhir::category::{self, Category};
use tillit_fhir::outcome::{Issue, IssueType, operation_outcome};
use tillit_fhir::search::{self, IndexValue};
use tillit_store::{IndexRow, KeyScope, ResourceMeta, ResourceWrite, StoreError, StoredVersion};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A FHIR failure: an HTTP status and the issues for its OperationOutcome.
#[derive(Debug, Clone)]
pub struct FhirError {
    pub status: u16,
    pub issues: Vec<Issue>,
}

impl FhirError {
    pub fn new(status: u16, code: IssueType, msg: impl Into<String>) -> Self {
        Self {
            status,
            issues: vec![Issue::error(code, msg)],
        }
    }

    pub fn invalid(issues: Vec<Issue>) -> Self {
        Self {
            status: 400,
            issues,
        }
    }

    pub fn not_found(rt: &str, id: &str) -> Self {
        Self::new(404, IssueType::NotFound, format!("{rt}/{id} is not known"))
    }

    pub fn outcome(&self) -> Value {
        operation_outcome(&self.issues)
    }

    pub fn message(&self) -> String {
        self.issues
            .iter()
            .map(|i| i.diagnostics.clone())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl From<StoreError> for FhirError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => FhirError::new(409, IssueType::Conflict, m),
            StoreError::NotFound(what) => {
                FhirError::new(404, IssueType::NotFound, format!("{what} not found"))
            }
            other => {
                tracing::error!(error = %other, "storage failed");
                FhirError::new(
                    503,
                    IssueType::Transient,
                    "storage is unavailable; try again",
                )
            }
        }
    }
}

impl From<crate::audit::AuditUnavailable> for FhirError {
    fn from(e: crate::audit::AuditUnavailable) -> Self {
        tracing::error!(error = %e, "audit log unavailable");
        FhirError::new(
            503,
            IssueType::Transient,
            "the audit log cannot be written, so nothing was done; try again later",
        )
    }
}

impl From<authz::SubjectError> for FhirError {
    fn from(e: authz::SubjectError) -> Self {
        match e {
            authz::SubjectError::Store(e) => e.into(),
            authz::SubjectError::NoDelegation | authz::SubjectError::NoSupportAccess => {
                FhirError::new(403, IssueType::Forbidden, e.to_string())
            }
        }
    }
}

impl From<authz::Denial> for FhirError {
    fn from(d: authz::Denial) -> Self {
        let mut e = FhirError::new(
            403,
            IssueType::Forbidden,
            format!("{} (policy {})", capitalise(&d.reason), d.policy),
        );
        if d.emergency_possible {
            e.issues.push(Issue::warning(
                IssueType::Informational,
                "You can open emergency access to this patient's record with a stated reason; it is time-limited, logged, reviewed and shown to the patient.",
            ));
        }
        e
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

pub type FhirResult<T> = Result<T, FhirError>;

pub struct Fhir<'a> {
    pub state: &'a AppState,
    pub actor: Actor<'a>,
    /// The tenant's category rules in front of the defaults, loaded on first write.
    rules: tokio::sync::OnceCell<Vec<category::Rule>>,
}

/// AAD context of a sealed version: binds type, id and version (tenant and patient are
/// bound by the keyring).
fn seal_context(rt: &str, id: &str, version: i64) -> String {
    format!("{rt}/{id}/_history/{version}")
}

pub fn format_instant(t: OffsetDateTime) -> String {
    let t = t
        .replace_nanosecond((t.nanosecond() / 1_000_000) * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// The category and patient of a stored version, as an authorization target.
fn target_of<'m>(tenant: &'m TenantId, meta: &'m ResourceMeta) -> Target<'m> {
    Target {
        tenant,
        resource_type: &meta.resource_type,
        id: &meta.id,
        patient: meta.patient.as_deref(),
        category: Category::parse(&meta.category).unwrap_or(Category::ClinicalNotes),
    }
}

impl<'a> Fhir<'a> {
    pub fn new(state: &'a AppState, actor: Actor<'a>) -> Self {
        Self {
            state,
            actor,
            rules: tokio::sync::OnceCell::new(),
        }
    }

    /// The category rules in force for this tenant: its own first, then the defaults.
    pub async fn rules(&self) -> FhirResult<&[category::Rule]> {
        let rules = self
            .rules
            .get_or_try_init(|| async {
                let mut rules: Vec<category::Rule> = self
                    .state
                    .store
                    .category_rules(self.tenant())
                    .await?
                    .into_iter()
                    .filter_map(|r| {
                        Some(category::Rule {
                            category: Category::parse(&r.category)?,
                            resource_type: r.resource_type,
                            system: r.system,
                            code_prefix: r.code_prefix,
                        })
                    })
                    .collect();
                rules.extend(self.state.category_rules.iter().cloned());
                Ok::<_, FhirError>(rules)
            })
            .await?;
        Ok(rules)
    }

    pub fn tenant(&self) -> &TenantId {
        self.actor.tenant()
    }

    fn now(&self) -> OffsetDateTime {
        self.state.clock.now()
    }

    pub fn authorize_meta(
        &self,
        action: Action,
        meta: &ResourceMeta,
    ) -> Result<Permit, authz::Denial> {
        authz::authorize(self.actor, action, &target_of(self.tenant(), meta))
    }

    /// Opens a sealed version. Needs the permit for it.
    pub fn open(&self, permit: &Permit, v: &StoredVersion) -> FhirResult<Value> {
        crate::audit::opened(permit);
        let Some(body) = &v.body else {
            return Err(FhirError::new(
                410,
                IssueType::Deleted,
                format!("{}/{} was deleted", v.meta.resource_type, v.meta.id),
            ));
        };
        let ctx = seal_context(&v.meta.resource_type, &v.meta.id, v.meta.version);
        let tenant = self.tenant().as_str();
        let plain = match (v.key_scope, &v.meta.patient) {
            (KeyScope::Patient, Some(p)) => {
                self.state.keyring.open_for_patient(tenant, p, &ctx, body)
            }
            _ => self.state.keyring.open_for_tenant(Some(tenant), &ctx, body),
        }
        .map_err(|e| {
            // A destroyed patient key (erasure) or tampering: the data is gone, not an error
            // of the caller's.
            tracing::warn!(resource = %ctx, error = %e, "cannot open a stored version");
            FhirError::new(
                410,
                IssueType::Deleted,
                "this record's data has been erased or cannot be read",
            )
        })?;
        serde_json::from_slice(&plain)
            .map_err(|_| FhirError::new(500, IssueType::Exception, "stored data is corrupt"))
    }

    fn hashes(&self, system: &str, code: &str) -> FhirResult<([u8; 32], [u8; 32])> {
        let t = self.tenant().as_str();
        let kr = &self.state.keyring;
        let full = kr.blind_index(t, "token", &format!("{system}|{code}"));
        let only = kr.blind_index(t, "token-code", code);
        match (full, only) {
            (Ok(f), Ok(c)) => Ok((f, c)),
            _ => Err(FhirError::new(
                503,
                IssueType::Transient,
                "the keyring is unavailable",
            )),
        }
    }

    pub fn token_full(&self, system: &str, code: &str) -> FhirResult<[u8; 32]> {
        self.hashes(system, code).map(|h| h.0)
    }

    pub fn token_code(&self, code: &str) -> FhirResult<[u8; 32]> {
        self.hashes("", code).map(|h| h.1)
    }

    fn index_rows(&self, resource: &Value) -> FhirResult<Vec<IndexRow>> {
        let mut rows = Vec::new();
        for e in search::extract(resource) {
            rows.push(match e.value {
                IndexValue::Token { system, code } => {
                    let (full, code) = self.hashes(&system, &code)?;
                    IndexRow::Token {
                        param: e.param.to_string(),
                        full,
                        code,
                    }
                }
                IndexValue::Date(r) => IndexRow::Date {
                    param: e.param.to_string(),
                    low: r.low,
                    high: r.high,
                },
                IndexValue::Reference { target_type, id } => IndexRow::Reference {
                    param: e.param.to_string(),
                    target_type,
                    target_id: id,
                },
            });
        }
        Ok(rows)
    }

    /// Validates `resource` as a `rt` and prepares its next version: server-assigned meta,
    /// category label, authorization, sealing and index rows. Nothing is written.
    pub async fn prepare(
        &self,
        rt: &str,
        id: &str,
        version: i64,
        expected: Option<i64>,
        mut resource: Value,
        action: Action,
    ) -> FhirResult<(ResourceWrite, Value)> {
        check_type(&resource, rt)?;
        if let Some(obj) = resource.as_object_mut() {
            obj.insert("id".into(), json!(id));
        }
        tillit_fhir::validate::validate(&resource).map_err(FhirError::invalid)?;
        let now = self.now();
        let category = category::categorize(&resource, self.rules().await?);
        category::label(&mut resource, category);
        if let Some(meta) = resource.get_mut("meta").and_then(Value::as_object_mut) {
            meta.insert("versionId".into(), json!(version.to_string()));
            meta.insert("lastUpdated".into(), json!(format_instant(now)));
        }
        let patient = search::patient_of(&resource);
        let meta = ResourceMeta {
            resource_type: rt.to_string(),
            id: id.to_string(),
            version,
            patient: patient.clone(),
            category: category.code().to_string(),
            last_updated: now,
            deleted: false,
        };
        self.authorize_meta(action, &meta)?;
        let bytes = zeroize::Zeroizing::new(
            serde_json::to_vec(&resource)
                .map_err(|_| FhirError::new(500, IssueType::Exception, "cannot encode"))?,
        );
        let ctx = seal_context(rt, id, version);
        let tenant = self.tenant().as_str();
        let (key_scope, sealed) = match &patient {
            Some(p) => match self.state.keyring.seal_for_patient(tenant, p, &ctx, &bytes) {
                // The patient's erasable data was erased and their key destroyed: what is
                // kept, and written since, is sealed under the tenant key (never under a new
                // key of theirs; docs/design/patient-rights.md).
                Err(tillit_crypto::KeyError::Erased(_)) => (
                    KeyScope::Tenant,
                    self.state
                        .keyring
                        .seal_for_tenant(Some(tenant), &ctx, &bytes),
                ),
                Err(tillit_crypto::KeyError::Erasing(_)) => {
                    return Err(FhirError::new(
                        409,
                        IssueType::Conflict,
                        "an erasure of this patient's data is in progress; try again in a moment",
                    ));
                }
                sealed => (KeyScope::Patient, sealed),
            },
            None => (
                KeyScope::Tenant,
                self.state
                    .keyring
                    .seal_for_tenant(Some(tenant), &ctx, &bytes),
            ),
        };
        let body = sealed
            .map_err(|_| FhirError::new(503, IssueType::Transient, "the keyring is unavailable"))?;
        let index = self.index_rows(&resource)?;
        let derived = super::access::derive(rt, Some(&resource), now);
        Ok((
            ResourceWrite {
                meta,
                expected,
                key_scope,
                body: Some(body),
                index,
                derived,
            },
            resource,
        ))
    }

    /// A deletion marker as the next version of a current resource.
    pub fn prepare_delete(&self, current: &StoredVersion) -> FhirResult<ResourceWrite> {
        self.authorize_meta(Action::Delete, &current.meta)?;
        let mut meta = current.meta.clone();
        meta.version += 1;
        meta.deleted = true;
        meta.last_updated = self.now();
        Ok(ResourceWrite {
            meta,
            expected: Some(current.meta.version),
            key_scope: current.key_scope,
            body: None,
            index: Vec::new(),
            derived: super::access::derive(&current.meta.resource_type, None, self.now()),
        })
    }

    pub async fn current(&self, rt: &str, id: &str) -> FhirResult<Option<StoredVersion>> {
        Ok(self
            .state
            .store
            .current_resource(self.tenant(), rt, id)
            .await?)
    }

    /// Read: authorize on what is known without opening, then open.
    pub async fn read(&self, rt: &str, id: &str) -> FhirResult<(StoredVersion, Value)> {
        let v = self
            .current(rt, id)
            .await?
            .ok_or_else(|| FhirError::not_found(rt, id))?;
        let permit = self.authorize_meta(Action::Read, &v.meta)?;
        if v.meta.deleted {
            return Err(FhirError::new(
                410,
                IssueType::Deleted,
                format!("{rt}/{id} was deleted"),
            ));
        }
        let value = self.open(&permit, &v)?;
        Ok((v, value))
    }

    pub async fn vread(
        &self,
        rt: &str,
        id: &str,
        version: i64,
    ) -> FhirResult<(StoredVersion, Value)> {
        let v = self
            .state
            .store
            .resource_version(self.tenant(), rt, id, version)
            .await?
            .ok_or_else(|| {
                FhirError::new(
                    404,
                    IssueType::NotFound,
                    format!("{rt}/{id} has no version {version}"),
                )
            })?;
        let permit = self.authorize_meta(Action::Read, &v.meta)?;
        let value = self.open(&permit, &v)?;
        Ok((v, value))
    }
}

pub fn check_type(resource: &Value, rt: &str) -> FhirResult<()> {
    match resource.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == rt => Ok(()),
        Some(t) => Err(FhirError::new(
            400,
            IssueType::Invalid,
            format!("the body is a {t}, but the URL is for {rt}"),
        )),
        None => Err(FhirError::new(
            400,
            IssueType::Structure,
            "the body has no resourceType",
        )),
    }
}

/// A fresh server-assigned id.
pub fn new_id() -> String {
    tillit_core::PersonId::random().to_string()
}
