//! The one authorization hook. Every read and write of patient data, API or page, asks
//! [`authorize`] and gets a [`Permit`] or a [`Denial`]; the functions that open sealed data
//! take a `&Permit`, so a path that skips the question does not compile.
//!
//! Decisions are made by `tillit-authz` (Cedar): the platform baseline plus the tenant's
//! policies. The facts it needs (care relationships, the patient's own record, relatives'
//! links) are loaded per request into a [`Subject`], so a revoked relationship takes effect
//! on the very next request. A resource of another tenant is never even found (queries are
//! tenant-scoped), so it answers 404 exactly like one that does not exist.

use crate::session::Principal;
use crate::state::AppState;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use tillit_authz::{Engine, Facts, TenantPolicies};
use tillit_core::{OrgUnitId, PersonKind, TenantId};
use tillit_fhir::category::Category;
use tillit_store::{StoreError, active_patients};

/// Categories a relative sees by default: the practical, non-medical parts of the record.
/// (A patient's recorded consent with its own scope replaces this in the access-control work.)
pub const RELATIVE_DEFAULT_SCOPE: [&str; 2] = ["appointments", "messages"];

/// A logged-in caller with the facts about them that decisions need, loaded for one request.
#[derive(Clone)]
pub struct Subject {
    /// The tenant's policies in force for this request.
    pub policies: Arc<TenantPolicies>,
    pub principal: Principal,
    /// Patients with an active care relationship (personal or through an org unit).
    pub care_patients: HashSet<String>,
    /// Patients this relative is linked to.
    pub relative_patients: HashSet<String>,
    /// Patients with an emergency access window open for this staff member now.
    pub emergency_patients: HashSet<String>,
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subject")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl Subject {
    pub async fn load(state: &AppState, principal: &Principal) -> Result<Self, StoreError> {
        let policies = tenant_policies(state, &principal.tenant.id).await?;
        let user = &principal.user;
        let now = state.clock.now();
        let mut care_patients = HashSet::new();
        let mut relative_patients = HashSet::new();
        let mut emergency_patients = HashSet::new();
        match user.kind {
            PersonKind::Staff => {
                let assignments = state
                    .store
                    .role_assignments(&user.tenant, &user.person)
                    .await?;
                let units: Vec<OrgUnitId> = assignments
                    .iter()
                    .filter(|a| a.period.contains(now))
                    .map(|a| a.org_unit.clone())
                    .collect();
                let rels = state
                    .store
                    .care_relationships_for_staff(&user.tenant, &user.person, &units)
                    .await?;
                care_patients = active_patients(&rels, now)
                    .into_iter()
                    .map(|p| p.to_string())
                    .collect();
                emergency_patients = state
                    .store
                    .emergency_patients(&user.tenant, &user.person, now)
                    .await?
                    .into_iter()
                    .map(|p| p.to_string())
                    .collect();
            }
            PersonKind::Relative => {
                relative_patients = state
                    .store
                    .patients_of_relative(&user.tenant, &user.person)
                    .await?
                    .into_iter()
                    .map(|p| p.to_string())
                    .collect();
            }
            PersonKind::Patient => {}
        }
        Ok(Self {
            policies,
            principal: principal.clone(),
            care_patients,
            relative_patients,
            emergency_patients,
        })
    }
}

/// Who acts: a logged-in user, or Tillit itself on an operator's command (import, seeding).
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    User(&'a Subject),
    System {
        tenant: &'a TenantId,
        purpose: &'static str,
    },
}

impl Actor<'_> {
    pub fn tenant(&self) -> &TenantId {
        match self {
            Actor::User(s) => &s.principal.tenant.id,
            Actor::System { tenant, .. } => tenant,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Search,
    History,
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn code(self) -> &'static str {
        self.engine().code()
    }

    fn engine(self) -> tillit_authz::Action {
        match self {
            Action::Read => tillit_authz::Action::Read,
            Action::Search => tillit_authz::Action::Search,
            Action::History => tillit_authz::Action::History,
            Action::Create => tillit_authz::Action::Create,
            Action::Update => tillit_authz::Action::Update,
            Action::Delete => tillit_authz::Action::Delete,
        }
    }
}

/// What is being accessed, known without opening any sealed data.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub tenant: &'a TenantId,
    pub resource_type: &'a str,
    pub patient: Option<&'a str>,
    pub category: Category,
}

/// Proof that a decision permitted an access. Only this module can make one.
#[derive(Debug)]
pub struct Permit {
    // Private: only this module can make a Permit.
    policy: String,
}

impl Permit {
    /// The policy that permitted the access (for the audit event).
    pub fn policy(&self) -> &str {
        &self.policy
    }
}

/// A refusal with the reason to show the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub policy: String,
    pub reason: String,
    /// Opening emergency access would let the request through.
    pub emergency_possible: bool,
}

fn engine() -> Option<&'static (Engine, Arc<TenantPolicies>)> {
    static ENGINE: OnceLock<Option<(Engine, Arc<TenantPolicies>)>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let built = Engine::new().and_then(|e| {
                let p = e.compile(tillit_authz::DEFAULT_TENANT_POLICIES)?;
                Ok((e, Arc::new(p)))
            });
            match built {
                Ok(x) => Some(x),
                Err(e) => {
                    // Fail closed: without an engine every user request is denied.
                    tracing::error!(error = %e, "authorization engine failed to start");
                    None
                }
            }
        })
        .as_ref()
}

/// Validates a tenant's policy text (as `PUT /admin/policies` does before saving).
pub fn validate_policies(text: &str) -> Result<usize, String> {
    let (engine, _) = engine().ok_or_else(|| "authorization is unavailable".to_string())?;
    engine
        .compile(text)
        .map(|_| text.matches("@id(").count())
        .map_err(|e| e.to_string())
}

/// The policies in force for a tenant, read on every request (one small query) and compiled
/// only when the text changed: a saved change applies to the very next request.
async fn tenant_policies(
    state: &AppState,
    tenant: &TenantId,
) -> Result<Arc<TenantPolicies>, StoreError> {
    /// Tenant id → (the policy text compiled, the compiled set).
    type Compiled = HashMap<String, (String, Arc<TenantPolicies>)>;
    static CACHE: OnceLock<Mutex<Compiled>> = OnceLock::new();
    let Some((engine, defaults)) = engine() else {
        return Err(StoreError::Unavailable(
            "authorization engine unavailable".into(),
        ));
    };
    let Some(text) = state.store.tenant_policies(tenant).await? else {
        return Ok(defaults.clone());
    };
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some((cached, p)) = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(tenant.as_str())
        && *cached == text
    {
        return Ok(p.clone());
    }
    let compiled = match engine.compile(&text) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            // Saved text was valid when saved; if it no longer is (a schema change), deny
            // everything the baseline does not, rather than guess.
            tracing::error!(tenant = %tenant, error = %e, "stored tenant policies do not compile; denying");
            Arc::new(
                engine
                    .compile("")
                    .map_err(|e| StoreError::Invalid(e.to_string()))?,
            )
        }
    };
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(tenant.to_string(), (text, compiled.clone()));
    Ok(compiled)
}

pub fn authorize(actor: Actor<'_>, action: Action, target: &Target<'_>) -> Result<Permit, Denial> {
    let subject = match actor {
        Actor::System { tenant, .. } => {
            return if tenant == target.tenant {
                Ok(Permit {
                    policy: "platform.system".into(),
                })
            } else {
                Err(Denial {
                    policy: "platform.tenant-isolation".into(),
                    reason: "the record belongs to another tenant".into(),
                    emergency_possible: false,
                })
            };
        }
        Actor::User(s) => s,
    };
    let Some((engine, _)) = engine() else {
        return Err(Denial {
            policy: "platform.unavailable".into(),
            reason: "authorization is unavailable".into(),
            emergency_possible: false,
        });
    };
    let user = &subject.principal.user;
    let person = user.person.as_str();
    let principal = tillit_authz::Principal {
        id: person.to_string(),
        tenant: subject.principal.tenant.id.to_string(),
        kind: user.kind.code().to_string(),
        roles: subject
            .principal
            .roles
            .iter()
            .map(|r| r.code().to_string())
            .collect(),
    };
    let record = tillit_authz::Record {
        tenant: target.tenant.to_string(),
        resource_type: target.resource_type.to_string(),
        category: target.category.code().to_string(),
        withheld: false,
    };
    let patient = target.patient;
    let facts = Facts {
        care_relationship: patient.is_some_and(|p| subject.care_patients.contains(p)),
        own_record: user.kind == PersonKind::Patient && patient == Some(person),
        relative_categories: if patient.is_some_and(|p| subject.relative_patients.contains(p)) {
            RELATIVE_DEFAULT_SCOPE
                .iter()
                .map(|c| c.to_string())
                .collect()
        } else {
            Vec::new()
        },
        no_patient: patient.is_none(),
        emergency: patient.is_some_and(|p| subject.emergency_patients.contains(p)),
        // Tenant policy default: emergency access overrides a patient's block, and the
        // patient is told (their access log shows every emergency access).
        emergency_overrides_block: true,
        ..Facts::default()
    };
    let policies = subject.policies.as_ref();
    let d = engine.decide(policies, &principal, action.engine(), &record, &facts);
    if d.permitted {
        return Ok(Permit {
            policy: d.policies.first().cloned().unwrap_or_default(),
        });
    }
    let emergency_possible =
        engine.emergency_would_permit(policies, &principal, action.engine(), &record, &facts);
    Err(Denial {
        policy: d
            .policies
            .first()
            .cloned()
            .unwrap_or_else(|| "default-deny".into()),
        reason: d.reason,
        emergency_possible,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_actor_stays_inside_its_tenant() {
        let (a, b) = (TenantId::derived("a"), TenantId::derived("b"));
        let target = Target {
            tenant: &b,
            resource_type: "Patient",
            patient: Some("p"),
            category: Category::Demographics,
        };
        assert!(
            authorize(
                Actor::System {
                    tenant: &a,
                    purpose: "test"
                },
                Action::Read,
                &target
            )
            .is_err()
        );
        assert!(
            authorize(
                Actor::System {
                    tenant: &b,
                    purpose: "test"
                },
                Action::Read,
                &target
            )
            .is_ok()
        );
        assert!(engine().is_some(), "the shipped policies compile");
    }
}
