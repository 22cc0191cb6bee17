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
use tillit_authz::{AccessRule, Engine, Knowledge, Party, TenantPolicies};
use tillit_core::{OrgUnitId, PersonId, PersonKind, Role, TenantId};
use tillit_fhir::category::Category;
use tillit_store::{AccessParty, Delegation, StoreError, active_roles};
use time::OffsetDateTime;

/// A logged-in caller with the facts about them that decisions need, loaded for one request.
#[derive(Clone)]
pub struct Subject {
    /// The tenant's policies in force for this request.
    pub policies: Arc<TenantPolicies>,
    pub principal: Principal,
    /// The colleague this caller acts on behalf of, if any: their relationships and roles
    /// apply (and, for registration only, no reading).
    pub on_behalf_of: Option<Delegation>,
    /// Roles in force for this request (the colleague's when acting on their behalf).
    pub roles: Vec<Role>,
    /// Care relationships, blocks, grants, exclusions and consents.
    pub knowledge: Arc<Knowledge>,
    /// Patients with an emergency window open for the caller now.
    pub emergency: HashSet<String>,
    /// The support grant a platform operator works under (the subject's tenant is then the
    /// grant's tenant).
    pub support: Option<tillit_store::SupportGrant>,
    /// Records withheld from this patient or relative: (type, id).
    pub withheld: Arc<HashSet<(String, String)>>,
    /// Records of the tenant whose processing their patient has restricted: (type, id).
    pub restricted: Arc<HashSet<(String, String)>>,
    /// The moment the facts were loaded; every decision of the request is made at it.
    pub at: OffsetDateTime,
    /// Decisions made in this request (see [`authorize`]).
    decisions: Arc<Mutex<HashMap<DecisionKey, Result<String, Denial>>>>,
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subject")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// Why a caller could not be loaded as a subject.
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Asked to act on behalf of someone without a current delegation.
    #[error("you have no current delegation to act on behalf of that person")]
    NoDelegation,
    /// Asked for support access without an operator account or a current grant.
    #[error("you have no current support access to that tenant; one of its admins must grant it")]
    NoSupportAccess,
}

/// The store's rule in the engine's words.
pub fn to_engine(r: tillit_store::AccessRule) -> tillit_authz::AccessRule {
    let rule = r.rule;
    AccessRule {
        kind: rule.kind,
        party: match rule.party {
            AccessParty::Person(p) => Party::Person(p.to_string()),
            AccessParty::OrgUnit(u) => Party::OrgUnit(u.to_string()),
            AccessParty::Everyone => Party::Everyone,
        },
        patient: rule.patient.to_string(),
        categories: rule.categories,
        period: rule.period,
    }
}

impl Subject {
    pub async fn load(state: &AppState, principal: &Principal) -> Result<Self, SubjectError> {
        Self::load_acting(state, principal, None).await
    }

    /// Loads the caller, acting on behalf of `on_behalf_of` when given (which needs a current
    /// delegation from that colleague).
    pub async fn load_acting(
        state: &AppState,
        principal: &Principal,
        on_behalf_of: Option<&PersonId>,
    ) -> Result<Self, SubjectError> {
        let policies = tenant_policies(state, &principal.tenant.id).await?;
        let user = &principal.user;
        let tenant = &user.tenant;
        let now = state.clock.now();
        if on_behalf_of.is_some() && user.kind != PersonKind::Staff {
            return Err(SubjectError::NoDelegation);
        }
        // What was loaded for this caller is reused while the tenant's access generation is
        // unchanged (every change bumps it in its own transaction) and no role assignment or
        // delegation has begun or ended since: the next request after a change loads afresh.
        let generation = state.store.access_generation(tenant).await?;
        let key = (tenant.clone(), user.person.clone(), on_behalf_of.cloned());
        let cached = state
            .access_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|c| c.generation == generation && c.valid_until.is_none_or(|v| now < v))
            .cloned();
        let loaded = match cached {
            Some(c) => c,
            None => {
                let fresh =
                    Arc::new(load_facts(state, principal, on_behalf_of, now, generation).await?);
                let mut cache = state.access_cache.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= ACCESS_CACHE_ENTRIES {
                    cache.clear();
                }
                cache.insert(key, fresh.clone());
                fresh
            }
        };
        // Emergency windows expire with time and are personal (never borrowed through a
        // delegation): loaded on every request.
        let emergency = if user.kind == PersonKind::Staff && loaded.delegation.is_none() {
            state
                .store
                .emergency_patients(tenant, &user.person, now)
                .await?
                .into_iter()
                .map(|p| p.to_string())
                .collect()
        } else {
            HashSet::new()
        };
        Ok(Self {
            policies,
            principal: principal.clone(),
            support: None,
            on_behalf_of: loaded.delegation.clone(),
            roles: loaded
                .roles
                .clone()
                .unwrap_or_else(|| principal.roles.clone()),
            knowledge: loaded.knowledge.clone(),
            emergency,
            withheld: loaded.withheld.clone(),
            restricted: loaded.restricted.clone(),
            at: now,
            decisions: Arc::default(),
        })
    }

    /// A platform operator reaching `tenant` under a support grant. Refused unless the caller
    /// is an operator (the role, in the operator tenant) with a grant active now; the subject
    /// then belongs to that tenant for this request, with no relationships of its own.
    pub async fn load_support(
        state: &AppState,
        principal: &Principal,
        tenant: &TenantId,
    ) -> Result<Self, SubjectError> {
        let now = state.clock.now();
        let operator_tenant = state.store.operator_tenant().await?;
        if !principal.roles.contains(&Role::Operator)
            || operator_tenant.as_ref() != Some(&principal.tenant.id)
        {
            return Err(SubjectError::NoSupportAccess);
        }
        let grant = state
            .store
            .support_grants(tenant)
            .await?
            .into_iter()
            .find(|g| g.operator == principal.user.id && g.active_at(now))
            .ok_or(SubjectError::NoSupportAccess)?;
        let target = state
            .store
            .tenant(tenant)
            .await?
            .ok_or(SubjectError::NoSupportAccess)?;
        let mut acting = principal.clone();
        acting.tenant = target;
        let knowledge = Knowledge::new(
            principal.user.person.as_str(),
            "operator",
            std::iter::empty(),
            std::iter::empty(),
        )
        .with_support_access(true);
        Ok(Self {
            policies: tenant_policies(state, tenant).await?,
            principal: acting,
            support: Some(grant),
            on_behalf_of: None,
            roles: vec![Role::Operator],
            knowledge: Arc::new(knowledge),
            emergency: HashSet::new(),
            withheld: Arc::default(),
            restricted: Arc::new(restricted_records(state, tenant).await?),
            at: now,
            decisions: Arc::default(),
        })
    }

    /// The kind the decision sees: operators are never "staff" of a tenant.
    fn kind(&self) -> &'static str {
        if self.roles.contains(&Role::Operator) {
            "operator"
        } else {
            self.principal.user.kind.code()
        }
    }
}

/// Callers' loaded facts kept by a server, at most this many (then started afresh).
const ACCESS_CACHE_ENTRIES: usize = 4096;

/// What [`Subject::load_acting`] loads from the store for a caller, reusable while the
/// tenant's access generation stays the same and until `valid_until`.
#[derive(Debug)]
pub struct LoadedFacts {
    generation: i64,
    /// The next moment a role assignment or delegation begins or ends.
    valid_until: Option<OffsetDateTime>,
    knowledge: Arc<Knowledge>,
    /// The colleague's roles when acting on their behalf.
    roles: Option<Vec<Role>>,
    delegation: Option<Delegation>,
    withheld: Arc<HashSet<(String, String)>>,
    restricted: Arc<HashSet<(String, String)>>,
}

/// The tenant's restricted records (GDPR art. 18), as (type, id): they concern every caller.
async fn restricted_records(
    state: &AppState,
    tenant: &TenantId,
) -> Result<HashSet<(String, String)>, StoreError> {
    Ok(state
        .store
        .restricted_records(tenant)
        .await?
        .into_iter()
        .map(|r| (r.resource_type, r.id))
        .collect())
}

/// Cache of [`LoadedFacts`] by (tenant, caller, on behalf of).
pub type AccessCache = Mutex<HashMap<(TenantId, PersonId, Option<PersonId>), Arc<LoadedFacts>>>;

fn next_boundary(
    periods: impl Iterator<Item = tillit_core::Period>,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    periods
        .flat_map(|p| [Some(p.start()), p.end()])
        .flatten()
        .filter(|t| *t > now)
        .min()
}

async fn load_facts(
    state: &AppState,
    principal: &Principal,
    on_behalf_of: Option<&PersonId>,
    now: OffsetDateTime,
    generation: i64,
) -> Result<LoadedFacts, SubjectError> {
    let user = &principal.user;
    let tenant = &user.tenant;
    let settings = state.store.tenant_settings(tenant).await?;
    let mut withheld = HashSet::new();
    let mut delegation = None;
    let mut roles = None;
    let mut valid_until = None;
    let knowledge = match user.kind {
        PersonKind::Staff => {
            // Whose relationships apply: the caller's, or the colleague's they act for.
            let person = match on_behalf_of {
                None => user.person.clone(),
                Some(colleague) => {
                    let all = state.store.delegations_of(tenant, &user.person).await?;
                    let d = all
                        .iter()
                        .find(|d| &d.on_behalf_of == colleague && d.period.contains(now))
                        .cloned()
                        .ok_or(SubjectError::NoDelegation)?;
                    valid_until = next_boundary(all.iter().map(|d| d.period), now);
                    delegation = Some(d);
                    colleague.clone()
                }
            };
            let assignments = state.store.role_assignments(tenant, &person).await?;
            if delegation.is_some() {
                roles = Some(active_roles(&assignments, now));
            }
            valid_until = valid_until
                .into_iter()
                .chain(next_boundary(assignments.iter().map(|a| a.period), now))
                .min();
            let units: Vec<OrgUnitId> = assignments
                .iter()
                .filter(|a| a.period.contains(now))
                .map(|a| a.org_unit.clone())
                .collect();
            let rules = state
                .store
                .access_rules_concerning(tenant, &person, &units)
                .await?;
            Knowledge::new(
                person.as_str(),
                "staff",
                units.iter().map(|u| u.to_string()),
                rules.into_iter().map(to_engine),
            )
            .with_emergency_overrides_block(settings.emergency_overrides_block)
            .with_registration_only(delegation.as_ref().is_some_and(|d| d.registration_only))
        }
        PersonKind::Relative | PersonKind::Patient => {
            let rules = if user.kind == PersonKind::Relative {
                state
                    .store
                    .access_rules_concerning(tenant, &user.person, &[])
                    .await?
            } else {
                Vec::new()
            };
            let mut patients: Vec<PersonId> =
                rules.iter().map(|r| r.rule.patient.clone()).collect();
            if user.kind == PersonKind::Patient {
                patients.push(user.person.clone());
            }
            patients.sort();
            patients.dedup();
            for p in &patients {
                for w in state.store.withheld_for_patient(tenant, p).await? {
                    withheld.insert((w.resource_type, w.id));
                }
            }
            Knowledge::new(
                user.person.as_str(),
                user.kind.code(),
                std::iter::empty(),
                rules.into_iter().map(to_engine),
            )
        }
    };
    Ok(LoadedFacts {
        generation,
        valid_until,
        knowledge: Arc::new(knowledge),
        roles,
        delegation,
        withheld: Arc::new(withheld),
        restricted: Arc::new(restricted_records(state, tenant).await?),
    })
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
    pub id: &'a str,
    pub patient: Option<&'a str>,
    pub category: Category,
}

/// Proof that a decision permitted an access. Only this module can make one.
#[derive(Debug)]
pub struct Permit {
    // Private: only this module can make a Permit.
    policy: String,
    /// The record's processing is restricted by its patient: the access is flagged.
    pub(crate) restricted: bool,
    /// For a search or history match: the audit event that counts the records returned.
    pub(crate) counted: Option<crate::audit::Key>,
}

impl Permit {
    /// The policy that permitted the access (for the audit event).
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// Whether the record's processing is restricted by its patient (the access is flagged
    /// in the audit log and raises an alert).
    pub fn restricted(&self) -> bool {
        self.restricted
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

/// Where the problem [`validate_policies`] refuses a text for is: a 1-based (line, column).
pub fn locate_policy_problem(text: &str) -> Option<(usize, usize)> {
    engine().and_then(|(e, _)| e.locate_problem(text))
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
    let decided = decide(actor, action, target);
    // Every decision, permitted or denied, becomes part of the request's audit events; a
    // user's decision that cannot be recorded is a refusal.
    if crate::audit::record(actor, action, target, &decided) {
        decided.map(|mut p| {
            if matches!(action, Action::Search | Action::History) {
                p.counted = Some(crate::audit::Key::search(action, target));
            }
            p
        })
    } else {
        Err(Denial {
            policy: "platform.audit-unavailable".into(),
            reason: "the audit log is not available for this request, so nothing is accessed"
                .into(),
            emergency_possible: false,
        })
    }
}

fn decide(actor: Actor<'_>, action: Action, target: &Target<'_>) -> Result<Permit, Denial> {
    let subject = match actor {
        Actor::System { tenant, .. } => {
            return if tenant == target.tenant {
                Ok(Permit {
                    policy: "platform.system".into(),
                    restricted: false,
                    counted: None,
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
    let withheld = subject
        .withheld
        .contains(&(target.resource_type.to_string(), target.id.to_string()));
    let restricted = subject
        .restricted
        .contains(&(target.resource_type.to_string(), target.id.to_string()));
    // Within one request the facts are fixed, so records alike in everything the decision
    // reads share it: a search over a patient's thousand Observations decides a few times,
    // not a thousand. The memo dies with the request, so no change is ever missed.
    let key = DecisionKey {
        action: action.code(),
        tenant: target.tenant.to_string(),
        resource_type: target.resource_type.to_string(),
        patient: target.patient.map(str::to_string),
        category: target.category.code(),
        withheld,
        restricted,
    };
    if let Some(known) = subject
        .decisions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
    {
        return known.clone().map(|policy| Permit {
            policy,
            restricted,
            counted: None,
        });
    }
    let decided = decide_user(subject, action, target, withheld, restricted);
    subject
        .decisions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            key,
            decided
                .as_ref()
                .map(|p| p.policy.clone())
                .map_err(Clone::clone),
        );
    decided
}

/// Everything a decision for a logged-in caller depends on besides the caller's facts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecisionKey {
    action: &'static str,
    tenant: String,
    resource_type: String,
    patient: Option<String>,
    category: &'static str,
    withheld: bool,
    restricted: bool,
}

fn decide_user(
    subject: &Subject,
    action: Action,
    target: &Target<'_>,
    withheld: bool,
    restricted: bool,
) -> Result<Permit, Denial> {
    let Some((engine, _)) = engine() else {
        return Err(Denial {
            policy: "platform.unavailable".into(),
            reason: "authorization is unavailable".into(),
            emergency_possible: false,
        });
    };
    let principal = tillit_authz::Principal {
        // Acting on behalf of a colleague, the decision is the colleague's (with the
        // delegation's limits); the audit records both.
        id: subject.knowledge.person().to_string(),
        tenant: subject.principal.tenant.id.to_string(),
        kind: subject.kind().to_string(),
        roles: subject.roles.iter().map(|r| r.code().to_string()).collect(),
    };
    let record = tillit_authz::Record {
        tenant: target.tenant.to_string(),
        resource_type: target.resource_type.to_string(),
        category: target.category.code().to_string(),
        withheld,
        restricted,
    };
    let emergency = target
        .patient
        .is_some_and(|p| subject.emergency.contains(p));
    let facts = subject.knowledge.facts_with_emergency(
        target.patient,
        target.category.code(),
        subject.at,
        emergency,
    );
    let policies = subject.policies.as_ref();
    let d = engine.decide(policies, &principal, action.engine(), &record, &facts);
    if d.permitted {
        return Ok(Permit {
            policy: d.policies.first().cloned().unwrap_or_default(),
            restricted,
            counted: None,
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
            id: "p",
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
