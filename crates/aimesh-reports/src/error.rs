//! The errors of the reports core: invalid requests name every bad field; rendering failures
//! are internal.

use std::fmt;

/// One invalid field of a report request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `events[3].created_time`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl FieldViolation {
    /// Creates a violation.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Why a report could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportsError {
    /// The request is malformed; every violated field is listed.
    #[error("invalid report request: {}", display_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// Rendering failed; a bug, not the caller's fault.
    #[error("report rendering failed: {0}")]
    Internal(String),
}

impl ReportsError {
    /// Returns the violated fields of an invalid request, or none.
    pub fn field_violations(&self) -> &[FieldViolation] {
        match self {
            ReportsError::InvalidArgument(violations) => violations,
            ReportsError::Internal(_) => &[],
        }
    }
}

/// The result of the reports core.
pub type ReportsResult<T> = Result<T, ReportsError>;

/// Formats violations as one line: `student_id: must not be empty; events[3].unit: ...`.
pub fn display_violations(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
