//! The job engine's one face, [`Jobs`]: submitting, reading, cancelling, retrying and
//! watching jobs, scheduling recurring ones, and making [`Worker`]s to run them.

use std::{collections::HashMap, sync::Arc, time::Duration};

use aimesh_kit::db::Db;
use futures::{StreamExt, stream::BoxStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    batch::{Batch, Batcher},
    error::{JobsError, JobsResult},
    model::{EventKind, Job, JobEvent, JobPage, JobQuery, JobState, KindStats, SubmitOptions, now},
    notify::JobWatch,
    schedule::{Cadence, Scheduler},
    store::JobStore,
    worker::{JobHandler, Worker, WorkerConfig},
};

/// Longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

/// Most submissions inserted in one transaction.
const MAX_SUBMISSIONS_PER_COMMIT: usize = 256;

/// How often the `aimesh_jobs_queued` gauge is refreshed.
const QUEUE_DEPTH_INTERVAL: Duration = Duration::from_secs(5);

/// A stream of job snapshots (see [`Jobs::watch`] and [`Jobs::watch_all`]). A database error
/// is its last item.
pub type JobStream = BoxStream<'static, JobsResult<Job>>;

/// The job engine: submits and manages jobs, streams their changes, fires schedules, and
/// makes workers. Cheap to clone; every clone is the same engine.
#[derive(Debug, Clone)]
pub struct Jobs {
    store: JobStore,
    /// Inserts submissions, those that arrive together in one transaction.
    submissions: Batcher<Job, JobsResult<(Job, bool)>>,
    scheduler: Scheduler,
    watches: Arc<WatchSlots>,
}

/// How the writes of workers — claims, heartbeats, progress and outcomes — commit on
/// PostgreSQL. Submissions, cancellations and retries, which a client is told have happened,
/// always commit durably; so does everything on SQLite.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WorkerCommits {
    /// A commit returns once its WAL record is flushed: what a worker did survives a crash
    /// of the database server.
    #[default]
    Durable,
    /// A commit returns before its WAL record is flushed (`synchronous_commit = off` on the
    /// workers' connections), which spares each one a wait for the disk and lets one flush
    /// serve many. A crash of the database server — not of a process of the mesh — can lose
    /// the workers' last writes (up to three times `wal_writer_delay`, 0.6 s by default):
    /// a claim lost puts its job back in the queue, an outcome lost leaves its job running
    /// until its lease lapses, when it is claimed again. No job is lost and none corrupted,
    /// and jobs run at least once either way; but a job may run again after a watcher saw it
    /// end.
    Asynchronous,
}

/// Bounds on open watch streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchLimits {
    /// Streams one user may have open at once.
    pub per_user: usize,
    /// Streams this process serves at once.
    pub total: usize,
}

impl Default for WatchLimits {
    fn default() -> Self {
        Self {
            per_user: 32,
            total: 20_000,
        }
    }
}

/// The open watch streams, counted against [`WatchLimits`].
#[derive(Debug, Default)]
struct WatchSlots {
    limits: std::sync::RwLock<WatchLimits>,
    open: std::sync::Mutex<(usize, HashMap<String, usize>)>,
}

/// One open watch stream's place; dropping it frees the place.
struct WatchSlot {
    slots: Arc<WatchSlots>,
    owner_id: String,
}

impl WatchSlots {
    /// How many streams are open.
    fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    fn take(self: &Arc<Self>, owner_id: &str) -> JobsResult<WatchSlot> {
        let limits = *self.limits.read().unwrap_or_else(|e| e.into_inner());
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.0 >= limits.total {
            return Err(JobsError::TooManyWatches {
                scope: "on this server",
                limit: limits.total,
            });
        }
        let mine = open.1.entry(owner_id.to_owned()).or_default();
        if *mine >= limits.per_user {
            return Err(JobsError::TooManyWatches {
                scope: "for this user",
                limit: limits.per_user,
            });
        }
        *mine += 1;
        open.0 += 1;
        Ok(WatchSlot {
            slots: self.clone(),
            owner_id: owner_id.to_owned(),
        })
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(mine) = open.1.get_mut(&self.owner_id) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                open.1.remove(&self.owner_id);
            }
        }
    }
}

impl Jobs {
    /// Starts the engine on a migrated database (see [`MIGRATIONS`](crate::MIGRATIONS)): opens
    /// its store (on PostgreSQL a pool of its own, and the listener that brings job events from
    /// every replica), and starts the submission inserter, the scheduler and the
    /// `aimesh_jobs_queued{kind}` gauge. Background work stops with `shutdown`. Workers' writes
    /// commit as `worker_commits` says.
    pub async fn start(
        db: Db,
        worker_commits: WorkerCommits,
        shutdown: CancellationToken,
    ) -> JobsResult<Self> {
        let store = JobStore::open(db, worker_commits, shutdown.clone()).await?;
        let submissions = Batcher::start(MAX_SUBMISSIONS_PER_COMMIT, MAX_SUBMISSIONS_PER_COMMIT, {
            let store = store.clone();
            move |batch| insert(store.clone(), batch)
        });
        let scheduler = Scheduler::start(store.clone(), shutdown.clone());
        tokio::spawn(gauge_queue_depth(store.clone(), shutdown));
        Ok(Self {
            store,
            submissions,
            scheduler,
            watches: Arc::default(),
        })
    }

    /// Bounds the watch streams open at once (see [`Jobs::watch`]); beyond them a new watch
    /// is refused with [`JobsError::TooManyWatches`].
    pub fn set_watch_limits(&self, limits: WatchLimits) {
        *self
            .watches
            .limits
            .write()
            .unwrap_or_else(|e| e.into_inner()) = limits;
    }

    /// Returns the store, for the crate's tests.
    #[cfg(test)]
    pub(crate) fn store(&self) -> &JobStore {
        &self.store
    }

    /// Sends the job events still waiting and closes the connections the engine opened itself
    /// (its PostgreSQL pool). The database given to [`Jobs::start`] stays open: it is its
    /// owner's to close.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Queues a job of `kind` for `owner`, carrying the current trace context so the worker's
    /// span joins the submitting request's trace. With an idempotency key the owner already
    /// used, returns the existing job. Submissions that arrive together are inserted in one
    /// transaction.
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
            trace_context: aimesh_kit::telemetry::current_traceparent(),
            cancel_requested: false,
            lease_owner: None,
            lease_expires_at: None,
            run_after,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
        };
        let (job, created) = self
            .submissions
            .submit(job)
            .await
            .unwrap_or(Err(JobsError::Db(sqlx::Error::WorkerCrashed)))?;
        if created {
            tracing::info!(job_id = %job.id, kind, "job queued");
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

    /// Lists an owner's jobs, newest first.
    pub async fn list(&self, owner_id: &str, query: &JobQuery) -> JobsResult<JobPage> {
        let mut jobs = self.store.list(owner_id, query).await?;
        let next = aimesh_kit::paging::take_page(&mut jobs, query.page_size, |job| job.id);
        Ok(JobPage { jobs, next })
    }

    /// Cancels an owner's job: a queued one at once, a running one at its handler's next
    /// check.
    pub async fn cancel(&self, owner_id: &str, id: Uuid) -> JobsResult<Job> {
        let before = self.get(owner_id, id).await?;
        if before.state.is_terminal() {
            return Err(already_finished(&before));
        }
        match self.store.cancel(owner_id, id, now()).await? {
            Some(job) => Ok(job),
            // It finished meanwhile.
            None => Err(already_finished(&self.get(owner_id, id).await?)),
        }
    }

    /// Queues an owner's failed or cancelled job again, with a fresh attempt budget.
    pub async fn retry(&self, owner_id: &str, id: Uuid) -> JobsResult<Job> {
        let before = self.get(owner_id, id).await?;
        self.store.retry(owner_id, id, now()).await?.ok_or_else(|| {
            JobsError::FailedPrecondition(format!(
                "only failed or cancelled jobs can be retried; job {id} is {}",
                before.state
            ))
        })
    }

    /// Watches an owner's job: the stream yields the job as it is now, then each change (from
    /// any replica), and ends after a terminal state. A snapshot equal to the last one is not
    /// repeated; when events may have been lost the job is read again. Fails at once when the
    /// owner has no such job.
    pub async fn watch(&self, owner_id: &str, id: Uuid) -> JobsResult<JobStream> {
        let slot = self.watches.take(owner_id)?;
        // Watch before the first read so no change between the two is missed.
        let changes = self.store.watch_job(id);
        let first = self.get(owner_id, id).await?;
        let watch = (!first.state.is_terminal()).then(|| Watch {
            store: self.store.clone(),
            changes,
            id,
            last: first.clone(),
        });
        let changes =
            futures::stream::unfold(watch, |watch| async move { watch?.next_change().await });
        Ok(futures::stream::iter([Ok(first)])
            .chain(changes)
            .map(move |job| {
                let _slot = &slot;
                job
            })
            .boxed())
    }

    /// Watches every change to any of an owner's jobs (from any replica): the stream yields
    /// the changed job after each change. Nothing is dropped silently: a watcher that falls
    /// too far behind (or whose events may have been lost, when a replica's listener
    /// reconnected) gets [`JobsError::Lagged`] as its last item, and watches again.
    pub fn watch_all(&self, owner_id: &str) -> JobsResult<JobStream> {
        let slot = self.watches.take(owner_id)?;
        let watch = WatchAll {
            jobs: self.clone(),
            events: self.store.subscribe(),
            owner_id: Some(owner_id.to_owned()),
        };
        Ok(futures::stream::unfold(
            Some(watch),
            |watch| async move { watch?.next_change().await },
        )
        .map(move |job| {
            let _slot = &slot;
            job
        })
        .boxed())
    }

    // === administration: every owner's jobs ===

    /// Returns any owner's job (administration).
    pub async fn get_any(&self, id: Uuid) -> JobsResult<Job> {
        self.store.get(id).await?.ok_or(JobsError::NotFound(id))
    }

    /// Lists every owner's jobs (only `owner_id`'s, when given), newest first
    /// (administration).
    pub async fn list_any(&self, owner_id: Option<&str>, query: &JobQuery) -> JobsResult<JobPage> {
        let mut jobs = self.store.list_all(owner_id, query).await?;
        let next = aimesh_kit::paging::take_page(&mut jobs, query.page_size, |job| job.id);
        Ok(JobPage { jobs, next })
    }

    /// Cancels any owner's job (administration); see [`Jobs::cancel`].
    pub async fn cancel_any(&self, id: Uuid) -> JobsResult<Job> {
        let job = self.get_any(id).await?;
        self.cancel(&job.owner_id, id).await
    }

    /// Retries any owner's failed or cancelled job (administration); see [`Jobs::retry`].
    pub async fn retry_any(&self, id: Uuid) -> JobsResult<Job> {
        let job = self.get_any(id).await?;
        self.retry(&job.owner_id, id).await
    }

    /// Watches every change to every job, whoever owns it (administration), as
    /// [`Jobs::watch_all`] watches one owner's; the stream counts against `watcher_id`'s
    /// watch limit.
    pub fn watch_every_job(&self, watcher_id: &str) -> JobsResult<JobStream> {
        let slot = self.watches.take(watcher_id)?;
        let watch = WatchAll {
            jobs: self.clone(),
            events: self.store.subscribe(),
            owner_id: None,
        };
        Ok(futures::stream::unfold(
            Some(watch),
            |watch| async move { watch?.next_change().await },
        )
        .map(move |job| {
            let _slot = &slot;
            job
        })
        .boxed())
    }

    /// Returns each kind's queue: queued and running now, succeeded and failed within the last
    /// `window`, run-time percentiles of those (from the latest 50 000), and the oldest queued
    /// job's age. Kinds with nothing to report are absent.
    pub async fn stats(&self, window: Duration) -> JobsResult<Vec<KindStats>> {
        const SAMPLE: i64 = 50_000;
        let now = now();
        let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::hours(1));
        let mut kinds: std::collections::BTreeMap<String, (KindStats, Vec<Duration>)> =
            std::collections::BTreeMap::new();
        for (kind, state, count, oldest) in self.store.stats_active().await? {
            let (entry, _) = kinds.entry(kind.clone()).or_default();
            entry.kind = kind;
            match state {
                JobState::Queued => {
                    entry.queued = count;
                    entry.oldest_queued_age = oldest.and_then(|at| (now - at).to_std().ok());
                }
                _ => entry.running = count,
            }
        }
        for job in self.store.stats_finished(since, SAMPLE).await? {
            let (entry, durations) = kinds.entry(job.kind.clone()).or_default();
            entry.kind = job.kind;
            if job.state == JobState::Succeeded.as_str() {
                entry.succeeded += 1;
            } else {
                entry.failed += 1;
            }
            if let (Some(start), Some(end)) = (job.started_at, job.finished_at)
                && let Ok(took) = (end - start).to_std()
            {
                durations.push(took);
            }
        }
        Ok(kinds
            .into_values()
            .map(|(mut stats, mut durations)| {
                durations.sort();
                stats.p50_run_time = percentile(&durations, 50);
                stats.p95_run_time = percentile(&durations, 95);
                stats
            })
            .collect())
    }

    /// Deletes at most `batch` of the jobs that finished (succeeded, failed, cancelled)
    /// before `before`, the oldest first; returns how many went. The retention job
    /// ([`crate::retention`]) calls it until a batch comes back short.
    pub async fn purge_finished(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        batch: u32,
    ) -> JobsResult<u64> {
        self.store
            .purge_finished(before, i64::from(batch.max(1)))
            .await
    }

    /// Deletes every job of `owner_id`, whatever its state (an account's deletion); returns
    /// how many.
    pub async fn delete_owner(&self, owner_id: &str) -> JobsResult<u64> {
        self.store.delete_owner(owner_id).await
    }

    /// Returns how many watch streams are open.
    pub fn open_watches(&self) -> usize {
        self.watches.open()
    }

    /// Registers a recurring job, `name` unique across the deployment: at each tick of
    /// `cadence` a job of `kind` with `payload` is submitted for
    /// [`SYSTEM_OWNER`](crate::SYSTEM_OWNER) — once per tick however many replicas register
    /// the same schedule (see [`crate::schedule`]). Registering a name again updates its
    /// schedule; its next run stays unless the cadence changed.
    pub async fn schedule(
        &self,
        name: &str,
        cadence: Cadence,
        kind: &str,
        payload: Vec<u8>,
    ) -> JobsResult<()> {
        self.scheduler.register(name, cadence, kind, payload).await
    }

    /// Makes a worker that runs jobs of the `handlers`' kinds (see [`Worker::run`]).
    pub fn worker(&self, handlers: Vec<Arc<dyn JobHandler>>, config: WorkerConfig) -> Worker {
        Worker::new(self.store.clone(), handlers, config)
    }
}

/// The `p`th percentile (nearest rank) of sorted durations.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn already_finished(job: &Job) -> JobsError {
    JobsError::FailedPrecondition(format!("job {} already finished ({})", job.id, job.state))
}

/// The state of a [`Jobs::watch`] stream.
struct Watch {
    store: JobStore,
    /// The events about the job.
    changes: JobWatch,
    id: Uuid,
    /// The snapshot yielded last.
    last: Job,
}

impl Watch {
    /// Waits for the job's next change; the stream ends after a terminal state, an error, or
    /// the job's disappearance. Each event about the job is read once for all its watchers.
    async fn next_change(mut self) -> Option<(JobsResult<Job>, Option<Self>)> {
        loop {
            self.changes.changed().await;
            let job = match self.changes.read(|| self.store.get(self.id)).await {
                Ok(Some(job)) => job,
                Ok(None) => return None,
                Err(error) => return Some((Err(error), None)),
            };
            if job == self.last {
                continue;
            }
            self.last = job.clone();
            let more = !job.state.is_terminal();
            return Some((Ok(job), more.then_some(self)));
        }
    }
}

/// The state of a [`Jobs::watch_all`] (or [`Jobs::watch_every_job`]) stream.
struct WatchAll {
    jobs: Jobs,
    events: broadcast::Receiver<JobEvent>,
    /// The owner watched; `None`: every owner.
    owner_id: Option<String>,
}

impl WatchAll {
    /// Waits for the next change to one of the owner's jobs; the stream ends after an error.
    async fn next_change(mut self) -> Option<(JobsResult<Job>, Option<Self>)> {
        loop {
            let event = match self.events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "job watcher lagged: ending it");
                    return Some((
                        Err(JobsError::Lagged("fell behind the changes it follows")),
                        None,
                    ));
                }
                Err(RecvError::Closed) => return None,
            };
            if event.kind == EventKind::Resync {
                return Some((
                    Err(JobsError::Lagged(
                        "may have missed changes while its server reconnected to the database",
                    )),
                    None,
                ));
            }
            let read = match &self.owner_id {
                Some(owner_id) if *owner_id != event.owner_id => continue,
                Some(owner_id) => self.jobs.get(owner_id, event.job_id).await,
                None => self.jobs.get_any(event.job_id).await,
            };
            match read {
                Ok(job) => return Some((Ok(job), Some(self))),
                Err(JobsError::NotFound(_)) => {}
                Err(error) => return Some((Err(error), None)),
            }
        }
    }
}

/// Inserts a batch of submissions in one statement. If that fails, each submission is
/// inserted alone, in its own span, to get its own error.
async fn insert(store: JobStore, batch: Batch<Job>) -> Vec<JobsResult<(Job, bool)>> {
    let links = batch.links();
    match store.insert_many(&batch.items, &links).await {
        Ok(inserted) => inserted.into_iter().map(Ok).collect(),
        Err(_) => {
            let mut results = Vec::with_capacity(batch.items.len());
            for (job, span) in batch.items.iter().zip(batch.spans) {
                results.push(tracing::Instrument::instrument(store.insert(job), span).await);
            }
            results
        }
    }
}

/// Sets `aimesh_jobs_queued{kind}` to the number of queued jobs of each kind every few
/// seconds, until `shutdown`; a kind whose queue emptied goes back to zero.
async fn gauge_queue_depth(store: JobStore, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(QUEUE_DEPTH_INTERVAL);
    let mut kinds = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        if let Ok(depths) = store.queue_depth().await {
            let seen: std::collections::HashSet<String> =
                depths.iter().map(|(kind, _)| kind.clone()).collect();
            for (kind, depth) in depths {
                metrics::gauge!("aimesh_jobs_queued", "kind" => kind).set(depth as f64);
            }
            for kind in kinds.difference(&seen) {
                metrics::gauge!("aimesh_jobs_queued", "kind" => kind.clone()).set(0.0);
            }
            kinds = seen;
        }
    }
}
