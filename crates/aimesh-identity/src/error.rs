//! Errors of the identity service.

use std::time::Duration;

use aimesh_kit::{
    Code, FieldViolation, ServiceError,
    error::{display_violations, into_status, retry_status},
};

/// An identity operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The request is malformed.
    #[error("invalid argument: {}", display_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The email or username is taken.
    #[error("an account with this {0} already exists")]
    AlreadyExists(&'static str),
    /// Wrong credentials, or no such account: deliberately indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A refresh or access token that is unknown, expired, revoked or replayed.
    #[error("invalid or expired token")]
    InvalidToken,
    /// The account does not exist (any more).
    #[error("account not found")]
    AccountNotFound,
    /// Too many attempts.
    #[error("too many login attempts; retry in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    /// Too many registrations from one address.
    #[error("too many accounts registered from this address; retry in {} s", .0.as_secs().max(1))]
    TooManyRegistrations(Duration),
    /// Every password hashing slot stayed busy for the whole wait.
    #[error("too many passwords are being checked at once; retry in {} ms", .0.as_millis().max(1))]
    Busy(Duration),
    /// The account is disabled by an administrator.
    #[error("account is disabled")]
    AccountDisabled,
    /// The account holds as many API tokens as allowed.
    #[error("at most {0} API tokens per account; revoke some first")]
    TooManyTokens(i64),
    /// The API token does not exist (for this account).
    #[error("API token {0} not found")]
    TokenNotFound(uuid::Uuid),
    /// Deleting the account's data in another service failed.
    #[error("deleting the account's data failed in {0}")]
    Cascade(String),
    /// Hashing failed or a task died.
    #[error("internal error: {0}")]
    Internal(String),
    /// The database failed.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

/// The result of an identity operation.
pub type IdentityResult<T> = Result<T, IdentityError>;

impl ServiceError for IdentityError {
    fn code(&self) -> Code {
        match self {
            IdentityError::InvalidArgument(_) => Code::InvalidArgument,
            IdentityError::AlreadyExists(_) => Code::AlreadyExists,
            IdentityError::InvalidCredentials | IdentityError::InvalidToken => {
                Code::Unauthenticated
            }
            IdentityError::AccountNotFound | IdentityError::TokenNotFound(_) => Code::NotFound,
            IdentityError::AccountDisabled => Code::PermissionDenied,
            IdentityError::TooManyTokens(_) => Code::ResourceExhausted,
            IdentityError::Cascade(_) => Code::Unavailable,
            IdentityError::Throttled(_)
            | IdentityError::TooManyRegistrations(_)
            | IdentityError::Busy(_) => Code::ResourceExhausted,
            IdentityError::Internal(_) => Code::Internal,
            IdentityError::Db(error) => aimesh_kit::db::failure_code(error),
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            IdentityError::InvalidArgument(violations) => violations,
            _ => &[],
        }
    }
}

impl From<IdentityError> for tonic::Status {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Throttled(wait)
            | IdentityError::TooManyRegistrations(wait)
            | IdentityError::Busy(wait) => retry_status(&error.to_string(), wait),
            error => into_status(error),
        }
    }
}
