//! Workers: claim jobs under a lease, run them, and record how they ended.
//!
//! Per handler kind, a worker runs at most `concurrency` jobs at once. Each running job holds
//! a lease renewed by heartbeats every third of its length; if the worker dies, the lease
//! lapses and another worker claims the job again (at-least-once execution — handlers make
//! their effects idempotent, and a result is recorded only by the lease holder). Failures are
//! retried after `base * 2^(attempt-1)` (capped, with jitter) until `max_attempts`.
//! Cancellation reaches the handler through its [`CancellationToken`]. On shutdown the worker
//! stops claiming, lets running jobs finish within the grace period, then cancels and releases
//! the rest to the queue.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use opentelemetry::propagation::Extractor;
use rand::Rng;
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::{
    batch::{Batch, Batcher},
    error::JobsError,
    model::{EventKind, Job, JobOutput, JobState, Outcome, now},
    store::JobStore,
};

/// Longest a free slot waits for others before a busy worker claims a job for it.
const CLAIM_COOLDOWN: Duration = Duration::from_millis(5);

/// Most outcomes recorded in one transaction.
const MAX_OUTCOMES_PER_COMMIT: usize = 256;

/// How a handler failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (a dependency hiccup).
    #[error("{0}")]
    Retryable(String),
    /// Will fail again however often it is tried (bad input, missing resource).
    #[error("{0}")]
    Permanent(String),
    /// The handler stopped because its token was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// Runs jobs of one kind.
pub trait JobHandler: Send + Sync + 'static {
    /// The kind of job handled, e.g. `notes.translate`.
    fn kind(&self) -> &'static str;
    /// Runs one attempt of a job.
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>>;
}

/// What a handler gets to run a job.
pub struct JobContext {
    /// The job (payload, owner, attempt number...).
    pub job: Job,
    /// Cancelled when the job is cancelled, its lease is lost, or the worker shuts down.
    pub cancel: CancellationToken,
    reporter: ProgressReporter,
}

impl JobContext {
    /// Records progress: percent (0-100), a message, and output produced so far.
    pub async fn progress(&self, percent: i32, message: &str, partial_output: &str) {
        self.reporter
            .report(percent.clamp(0, 100), message, partial_output)
            .await;
    }
}

#[derive(Clone)]
struct ProgressReporter {
    store: JobStore,
    job: Job,
    worker_id: Arc<str>,
}

impl ProgressReporter {
    async fn report(&self, percent: i32, message: &str, partial: &str) {
        match self
            .store
            .progress(
                self.job.id,
                &self.worker_id,
                percent,
                message,
                partial,
                now(),
            )
            .await
        {
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, job_id = %self.job.id, "failed to record progress")
            }
        }
    }
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Length of a lease.
    pub lease: Duration,
    /// How often to look for jobs without a wake-up, and for jobs whose lease lapsed.
    pub poll_interval: Duration,
    /// First retry delay.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// How long running jobs may take to finish at shutdown.
    pub grace: Duration,
    /// Jobs of one kind run at once, per worker.
    pub concurrency: usize,
    /// Names the worker's host (e.g. its host name) in the worker id, the `lease_owner` of
    /// its jobs: `<worker_name>/<process id>/<unique id>`.
    pub worker_name: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            grace: Duration::from_secs(30),
            concurrency: 4,
            worker_name: "worker".into(),
        }
    }
}

/// Claims and runs jobs for a set of handlers; made by [`Jobs::worker`](crate::Jobs::worker).
pub struct Worker {
    store: JobStore,
    handlers: Vec<Arc<dyn JobHandler>>,
    config: WorkerConfig,
    id: Arc<str>,
}

/// An attempt's outcome on its way to the database, with the kind of job its slot runs next
/// when it wants one (claimed in the same commit).
struct Ending {
    outcome: Outcome,
    successor: Option<&'static str>,
}

/// What recording an outcome gave its slot.
struct Recorded {
    /// Whether the outcome applied (the worker still held the lease).
    applied: bool,
    /// The job the slot runs next, if one of its kind was queued.
    next: Option<Job>,
}

/// The result of recording an outcome.
type RecordResult = Result<Recorded, Arc<JobsError>>;

/// A running worker's state, shared by its tasks.
struct Runner {
    store: JobStore,
    config: WorkerConfig,
    id: Arc<str>,
    running: Mutex<HashMap<Uuid, CancellationToken>>,
    /// Records outcomes, those that finish together in one transaction.
    outcomes: Batcher<Ending, RecordResult>,
}

impl Worker {
    /// Creates a worker with a unique id.
    pub(crate) fn new(
        store: JobStore,
        handlers: Vec<Arc<dyn JobHandler>>,
        config: WorkerConfig,
    ) -> Self {
        let id = format!(
            "{}/{}/{}",
            config.worker_name,
            std::process::id(),
            Uuid::now_v7()
        );
        Self {
            store,
            handlers,
            config,
            id: id.into(),
        }
    }

    /// Returns the worker's id (the `lease_owner` of its jobs).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs until `shutdown` is cancelled, then drains as described in the module docs.
    pub async fn run(self, shutdown: CancellationToken) {
        let Worker {
            store,
            handlers,
            config,
            id,
        } = self;
        // Each running job has at most one outcome in flight.
        let capacity = config.concurrency.max(1) * handlers.len();
        let outcomes = Batcher::start(capacity, MAX_OUTCOMES_PER_COMMIT, {
            let store = store.clone();
            let id = id.clone();
            let lease = lease(&config);
            move |batch| record(store.clone(), id.clone(), lease, batch)
        });
        let this = Arc::new(Runner {
            store,
            config,
            id,
            running: Mutex::new(HashMap::new()),
            outcomes,
        });
        // Abort token for handlers still running when the grace period ends.
        let abort = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(this.clone().route_cancellations(shutdown.clone()));
        let mut loops = JoinSet::new();
        for handler in &handlers {
            loops.spawn(
                this.clone()
                    .claim_loop(handler.clone(), shutdown.clone(), abort.clone()),
            );
        }
        tracing::info!(worker = %this.id, kinds = ?handlers.iter().map(|h| h.kind()).collect::<Vec<_>>(), "worker started");
        shutdown.cancelled().await;
        tracing::info!(worker = %this.id, "worker stopping: letting running jobs finish");
        // Each claim loop returns once its running jobs are done (or aborted after the grace).
        let drained = tokio::time::timeout(this.config.grace, async {
            while loops.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("grace period over: cancelling running jobs");
            abort.cancel();
            while loops.join_next().await.is_some() {}
        }
        match this.store.release(&this.id, now()).await {
            Ok(0) => {}
            Ok(released) => {
                tracing::info!(count = released, "released unfinished jobs to the queue");
            }
            Err(error) => tracing::error!(%error, "failed to release jobs"),
        }
        tasks.abort_all();
        tracing::info!(worker = %this.id, "worker stopped");
    }
}

/// Records a batch of `worker`'s outcomes in one transaction, and claims in it the jobs their
/// slots run next (leased for `lease`): when many jobs finish at once (short jobs under load)
/// the commits, not the jobs, are what cost.
async fn record(
    store: JobStore,
    worker: Arc<str>,
    lease: chrono::Duration,
    batch: Batch<Ending>,
) -> Vec<RecordResult> {
    let links = batch.links();
    let (outcomes, wanted): (Vec<Outcome>, Vec<Option<&'static str>>) = batch
        .items
        .into_iter()
        .map(|ending| (ending.outcome, ending.successor))
        .unzip();
    let mut successors: Vec<(&str, i64)> = Vec::new();
    for kind in wanted.iter().flatten() {
        match successors.iter_mut().find(|(k, _)| k == kind) {
            Some((_, count)) => *count += 1,
            None => successors.push((kind, 1)),
        }
    }
    let now = now();
    match store
        .finish_many(&worker, &outcomes, &successors, now, now + lease, &links)
        .await
    {
        Ok(finished) => {
            let mut claimed = finished.claimed;
            outcomes
                .iter()
                .zip(wanted)
                .map(|(outcome, kind)| {
                    let next = kind.and_then(|kind| {
                        let at = claimed.iter().position(|job| job.kind == kind)?;
                        Some(claimed.swap_remove(at))
                    });
                    Ok(Recorded {
                        applied: finished.applied.contains(&outcome.id),
                        next,
                    })
                })
                .collect()
        }
        Err(error) => {
            let error = Arc::new(error);
            outcomes.iter().map(|_| Err(error.clone())).collect()
        }
    }
}

impl Runner {
    /// Forwards cancellation requests to the handlers running here.
    async fn route_cancellations(self: Arc<Self>, shutdown: CancellationToken) {
        let mut events = self.store.subscribe_cancellations();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = events.recv() => match event {
                    Ok(event) if event.kind == EventKind::CancelRequested => {
                        if let Some(token) = self.running.lock().unwrap_or_else(|e| e.into_inner()).get(&event.job_id) {
                            token.cancel();
                        }
                    }
                    // Missed requests reach the handlers through their heartbeats.
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    }

    async fn claim_loop(
        self: Arc<Self>,
        handler: Arc<dyn JobHandler>,
        shutdown: CancellationToken,
        abort: CancellationToken,
    ) {
        let kind = handler.kind();
        let slots_total = self.config.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(slots_total));
        let claim_batch = slots_total.div_ceil(4);
        let mut last_claim = Instant::now();
        // Lapsed leases are looked for at start and then once per poll interval.
        let lapsed = Arc::new(LapsedCheck {
            interval: self.config.poll_interval,
            last: Mutex::new(None),
        });
        let queued = self.store.queued(kind);
        let mut running = JoinSet::new();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            // Registered before claiming, so a job queued meanwhile still wakes the wait below.
            let wake = queued.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let free = slots.available_permits();
            let mut claimed = Vec::new();
            // Busy, claim in batches: each claim walks the queue's index from its oldest
            // entry, so one claim per freed slot would cost more than the short jobs it
            // claims. A free slot waits at most CLAIM_COOLDOWN for others to free.
            let busy = slots_total - free;
            let due = busy == 0 || free >= claim_batch || last_claim.elapsed() >= CLAIM_COOLDOWN;
            if free > 0 && due {
                last_claim = Instant::now();
                let now = now();
                let lease_until = now + lease(&self.config);
                let store = &self.store;
                if lapsed.take() {
                    match store
                        .claim_lapsed(kind, &self.id, free as i64, now, lease_until)
                        .await
                    {
                        Ok(jobs) => claimed = jobs,
                        Err(error) => tracing::warn!(%error, kind, "reclaiming jobs failed"),
                    }
                }
                let left = free - claimed.len();
                if left > 0 {
                    match store
                        .claim(kind, &self.id, left as i64, now, lease_until)
                        .await
                    {
                        Ok(jobs) => claimed.extend(jobs),
                        Err(error) => tracing::warn!(%error, kind, "claiming jobs failed"),
                    }
                }
            }
            let got = claimed.len();
            for job in claimed {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    break;
                };
                let this = self.clone();
                let handler = handler.clone();
                let shutdown = shutdown.clone();
                let abort = abort.clone();
                let lapsed = lapsed.clone();
                running.spawn(async move {
                    this.run_slot(handler, job, &lapsed, shutdown, abort).await;
                    drop(permit);
                });
            }
            while running.try_join_next().is_some() {}
            if got > 0 && got == free {
                continue; // more may be waiting
            }
            // Sleep until a job of this kind is queued, a slot frees, or the poll interval
            // (or the cooldown, when a slot is free).
            let nap = if free > 0 && !due {
                CLAIM_COOLDOWN.saturating_sub(last_claim.elapsed())
            } else {
                self.config.poll_interval
            };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(nap) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = &mut wake => {}
            }
        }
        while running.join_next().await.is_some() {}
    }

    /// Runs `job` in a slot of its kind, then, as each job ends, the one claimed for the slot
    /// with its outcome, until none was queued, the claim loop's look for lapsed leases is due
    /// (`lapsed`), or the worker stops.
    async fn run_slot(
        &self,
        handler: Arc<dyn JobHandler>,
        mut job: Job,
        lapsed: &LapsedCheck,
        shutdown: CancellationToken,
        abort: CancellationToken,
    ) {
        loop {
            let successor = (!shutdown.is_cancelled() && !lapsed.due()).then(|| handler.kind());
            match self
                .execute(handler.clone(), job, abort.clone(), successor)
                .await
            {
                // A job claimed as the worker began to stop is left to the release that
                // ends `Worker::run`.
                Some(next) if !shutdown.is_cancelled() => job = next,
                _ => break,
            }
        }
    }

    /// Runs one attempt of `job` and records its outcome; returns the job claimed with it for
    /// the slot, of kind `successor` if one is wanted.
    async fn execute(
        &self,
        handler: Arc<dyn JobHandler>,
        job: Job,
        abort: CancellationToken,
        successor: Option<&'static str>,
    ) -> Option<Job> {
        let span = tracing::info_span!(
            "job.run",
            otel.name = %format!("job {}", job.kind),
            job.id = %job.id,
            job.kind = %job.kind,
            job.attempt = job.attempts,
        );
        if let Some(parent) = &job.trace_context {
            let context = opentelemetry::global::get_text_map_propagator(|propagator| {
                propagator.extract(&TraceParent(parent))
            });
            let _ = span.set_parent(context);
        }
        self.execute_in_span(handler, job, abort, successor)
            .instrument(span)
            .await
    }

    async fn execute_in_span(
        &self,
        handler: Arc<dyn JobHandler>,
        job: Job,
        abort: CancellationToken,
        successor: Option<&'static str>,
    ) -> Option<Job> {
        let store = &self.store;
        if job.cancel_requested {
            return self
                .finish(
                    &job,
                    JobState::Cancelled,
                    None,
                    Some("cancelled"),
                    None,
                    successor,
                )
                .await;
        }
        if job.attempts > job.max_attempts {
            // Claimed again after its lease lapsed on the last attempt.
            return self
                .finish(
                    &job,
                    JobState::Failed,
                    None,
                    Some("the worker running the last attempt stopped responding"),
                    None,
                    successor,
                )
                .await;
        }
        tracing::info!(attempt = job.attempts, "job started");

        let cancel = abort.child_token();
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.id, cancel.clone());
        let lost = CancellationToken::new();
        let heartbeat = tokio::spawn({
            let store = store.clone();
            let cancel = cancel.clone();
            let lost = lost.clone();
            let id = job.id;
            let worker = self.id.clone();
            let lease = self.config.lease;
            async move {
                let mut tick = tokio::time::interval(lease / 3);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let until = now() + chrono::Duration::from_std(lease).unwrap_or_default();
                    match store.heartbeat(id, &worker, until).await {
                        Ok(Some(false)) => {}
                        Ok(Some(true)) => cancel.cancel(),
                        Ok(None) => {
                            tracing::warn!(job_id = %id, "lease lost: stopping the handler");
                            lost.cancel();
                            cancel.cancel();
                            break;
                        }
                        Err(error) => tracing::warn!(%error, job_id = %id, "heartbeat failed"),
                    }
                }
            }
            // In the job's span, so the lease renewals are part of its trace.
            .in_current_span()
        });

        let ctx = JobContext {
            job: job.clone(),
            cancel: cancel.clone(),
            reporter: ProgressReporter {
                store: self.store.clone(),
                job: job.clone(),
                worker_id: self.id.clone(),
            },
        };
        let started = std::time::Instant::now();
        // In the job's span: the handler's work (its database calls...) joins the job's trace.
        let outcome = tokio::spawn(handler.run(ctx).in_current_span()).await;
        let elapsed = started.elapsed().as_secs_f64();
        heartbeat.abort();
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&job.id);
        if lost.is_cancelled() {
            return None; // another worker owns the job now
        }
        let outcome = outcome
            .unwrap_or_else(|panic| Err(JobError::Retryable(format!("handler panicked: {panic}"))));
        let label = match &outcome {
            Ok(_) => "succeeded",
            Err(JobError::Cancelled) => "cancelled",
            Err(JobError::Retryable(_)) => "retryable_error",
            Err(JobError::Permanent(_)) => "failed",
        };
        metrics::histogram!(
            "aimesh_job_duration_seconds",
            "kind" => job.kind.clone(),
            "outcome" => label
        )
        .record(elapsed);
        match outcome {
            Ok(output) => {
                tracing::info!("job succeeded");
                self.finish(
                    &job,
                    JobState::Succeeded,
                    Some(output),
                    None,
                    None,
                    successor,
                )
                .await
            }
            Err(JobError::Cancelled)
                if abort.is_cancelled() && !self.cancel_requested(&job).await =>
            {
                // Shutdown, not the user: leave it RUNNING for release at the end of `run`.
                None
            }
            Err(JobError::Cancelled) => {
                tracing::info!("job cancelled");
                self.finish(
                    &job,
                    JobState::Cancelled,
                    None,
                    Some("cancelled"),
                    None,
                    successor,
                )
                .await
            }
            Err(JobError::Retryable(error)) if job.attempts < job.max_attempts => {
                let delay = backoff(&self.config, job.attempts);
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "job attempt failed");
                let retry_at = now() + chrono::Duration::from_std(delay).unwrap_or_default();
                self.finish(
                    &job,
                    JobState::Queued,
                    None,
                    Some(&error),
                    Some(retry_at),
                    successor,
                )
                .await
            }
            Err(JobError::Retryable(error) | JobError::Permanent(error)) => {
                tracing::warn!(%error, "job failed");
                self.finish(&job, JobState::Failed, None, Some(&error), None, successor)
                    .await
            }
        }
    }

    async fn cancel_requested(&self, job: &Job) -> bool {
        matches!(self.store.get(job.id).await, Ok(Some(job)) if job.cancel_requested)
    }

    /// Records how an attempt ended, with the outcomes that finish at the same time, and
    /// claims with it a queued job of kind `successor` for the slot, when one is wanted;
    /// returns once it is recorded (or failed to be), with the job claimed.
    async fn finish(
        &self,
        job: &Job,
        state: JobState,
        result: Option<JobOutput>,
        error: Option<&str>,
        retry_at: Option<DateTime<Utc>>,
        successor: Option<&'static str>,
    ) -> Option<Job> {
        let outcome = Outcome {
            id: job.id,
            state,
            result,
            error: error.map(str::to_owned),
            retry_at,
        };
        let job_id = job.id;
        match self.outcomes.submit(Ending { outcome, successor }).await {
            Some(Ok(Recorded { applied, next })) => {
                if !applied {
                    tracing::warn!(%job_id, "lease lost before the outcome was recorded");
                }
                next
            }
            Some(Err(error)) => {
                tracing::error!(%error, %job_id, "failed to record the job's outcome");
                None
            }
            None => {
                tracing::error!(%job_id, "failed to record the job's outcome: worker stopped");
                None
            }
        }
    }
}

/// When a kind's claim loop last looked for jobs whose lease lapsed (their worker died).
///
/// Slots that end jobs claim their successors themselves, so a busy worker's slots might never
/// come back to the claim loop, the only one to look: once a look is due, slots stop asking
/// for successors, the claim loop gets them back within its cooldown, and it looks as it
/// claims for them. Jobs of a dead worker thus wait at most about a poll interval for a busy
/// worker, not for the queue to drain.
struct LapsedCheck {
    interval: Duration,
    last: Mutex<Option<Instant>>,
}

impl LapsedCheck {
    /// Whether the next look is due.
    fn due(&self) -> bool {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|at| at.elapsed() >= self.interval)
    }

    /// Whether the next look is due, noting it as made now if so (one lock for both).
    fn take(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= self.interval);
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}

fn lease(config: &WorkerConfig) -> chrono::Duration {
    chrono::Duration::from_std(config.lease).unwrap_or(chrono::Duration::seconds(30))
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, capped, times a random factor in
/// [0.5, 1].
fn backoff(config: &WorkerConfig, attempt: i32) -> Duration {
    let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
    let delay = config
        .backoff_base
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(config.backoff_max);
    delay.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

struct TraceParent<'a>(&'a str);

impl Extractor for TraceParent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_jitter_and_cap() {
        let config = WorkerConfig {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ..WorkerConfig::default()
        };
        for (attempt, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let delay = backoff(&config, attempt).as_millis() as u64;
            assert!(
                (full / 2..=full).contains(&delay),
                "attempt {attempt}: {delay} ms not in [{}, {full}]",
                full / 2
            );
        }
    }
}
