//! Errors of the admin service.

use aimesh_identity::IdentityError;
use aimesh_jobs::JobsError;
use aimesh_kit::{
    Code, FieldViolation, ServiceError,
    error::{display_violations, into_status},
};

/// An admin operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request is malformed.
    #[error("invalid argument: {}", display_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The operation cannot apply (an administrator disabling their own account).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The identity service refused or failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The job engine refused or failed.
    #[error(transparent)]
    Jobs(#[from] JobsError),
    /// Reading an account's storage use failed.
    #[error("storage use is unavailable")]
    Storage(String),
    /// The database failed.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

/// The result of an admin operation.
pub type AdminResult<T> = Result<T, AdminError>;

impl ServiceError for AdminError {
    fn code(&self) -> Code {
        match self {
            AdminError::InvalidArgument(_) => Code::InvalidArgument,
            AdminError::FailedPrecondition(_) => Code::FailedPrecondition,
            AdminError::Identity(error) => error.code(),
            AdminError::Jobs(error) => error.code(),
            AdminError::Storage(_) => Code::Unavailable,
            AdminError::Db(error) => aimesh_kit::db::failure_code(error),
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            AdminError::InvalidArgument(violations) => violations,
            AdminError::Identity(error) => error.field_violations(),
            AdminError::Jobs(error) => error.field_violations(),
            _ => &[],
        }
    }
}

impl From<AdminError> for tonic::Status {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::Identity(error) => error.into(),
            AdminError::Jobs(error) => error.into(),
            error => into_status(error),
        }
    }
}
