use crate::InvalidValue;
use std::fmt;

/// Checks the FHIR `id` shape: `[A-Za-z0-9\-\.]{1,64}`. All our ids are valid FHIR ids so that a
/// person, a tenant or an org unit can be named in a FHIR reference unchanged.
fn check_fhir_id(what: &'static str, s: &str) -> Result<(), InvalidValue> {
    if s.is_empty() || s.len() > 64 {
        return Err(InvalidValue::new(what, "must be 1 to 64 characters"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(InvalidValue::new(
            what,
            "may contain only letters A-Z, digits, '-' and '.'",
        ));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, InvalidValue> {
                let s = s.into();
                check_fhir_id($what, &s)?;
                Ok(Self(s))
            }

            /// A fresh random id (UUID v4).
            pub fn random() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }

            /// A deterministic id derived from a name, for reproducible demo data.
            pub fn derived(name: &str) -> Self {
                Self(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

id_type!(
    /// A customer: the data controller. Every row of every table belongs to exactly one.
    TenantId,
    "tenant id"
);
id_type!(
    /// A unit in a tenant's organisation tree.
    OrgUnitId,
    "org unit id"
);
id_type!(
    /// A staff member, patient or relative. For patients it is also the FHIR Patient id.
    PersonId,
    "person id"
);

/// A login name: 3–64 characters of lowercase letters, digits, '.', '-', '_' and '@'.
/// Lowercase only, so that "Kari" and "kari" can never be two accounts.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim().to_lowercase();
        if s.len() < 3 || s.len() > 64 {
            return Err(InvalidValue::new("username", "must be 3 to 64 characters"));
        }
        if !s.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_' | '@')
        }) {
            return Err(InvalidValue::new(
                "username",
                "may contain only a-z, 0-9, '.', '-', '_' and '@'",
            ));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_fhir_id_shape() {
        assert!(TenantId::parse("abc-1.2").is_ok());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("a/b").is_err());
        assert!(TenantId::parse("x".repeat(65)).is_err());
        assert_eq!(PersonId::derived("x"), PersonId::derived("x"));
        assert_ne!(PersonId::random(), PersonId::random());
    }

    #[test]
    fn usernames_are_case_folded_and_restricted() {
        assert_eq!(
            Username::parse(" Kari.N ").map(|u| u.0),
            Ok("kari.n".into())
        );
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("kari nordmann").is_err());
        assert!(Username::parse("kåre").is_err());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsers_never_panic_and_accept_only_their_shape(s in "\\PC{0,80}") {
            if let Ok(u) = Username::parse(&s) {
                prop_assert!(u.as_str().len() >= 3 && u.as_str().len() <= 64);
            }
            if let Ok(t) = TenantId::parse(s.clone()) {
                prop_assert!(t.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
            }
        }
    }
}
