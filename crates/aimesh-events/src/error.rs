//! Errors of the events service.

use aimesh_kit::{
    Code, FieldViolation, ServiceError,
    error::{display_violations, into_status},
};

/// An events operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The request is malformed.
    #[error("invalid argument: {}", display_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The cursor names no retained event of the caller's (another user's is the same).
    #[error(
        "event {0} is not retained (it never was, or it is older than the retention); watch \
         again without after_event_id, or with from_oldest"
    )]
    NotRetained(String),
    /// Only administrators may watch every account.
    #[error("only administrators may read every account's events")]
    PermissionDenied,
    /// The database failed.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

impl EventsError {
    /// An INVALID_ARGUMENT naming one field.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        EventsError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

/// The result of an events operation.
pub type EventsResult<T> = Result<T, EventsError>;

impl ServiceError for EventsError {
    fn code(&self) -> Code {
        match self {
            EventsError::InvalidArgument(_) => Code::InvalidArgument,
            EventsError::NotRetained(_) => Code::NotFound,
            EventsError::PermissionDenied => Code::PermissionDenied,
            EventsError::Db(error) => aimesh_kit::db::failure_code(error),
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            EventsError::InvalidArgument(violations) => violations,
            _ => &[],
        }
    }
}

impl From<EventsError> for tonic::Status {
    fn from(error: EventsError) -> Self {
        into_status(error)
    }
}
