//! Errors of the processing service.

use aimesh_kit::{
    Code, FieldViolation, ServiceError,
    blob::BlobError,
    error::{display_violations, into_status},
};
use uuid::Uuid;

/// A processing operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum ProcessingError {
    /// The request is malformed.
    #[error("invalid argument: {}", display_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// No such document for this caller.
    #[error("document {0} not found")]
    DocumentNotFound(Uuid),
    /// No such upload for this caller.
    #[error("upload {0} not found")]
    UploadNotFound(Uuid),
    /// An append was sent at another offset than the stored one.
    #[error(
        "upload {id} has {stored} bytes stored: append at offset {stored}, not {sent} \
         (GetUpload tells the offset to resume from)"
    )]
    WrongOffset {
        /// The upload.
        id: Uuid,
        /// The offset sent.
        sent: i64,
        /// The stored offset.
        stored: i64,
    },
    /// FinishUpload before every declared byte arrived.
    #[error("upload {id} has {stored} of its {size} bytes: append the rest before finishing")]
    Incomplete {
        /// The upload.
        id: Uuid,
        /// Bytes stored.
        stored: i64,
        /// Declared size.
        size: i64,
    },
    /// The owner's storage quota would be exceeded.
    #[error(
        "storage quota exceeded: {used} of {quota} bytes used by documents, images, audio and \
         reports (AIMESH_STORAGE_QUOTA_BYTES), {wanted} more needed; delete files to make room"
    )]
    QuotaExceeded {
        /// Bytes in use (documents and uploads in progress).
        used: i64,
        /// The quota.
        quota: u64,
        /// Bytes the operation needs.
        wanted: i64,
    },
    /// No such task for this caller.
    #[error("task {0} not found")]
    TaskNotFound(Uuid),
    /// No such quiz for this caller.
    #[error("quiz {0} not found")]
    QuizNotFound(Uuid),
    /// No such note for this caller.
    #[error("note {0} not found")]
    NoteNotFound(Uuid),
    /// No such transcription for this caller.
    #[error("transcription {0} not found")]
    TranscriptionNotFound(Uuid),
    /// The resource is not in the state the operation needs (a document not READY yet, a
    /// quiz still being generated, a source kind the mesh does not have yet).
    #[error("{0}")]
    NotReady(String),
    /// An engine needed here is not loaded or not serving.
    #[error("{0}")]
    EngineUnavailable(String),
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

impl ProcessingError {
    /// An INVALID_ARGUMENT naming one field.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        ProcessingError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

/// The result of a processing operation.
pub type ProcessingResult<T> = Result<T, ProcessingError>;

impl ServiceError for ProcessingError {
    fn code(&self) -> Code {
        match self {
            ProcessingError::InvalidArgument(_) => Code::InvalidArgument,
            ProcessingError::DocumentNotFound(_)
            | ProcessingError::UploadNotFound(_)
            | ProcessingError::TaskNotFound(_)
            | ProcessingError::QuizNotFound(_)
            | ProcessingError::NoteNotFound(_)
            | ProcessingError::TranscriptionNotFound(_) => Code::NotFound,
            ProcessingError::NotReady(_) => Code::FailedPrecondition,
            ProcessingError::WrongOffset { .. } | ProcessingError::Incomplete { .. } => {
                Code::FailedPrecondition
            }
            ProcessingError::QuotaExceeded { .. } => Code::ResourceExhausted,
            ProcessingError::EngineUnavailable(_) => Code::FailedPrecondition,
            ProcessingError::Internal(_) | ProcessingError::Blob(_) => Code::Internal,
            ProcessingError::Jobs(error) => error.code(),
            ProcessingError::Db(error) => aimesh_kit::db::failure_code(error),
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            ProcessingError::InvalidArgument(violations) => violations,
            ProcessingError::Jobs(error) => error.field_violations(),
            _ => &[],
        }
    }
}

impl From<ProcessingError> for tonic::Status {
    fn from(error: ProcessingError) -> Self {
        into_status(error)
    }
}
