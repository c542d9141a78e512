//! The job engine against SQLite and PostgreSQL through its public face, with handlers written
//! for these tests (`Fake*`): retries, permanent failures, cancellation, idempotency, watches,
//! shutdown, many jobs over several workers, and schedules fired by several engines.

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
    Cadence, Job, JobContext, JobError, JobHandler, JobOutput, JobQuery, JobState, Jobs, JobsError,
    MIGRATIONS, SYSTEM_OWNER, SubmitOptions, WatchLimits, WorkerCommits, WorkerConfig,
};
use aimesh_kit::testing::{Backend, TestDatabase};
use futures::{StreamExt, future::BoxFuture};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const OWNER: &str = "owner-1";

struct Engine {
    jobs: Jobs,
    shutdown: CancellationToken,
    database: TestDatabase,
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
    Engine {
        jobs: Jobs::start(db, WorkerCommits::Durable, shutdown.clone())
            .await
            .unwrap(),
        shutdown,
        database,
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
    let worker = engine.jobs.worker(handlers, config);
    (stop.clone(), tokio::spawn(worker.run(stop)))
}

async fn submit(engine: &Engine, kind: &str) -> Job {
    engine
        .jobs
        .submit(OWNER, kind, Vec::new(), SubmitOptions::default())
        .await
        .unwrap()
}

/// Follows the job's watch stream until `done` holds for it (at most 15 s).
async fn wait_for(engine: &Engine, id: Uuid, done: impl Fn(&Job) -> bool) -> Job {
    let mut stream = engine.jobs.watch(OWNER, id).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut last = None;
    while let Some(job) = tokio::time::timeout_at(deadline, stream.next())
        .await
        .unwrap_or_else(|_| panic!("job {id} still at {last:?} after 15 s"))
    {
        let job = job.unwrap();
        if done(&job) {
            return job;
        }
        last = Some(job);
    }
    panic!("job {id} ended at {last:?} without reaching the expected state");
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

/// Each run reports 10% progress, then waits for a permit of its gate.
struct FakeGated {
    gate: Arc<tokio::sync::Semaphore>,
}

impl JobHandler for FakeGated {
    fn kind(&self) -> &'static str {
        "test.gated"
    }
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let gate = self.gate.clone();
        Box::pin(async move {
            ctx.progress(10, "waiting", "partial").await;
            gate.acquire().await.unwrap().forget();
            Ok(ok())
        })
    }
}

/// A busy slot that ends a job starts the next queued one in the same commit: with one slot
/// and a poll interval far beyond the test, the job queued while the first runs starts at the
/// very time the first ends.
async fn a_slot_starts_the_next_queued_job_as_it_ends_one(backend: Backend) {
    let engine = engine(backend).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (stop, worker) = spawn_worker(
        &engine,
        vec![Arc::new(FakeGated { gate: gate.clone() })],
        WorkerConfig {
            concurrency: 1,
            poll_interval: Duration::from_secs(600),
            ..fast_config()
        },
    );
    let first = submit(&engine, "test.gated").await;
    wait_for(&engine, first.id, |j| j.state == JobState::Running).await;
    let second = submit(&engine, "test.gated").await;
    gate.add_permits(2);
    let first = wait_terminal(&engine, first.id).await;
    let second = wait_terminal(&engine, second.id).await;
    assert_eq!(
        (first.state, second.state, second.attempts),
        (JobState::Succeeded, JobState::Succeeded, 1)
    );
    assert!(first.finished_at.is_some());
    assert_eq!(second.started_at, first.finished_at);
    stop.cancel();
    worker.await.unwrap();
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

async fn racing_submissions_with_one_key_make_one_job(backend: Backend) {
    // Racing submissions share commits, a key used several times within one batch or across
    // batches still makes one job, and every submitter gets that job back.
    let engine = engine(backend).await;
    const OWNER_RACE: &str = "owner-race";
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0u8..4 {
        for i in 0u8..12 {
            let jobs = engine.jobs.clone();
            let key = (i % 3 == 0).then(|| "same".to_owned());
            tasks.spawn(async move {
                let options = SubmitOptions {
                    idempotency_key: key.clone(),
                    ..SubmitOptions::default()
                };
                let job = jobs
                    .submit(OWNER_RACE, "test.none", vec![round, i], options)
                    .await
                    .unwrap();
                (key.is_some(), job)
            });
        }
        tokio::task::yield_now().await;
    }
    let submitted = tasks.join_all().await;
    let keyed: Vec<&Job> = submitted
        .iter()
        .filter(|(keyed, _)| *keyed)
        .map(|(_, job)| job)
        .collect();
    assert_eq!(keyed.len(), 16);
    assert!(
        keyed.iter().all(|job| job.id == keyed[0].id),
        "every submission with the key got the same job"
    );
    assert_eq!(keyed[0].payload[1] % 3, 0, "the job is one of those keyed");
    let page = engine
        .jobs
        .list(
            OWNER_RACE,
            &JobQuery {
                page_size: 100,
                after: None,
                state: None,
                kind: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 32 + 1, "32 without a key, 1 with it");
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
/// A watch yields the job as it is, then its changes (no snapshot twice), and ends after its
/// terminal state.
async fn a_watch_follows_a_job_to_its_end(backend: Backend) {
    let engine = engine(backend).await;
    let job = submit(&engine, "test.gated").await;
    let mut watch = engine.jobs.watch(OWNER, job.id).await.unwrap();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!((first.id, first.state), (job.id, JobState::Queued));
    // The job holds at 10% until the watch has shown it there: a watch sends the latest state
    // when it hears of a change, so a job that moved on at once could skip a step legitimately.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (_stop, _worker) = spawn_worker(
        &engine,
        vec![Arc::new(FakeGated { gate: gate.clone() })],
        fast_config(),
    );
    let mut seen = vec![first];
    while let Some(snapshot) = tokio::time::timeout(Duration::from_secs(30), watch.next())
        .await
        .unwrap_or_else(|_| panic!("the watch stalled after {seen:#?}"))
    {
        let snapshot = snapshot.unwrap();
        assert_ne!(seen.last(), Some(&snapshot), "a snapshot came twice");
        if snapshot.state == JobState::Running && snapshot.progress_percent == 10 {
            gate.add_permits(1);
        }
        seen.push(snapshot);
    }
    let last = seen.last().unwrap();
    assert_eq!(last.state, JobState::Succeeded, "{seen:#?}");
    assert!(
        seen.iter()
            .any(|j| j.state == JobState::Running && j.progress_percent == 10),
        "the progress was streamed: {seen:#?}"
    );
    // Watching a finished job yields it and ends; another owner's job is not found.
    let mut done = engine.jobs.watch(OWNER, job.id).await.unwrap();
    assert_eq!(
        done.next().await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    assert!(done.next().await.is_none());
    assert!(engine.jobs.watch("someone-else", job.id).await.is_err());
}

/// Many watchers of one job each get its change, and watchers of another job hear nothing of
/// it; the streams count as open until they end.
async fn every_watcher_of_a_job_sees_its_change_and_only_its_own(backend: Backend) {
    let engine = engine(backend).await;
    let (watched, other) = (
        submit(&engine, "test.none").await,
        submit(&engine, "test.none").await,
    );
    let before = engine.jobs.open_watches();
    let mut watches = Vec::new();
    for _ in 0..20 {
        let mut watch = engine.jobs.watch(OWNER, watched.id).await.unwrap();
        assert_eq!(watch.next().await.unwrap().unwrap().state, JobState::Queued);
        watches.push(watch);
    }
    let mut bystander = engine.jobs.watch(OWNER, other.id).await.unwrap();
    assert_eq!(bystander.next().await.unwrap().unwrap().id, other.id);
    assert_eq!(engine.jobs.open_watches(), before + 21);

    engine.jobs.cancel(OWNER, watched.id).await.unwrap();
    for watch in &mut watches {
        let snapshot = tokio::time::timeout(Duration::from_secs(15), watch.next())
            .await
            .expect("the change arrives")
            .unwrap()
            .unwrap();
        assert_eq!(
            (snapshot.id, snapshot.state),
            (watched.id, JobState::Cancelled)
        );
        assert!(
            watch.next().await.is_none(),
            "the stream ends after the end"
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), bystander.next())
            .await
            .is_err(),
        "another job's change reached a watcher of this one"
    );
    engine.jobs.cancel(OWNER, other.id).await.unwrap();
    let snapshot = bystander.next().await.unwrap().unwrap();
    assert_eq!(
        (snapshot.id, snapshot.state),
        (other.id, JobState::Cancelled)
    );
    drop((watches, bystander));
    assert_eq!(engine.jobs.open_watches(), before);
}

/// Two engines on one database register the same schedule: every tick submits exactly one
/// job, owned by the system owner, which a worker runs.
async fn two_engines_fire_each_tick_of_a_schedule_once(backend: Backend) {
    let first = engine(backend).await;
    let db = first.database.connect().await;
    let second = Jobs::start(db, WorkerCommits::Durable, first.shutdown.child_token())
        .await
        .unwrap();
    let interval = Duration::from_millis(200);
    for jobs in [&first.jobs, &second] {
        jobs.schedule(
            "test.sweep",
            Cadence::every(interval).unwrap(),
            "test.count",
            vec![7],
        )
        .await
        .unwrap();
    }
    let counter = FakeCounter::default();
    let (_stop, worker) = spawn_worker(&first, vec![Arc::new(counter.clone())], fast_config());
    let query = JobQuery {
        page_size: 100,
        kind: Some("test.count".into()),
        ..JobQuery::default()
    };
    let jobs = aimesh_kit::testing::eventually(
        Duration::from_secs(15),
        "four scheduled ticks run",
        || async {
            let jobs = second.list(SYSTEM_OWNER, &query).await.unwrap().jobs;
            let succeeded = jobs
                .iter()
                .filter(|job| job.state == JobState::Succeeded)
                .count();
            (succeeded >= 4).then_some(jobs)
        },
    )
    .await;
    first.shutdown.cancel();
    worker.await.unwrap();
    let succeeded: Vec<&Job> = jobs
        .iter()
        .filter(|job| job.state == JobState::Succeeded)
        .collect();
    assert!(succeeded.len() >= 4, "{jobs:#?}");
    // One job per tick: each job is due at a distinct tick of the schedule's grid, and says
    // so in its idempotency key.
    let mut ticks: Vec<_> = jobs.iter().map(|job| job.run_after).collect();
    ticks.sort();
    ticks.dedup();
    assert_eq!(ticks.len(), jobs.len(), "a tick fired twice: {jobs:#?}");
    let step = chrono::Duration::from_std(interval).unwrap();
    for pair in ticks.windows(2) {
        let apart = pair[1] - pair[0];
        assert!(
            apart >= step
                && (apart.num_microseconds().unwrap() % step.num_microseconds().unwrap()) == 0,
            "ticks {pair:?} are not on the schedule's grid"
        );
    }
    for job in &jobs {
        assert_eq!(
            (job.owner_id.as_str(), job.payload.as_slice()),
            (SYSTEM_OWNER, &[7][..])
        );
        let key = job.idempotency_key.as_deref().unwrap();
        assert!(key.starts_with("schedule:test.sweep:"), "{key}");
    }
    let runs = counter.runs.lock().unwrap();
    for job in succeeded {
        assert_eq!(runs.get(&job.id), Some(&1), "each scheduled job ran once");
    }
}

/// Watch streams are bounded per user and per process; a closed stream frees its place.
async fn watches_are_bounded(backend: Backend) {
    let engine = engine(backend).await;
    engine.jobs.set_watch_limits(WatchLimits {
        per_user: 2,
        total: 3,
    });
    let job = submit(&engine, "test.idle").await;
    let first = engine.jobs.watch(OWNER, job.id).await.unwrap();
    let _second = engine.jobs.watch_all(OWNER).unwrap();
    let refused = engine.jobs.watch(OWNER, job.id).await.err();
    assert!(
        matches!(refused, Some(JobsError::TooManyWatches { limit: 2, .. })),
        "{refused:?}"
    );
    let _other = engine.jobs.watch_all("someone else").unwrap();
    let refused = engine.jobs.watch_all("a third user").err();
    assert!(
        matches!(refused, Some(JobsError::TooManyWatches { limit: 3, .. })),
        "{refused:?}"
    );
    drop(first);
    let _again = engine
        .jobs
        .watch(OWNER, job.id)
        .await
        .expect("a freed place");
}

/// A watcher of all its jobs that falls behind is told so and ended, never silently fed a
/// stream with a gap.
async fn a_lagging_watch_of_all_jobs_ends_with_a_status(backend: Backend) {
    let engine = engine(backend).await;
    let mut all = engine.jobs.watch_all(OWNER).unwrap();
    // More changes than the event channel holds, while the watcher reads nothing.
    let submissions = (0..6_000).map(|_| submit(&engine, "test.idle"));
    futures::future::join_all(submissions).await;
    let mut seen = 0;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(15), all.next())
            .await
            .expect("the watch answers")
        {
            Some(Ok(_)) => seen += 1,
            Some(Err(error)) => break error,
            None => panic!("the watch ended without saying why after {seen} jobs"),
        }
    };
    assert!(matches!(ended, JobsError::Lagged(_)), "{ended:?}");
    assert!(all.next().await.is_none(), "nothing follows the status");
}

/// On PostgreSQL what one engine writes reaches the others (as between replicas of the mesh):
/// a submission to the first wakes the idle worker of the second at once (its poll interval is
/// far longer than the test may take), and the job's start, progress and end, written by the
/// second, reach a watch on the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_changes_reach_the_other_engines() {
    let first = engine(Backend::Postgres).await;
    let db = first.database.connect().await;
    let second = Jobs::start(db, WorkerCommits::Durable, first.shutdown.child_token())
        .await
        .unwrap();
    let worker = second.worker(
        vec![Arc::new(FakeSlow {
            duration: Duration::from_millis(100),
            saw_cancel: Arc::new(AtomicBool::new(false)),
        })],
        WorkerConfig {
            poll_interval: Duration::from_secs(600),
            ..fast_config()
        },
    );
    let stop = first.shutdown.child_token();
    let worker = tokio::spawn(worker.run(stop.clone()));
    // Let the worker find the queue empty and wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let job = submit(&first, "test.slow").await;
    let mut watch = first.jobs.watch(OWNER, job.id).await.unwrap();
    let mut seen = Vec::new();
    while let Some(snapshot) = tokio::time::timeout(Duration::from_secs(15), watch.next())
        .await
        .expect("the job's changes reach the first engine")
    {
        seen.push(snapshot.unwrap());
    }
    assert_eq!(seen.last().unwrap().state, JobState::Succeeded, "{seen:#?}");
    assert!(
        seen.iter()
            .any(|j| j.state == JobState::Running && j.progress_percent == 10),
        "the start and progress were streamed: {seen:#?}"
    );
    stop.cancel();
    worker.await.unwrap();
    second.close().await;
}

aimesh_kit::backend_tests!(
    watches_are_bounded,
    a_lagging_watch_of_all_jobs_ends_with_a_status,
    retries_until_success,
    permanent_failures_stop_and_can_be_retried,
    cancel_reaches_the_running_handler,
    queued_jobs_cancel_at_once_and_keys_deduplicate,
    racing_submissions_with_one_key_make_one_job,
    a_watch_follows_a_job_to_its_end,
    every_watcher_of_a_job_sees_its_change_and_only_its_own,
    shutdown_finishes_running_jobs_or_releases_them,
    many_jobs_over_four_workers_run_once_each,
    a_slot_starts_the_next_queued_job_as_it_ends_one,
    two_engines_fire_each_tick_of_a_schedule_once,
);
