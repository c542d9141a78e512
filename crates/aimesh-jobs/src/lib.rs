//! The durable job engine. Slow work is submitted as a [`Job`](model::Job) and returns at once;
//! [`Worker`](worker::Worker)s claim jobs under a lease they keep alive with heartbeats, run
//! them through a [`JobHandler`](worker::JobHandler), report progress, retry failures with
//! exponential backoff and jitter, and honour cancellation. Every change is published on a
//! [`Notifier`](notify::Notifier) — in-process on SQLite, through PostgreSQL LISTEN/NOTIFY
//! across replicas — which drives wake-ups, cancellation and the progress streams of
//! `aimesh.jobs.v1.JobsService`.

pub mod api;
pub mod engine;
pub mod error;
pub mod model;
pub mod notify;
pub mod store;
pub mod worker;

pub use api::JobsApi;
pub use engine::Jobs;
pub use error::{JobsError, JobsResult};
pub use model::{Job, JobState, SubmitOptions};
pub use store::MIGRATIONS;
pub use worker::{JobContext, JobError, JobHandler, JobOutput, Worker, WorkerConfig};
