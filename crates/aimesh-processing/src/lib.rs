//! The document-processing core of the aimesh processing service: text extraction from uploaded
//! documents (plain text, Markdown, HTML, PDF, DOCX, and images or scanned PDF pages through
//! OCR) and chunking of the extracted text for embedding.
//!
//! Everything here is synchronous and CPU- or subprocess-bound: callers on an async runtime run
//! [`Extractor::extract`] on a blocking thread. Every input is treated as hostile: sizes, page
//! counts, nesting depth, decompressed sizes and wall time are bounded by [`Limits`], and third
//! party parsers run behind `catch_unwind`.

pub mod chunk;
pub mod error;
pub mod extract;

pub use chunk::{Chunk, ChunkOptions, chunk};
pub use error::{ExtractError, ExtractResult};
pub use extract::{Engine, Extracted, Extractor, Format, Heading, Limits, OcrSettings, Page};
