//! AI tasks on a caller's text: a summary, key phrases, sentiment, a translation, or questions
//! with their answers. A task is its own resource, linked to the job that runs it; its status
//! follows the job's, and its typed result is stored on it once the job succeeds.
//!
//! Layers as in the rest of the crate: [`api`] (the tonic `TaskService`) with [`convert`],
//! [`service`] (sources, ownership, languages, submission), [`store`] (SQL), and [`job`], the
//! handler that runs the engines.

pub mod api;
pub mod convert;
pub mod domain;
pub mod job;
pub mod service;
pub mod store;

pub use api::TaskApi;
pub use service::Tasks;
pub use store::TaskStore;
