//! What the pipeline needs from other services, read through ports so this crate knows
//! nothing of their storage: [`DocumentSearch`] searches a caller's documents by meaning (the
//! mesh implements it over the processing service), [`ImageMaker`] makes and edits images in
//! a caller's gallery (over the gallery service).

use futures::future::BoxFuture;
use uuid::Uuid;

/// A passage of a caller's document, as a search found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    /// The document.
    pub document_id: Uuid,
    /// Its file name.
    pub filename: String,
    /// The page, from 1.
    pub page: i32,
    /// The passage.
    pub text: String,
    /// Its similarity to the query, -1 to 1.
    pub score: f32,
}

/// Why a port could not serve a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    /// The caller has no such resource (e.g. the document named in the context).
    NotFound(String),
    /// The service cannot do it here: the reason, and how to make it work.
    NotServing {
        /// What is missing.
        reason: String,
        /// How to fix it.
        fix: String,
    },
    /// It failed.
    Failed(String),
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortError::NotFound(what) => write!(f, "{what} not found"),
            PortError::NotServing { reason, fix } => write!(f, "{reason}; {fix}"),
            PortError::Failed(reason) => f.write_str(reason),
        }
    }
}

/// Searches documents on behalf of their owner.
pub trait DocumentSearch: Send + Sync + 'static {
    /// Returns the `k` passages of `owner`'s documents (only `document_ids`, when not empty)
    /// closest in meaning to `query`, the closest first.
    fn search<'a>(
        &'a self,
        owner: &'a str,
        query: &'a str,
        k: u32,
        document_ids: Vec<Uuid>,
    ) -> BoxFuture<'a, Result<Vec<Passage>, PortError>>;
}

/// Makes images in their owner's gallery.
pub trait ImageMaker: Send + Sync + 'static {
    /// Generates an image from `prompt` into `owner`'s gallery and returns its id.
    fn generate<'a>(
        &'a self,
        owner: &'a str,
        prompt: &'a str,
    ) -> BoxFuture<'a, Result<Uuid, PortError>>;

    /// Edits (enhances) `owner`'s image `source` as `instruction` asks, storing the result as
    /// a new image of the gallery; returns its id.
    fn edit<'a>(
        &'a self,
        owner: &'a str,
        source: Uuid,
        instruction: &'a str,
    ) -> BoxFuture<'a, Result<Uuid, PortError>>;
}
