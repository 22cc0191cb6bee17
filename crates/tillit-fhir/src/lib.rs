//! FHIR R4 JSON for Tillit: strict parsing with limits, validation against the official
//! structure definitions, extraction of search values, Tillit categories, and
//! OperationOutcome. Pure: no I/O, no HTTP, no storage.

pub mod category;
pub mod dates;
pub mod json;
pub mod outcome;
pub mod resources;
pub mod search;
pub mod validate;

pub use outcome::{Issue, IssueType, Severity};
