//! What the engine works with: jobs, their states, submissions and queries, a handler's
//! output, an attempt's outcome, and the events announcing changes.

use std::{fmt, str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for a worker or for its run-after time.
    Queued,
    /// Held by a worker's lease.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Failed on its last attempt.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl JobState {
    /// Returns the name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "QUEUED",
            JobState::Running => "RUNNING",
            JobState::Succeeded => "SUCCEEDED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
        }
    }

    /// Returns whether the job will not change any more (unless retried).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "QUEUED" => JobState::Queued,
            "RUNNING" => JobState::Running,
            "SUCCEEDED" => JobState::Succeeded,
            "FAILED" => JobState::Failed,
            "CANCELLED" => JobState::Cancelled,
            other => return Err(format!("unknown job state {other:?}")),
        })
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Identifier (UUIDv7).
    pub id: Uuid,
    /// Owner's user id.
    pub owner_id: String,
    /// Handler kind.
    pub kind: String,
    /// State.
    pub state: JobState,
    /// Handler input.
    pub payload: Vec<u8>,
    /// Attempts started.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Progress percentage of the current attempt.
    pub progress_percent: i32,
    /// Progress message.
    pub progress_message: String,
    /// Output so far.
    pub partial_output: String,
    /// Full protobuf type name of the result.
    pub result_type: Option<String>,
    /// Encoded result.
    pub result: Option<Vec<u8>>,
    /// Last error.
    pub error: Option<String>,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// W3C trace context of the submitting request.
    pub trace_context: Option<String>,
    /// Whether cancellation was asked for while running.
    pub cancel_requested: bool,
    /// Worker holding the lease.
    pub lease_owner: Option<String>,
    /// When the lease lapses.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Not run before this.
    pub run_after: DateTime<Utc>,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// First start.
    pub started_at: Option<DateTime<Utc>>,
    /// Terminal time.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Options of a submission.
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// Deduplicates submissions: the same owner and key return the existing job.
    pub idempotency_key: Option<String>,
    /// Attempts allowed (at least 1).
    pub max_attempts: i32,
    /// Delay before the first attempt.
    pub delay: Duration,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        Self {
            idempotency_key: None,
            max_attempts: 5,
            delay: Duration::ZERO,
        }
    }
}

/// A list request.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    /// Page size.
    pub page_size: u32,
    /// Jobs older than this id.
    pub after: Option<Uuid>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this kind.
    pub kind: Option<String>,
}

impl JobQuery {
    /// Returns the filters as a string, to bind page tokens to them.
    pub fn filter_key(&self) -> String {
        format!(
            "state={}\u{0}kind={}",
            self.state.map(JobState::as_str).unwrap_or(""),
            self.kind.as_deref().unwrap_or("")
        )
    }
}

/// A page of an owner's jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPage {
    /// The jobs, newest first.
    pub jobs: Vec<Job>,
    /// The cursor of the next page ([`JobQuery::after`]), when there is one.
    pub next: Option<Uuid>,
}

/// The state of one kind of job's queue (administration).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KindStats {
    /// The handler kind.
    pub kind: String,
    /// Jobs waiting.
    pub queued: i64,
    /// Jobs running.
    pub running: i64,
    /// Jobs that succeeded within the window.
    pub succeeded: i64,
    /// Jobs that failed for good within the window.
    pub failed: i64,
    /// Median run time (first start to finish) of the jobs that finished within the window.
    pub p50_run_time: Option<Duration>,
    /// 95th percentile of the same.
    pub p95_run_time: Option<Duration>,
    /// How long the oldest queued job has waited since it was submitted.
    pub oldest_queued_age: Option<Duration>,
}

/// What a handler returns on success: a protobuf message, by full type name and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutput {
    /// Full protobuf type name, e.g. `aimesh.notes.v1.TranslateNoteResult`.
    pub type_name: String,
    /// The encoded message.
    pub value: Vec<u8>,
}

impl JobOutput {
    /// Wraps a prost message.
    pub fn message<M: prost::Name>(message: &M) -> Self {
        Self {
            type_name: M::full_name(),
            value: prost::Message::encode_to_vec(message),
        }
    }
}

/// How an attempt ended, as a worker records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The job.
    pub(crate) id: Uuid,
    /// SUCCEEDED (with a result), FAILED or CANCELLED, or QUEUED again at `retry_at`.
    pub(crate) state: JobState,
    /// The result of a success.
    pub(crate) result: Option<JobOutput>,
    /// The error of a failure (kept on a retry).
    pub(crate) error: Option<String>,
    /// When a retry may run.
    pub(crate) retry_at: Option<DateTime<Utc>>,
}

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// It became claimable (submitted, retried, released).
    Queued,
    /// Its state, progress or result changed.
    Changed,
    /// Cancellation was requested while it runs.
    CancelRequested,
    /// Events may have been lost (a listener reconnected): re-read everything watched.
    Resync,
}

/// A change to a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobEvent {
    /// What happened.
    pub(crate) kind: EventKind,
    /// The job.
    pub(crate) job_id: Uuid,
    /// Its owner.
    pub(crate) owner_id: String,
    /// Its handler kind.
    pub(crate) job_kind: String,
}

impl JobEvent {
    /// The event `kind` about `job`.
    pub(crate) fn of(kind: EventKind, job: &Job) -> Self {
        Self {
            kind,
            job_id: job.id,
            owner_id: job.owner_id.clone(),
            job_kind: job.kind.clone(),
        }
    }

    /// The event telling that events may have been lost.
    pub(crate) fn resync() -> Self {
        Self {
            kind: EventKind::Resync,
            job_id: Uuid::nil(),
            owner_id: String::new(),
            job_kind: String::new(),
        }
    }
}

pub(crate) use aimesh_kit::db::now;
