//! The errors of the reports core — invalid requests name every bad field; rendering failures
//! are internal — and of the service around it ([`ReportsServiceError`], mapped once to a
//! gRPC status).

use std::fmt;

use aimesh_kit::{Code, ServiceError, blob::BlobError, error::into_status};
use uuid::Uuid;

use crate::report::Status;

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

// === the service's errors ===

/// A failure of the reports service.
#[derive(Debug, thiserror::Error)]
pub enum ReportsServiceError {
    /// The request is malformed.
    #[error("invalid argument: {}", aimesh_kit::error::display_violations(.0))]
    InvalidArgument(Vec<aimesh_kit::FieldViolation>),
    /// No such report for this caller.
    #[error("report {0} not found")]
    NotFound(Uuid),
    /// An append was sent at another offset than the report's event count.
    #[error(
        "report {id} holds {stored} events: append at offset {stored}, not {sent} \
         (GetReport tells the count)"
    )]
    WrongOffset {
        /// The report.
        id: Uuid,
        /// The offset sent.
        sent: i64,
        /// The events stored.
        stored: i64,
    },
    /// The report is no longer a draft.
    #[error("report {id} is {status}, not a draft: it takes no more events")]
    NotDraft {
        /// The report.
        id: Uuid,
        /// Its status.
        status: Status,
    },
    /// GenerateReport on a draft without events.
    #[error("report {0} holds no events: append some before generating it")]
    NoEvents(Uuid),
    /// The file is not there yet (or rendering failed).
    #[error("report {id} is {status}: its file is ready once it is DONE (watch its job)")]
    NotReady {
        /// The report.
        id: Uuid,
        /// Its status.
        status: Status,
    },
    /// The owner's storage quota would be exceeded.
    #[error(
        "storage quota exceeded: {used} of {quota} bytes used by documents, images, audio and \
         reports (AIMESH_STORAGE_QUOTA_BYTES), {wanted} more needed; delete files to make room"
    )]
    QuotaExceeded {
        /// Bytes in use.
        used: i64,
        /// The quota.
        quota: u64,
        /// Bytes the operation needs.
        wanted: i64,
    },
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
    /// The blob store failed.
    #[error("blob store error")]
    Blob(#[from] BlobError),
    /// The job engine refused or failed a submission.
    #[error(transparent)]
    Jobs(#[from] aimesh_jobs::JobsError),
    /// The database failed.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

impl ReportsServiceError {
    /// An INVALID_ARGUMENT naming one field.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        ReportsServiceError::InvalidArgument(vec![aimesh_kit::FieldViolation::new(
            field,
            description,
        )])
    }
}

impl From<ReportsError> for ReportsServiceError {
    /// The core's violations keep their field paths; see [`crate::convert`] for the paths of
    /// a request.
    fn from(error: ReportsError) -> Self {
        match error {
            ReportsError::InvalidArgument(violations) => ReportsServiceError::InvalidArgument(
                violations
                    .into_iter()
                    .map(|v| aimesh_kit::FieldViolation::new(v.field, v.description))
                    .collect(),
            ),
            ReportsError::Internal(message) => ReportsServiceError::Internal(message),
        }
    }
}

/// The result of a reports service operation.
pub type ServiceResult<T> = Result<T, ReportsServiceError>;

impl ServiceError for ReportsServiceError {
    fn code(&self) -> Code {
        match self {
            ReportsServiceError::InvalidArgument(_) => Code::InvalidArgument,
            ReportsServiceError::NotFound(_) => Code::NotFound,
            ReportsServiceError::WrongOffset { .. }
            | ReportsServiceError::NotDraft { .. }
            | ReportsServiceError::NoEvents(_)
            | ReportsServiceError::NotReady { .. } => Code::FailedPrecondition,
            ReportsServiceError::QuotaExceeded { .. } => Code::ResourceExhausted,
            ReportsServiceError::Internal(_) | ReportsServiceError::Blob(_) => Code::Internal,
            ReportsServiceError::Jobs(error) => error.code(),
            ReportsServiceError::Db(error) => aimesh_kit::db::failure_code(error),
        }
    }

    fn field_violations(&self) -> &[aimesh_kit::FieldViolation] {
        match self {
            ReportsServiceError::InvalidArgument(violations) => violations,
            ReportsServiceError::Jobs(error) => error.field_violations(),
            _ => &[],
        }
    }
}

impl From<ReportsServiceError> for tonic::Status {
    fn from(error: ReportsServiceError) -> Self {
        into_status(error)
    }
}
