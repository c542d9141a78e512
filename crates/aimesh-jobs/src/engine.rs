//! The job engine's front: submitting, reading, cancelling and retrying jobs, and the event
//! stream behind watches. Workers ([`crate::worker`]) do the running.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use opentelemetry::{propagation::Injector, trace::TraceContextExt};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::Instrument;
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

/// Most submissions inserted in one transaction.
const MAX_SUBMISSIONS_PER_COMMIT: usize = 256;

/// Submits and manages jobs.
#[derive(Debug, Clone)]
pub struct Jobs {
    store: JobStore,
    notifier: Notifier,
    /// Submissions on their way to the inserter task, started by the first submission.
    submissions: Arc<OnceLock<mpsc::Sender<Submission>>>,
}

/// A job waiting to be inserted.
struct Submission {
    job: Job,
    /// The submitter's span, for the trace of the insert.
    span: tracing::Span,
    inserted: oneshot::Sender<JobsResult<(Job, bool)>>,
}

impl Jobs {
    /// Creates the engine on a store and a started notifier.
    pub fn new(store: JobStore, notifier: Notifier) -> Self {
        Self {
            store,
            notifier,
            submissions: Arc::new(OnceLock::new()),
        }
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
        let (job, created) = self.insert(job).await?;
        if created {
            tracing::info!(job_id = %job.id, kind, "job queued");
        }
        Ok(job)
    }

    /// Inserts a job through the inserter task.
    async fn insert(&self, job: Job) -> JobsResult<(Job, bool)> {
        let submissions = self.submissions.get_or_init(|| {
            let (tx, rx) = mpsc::channel(MAX_SUBMISSIONS_PER_COMMIT);
            tokio::spawn(insert_submissions(
                self.store.clone(),
                self.notifier.clone(),
                rx,
            ));
            tx
        });
        let (inserted, wait) = oneshot::channel();
        let submission = Submission {
            job,
            span: tracing::Span::current(),
            inserted,
        };
        let lost = || JobsError::Db(sqlx::Error::WorkerCrashed);
        submissions.send(submission).await.map_err(|_| lost())?;
        wait.await.map_err(|_| lost())?
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

/// Inserts submissions as they come, all those waiting in one transaction: concurrent
/// submitters share commits (on PostgreSQL, a transaction that notifies holds a lock through
/// its commit, so one commit per job would cap the rate of submissions), and a submission
/// alone is inserted at once. The insert's database span is a child of the first submitter's
/// span and links to the others'. Ends when every [`Jobs`] handle is dropped.
async fn insert_submissions(
    store: JobStore,
    notifier: Notifier,
    mut submissions: mpsc::Receiver<Submission>,
) {
    let mut batch = Vec::with_capacity(MAX_SUBMISSIONS_PER_COMMIT);
    while submissions
        .recv_many(&mut batch, MAX_SUBMISSIONS_PER_COMMIT)
        .await
        > 0
    {
        let (jobs, waiting): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .map(|s| (s.job, (s.span, s.inserted)))
            .unzip();
        let links = links_to_all_but_first(waiting.iter().map(|(span, _)| span));
        let first = waiting[0].0.clone();
        match store.insert_many(&jobs, &links).instrument(first).await {
            Ok(results) => {
                for (result, (_, inserted)) in results.into_iter().zip(waiting) {
                    if result.1 {
                        notifier.committed(JobEvent::of(EventKind::Queued, &result.0));
                    }
                    let _ = inserted.send(Ok(result));
                }
            }
            // Each submission tries alone, to get its own error.
            Err(_) => {
                for (job, (span, inserted)) in jobs.into_iter().zip(waiting) {
                    let result = store.insert(&job).instrument(span).await;
                    if let Ok((job, true)) = &result {
                        notifier.committed(JobEvent::of(EventKind::Queued, job));
                    }
                    let _ = inserted.send(result);
                }
            }
        }
    }
}

/// The span contexts of the traces a batched statement serves besides the first caller's
/// (whose span is the statement span's parent): the links of an OpenTelemetry batch operation.
pub(crate) fn links_to_all_but_first<'a>(
    spans: impl Iterator<Item = &'a tracing::Span>,
) -> Vec<opentelemetry::trace::SpanContext> {
    spans
        .skip(1)
        .map(|span| span.context().span().span_context().clone())
        .filter(|context| context.is_valid())
        .collect()
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
