//! The notes service: short texts with their language, machine translations attached to them,
//! and per-owner statistics.
//!
//! Layers, outermost first: [`api`] (the tonic `NotesService`: validation and proto
//! conversion), [`service`] (domain logic and the read cache), [`store`] (SQL on SQLite or
//! PostgreSQL).

pub mod api;
pub mod cache;
pub mod domain;
pub mod error;
pub mod service;
pub mod store;
pub mod translate;

pub use api::NotesApi;
pub use error::{NotesError, NotesResult};
pub use service::Notes;
pub use store::{MIGRATIONS, NotesStore};
