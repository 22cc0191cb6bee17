//! OperationOutcome: how every FHIR error (and warning) is told to the client.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn code(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// The FHIR `IssueType` codes we use (http://hl7.org/fhir/issue-type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    Security,
    Login,
    Forbidden,
    NotSupported,
    NotFound,
    Deleted,
    Conflict,
    Duplicate,
    TooCostly,
    Processing,
    Exception,
    Transient,
    Informational,
}

impl IssueType {
    pub fn code(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::Invariant => "invariant",
            IssueType::Security => "security",
            IssueType::Login => "login",
            IssueType::Forbidden => "forbidden",
            IssueType::NotSupported => "not-supported",
            IssueType::NotFound => "not-found",
            IssueType::Deleted => "deleted",
            IssueType::Conflict => "conflict",
            IssueType::Duplicate => "duplicate",
            IssueType::TooCostly => "too-costly",
            IssueType::Processing => "processing",
            IssueType::Exception => "exception",
            IssueType::Transient => "transient",
            IssueType::Informational => "informational",
        }
    }
}

/// One problem, with the FHIRPath-style location of the element it concerns
/// (`Patient.name[0].given[1]`), when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueType,
    pub diagnostics: String,
    pub expression: Option<String>,
}

impl Issue {
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    pub fn warning(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "severity": self.severity.code(),
            "code": self.code.code(),
            "diagnostics": self.diagnostics,
        });
        if let (Some(expr), Some(obj)) = (&self.expression, v.as_object_mut()) {
            obj.insert("expression".into(), json!([expr]));
        }
        v
    }
}

/// An OperationOutcome resource holding `issues` (at least one: an empty outcome says
/// "all is well" as an informational issue).
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let issues: Vec<Value> = if issues.is_empty() {
        vec![
            Issue {
                severity: Severity::Information,
                code: IssueType::Informational,
                diagnostics: "ok".into(),
                expression: None,
            }
            .to_json(),
        ]
    } else {
        issues.iter().map(Issue::to_json).collect()
    };
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_lists_each_issue_with_its_path() {
        let oo = operation_outcome(&[
            Issue::error(IssueType::Required, "missing status").at("Observation.status")
        ]);
        assert_eq!(oo["resourceType"], "OperationOutcome");
        assert_eq!(oo["issue"][0]["severity"], "error");
        assert_eq!(oo["issue"][0]["code"], "required");
        assert_eq!(oo["issue"][0]["expression"][0], "Observation.status");
        assert_eq!(
            operation_outcome(&[])["issue"][0]["severity"],
            "information"
        );
    }
}
