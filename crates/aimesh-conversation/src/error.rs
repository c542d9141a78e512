//! Errors of the conversation service.

use std::time::Duration;

use aimesh_kit::{
    Code, FieldViolation, ServiceError,
    error::{display_violations, into_status, retry_status},
};
use uuid::Uuid;

/// A conversation operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    /// The request is malformed.
    #[error("invalid argument: {}", display_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// No such session for this caller.
    #[error("session {0} not found")]
    SessionNotFound(Uuid),
    /// No such message in the caller's session.
    #[error("message {0} not found")]
    MessageNotFound(Uuid),
    /// The operation does not apply to the resource as it is.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Too many replies in progress for this caller.
    #[error("{limit} replies are already in progress; wait for one to finish")]
    Busy {
        /// The per-user limit.
        limit: u32,
        /// When to try again.
        retry_after: Duration,
    },
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
    /// The job engine refused or failed.
    #[error(transparent)]
    Jobs(#[from] aimesh_jobs::JobsError),
    /// The database failed.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

impl ConversationError {
    /// An INVALID_ARGUMENT naming one field.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        ConversationError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

/// The result of a conversation operation.
pub type ConversationResult<T> = Result<T, ConversationError>;

impl ServiceError for ConversationError {
    fn code(&self) -> Code {
        match self {
            ConversationError::InvalidArgument(_) => Code::InvalidArgument,
            ConversationError::SessionNotFound(_) | ConversationError::MessageNotFound(_) => {
                Code::NotFound
            }
            ConversationError::FailedPrecondition(_) => Code::FailedPrecondition,
            ConversationError::Busy { .. } => Code::ResourceExhausted,
            ConversationError::Internal(_) => Code::Internal,
            ConversationError::Jobs(error) => error.code(),
            ConversationError::Db(error) => aimesh_kit::db::failure_code(error),
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            ConversationError::InvalidArgument(violations) => violations,
            ConversationError::Jobs(error) => error.field_violations(),
            _ => &[],
        }
    }
}

impl From<ConversationError> for tonic::Status {
    fn from(error: ConversationError) -> Self {
        match error {
            ConversationError::Busy { retry_after, .. } => {
                retry_status(&error.to_string(), retry_after)
            }
            other => into_status(other),
        }
    }
}
