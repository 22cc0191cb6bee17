//! The one authorization hook. Every read and write of patient data, API or page, asks
//! [`authorize`] and gets a [`Permit`] or a [`Denial`]; the functions that open sealed data
//! take a `&Permit`, so a path that skips the question does not compile.
//!
//! Until the access-control capability fills it with policy (care relationships, roles ×
//! categories, blocks, emergency access), the only rule is tenant isolation: a caller reaches
//! only their own tenant's data. A resource of another tenant is never even found (queries
//! are tenant-scoped), so it answers 404 exactly like one that does not exist.

use crate::session::Principal;
use tillit_core::TenantId;
use tillit_fhir::category::Category;

/// Who acts: a logged-in user, or Tillit itself on an operator's command (import).
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    User(&'a Principal),
    System {
        tenant: &'a TenantId,
        purpose: &'static str,
    },
}

impl Actor<'_> {
    pub fn tenant(&self) -> &TenantId {
        match self {
            Actor::User(p) => &p.tenant.id,
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
        match self {
            Action::Read => "read",
            Action::Search => "search",
            Action::History => "history",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
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
    policy: &'static str,
}

impl Permit {
    /// The policy that permitted the access (for the audit event).
    pub fn policy(&self) -> &'static str {
        self.policy
    }
}

/// A refusal with the reason to show the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub policy: &'static str,
    pub reason: String,
}

pub fn authorize(actor: Actor<'_>, _action: Action, target: &Target<'_>) -> Result<Permit, Denial> {
    if actor.tenant() != target.tenant {
        return Err(Denial {
            policy: "platform.tenant-isolation",
            reason: "the resource belongs to another tenant".into(),
        });
    }
    Ok(Permit {
        policy: "platform.tenant-isolation",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_tenant_is_always_denied() {
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
    }
}
