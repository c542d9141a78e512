//! Errors of the speech service.

use aimesh_kit::{
    Code, FieldViolation, ServiceError,
    blob::BlobError,
    error::{display_violations, into_status},
};
use uuid::Uuid;

/// A speech operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    /// The request is malformed.
    #[error("invalid argument: {}", display_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// No such transcription for this caller.
    #[error("transcription {0} not found")]
    TranscriptionNotFound(Uuid),
    /// No such audio for this caller.
    #[error("audio {0} not found")]
    AudioNotFound(Uuid),
    /// The transcription has no transcript yet.
    #[error("transcription {id} is {status}: its transcript can be exported once READY")]
    NotReady {
        /// The transcription.
        id: Uuid,
        /// Its status.
        status: crate::domain::Status,
    },
    /// The transcription's recording is no longer stored (its retention period is over).
    #[error("the recording of transcription {0} is no longer stored (retention period over)")]
    RecordingGone(Uuid),
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
    /// An engine needed here is not loaded or not serving.
    #[error("{0}")]
    EngineUnavailable(String),
    /// The engine is saturated.
    #[error("{0}")]
    Busy(String),
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

impl SpeechError {
    /// An INVALID_ARGUMENT naming one field.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        SpeechError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

/// The result of a speech operation.
pub type SpeechResult<T> = Result<T, SpeechError>;

impl ServiceError for SpeechError {
    fn code(&self) -> Code {
        match self {
            SpeechError::InvalidArgument(_) => Code::InvalidArgument,
            SpeechError::TranscriptionNotFound(_) | SpeechError::AudioNotFound(_) => Code::NotFound,
            SpeechError::NotReady { .. }
            | SpeechError::EngineUnavailable(_)
            | SpeechError::RecordingGone(_) => Code::FailedPrecondition,
            SpeechError::QuotaExceeded { .. } => Code::ResourceExhausted,
            SpeechError::Busy(_) => Code::Unavailable,
            SpeechError::Internal(_) | SpeechError::Blob(_) => Code::Internal,
            SpeechError::Jobs(error) => error.code(),
            SpeechError::Db(error) => aimesh_kit::db::failure_code(error),
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            SpeechError::InvalidArgument(violations) => violations,
            SpeechError::Jobs(error) => error.field_violations(),
            _ => &[],
        }
    }
}

impl From<SpeechError> for tonic::Status {
    fn from(error: SpeechError) -> Self {
        into_status(error)
    }
}
