//! The durable job engine, used through [`Jobs`]. Slow work is submitted as a [`Job`] and
//! returns at once; [`Worker`]s claim jobs under a lease they keep alive with heartbeats, run
//! them through a [`JobHandler`], report progress, retry failures with exponential backoff and
//! jitter, and honour cancellation. Recurring jobs are [scheduled](Jobs::schedule) by cron
//! expression or interval, each tick run once across replicas. Every change is announced once
//! it commits — in-process on SQLite, through PostgreSQL LISTEN/NOTIFY across replicas — which
//! drives wake-ups, cancellation and the [watch streams](Jobs::watch) behind
//! `aimesh.jobs.v1.JobsService` ([`JobsApi`]).

pub mod api;
mod batch;
pub mod engine;
pub mod error;
pub mod model;
mod notify;
mod queries;
pub mod retention;
pub mod schedule;
mod store;
pub mod worker;

pub use api::JobsApi;
pub use engine::{JobStream, Jobs, WatchLimits, WorkerCommits};
pub use error::{JobsError, JobsResult};
pub use model::{Job, JobOutput, JobPage, JobQuery, JobState, KindStats, SubmitOptions};
pub use retention::{PURGE_KIND, PurgeHandler, Retention};
pub use schedule::{Cadence, SYSTEM_OWNER};
pub use store::MIGRATIONS;
pub use worker::{JobContext, JobError, JobHandler, Worker, WorkerConfig};
