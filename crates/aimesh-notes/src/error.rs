//! Errors of the notes service.

use aimesh_kit::{
    Code, FieldViolation, ServiceError,
    error::{display_violations, into_status},
};
use uuid::Uuid;

/// A notes operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum NotesError {
    /// The request is malformed.
    #[error("invalid argument: {}", display_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// No such note for this caller.
    #[error("note {0} not found")]
    NotFound(Uuid),
    /// The caller's version is stale.
    #[error("note {id} is at version {current}, not {expected}; read it again and retry")]
    VersionMismatch {
        /// The note.
        id: Uuid,
        /// The version the caller sent.
        expected: i64,
        /// The stored version.
        current: i64,
    },
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
    /// The job engine refused or failed a submission.
    #[error(transparent)]
    Jobs(#[from] aimesh_jobs::JobsError),
    /// The database failed.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

impl NotesError {
    /// An INVALID_ARGUMENT naming one field.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        NotesError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

/// The result of a notes operation.
pub type NotesResult<T> = Result<T, NotesError>;

impl ServiceError for NotesError {
    fn code(&self) -> Code {
        match self {
            NotesError::InvalidArgument(_) => Code::InvalidArgument,
            NotesError::NotFound(_) => Code::NotFound,
            NotesError::VersionMismatch { .. } => Code::Aborted,
            NotesError::Internal(_) => Code::Internal,
            NotesError::Jobs(error) => error.code(),
            NotesError::Db(error) => aimesh_kit::db::failure_code(error),
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            NotesError::InvalidArgument(violations) => violations,
            NotesError::Jobs(error) => error.field_violations(),
            _ => &[],
        }
    }
}

impl From<NotesError> for tonic::Status {
    fn from(error: NotesError) -> Self {
        into_status(error)
    }
}
