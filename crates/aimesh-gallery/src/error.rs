//! Errors of the gallery service.

use aimesh_kit::{
    Code, FieldViolation, ServiceError,
    blob::BlobError,
    error::{display_violations, into_status},
};
use uuid::Uuid;

/// A gallery operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    /// The request is malformed.
    #[error("invalid argument: {}", display_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// No such image for this caller.
    #[error("image {0} not found")]
    NotFound(Uuid),
    /// The image is in the trash (for an operation that needs it out of it), or not in it
    /// (for a restore).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The owner's storage quota would be exceeded.
    #[error(
        "storage quota exceeded: {used} of {quota} bytes used by documents, images, audio and \
         reports (AIMESH_STORAGE_QUOTA_BYTES), {wanted} more needed; delete files and empty \
         the trash to make room"
    )]
    QuotaExceeded {
        /// Bytes in use.
        used: i64,
        /// The quota.
        quota: u64,
        /// Bytes the operation needs.
        wanted: i64,
    },
    /// The capability an operation needs has no engine here.
    #[error("{0}")]
    CapabilityNotServing(String),
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

impl GalleryError {
    /// An INVALID_ARGUMENT naming one field.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        GalleryError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

/// The result of a gallery operation.
pub type GalleryResult<T> = Result<T, GalleryError>;

impl ServiceError for GalleryError {
    fn code(&self) -> Code {
        match self {
            GalleryError::InvalidArgument(_) => Code::InvalidArgument,
            GalleryError::NotFound(_) => Code::NotFound,
            GalleryError::FailedPrecondition(_) | GalleryError::CapabilityNotServing(_) => {
                Code::FailedPrecondition
            }
            GalleryError::QuotaExceeded { .. } => Code::ResourceExhausted,
            GalleryError::Internal(_) | GalleryError::Blob(_) => Code::Internal,
            GalleryError::Jobs(error) => error.code(),
            GalleryError::Db(error) => aimesh_kit::db::failure_code(error),
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            GalleryError::InvalidArgument(violations) => violations,
            GalleryError::Jobs(error) => error.field_violations(),
            _ => &[],
        }
    }
}

impl From<GalleryError> for tonic::Status {
    fn from(error: GalleryError) -> Self {
        into_status(error)
    }
}
