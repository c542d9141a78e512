//! The documents domain: what a document, an upload and a search are, their limits and the
//! rules their fields follow.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Longest filename, in characters.
pub const FILENAME_MAX_CHARS: usize = 255;
/// Longest declared media type, in bytes.
pub const CONTENT_TYPE_MAX_LEN: usize = 255;
/// Most bytes one AppendUpload may carry.
pub const MAX_APPEND_BYTES: usize = 4 << 20;
/// Longest search query, in characters.
pub const QUERY_MAX_CHARS: usize = 1000;
/// Passages returned when the caller asks for none.
pub const DEFAULT_K: u32 = 5;
/// Most passages one search returns.
pub const MAX_K: u32 = 50;
/// Most documents one search may be restricted to.
pub const MAX_SEARCH_DOCUMENTS: usize = 100;

/// Where a document is in its processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Stored, waiting for a worker.
    Pending,
    /// Being extracted, chunked and embedded.
    Processing,
    /// Processed and searchable.
    Ready,
    /// Processing failed.
    Failed,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Processing => "PROCESSING",
            Status::Ready => "READY",
            Status::Failed => "FAILED",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "PENDING" => Status::Pending,
            "PROCESSING" => Status::Processing,
            "READY" => Status::Ready,
            "FAILED" => Status::Failed,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use aimesh_kit::paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, validate_page_size};

/// A stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Identifier (UUIDv7).
    pub id: Uuid,
    /// Owner's user id.
    pub owner_id: String,
    /// Filename given at upload.
    pub filename: String,
    /// Media type given at upload, or sniffed once processed.
    pub content_type: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// SHA-256 of the bytes, lowercase hex: the blob's name.
    pub sha256: String,
    /// Processing status.
    pub status: Status,
    /// Why processing failed.
    pub failure_reason: Option<String>,
    /// The sniffed format, once processed.
    pub format: Option<String>,
    /// Pages, once processed.
    pub page_count: i32,
    /// Searchable chunks.
    pub chunk_count: i32,
    /// The extracted text (loaded by `get` only).
    pub text: Option<String>,
    /// Whether AI notes are to be generated.
    pub generate_notes: bool,
    /// The last processing job.
    pub job_id: Option<Uuid>,
    /// Upload time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A validated one-call upload.
#[derive(Debug, Clone)]
pub struct NewDocument {
    /// Filename.
    pub filename: String,
    /// Declared media type (may be empty).
    pub content_type: String,
    /// The bytes.
    pub data: bytes::Bytes,
    /// Whether AI notes are to be generated.
    pub generate_notes: bool,
}

/// A validated CreateUpload.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// Filename.
    pub filename: String,
    /// Declared media type (may be empty).
    pub content_type: String,
    /// Declared size.
    pub size_bytes: i64,
    /// Whether AI notes are to be generated.
    pub generate_notes: bool,
}

/// A validated AppendUpload.
#[derive(Debug, Clone)]
pub struct Append {
    /// The upload.
    pub upload_id: Uuid,
    /// Where the bytes start.
    pub offset: i64,
    /// The bytes.
    pub data: bytes::Bytes,
}

/// A resumable upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Identifier (UUIDv7).
    pub id: Uuid,
    /// Owner's user id.
    pub owner_id: String,
    /// Filename.
    pub filename: String,
    /// Declared media type.
    pub content_type: String,
    /// Declared size.
    pub size_bytes: i64,
    /// Bytes stored so far.
    pub received_bytes: i64,
    /// Whether AI notes are to be generated.
    pub generate_notes: bool,
    /// Start time.
    pub created_at: DateTime<Utc>,
}

/// A document created by an upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The document (an existing one for a duplicate).
    pub document: Document,
    /// Its processing job.
    pub job: Option<aimesh_jobs::Job>,
    /// Whether the owner already had these bytes.
    pub duplicate: bool,
}

/// A validated ListDocuments query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Documents per page.
    pub page_size: u32,
    /// Only documents older than this one (the page token's cursor).
    pub after: Option<Uuid>,
    /// Only documents in this status.
    pub status: Option<Status>,
}

impl ListQuery {
    /// The filters a page token is bound to.
    pub fn filter_key(&self) -> String {
        format!(
            "status={}",
            self.status.map(Status::as_str).unwrap_or_default()
        )
    }
}

/// A page of documents.
#[derive(Debug, Clone)]
pub struct DocumentPage {
    /// The documents, newest first.
    pub documents: Vec<Document>,
    /// The cursor of the next page, if any.
    pub next_after: Option<Uuid>,
}

/// A validated search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// The query text.
    pub query: String,
    /// Passages wanted.
    pub k: u32,
    /// Only these documents (empty: all).
    pub document_ids: Vec<Uuid>,
}

/// A chunk to store, with its embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    /// Position in the document.
    pub seq: i32,
    /// Page, from 1.
    pub page: i32,
    /// Character offset of the start in the page's text.
    pub char_start: i32,
    /// Character offset of the end in the page's text.
    pub char_end: i32,
    /// The passage.
    pub text: String,
    /// Its unit-length embedding.
    pub embedding: Vec<f32>,
}

/// A stored chunk, as search reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChunk {
    /// The document.
    pub document_id: Uuid,
    /// The document's filename.
    pub filename: String,
    /// Page, from 1.
    pub page: i32,
    /// Character offset of the start in the page's text.
    pub char_start: i32,
    /// Character offset of the end.
    pub char_end: i32,
    /// The passage.
    pub text: String,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The chunk.
    pub chunk: StoredChunk,
    /// Cosine similarity to the query.
    pub score: f32,
}

/// What processing found, stored on a READY document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// The sniffed format.
    pub format: String,
    /// Its media type.
    pub content_type: String,
    /// Pages.
    pub page_count: i32,
    /// The extracted text.
    pub text: String,
}

/// The payload of a `processing.document` job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessJob {
    /// The document.
    pub document_id: Uuid,
}

/// Encodes an embedding as little-endian f32s.
pub fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The dot product of `query` with a vector stored as little-endian f32s ([`encode_vector`]),
/// read in place; `None` when their dimensions differ (a vector of another model).
pub fn dot_encoded(query: &[f32], bytes: &[u8]) -> Option<f32> {
    if bytes.len() != query.len() * 4 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .zip(query)
            .map(|(b, q)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * q)
            .sum(),
    )
}

/// The `k` highest-scored items of a stream, kept as it goes by: memory for `k` items however
/// long the stream, `O(log k)` an item.
#[derive(Debug)]
pub struct TopK<T> {
    k: usize,
    /// The kept items, the lowest score on top.
    heap: std::collections::BinaryHeap<Ranked<T>>,
}

/// An item and its score, ordered lowest score first (a min-heap in [`BinaryHeap`]).
///
/// [`BinaryHeap`]: std::collections::BinaryHeap
#[derive(Debug)]
struct Ranked<T>(f32, T);

impl<T> PartialEq for Ranked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}

impl<T> Eq for Ranked<T> {}

impl<T> PartialOrd for Ranked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Ranked<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.total_cmp(&self.0)
    }
}

impl<T> TopK<T> {
    /// Keeps the best `k`.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            heap: std::collections::BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Offers an item with its score.
    pub fn push(&mut self, score: f32, item: T) {
        if self.heap.len() < self.k {
            self.heap.push(Ranked(score, item));
        } else if let Some(mut lowest) = self.heap.peek_mut()
            && score > lowest.0
        {
            *lowest = Ranked(score, item);
        }
    }

    /// The kept items with their scores, best first.
    pub fn into_sorted(self) -> Vec<(f32, T)> {
        // The heap's order is reversed: its ascending order is best first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Ranked(score, item)| (score, item))
            .collect()
    }
}

/// Checks a filename: 1 to 255 characters, no path separators or control characters.
pub fn validate_filename(filename: &str) -> Result<String, String> {
    let filename = filename.trim();
    if filename.is_empty() {
        return Err("must not be empty".into());
    }
    if filename.chars().count() > FILENAME_MAX_CHARS {
        return Err(format!("must be at most {FILENAME_MAX_CHARS} characters"));
    }
    if filename
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err("must not contain path separators or control characters".into());
    }
    if filename == "." || filename == ".." {
        return Err("must name a file".into());
    }
    Ok(filename.to_owned())
}

/// Checks a declared media type (empty: none).
pub fn validate_content_type(content_type: &str) -> Result<String, String> {
    if content_type.len() > CONTENT_TYPE_MAX_LEN {
        return Err(format!("must be at most {CONTENT_TYPE_MAX_LEN} bytes"));
    }
    if content_type.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(content_type.trim().to_owned())
}

/// Checks a declared or sent size against the upload limit.
pub fn validate_size(size: i64, limit: u64) -> Result<i64, String> {
    if size <= 0 {
        return Err("must be at least 1 byte".into());
    }
    if size as u64 > limit {
        return Err(format!(
            "is {size} bytes, more than the upload limit of {limit} bytes \
             (AIMESH_MAX_UPLOAD_BYTES); send a smaller file"
        ));
    }
    Ok(size)
}

/// Checks a search query.
pub fn validate_query(query: &str) -> Result<String, String> {
    let query = query.trim();
    if query.is_empty() {
        return Err("must not be empty".into());
    }
    if query.chars().count() > QUERY_MAX_CHARS {
        return Err(format!("must be at most {QUERY_MAX_CHARS} characters"));
    }
    Ok(query.to_owned())
}

/// Checks the number of passages wanted (0 means the default).
pub fn validate_k(k: i32) -> Result<u32, String> {
    match u32::try_from(k) {
        Ok(0) => Ok(DEFAULT_K),
        Ok(k) if k <= MAX_K => Ok(k),
        _ => Err(format!("must be between 0 and {MAX_K}")),
    }
}

/// Returns the current time at the database's precision (microseconds).
pub fn now() -> DateTime<Utc> {
    aimesh_kit::db::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_best_scores_in_order() {
        let mut top = TopK::new(3);
        for (score, item) in [(0.1, "a"), (0.9, "b"), (-1.0, "c"), (0.5, "d"), (0.7, "e")] {
            top.push(score, item);
        }
        assert_eq!(top.into_sorted(), vec![(0.9, "b"), (0.7, "e"), (0.5, "d")]);
        let mut few = TopK::new(5);
        few.push(0.2, 1);
        few.push(0.4, 2);
        assert_eq!(few.into_sorted(), vec![(0.4, 2), (0.2, 1)]);
        let mut none = TopK::new(0);
        none.push(1.0, ());
        assert!(none.into_sorted().is_empty());
    }

    #[test]
    fn vectors_are_stored_little_endian_and_read_in_place() {
        let vector = vec![1.0f32, -0.5, 0.25];
        let bytes = encode_vector(&vector);
        assert_eq!(&bytes[..4], &1.0f32.to_le_bytes());
        assert_eq!(
            dot_encoded(&vector, &bytes),
            Some(vector.iter().map(|x| x * x).sum())
        );
        assert_eq!(dot_encoded(&vector[1..], &bytes), None);
    }

    #[test]
    fn filenames_are_checked() {
        assert_eq!(validate_filename(" a.pdf ").as_deref(), Ok("a.pdf"));
        for bad in ["", "a/b", "..", "a\u{0}b", &"x".repeat(256)] {
            assert!(validate_filename(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_name_the_limit() {
        assert_eq!(validate_size(10, 10), Ok(10));
        let error = validate_size(11, 10).unwrap_err();
        assert!(error.contains("10 bytes") && error.contains("AIMESH_MAX_UPLOAD_BYTES"));
        assert!(validate_size(0, 10).is_err());
    }
}
