//! Texts of other services that tasks work on, read through ports so this crate knows
//! nothing of their storage: [`NoteSource`] reads a caller's note (the mesh implements it
//! over the notes service).

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
