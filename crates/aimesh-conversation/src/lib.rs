//! The conversation service: chat sessions whose messages run an AI pipeline. Each message
//! sent is answered by a job that refines the request with the session's history, detects its
//! intent (chat, documents, generate or edit an image), acts on it (a streamed chat reply, an
//! answer from the caller's documents with citations, an image through the gallery) and
//! stores the reply; the reply streams live while it is produced.
//!
//! Layers, outermost first: [`api`] (the tonic `ConversationService`, a pure adapter) with
//! [`convert`] (proto <-> domain, request validation), [`service`] (domain logic: ownership,
//! limits, replies as jobs, the live view), [`store`] (SQL on SQLite or PostgreSQL);
//! [`pipeline`] is the job handler that produces replies, on [`intent`] and [`prompt`], and
//! [`ports`] are what it needs from the processing and gallery services.

pub mod api;
pub mod convert;
pub mod domain;
pub mod error;
mod export;
pub mod intent;
pub mod pipeline;
pub mod ports;
pub mod prompt;
pub mod service;
pub mod store;

pub use api::ConversationApi;
pub use error::{ConversationError, ConversationResult};
pub use pipeline::ReplyHandler;
pub use ports::{DocumentSearch, ImageMaker, Passage, PortError};
pub use service::{Conversation, ConversationConfig, Pipeline};
pub use store::{ConversationStore, MIGRATIONS};
