//! The notes service: short texts with their language, machine translations attached to them,
//! and per-owner statistics.
//!
//! Layers, outermost first: [`api`] (the tonic `NotesService`, a pure adapter) with
//! [`convert`] (proto <-> domain, request validation), [`service`] (domain logic, the read
//! cache, translations submitted as jobs), [`store`] (SQL on SQLite or PostgreSQL);
//! [`translate`] is the job handler that runs translations.

pub mod api;
pub mod cache;
pub mod convert;
pub mod domain;
pub mod error;
mod export;
pub mod service;
pub mod store;
pub mod translate;

pub use api::NotesApi;
pub use error::{NotesError, NotesResult};
pub use service::Notes;
pub use store::{MIGRATIONS, NotesStore};
