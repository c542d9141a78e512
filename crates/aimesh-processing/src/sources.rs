//! Texts of other services that tasks work on, read through ports so this crate knows
//! nothing of their storage: [`NoteSource`] reads a caller's note (the mesh implements it
//! over the notes service), [`TranscriptionSource`] a caller's transcription (over the speech
//! service).

use futures::future::BoxFuture;
use uuid::Uuid;

/// A note's text, as a task needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteText {
    /// The note.
    pub id: Uuid,
    /// Its title.
    pub title: String,
    /// Its original text.
    pub text: String,
    /// The language of that text (BCP-47), as recorded on the note.
    pub language: String,
}

/// Reads notes on behalf of their owner.
pub trait NoteSource: Send + Sync + 'static {
    /// Returns `owner`'s note, `None` when the owner has no such note, or why it could not be
    /// read.
    fn note<'a>(
        &'a self,
        owner: &'a str,
        id: Uuid,
    ) -> BoxFuture<'a, Result<Option<NoteText>, String>>;
}

/// A transcription, as a task needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptionText {
    /// The transcription.
    pub id: Uuid,
    /// Whether its transcript is there (READY); `status` says where it is otherwise.
    pub ready: bool,
    /// Its status, e.g. `RUNNING`.
    pub status: String,
    /// Its last job, to follow until it is READY.
    pub job_id: Option<Uuid>,
    /// The transcript (empty until READY).
    pub text: String,
    /// The transcript's language (BCP-47), when known.
    pub language: String,
}

/// Reads transcriptions on behalf of their owner.
pub trait TranscriptionSource: Send + Sync + 'static {
    /// Returns `owner`'s transcription, `None` when the owner has no such transcription, or
    /// why it could not be read.
    fn transcription<'a>(
        &'a self,
        owner: &'a str,
        id: Uuid,
    ) -> BoxFuture<'a, Result<Option<TranscriptionText>, String>>;
}
