//! Quizzes on a caller's documents: generated as a job from the document's sentences (every
//! question cites its sentence), answered and graded (exactly for multiple choice and
//! true/false, by meaning for short answers), with a history of scores.
//!
//! Layers as in the rest of the crate: [`api`] (the tonic `QuizService`) with [`convert`],
//! [`service`], [`store`], and [`job`], the handler that writes the questions.

pub mod api;
pub mod convert;
pub mod domain;
pub mod job;
pub mod service;
pub mod store;

pub use api::QuizApi;
pub use service::Quizzes;
pub use store::QuizStore;
