//! Tillit's authorization decisions, in Cedar.
//!
//! Pure: the caller hands in who asks, what for, the record's metadata and the facts that need
//! the record system (care relationship, blocks, emergency access, grants). The platform
//! baseline (`policies/platform.cedar`) cannot be changed by tenants; each tenant has its own
//! editable policies (`policies/tenant-default.cedar` until it writes its own), validated
//! against the schema before use. Deny is the default and forbid beats permit.
//! Every decision names the policies that determined it and a reason a person can read.

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode,
    Validator,
};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

mod facts;
pub use facts::*;

pub const SCHEMA: &str = include_str!("../policies/schema.cedarschema");
pub const PLATFORM_POLICIES: &str = include_str!("../policies/platform.cedar");
pub const DEFAULT_TENANT_POLICIES: &str = include_str!("../policies/tenant-default.cedar");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    #[error("policy text does not parse: {0}")]
    Parse(String),
    #[error("policies do not match the schema: {0}")]
    Invalid(String),
    #[error("policy {0}: every policy needs a unique @id(\"...\") annotation")]
    MissingId(String),
    #[error("policy {0}: ids starting with \"platform.\" are reserved for the platform baseline")]
    ReservedId(String),
    #[error("internal: {0}")]
    Internal(String),
}

/// What is being done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    Search,
    History,
    Create,
    Update,
    Delete,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Read,
        Action::Search,
        Action::History,
        Action::Create,
        Action::Update,
        Action::Delete,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Search => "search",
            Action::History => "history",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }

    pub fn is_read(self) -> bool {
        matches!(self, Action::Read | Action::Search | Action::History)
    }
}

/// Who asks.
#[derive(Debug, Clone)]
pub struct Principal {
    pub id: String,
    pub tenant: String,
    /// `staff`, `patient`, `relative` or `operator`.
    pub kind: String,
    /// Active role codes (`physician`, `nurse`, ...).
    pub roles: Vec<String>,
}

/// The record, as known without opening it.
#[derive(Debug, Clone)]
pub struct Record {
    pub tenant: String,
    pub resource_type: String,
    pub category: String,
    pub withheld: bool,
    /// The patient has restricted its processing (GDPR art. 18).
    pub restricted: bool,
}

/// Facts computed from the record system for this principal and the record's patient.
/// Everything defaults to "no": a fact nobody established never grants access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub care_relationship: bool,
    pub own_record: bool,
    pub relative_categories: Vec<String>,
    pub emergency: bool,
    pub emergency_overrides_block: bool,
    pub blocked: bool,
    pub excluded: bool,
    pub granted: bool,
    pub support_access: bool,
    pub no_patient: bool,
    /// The caller acts on behalf of a colleague for registration only (no reading).
    pub registration_only: bool,
}

/// The outcome, with what determined it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub permitted: bool,
    /// Ids of the policies that determined the decision (empty: nothing permitted it).
    pub policies: Vec<String>,
    /// A sentence for the person asking (and for the audit log).
    pub reason: String,
}

/// A compiled policy set for one tenant: the platform baseline plus the tenant's policies.
pub struct TenantPolicies {
    set: PolicySet,
    reasons: HashMap<String, String>,
}

pub struct Engine {
    schema: Schema,
    authorizer: Authorizer,
    platform: Vec<Policy>,
}

fn parse_policies(
    text: &str,
    allow_platform: bool,
) -> Result<(Vec<Policy>, HashMap<String, String>), AuthzError> {
    let parsed = PolicySet::from_str(text).map_err(|e| AuthzError::Parse(e.to_string()))?;
    let mut out = Vec::new();
    let mut reasons = HashMap::new();
    let mut seen = HashSet::new();
    for p in parsed.policies() {
        let id = p
            .annotation("id")
            .map(str::to_string)
            .ok_or_else(|| AuthzError::MissingId(p.id().to_string()))?;
        if !allow_platform && id.starts_with("platform.") {
            return Err(AuthzError::ReservedId(id));
        }
        if !seen.insert(id.clone()) {
            return Err(AuthzError::Parse(format!("the id \"{id}\" is used twice")));
        }
        if let Some(r) = p.annotation("reason") {
            reasons.insert(id.clone(), r.to_string());
        }
        out.push(p.new_id(PolicyId::new(id)));
    }
    Ok((out, reasons))
}

fn uid(ty: &str, id: &str) -> Result<EntityUid, AuthzError> {
    let t = EntityTypeName::from_str(ty).map_err(|e| AuthzError::Internal(e.to_string()))?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

fn s(v: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(v.to_string())
}

impl Engine {
    pub fn new() -> Result<Self, AuthzError> {
        let (schema, _) =
            Schema::from_cedarschema_str(SCHEMA).map_err(|e| AuthzError::Invalid(e.to_string()))?;
        let (platform, _) = parse_policies(PLATFORM_POLICIES, true)?;
        let engine = Self {
            schema,
            authorizer: Authorizer::new(),
            platform,
        };
        // The shipped defaults must always compile.
        engine.compile(DEFAULT_TENANT_POLICIES)?;
        Ok(engine)
    }

    /// Validates a tenant's policies against the schema and combines them with the baseline.
    pub fn compile(&self, tenant_text: &str) -> Result<TenantPolicies, AuthzError> {
        let (tenant, mut reasons) = parse_policies(tenant_text, false)?;
        let (_, platform_reasons) = parse_policies(PLATFORM_POLICIES, true)?;
        reasons.extend(platform_reasons);
        let mut set = PolicySet::new();
        for p in self.platform.iter().cloned().chain(tenant) {
            set.add(p).map_err(|e| AuthzError::Parse(e.to_string()))?;
        }
        let result = Validator::new(self.schema.clone()).validate(&set, ValidationMode::Strict);
        if !result.validation_passed() {
            let msgs: Vec<String> = result.validation_errors().map(|e| e.to_string()).collect();
            return Err(AuthzError::Invalid(msgs.join("; ")));
        }
        Ok(TenantPolicies { set, reasons })
    }

    /// Where the first problem in a tenant's policy text is, as a 1-based (line, column): the
    /// parse error, else the first schema error, that [`Engine::compile`] refuses the text
    /// for. `None` when the text has no problem with a position.
    pub fn locate_problem(&self, tenant_text: &str) -> Option<(usize, usize)> {
        use miette::Diagnostic;
        let offset = match PolicySet::from_str(tenant_text) {
            Err(e) => e.labels().and_then(|mut l| l.next()).map(|l| l.offset()),
            Ok(set) => {
                let result =
                    Validator::new(self.schema.clone()).validate(&set, ValidationMode::Strict);
                result
                    .validation_errors()
                    .find_map(|e| e.labels().and_then(|mut l| l.next()).map(|l| l.offset()))
            }
        }?;
        let before = tenant_text.get(..offset)?;
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Some((line, column))
    }

    fn entities(
        &self,
        p: &Principal,
        r: &Record,
    ) -> Result<(Entities, EntityUid, EntityUid), AuthzError> {
        let user = uid("Tillit::User", &p.id)?;
        let record = uid("Tillit::Record", "target")?;
        let roles: HashSet<EntityUid> = p
            .roles
            .iter()
            .map(|r| uid("Tillit::Role", r))
            .collect::<Result<_, _>>()?;
        let mut tenants = vec![p.tenant.clone(), r.tenant.clone()];
        tenants.dedup();
        let mut list = Vec::new();
        for t in &tenants {
            list.push(Entity::new_no_attrs(
                uid("Tillit::Tenant", t)?,
                HashSet::new(),
            ));
        }
        for role in &roles {
            list.push(Entity::new_no_attrs(role.clone(), HashSet::new()));
        }
        let user_attrs = HashMap::from([
            (
                "tenant".to_string(),
                RestrictedExpression::new_entity_uid(uid("Tillit::Tenant", &p.tenant)?),
            ),
            ("kind".to_string(), s(&p.kind)),
        ]);
        list.push(
            Entity::new(user.clone(), user_attrs, roles)
                .map_err(|e| AuthzError::Internal(e.to_string()))?,
        );
        let record_attrs = HashMap::from([
            (
                "tenant".to_string(),
                RestrictedExpression::new_entity_uid(uid("Tillit::Tenant", &r.tenant)?),
            ),
            ("resource_type".to_string(), s(&r.resource_type)),
            ("category".to_string(), s(&r.category)),
            (
                "withheld".to_string(),
                RestrictedExpression::new_bool(r.withheld),
            ),
            (
                "restricted".to_string(),
                RestrictedExpression::new_bool(r.restricted),
            ),
        ]);
        list.push(
            Entity::new(record.clone(), record_attrs, HashSet::new())
                .map_err(|e| AuthzError::Internal(e.to_string()))?,
        );
        let entities =
            Entities::from_entities(list, None).map_err(|e| AuthzError::Internal(e.to_string()))?;
        Ok((entities, user, record))
    }

    fn context(f: &Facts) -> Result<Context, AuthzError> {
        let b = RestrictedExpression::new_bool;
        let pairs = [
            ("care_relationship", b(f.care_relationship)),
            ("own_record", b(f.own_record)),
            (
                "relative_categories",
                RestrictedExpression::new_set(f.relative_categories.iter().map(|c| s(c))),
            ),
            ("emergency", b(f.emergency)),
            ("emergency_overrides_block", b(f.emergency_overrides_block)),
            ("blocked", b(f.blocked)),
            ("excluded", b(f.excluded)),
            ("granted", b(f.granted)),
            ("support_access", b(f.support_access)),
            ("no_patient", b(f.no_patient)),
            ("registration_only", b(f.registration_only)),
        ];
        Context::from_pairs(pairs.map(|(k, v)| (k.to_string(), v)))
            .map_err(|e| AuthzError::Internal(e.to_string()))
    }

    fn raw(
        &self,
        pol: &TenantPolicies,
        p: &Principal,
        action: Action,
        r: &Record,
        f: &Facts,
    ) -> Result<(bool, Vec<String>), AuthzError> {
        let (entities, user, record) = self.entities(p, r)?;
        let act = uid("Tillit::Action", action.code())?;
        let context = Self::context(f)?;
        let request = Request::new(user, act, record, context, None)
            .map_err(|e| AuthzError::Internal(e.to_string()))?;
        let response = self.authorizer.is_authorized(&request, &pol.set, &entities);
        if response.diagnostics().errors().next().is_some() {
            // A policy that errors does not apply; Cedar then decides without it (deny if
            // nothing else permits). Surface it for the operator, not the caller.
            let errs: Vec<String> = response
                .diagnostics()
                .errors()
                .map(|e| e.to_string())
                .collect();
            return Err(AuthzError::Internal(errs.join("; ")));
        }
        let policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        Ok((response.decision() == CedarDecision::Allow, policies))
    }

    /// Decides a request. Errors in evaluation deny.
    pub fn decide(
        &self,
        pol: &TenantPolicies,
        p: &Principal,
        action: Action,
        r: &Record,
        f: &Facts,
    ) -> Decision {
        let (permitted, mut policies) = match self.raw(pol, p, action, r, f) {
            Ok(x) => x,
            Err(e) => {
                return Decision {
                    permitted: false,
                    policies: vec![],
                    reason: format!("the decision could not be made ({e}); access is denied"),
                };
            }
        };
        policies.sort();
        let reason = if let Some(first) = policies.first() {
            pol.reasons
                .get(first)
                .cloned()
                .unwrap_or_else(|| first.clone())
        } else {
            default_reason(p, r, f)
        };
        Decision {
            permitted,
            policies,
            reason,
        }
    }

    /// Whether opening emergency access would let a refused request through. Asked only when
    /// telling a refused clinician the way forward, not on every decision.
    pub fn emergency_would_permit(
        &self,
        pol: &TenantPolicies,
        p: &Principal,
        action: Action,
        r: &Record,
        f: &Facts,
    ) -> bool {
        p.kind == "staff"
            && action.is_read()
            && !f.emergency
            && self
                .raw(
                    pol,
                    p,
                    action,
                    r,
                    &Facts {
                        emergency: true,
                        ..f.clone()
                    },
                )
                .map(|(ok, _)| ok)
                .unwrap_or(false)
    }
}

/// Why nothing permitted a request, in words the caller can act on.
fn default_reason(p: &Principal, r: &Record, f: &Facts) -> String {
    match p.kind.as_str() {
        "staff" if f.no_patient => "your role does not give access to this record".into(),
        "staff" if !f.care_relationship => "you have no care relationship with this patient".into(),
        "staff" => format!("your role does not give access to {}", r.category),
        "patient" => "this record is not yours".into(),
        "relative" => "the patient's consent does not cover this".into(),
        _ => "access is not permitted".into(),
    }
}

#[cfg(test)]
mod tests;
