//! The resource types Tillit serves.

/// Types that can be created, read, updated, deleted and searched.
pub const SERVED: &[&str] = &[
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "CareTeam",
    "EpisodeOfCare",
    "RelatedPerson",
    "Consent",
    "Encounter",
    "Observation",
    "DiagnosticReport",
    "Condition",
    "Procedure",
    "Immunization",
    "MedicationRequest",
    "MedicationStatement",
    "AllergyIntolerance",
    "DocumentReference",
    "Communication",
    "Appointment",
    "Questionnaire",
    "QuestionnaireResponse",
    "Provenance",
    "Task",
];

/// Types that are served read-only (filled by Tillit itself).
pub const READ_ONLY: &[&str] = &["AuditEvent"];

pub fn is_served(resource_type: &str) -> bool {
    SERVED.contains(&resource_type)
}

pub fn is_known(resource_type: &str) -> bool {
    is_served(resource_type) || READ_ONLY.contains(&resource_type)
}
