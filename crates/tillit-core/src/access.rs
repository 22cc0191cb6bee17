/// What an access rule of the record system does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessKind {
    /// A care relationship: a need to know in the care of the patient (tjenstlig behov).
    Care,
    /// The patient has blocked (sperret) the party from the record or some categories.
    Block,
    /// The tenant has granted the party access to this patient.
    Grant,
    /// The tenant has excluded the party from this patient (beats every grant).
    Exclusion,
    /// The patient's recorded consent for a relative, with its scope.
    RelativeConsent,
}

impl AccessKind {
    pub const ALL: [AccessKind; 5] = [
        AccessKind::Care,
        AccessKind::Block,
        AccessKind::Grant,
        AccessKind::Exclusion,
        AccessKind::RelativeConsent,
    ];

    pub fn code(self) -> &'static str {
        match self {
            AccessKind::Care => "care",
            AccessKind::Block => "block",
            AccessKind::Grant => "grant",
            AccessKind::Exclusion => "exclusion",
            AccessKind::RelativeConsent => "relative",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for k in AccessKind::ALL {
            assert_eq!(AccessKind::parse(k.code()), Some(k));
        }
        assert_eq!(AccessKind::parse("nope"), None);
    }
}
