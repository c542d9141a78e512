//! The job engine against SQLite and PostgreSQL, with handlers written for these tests
//! (`Fake*`): retries, permanent failures, cancellation, idempotency, lease expiry, shutdown,
//! and many jobs over several workers.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI32, Ordering},
    },
    time::Duration,
};

use aimesh_jobs::{
    Job, JobContext, JobError, JobHandler, JobOutput, JobState, Jobs, MIGRATIONS, SubmitOptions,
    Worker, WorkerConfig, notify::Notifier, store::JobStore,
};
use aimesh_kit::testing::{Backend, TestDatabase};
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const OWNER: &str = "owner-1";

struct Engine {
    jobs: Jobs,
    shutdown: CancellationToken,
    _db: TestDatabase,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn engine(backend: Backend) -> Engine {
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;
    db.migrate(&MIGRATIONS).await.unwrap();
    let shutdown = CancellationToken::new();
    let notifier = Notifier::start(db.clone(), shutdown.clone()).await.unwrap();
    Engine {
        jobs: Jobs::new(JobStore::new(db), notifier),
        shutdown,
        _db: database,
    }
}

fn fast_config() -> WorkerConfig {
    WorkerConfig {
        lease: Duration::from_secs(2),
        poll_interval: Duration::from_millis(50),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        grace: Duration::from_secs(5),
        concurrency: 4,
        worker_name: "test".into(),
    }
}

fn spawn_worker(
    engine: &Engine,
    handlers: Vec<Arc<dyn JobHandler>>,
    config: WorkerConfig,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = engine.shutdown.child_token();
    let worker = Worker::new(engine.jobs.clone(), handlers, config);
    (stop.clone(), tokio::spawn(worker.run(stop)))
}

async fn submit(engine: &Engine, kind: &str) -> Job {
    engine
        .jobs
        .submit(OWNER, kind, Vec::new(), SubmitOptions::default())
        .await
        .unwrap()
}

async fn wait_for(engine: &Engine, id: Uuid, done: impl Fn(&Job) -> bool) -> Job {
    for _ in 0..600 {
        let job = engine.jobs.get(OWNER, id).await.unwrap();
        if done(&job) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {id} never reached the expected state");
}

async fn wait_terminal(engine: &Engine, id: Uuid) -> Job {
    wait_for(engine, id, |job| job.state.is_terminal()).await
}

fn ok() -> JobOutput {
    JobOutput {
        type_name: "google.protobuf.Empty".into(),
        value: Vec::new(),
    }
}

/// Fails with a retryable error `failures` times, then succeeds.
struct FakeFlaky {
    failures: AtomicI32,
}

impl JobHandler for FakeFlaky {
    fn kind(&self) -> &'static str {
        "test.flaky"
    }
    fn run(&self, _ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let fail = self.failures.fetch_sub(1, Ordering::SeqCst) > 0;
        Box::pin(async move {
            if fail {
                Err(JobError::Retryable("dependency hiccup".into()))
            } else {
                Ok(ok())
            }
        })
    }
}

/// Always fails permanently.
struct FakeBroken;

impl JobHandler for FakeBroken {
    fn kind(&self) -> &'static str {
        "test.broken"
    }
    fn run(&self, _ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        Box::pin(async { Err(JobError::Permanent("bad input".into())) })
    }
}

/// Runs until cancelled (or for `duration`), recording whether it saw the cancellation.
struct FakeSlow {
    duration: Duration,
    saw_cancel: Arc<AtomicBool>,
}

impl JobHandler for FakeSlow {
    fn kind(&self) -> &'static str {
        "test.slow"
    }
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let duration = self.duration;
        let saw_cancel = self.saw_cancel.clone();
        Box::pin(async move {
            ctx.progress(10, "working", "partial").await;
            tokio::select! {
                _ = ctx.cancel.cancelled() => {
                    saw_cancel.store(true, Ordering::SeqCst);
                    Err(JobError::Cancelled)
                }
                _ = tokio::time::sleep(duration) => Ok(ok()),
            }
        })
    }
}

/// Counts how often each job runs.
#[derive(Default, Clone)]
struct FakeCounter {
    runs: Arc<Mutex<HashMap<Uuid, u32>>>,
}

impl JobHandler for FakeCounter {
    fn kind(&self) -> &'static str {
        "test.count"
    }
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        *self.runs.lock().unwrap().entry(ctx.job.id).or_default() += 1;
        Box::pin(async { Ok(ok()) })
    }
}

async fn retries_until_success(backend: Backend) {
    let engine = engine(backend).await;
    let (_stop, _worker) = spawn_worker(
        &engine,
        vec![Arc::new(FakeFlaky {
            failures: AtomicI32::new(2),
        })],
        fast_config(),
    );
    let job = submit(&engine, "test.flaky").await;
    let done = wait_terminal(&engine, job.id).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.attempts, 3);
    assert_eq!(done.error, None);
    assert_eq!(done.progress_percent, 100);
    assert!(done.finished_at.is_some() && done.started_at.is_some());
}

async fn permanent_failures_stop_and_can_be_retried(backend: Backend) {
    let engine = engine(backend).await;
    let (_stop, _worker) = spawn_worker(&engine, vec![Arc::new(FakeBroken)], fast_config());
    let job = submit(&engine, "test.broken").await;
    let failed = wait_terminal(&engine, job.id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.error.as_deref(), Some("bad input"));

    let retried = engine.jobs.retry(OWNER, job.id).await.unwrap();
    assert_eq!(retried.state, JobState::Queued);
    let failed_again = wait_for(&engine, job.id, |j| {
        j.state == JobState::Failed && j.updated_at > failed.updated_at
    })
    .await;
    assert_eq!(failed_again.attempts, 1);
    // A succeeded or running job cannot be retried; an unknown one is not found.
    assert!(engine.jobs.retry(OWNER, Uuid::now_v7()).await.is_err());
    assert!(engine.jobs.get("someone-else", job.id).await.is_err());
}

async fn cancel_reaches_the_running_handler(backend: Backend) {
    let engine = engine(backend).await;
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let (_stop, _worker) = spawn_worker(
        &engine,
        vec![Arc::new(FakeSlow {
            duration: Duration::from_secs(60),
            saw_cancel: saw_cancel.clone(),
        })],
        fast_config(),
    );
    let job = submit(&engine, "test.slow").await;
    wait_for(&engine, job.id, |j| {
        j.state == JobState::Running && j.progress_percent == 10
    })
    .await;
    let cancelling = engine.jobs.cancel(OWNER, job.id).await.unwrap();
    assert!(cancelling.cancel_requested);
    let done = wait_terminal(&engine, job.id).await;
    assert_eq!(done.state, JobState::Cancelled);
    assert!(saw_cancel.load(Ordering::SeqCst), "the handler was stopped");
    assert!(
        engine.jobs.cancel(OWNER, job.id).await.is_err(),
        "already finished"
    );
}

async fn queued_jobs_cancel_at_once_and_keys_deduplicate(backend: Backend) {
    let engine = engine(backend).await;
    let options = |key: &str| SubmitOptions {
        idempotency_key: Some(key.into()),
        ..SubmitOptions::default()
    };
    let first = engine
        .jobs
        .submit(OWNER, "test.none", vec![1], options("k1"))
        .await
        .unwrap();
    let again = engine
        .jobs
        .submit(OWNER, "test.none", vec![2], options("k1"))
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(again.payload, vec![1]);
    let other_owner = engine
        .jobs
        .submit("owner-2", "test.none", vec![], options("k1"))
        .await
        .unwrap();
    assert_ne!(other_owner.id, first.id);

    let cancelled = engine.jobs.cancel(OWNER, first.id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(cancelled.finished_at.is_some());
}

async fn a_dead_workers_job_runs_again_after_its_lease(backend: Backend) {
    let engine = engine(backend).await;
    let job = submit(&engine, "test.count").await;
    // A worker claims the job and dies: no heartbeat, no outcome.
    let now = aimesh_jobs::model::now();
    let claimed = engine
        .jobs
        .store()
        .claim(
            "test.count",
            "dead-worker",
            1,
            now,
            now + chrono::Duration::milliseconds(500),
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let counter = FakeCounter::default();
    let (_stop, _worker) = spawn_worker(&engine, vec![Arc::new(counter.clone())], fast_config());
    let done = wait_terminal(&engine, job.id).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.attempts, 2);
    assert_eq!(counter.runs.lock().unwrap().get(&job.id), Some(&1));
    // The dead worker's late outcome is ignored.
    let late = engine
        .jobs
        .store()
        .finish(
            "dead-worker",
            &aimesh_jobs::store::Outcome {
                id: job.id,
                state: JobState::Failed,
                result: None,
                error: Some("late".into()),
                retry_at: None,
            },
            aimesh_jobs::model::now(),
        )
        .await
        .unwrap();
    assert!(!late);
}

async fn shutdown_finishes_running_jobs_or_releases_them(backend: Backend) {
    let engine = engine(backend).await;
    // Finishes within the grace period.
    let (stop, worker) = spawn_worker(
        &engine,
        vec![Arc::new(FakeSlow {
            duration: Duration::from_millis(300),
            saw_cancel: Arc::new(AtomicBool::new(false)),
        })],
        fast_config(),
    );
    let job = submit(&engine, "test.slow").await;
    wait_for(&engine, job.id, |j| j.state == JobState::Running).await;
    stop.cancel();
    worker.await.unwrap();
    assert_eq!(
        engine.jobs.get(OWNER, job.id).await.unwrap().state,
        JobState::Succeeded
    );

    // Outlives the grace period: cancelled and released to the queue, attempt not spent.
    let (stop, worker) = spawn_worker(
        &engine,
        vec![Arc::new(FakeSlow {
            duration: Duration::from_secs(60),
            saw_cancel: Arc::new(AtomicBool::new(false)),
        })],
        WorkerConfig {
            grace: Duration::from_millis(200),
            ..fast_config()
        },
    );
    let job = submit(&engine, "test.slow").await;
    wait_for(&engine, job.id, |j| j.state == JobState::Running).await;
    stop.cancel();
    worker.await.unwrap();
    let released = engine.jobs.get(OWNER, job.id).await.unwrap();
    assert_eq!(released.state, JobState::Queued);
    assert_eq!(released.attempts, 0);
    assert_eq!(released.lease_owner, None);
}

async fn many_jobs_over_four_workers_run_once_each(backend: Backend) {
    let engine = engine(backend).await;
    let total = match backend {
        Backend::Postgres => 1000,
        Backend::Sqlite => 300,
    };
    let counter = FakeCounter::default();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            spawn_worker(
                &engine,
                vec![Arc::new(counter.clone())],
                WorkerConfig {
                    concurrency: 8,
                    ..fast_config()
                },
            )
        })
        .collect();
    let mut ids = Vec::with_capacity(total);
    for _ in 0..total {
        ids.push(submit(&engine, "test.count").await.id);
    }
    for id in &ids {
        let job = wait_terminal(&engine, *id).await;
        assert_eq!(job.state, JobState::Succeeded);
        assert_eq!(job.attempts, 1);
    }
    let runs = counter.runs.lock().unwrap();
    assert_eq!(runs.len(), total);
    assert!(runs.values().all(|&n| n == 1), "a job ran twice");
    drop(runs);
    for (stop, _) in &workers {
        stop.cancel();
    }
}
async fn outcomes_recorded_together_apply_under_the_lease_and_notify_each(backend: Backend) {
    use aimesh_jobs::{notify::EventKind, store::Outcome};

    let engine = engine(backend).await;
    let store = engine.jobs.store();
    let (a1, a2, b1) = (
        submit(&engine, "test.count").await,
        submit(&engine, "test.count").await,
        submit(&engine, "test.count").await,
    );
    let mut events = engine.jobs.subscribe();
    let now = aimesh_jobs::model::now();
    let lease = now + chrono::Duration::seconds(60);
    let mine = store.claim("test.count", "a", 2, now, lease).await.unwrap();
    let theirs = store.claim("test.count", "b", 1, now, lease).await.unwrap();
    assert_eq!(
        (mine.len(), theirs.len(), theirs[0].id),
        (2, 1, b1.id),
        "claims go oldest first"
    );
    let retry_at = now + chrono::Duration::hours(1);
    let outcome = |id, state, error: Option<&str>, retry_at| Outcome {
        id,
        state,
        result: (state == JobState::Succeeded).then(ok),
        error: error.map(str::to_owned),
        retry_at,
    };
    let mut applied = store
        .finish_many(
            "a",
            &[
                outcome(a1.id, JobState::Succeeded, None, None),
                outcome(a2.id, JobState::Queued, Some("again"), Some(retry_at)),
                // Not a's job: skipped.
                outcome(b1.id, JobState::Failed, Some("not mine"), None),
            ],
            aimesh_jobs::model::now(),
            &[],
        )
        .await
        .unwrap();
    applied.sort();
    assert_eq!(applied, vec![a1.id, a2.id]);

    let a1 = engine.jobs.get(OWNER, a1.id).await.unwrap();
    assert_eq!(
        (a1.state, a1.progress_percent, a1.result_type.as_deref()),
        (JobState::Succeeded, 100, Some("google.protobuf.Empty"))
    );
    assert!(a1.finished_at.is_some() && a1.lease_owner.is_none());
    let a2 = engine.jobs.get(OWNER, a2.id).await.unwrap();
    assert_eq!(
        (a2.state, a2.error.as_deref(), a2.finished_at, a2.run_after),
        (JobState::Queued, Some("again"), None, retry_at)
    );
    let b1 = engine.jobs.get(OWNER, b1.id).await.unwrap();
    assert_eq!(
        (b1.state, b1.lease_owner.as_deref()),
        (JobState::Running, Some("b"))
    );

    if matches!(backend, Backend::Postgres) {
        // The statements themselves notified, in commit order: the submissions, the claims'
        // "started" events,
        // then one event per recorded outcome (a retry is queued again), none for b's job.
        let mut received = Vec::new();
        while received.len() < 5 {
            let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .expect("an event for each claim and recorded outcome")
                .unwrap();
            assert_eq!(
                (event.owner_id.as_str(), event.job_kind.as_str()),
                (OWNER, "test.count")
            );
            if received.is_empty() && event.kind == EventKind::Queued {
                continue; // the submissions' own events, still on their way
            }
            received.push((event.job_id, event.kind));
        }
        let by_id = |mut events: Vec<(Uuid, EventKind)>| {
            events.sort_by_key(|(id, _)| *id);
            events
        };
        assert_eq!(
            by_id(received[..2].to_vec()),
            by_id(vec![
                (a1.id, EventKind::Changed),
                (a2.id, EventKind::Changed)
            ])
        );
        assert_eq!(received[2], (b1.id, EventKind::Changed));
        assert_eq!(
            by_id(received[3..].to_vec()),
            by_id(vec![
                (a1.id, EventKind::Changed),
                (a2.id, EventKind::Queued)
            ])
        );
    }
}

/// One statement changing many jobs notifies each of them, though its events travel several
/// to a notification (PostgreSQL limits a payload to 8,000 bytes: this takes several).
async fn a_claim_of_many_jobs_notifies_each(backend: Backend) {
    use aimesh_jobs::notify::EventKind;

    let engine = engine(backend).await;
    let total = 300;
    let mut submitted = Vec::with_capacity(total);
    for _ in 0..total {
        submitted.push(submit(&engine, "test.count").await.id);
    }
    let mut events = engine.jobs.subscribe();
    let now = aimesh_jobs::model::now();
    let lease = now + chrono::Duration::seconds(60);
    let claimed = engine
        .jobs
        .store()
        .claim("test.count", "w", total as i64, now, lease)
        .await
        .unwrap();
    let mut claimed: Vec<Uuid> = claimed.iter().map(|job| job.id).collect();
    claimed.sort();
    submitted.sort();
    assert_eq!(claimed, submitted);

    if matches!(backend, Backend::Postgres) {
        let mut started = std::collections::HashSet::new();
        while started.len() < total {
            let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .unwrap_or_else(|_| panic!("{} of {total} claims notified", started.len()))
                .unwrap();
            if event.kind == EventKind::Changed {
                assert_eq!(event.owner_id, OWNER);
                assert!(started.insert(event.job_id), "a claim notified twice");
            }
        }
        started.retain(|id| claimed.binary_search(id).is_err());
        assert!(started.is_empty(), "events for jobs not claimed");
    }
}

aimesh_kit::backend_tests!(
    outcomes_recorded_together_apply_under_the_lease_and_notify_each,
    a_claim_of_many_jobs_notifies_each,
    retries_until_success,
    permanent_failures_stop_and_can_be_retried,
    cancel_reaches_the_running_handler,
    queued_jobs_cancel_at_once_and_keys_deduplicate,
    a_dead_workers_job_runs_again_after_its_lease,
    shutdown_finishes_running_jobs_or_releases_them,
    many_jobs_over_four_workers_run_once_each,
);
