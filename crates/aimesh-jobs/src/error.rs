//! Errors of the job engine.

use aimesh_kit::{
    Code, FieldViolation, ServiceError,
    error::{display_violations, into_status},
};
use uuid::Uuid;

/// A jobs operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The request is malformed.
    #[error("invalid argument: {}", display_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// No such job for this caller.
    #[error("job {0} not found")]
    NotFound(Uuid),
    /// The job is not in a state the operation applies to.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Too many watch streams are open (per user or per process).
    #[error("too many open job watches {scope} (at most {limit}); close one and retry")]
    TooManyWatches {
        /// `for this user` or `on this server`.
        scope: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A watch stream missed changes (it fell too far behind, or its replica's listener
    /// reconnected) and was ended rather than go on with a gap.
    #[error(
        "this watch {0} and was ended: watch again, and list the jobs to catch up on what \
         changed meanwhile"
    )]
    Lagged(&'static str),
    /// The database failed.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

/// The result of a jobs operation.
pub type JobsResult<T> = Result<T, JobsError>;

impl ServiceError for JobsError {
    fn code(&self) -> Code {
        match self {
            JobsError::InvalidArgument(_) => Code::InvalidArgument,
            JobsError::NotFound(_) => Code::NotFound,
            JobsError::FailedPrecondition(_) => Code::FailedPrecondition,
            JobsError::TooManyWatches { .. } => Code::ResourceExhausted,
            JobsError::Lagged(_) => Code::Aborted,
            JobsError::Db(error) => aimesh_kit::db::failure_code(error),
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            JobsError::InvalidArgument(violations) => violations,
            _ => &[],
        }
    }
}

impl From<JobsError> for tonic::Status {
    fn from(error: JobsError) -> Self {
        into_status(error)
    }
}
