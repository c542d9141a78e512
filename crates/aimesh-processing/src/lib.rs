//! The processing service: documents uploaded in one call or resumably, stored as
//! content-addressed blobs under a per-owner quota, processed as jobs (text extraction, chunking,
//! embedding) and searched by meaning.
//!
//! Layers, outermost first: [`api`] (the tonic `ProcessingService`, a pure adapter) with
//! [`convert`] (proto <-> domain, request validation), [`service`] (domain logic: uploads,
//! quota, ownership, search), [`store`] (SQL on SQLite or PostgreSQL); [`job`] is the job
//! handler that processes documents (and writes their study notes). [`tasks`] and
//! [`quizzes`] follow the same layers for AI tasks on documents and notes, and for quizzes.
//!
//! The document-processing core below them is synchronous and CPU- or subprocess-bound:
//! callers on an async runtime run [`Extractor::extract`] on a blocking thread. Every input is
//! treated as hostile: sizes, page counts, nesting depth, decompressed sizes and wall time are
//! bounded by [`Limits`], and third party parsers run behind `catch_unwind`.

pub mod api;
pub mod chunk;
pub mod convert;
pub mod domain;
pub mod error;
mod export;
pub mod extract;
pub mod extract_error;
pub mod files;
pub mod job;
pub mod quizzes;
pub mod service;
pub mod sources;
pub mod store;
pub mod tasks;

pub use api::ProcessingApi;
pub use chunk::{Chunk, ChunkOptions, chunk};
pub use error::{ProcessingError, ProcessingResult};
pub use extract::{Engine, Extracted, Extractor, Format, Heading, Limits, OcrSettings, Page};
pub use extract_error::{ExtractError, ExtractResult};
pub use quizzes::{QuizApi, QuizStore, Quizzes};
pub use service::{Processing, ProcessingConfig};
pub use sources::{NoteSource, NoteText, TranscriptionSource, TranscriptionText};
pub use store::{DocumentStore, MIGRATIONS};
pub use tasks::{TaskApi, TaskStore, Tasks};
