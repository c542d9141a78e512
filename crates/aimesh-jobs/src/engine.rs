//! The job engine's front: submitting, reading, cancelling and retrying jobs, and the event
//! stream behind watches. Workers ([`crate::worker`]) do the running.

use std::collections::HashMap;

use opentelemetry::propagation::Injector;
use tokio::sync::broadcast;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::{
    error::{JobsError, JobsResult},
    model::{Job, JobQuery, JobState, SubmitOptions, now},
    notify::{EventKind, JobEvent, Notifier},
    store::JobStore,
};

/// Longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

/// Submits and manages jobs.
#[derive(Debug, Clone)]
pub struct Jobs {
    store: JobStore,
    notifier: Notifier,
}

impl Jobs {
    /// Creates the engine on a store and a started notifier.
    pub fn new(store: JobStore, notifier: Notifier) -> Self {
        Self { store, notifier }
    }

    /// Returns the store.
    pub fn store(&self) -> &JobStore {
        &self.store
    }

    /// Returns the notifier.
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Queues a job of `kind` for `owner`, carrying the current trace context so the worker's
    /// span joins the submitting request's trace. With an idempotency key the owner already
    /// used, returns the existing job.
    pub async fn submit(
        &self,
        owner_id: &str,
        kind: &str,
        payload: Vec<u8>,
        options: SubmitOptions,
    ) -> JobsResult<Job> {
        let now = now();
        let run_after =
            now + chrono::Duration::from_std(options.delay).unwrap_or(chrono::Duration::zero());
        let job = Job {
            id: Uuid::now_v7(),
            owner_id: owner_id.to_owned(),
            kind: kind.to_owned(),
            state: JobState::Queued,
            payload,
            attempts: 0,
            max_attempts: options.max_attempts.max(1),
            progress_percent: 0,
            progress_message: String::new(),
            partial_output: String::new(),
            result_type: None,
            result: None,
            error: None,
            idempotency_key: options.idempotency_key.filter(|key| !key.is_empty()),
            trace_context: current_trace_context(),
            cancel_requested: false,
            lease_owner: None,
            lease_expires_at: None,
            run_after,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
        };
        let (job, created) = self.store.insert(&job).await?;
        if created {
            tracing::info!(job_id = %job.id, kind, "job queued");
            self.notifier
                .committed(JobEvent::of(EventKind::Queued, &job));
        }
        Ok(job)
    }

    /// Returns an owner's job.
    pub async fn get(&self, owner_id: &str, id: Uuid) -> JobsResult<Job> {
        self.store
            .get(id)
            .await?
            .filter(|job| job.owner_id == owner_id)
            .ok_or(JobsError::NotFound(id))
    }

    /// Lists an owner's jobs; the second value is the cursor of the next page.
    pub async fn list(
        &self,
        owner_id: &str,
        query: &JobQuery,
    ) -> JobsResult<(Vec<Job>, Option<Uuid>)> {
        let mut jobs = self.store.list(owner_id, query).await?;
        let next = if jobs.len() > query.page_size as usize {
            jobs.truncate(query.page_size as usize);
            jobs.last().map(|job| job.id)
        } else {
            None
        };
        Ok((jobs, next))
    }

    /// Cancels an owner's job.
    pub async fn cancel(&self, owner_id: &str, id: Uuid) -> JobsResult<Job> {
        let before = self.get(owner_id, id).await?;
        if before.state.is_terminal() {
            return Err(JobsError::FailedPrecondition(format!(
                "job {id} already finished ({})",
                before.state
            )));
        }
        let job = self
            .store
            .cancel(owner_id, id, now())
            .await?
            .ok_or(JobsError::NotFound(id))?;
        let kind = if job.state == JobState::Running {
            EventKind::CancelRequested
        } else {
            EventKind::Changed
        };
        self.publish(kind, &job).await;
        Ok(job)
    }

    /// Queues an owner's failed or cancelled job again.
    pub async fn retry(&self, owner_id: &str, id: Uuid) -> JobsResult<Job> {
        let before = self.get(owner_id, id).await?;
        if !self.store.retry(owner_id, id, now()).await? {
            return Err(JobsError::FailedPrecondition(format!(
                "only failed or cancelled jobs can be retried; job {id} is {}",
                before.state
            )));
        }
        let job = self.get(owner_id, id).await?;
        self.publish(EventKind::Queued, &job).await;
        Ok(job)
    }

    /// Subscribes to job events.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.notifier.subscribe()
    }

    /// Publishes an event about `job`.
    pub async fn publish(&self, kind: EventKind, job: &Job) {
        self.notifier.publish(JobEvent::of(kind, job)).await;
    }
}

/// Serialises the current span's context as a W3C `traceparent` (and `tracestate`).
fn current_trace_context() -> Option<String> {
    struct Fields(HashMap<String, String>);
    impl Injector for Fields {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key.to_owned(), value);
        }
    }
    let context = tracing::Span::current().context();
    let mut fields = Fields(HashMap::new());
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut fields)
    });
    fields.0.remove("traceparent")
}
