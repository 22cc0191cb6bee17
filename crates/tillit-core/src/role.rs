use crate::InvalidValue;
use std::fmt;

/// The default roles. Codes are part of the scripting contract (`demo-credentials.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Physician,
    Nurse,
    CareAssistant,
    Secretary,
    SecurityOfficer,
    TenantAdmin,
    /// A system integration (an EPJ, a lab system) the tenant has set up to exchange records.
    Integration,
    /// Platform operator staff (the processor's side): only in the operator tenant, and no
    /// access to any tenant's data without a tenant admin's time-limited support grant.
    Operator,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Physician,
        Role::Nurse,
        Role::CareAssistant,
        Role::Secretary,
        Role::SecurityOfficer,
        Role::TenantAdmin,
        Role::Integration,
        Role::Operator,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Role::Physician => "physician",
            Role::Nurse => "nurse",
            Role::CareAssistant => "care_assistant",
            Role::Secretary => "secretary",
            Role::SecurityOfficer => "security_officer",
            Role::TenantAdmin => "tenant_admin",
            Role::Integration => "integration",
            Role::Operator => "operator",
        }
    }

    pub fn parse(code: &str) -> Result<Self, InvalidValue> {
        Role::ALL
            .into_iter()
            .find(|r| r.code() == code)
            .ok_or_else(|| {
                InvalidValue::new(
                    "role",
                    format!(
                        "unknown role '{code}'; expected one of {}",
                        Role::ALL.map(Role::code).join(", ")
                    ),
                )
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What a person is to a tenant. Staff need TOTP; patients and relatives are offered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PersonKind {
    Staff,
    Patient,
    Relative,
}

impl PersonKind {
    pub fn code(self) -> &'static str {
        match self {
            PersonKind::Staff => "staff",
            PersonKind::Patient => "patient",
            PersonKind::Relative => "relative",
        }
    }

    pub fn parse(code: &str) -> Result<Self, InvalidValue> {
        match code {
            "staff" => Ok(PersonKind::Staff),
            "patient" => Ok(PersonKind::Patient),
            "relative" => Ok(PersonKind::Relative),
            other => Err(InvalidValue::new(
                "person kind",
                format!("unknown kind '{other}'; expected staff, patient or relative"),
            )),
        }
    }

    /// Staff must log in with a second factor; others may choose to.
    pub fn requires_totp(self) -> bool {
        matches!(self, PersonKind::Staff)
    }
}

impl fmt::Display for PersonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_codes_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.code()), Ok(r));
        }
        assert!(Role::parse("doctor").is_err());
    }
}
