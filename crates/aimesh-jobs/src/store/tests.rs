//! The store against SQLite and PostgreSQL where the tests need what the engine keeps to
//! itself: claiming as a worker that then dies, recording outcomes under a lease, the events
//! each write announces, the plans of the hot statements, and asynchronous worker commits.

use std::{collections::HashMap, sync::Arc, sync::Mutex, time::Duration};

use aimesh_kit::testing::{Backend, TestDatabase};
use futures::{StreamExt, future::BoxFuture};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::*;
use crate::{
    Jobs, SubmitOptions,
    model::{JobOutput, now},
    queries::POSTGRES,
    worker::{JobContext, JobError, JobHandler, WorkerConfig},
};

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

impl Engine {
    async fn start(backend: Backend) -> Self {
        Self::start_with(backend, WorkerCommits::Durable).await
    }

    async fn start_with(backend: Backend, worker_commits: WorkerCommits) -> Self {
        let database = TestDatabase::create(backend).await;
        let db = database.connect().await;
        db.migrate(&MIGRATIONS).await.expect("migrate");
        let shutdown = CancellationToken::new();
        Engine {
            jobs: Jobs::start(db, worker_commits, shutdown.clone())
                .await
                .expect("start"),
            shutdown,
            _db: database,
        }
    }

    fn store(&self) -> &JobStore {
        self.jobs.store()
    }

    async fn submit(&self) -> Job {
        self.jobs
            .submit(OWNER, "test.count", Vec::new(), SubmitOptions::default())
            .await
            .expect("submit")
    }

    /// Claims the one queued job as a worker that then dies (no heartbeat, no outcome): its
    /// lease lapses `lease` from now.
    async fn claim_as_dead_worker(&self, lease: chrono::Duration) {
        let now = now();
        let claimed = self
            .store()
            .claim("test.count", "dead-worker", 1, now, now + lease)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
    }
}

fn ok() -> JobOutput {
    JobOutput {
        type_name: "google.protobuf.Empty".into(),
        value: Vec::new(),
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
        *self
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(ctx.job.id)
            .or_default() += 1;
        Box::pin(async { Ok(ok()) })
    }
}

async fn a_dead_workers_job_runs_again_after_its_lease(backend: Backend) {
    let engine = Engine::start(backend).await;
    let job = engine.submit().await;
    engine
        .claim_as_dead_worker(chrono::Duration::milliseconds(500))
        .await;
    let counter = FakeCounter::default();
    let stop = engine.shutdown.child_token();
    let worker = engine.jobs.worker(
        vec![Arc::new(counter.clone())],
        WorkerConfig {
            lease: Duration::from_secs(2),
            poll_interval: Duration::from_millis(50),
            ..WorkerConfig::default()
        },
    );
    let running = tokio::spawn(worker.run(stop.clone()));
    let done =
        aimesh_kit::testing::eventually(Duration::from_secs(15), "the job finishes", || async {
            let job = engine.jobs.get(OWNER, job.id).await.expect("get");
            job.state.is_terminal().then_some(job)
        })
        .await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.attempts, 2);
    assert_eq!(
        counter
            .runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&job.id),
        Some(&1)
    );
    // The dead worker's late outcome is ignored.
    let late = engine
        .store()
        .finish_many(
            "dead-worker",
            &[Outcome {
                id: job.id,
                state: JobState::Failed,
                result: None,
                error: Some("late".into()),
                retry_at: None,
            }],
            &[],
            crate::model::now(),
            crate::model::now(),
            &[],
        )
        .await
        .expect("finish");
    assert!(late.applied.is_empty() && late.claimed.is_empty());
    stop.cancel();
    running.await.expect("worker");
}

/// Takes 10 ms a job and records the order in which jobs ran.
#[derive(Default, Clone)]
struct FakeTimed {
    order: Arc<Mutex<Vec<Uuid>>>,
}

impl JobHandler for FakeTimed {
    fn kind(&self) -> &'static str {
        "test.count"
    }
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let order = self.order.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            order
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(ctx.job.id);
            Ok(ok())
        })
    }
}

/// A worker whose slots claim their own successors still looks for lapsed leases once per poll
/// interval: a dead worker's job runs well before a backlog of about two seconds drains.
async fn a_busy_worker_runs_a_dead_workers_job_within_a_poll_interval(backend: Backend) {
    let engine = Engine::start(backend).await;
    let orphan = engine.submit().await;
    engine
        .claim_as_dead_worker(chrono::Duration::milliseconds(300))
        .await;
    for _ in 0..400 {
        engine.submit().await;
    }
    let handler = FakeTimed::default();
    let stop = engine.shutdown.child_token();
    let worker = engine.jobs.worker(
        vec![Arc::new(handler.clone())],
        WorkerConfig {
            concurrency: 2,
            lease: Duration::from_secs(5),
            poll_interval: Duration::from_millis(200),
            ..WorkerConfig::default()
        },
    );
    let running = tokio::spawn(worker.run(stop.clone()));
    aimesh_kit::testing::eventually(Duration::from_secs(20), "the orphan runs", || async {
        let ran = handler.order.lock().unwrap_or_else(|e| e.into_inner());
        ran.contains(&orphan.id).then_some(())
    })
    .await;
    let position = handler
        .order
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .position(|id| *id == orphan.id);
    stop.cancel();
    running.await.expect("worker");
    // At 2 slots of 10 ms, the lease lapses after about 60 jobs and the next look comes
    // within 200 ms more (about 40 jobs); draining the backlog first would make it the 401st.
    assert!(
        position.is_some_and(|at| at < 250),
        "the orphan ran at {position:?}"
    );
}

/// Receives events until `count` are in (skipping what `skip` rejects), failing after five
/// seconds without one.
async fn receive(
    events: &mut broadcast::Receiver<JobEvent>,
    count: usize,
    mut skip: impl FnMut(&JobEvent) -> bool,
) -> Vec<(Uuid, EventKind)> {
    let mut received = Vec::new();
    while received.len() < count {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {count} events came", received.len()))
            .expect("an event");
        if skip(&event) {
            continue;
        }
        assert_eq!(
            (event.owner_id.as_str(), event.job_kind.as_str()),
            (OWNER, "test.count")
        );
        received.push((event.job_id, event.kind));
    }
    received
}

async fn outcomes_recorded_together_apply_under_the_lease_and_announce_each(backend: Backend) {
    let engine = Engine::start(backend).await;
    let store = engine.store();
    let mut events = store.subscribe();
    let (a1, a2, b1, c1) = (
        engine.submit().await,
        engine.submit().await,
        engine.submit().await,
        engine.submit().await,
    );
    let now = now();
    let lease = now + chrono::Duration::seconds(60);
    let mine = store
        .claim("test.count", "a", 2, now, lease)
        .await
        .expect("claim");
    let theirs = store
        .claim("test.count", "b", 1, now, lease)
        .await
        .expect("claim");
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
    // With the outcomes, the slots ask for two more jobs of their kind and one of another:
    // only c1 is queued and due (a2's retry is not, and b1 is b's), so only c1 is claimed.
    let next_lease = now + chrono::Duration::seconds(90);
    let finished = store
        .finish_many(
            "a",
            &[
                outcome(a1.id, JobState::Succeeded, None, None),
                outcome(a2.id, JobState::Queued, Some("again"), Some(retry_at)),
                // Not a's job: skipped.
                outcome(b1.id, JobState::Failed, Some("not mine"), None),
            ],
            &[("test.count", 2), ("test.other", 1)],
            crate::model::now(),
            next_lease,
            &[],
        )
        .await
        .expect("finish");
    let mut applied = finished.applied;
    applied.sort();
    assert_eq!(applied, vec![a1.id, a2.id]);
    let [claimed] = finished.claimed.as_slice() else {
        panic!("claimed {:?}", finished.claimed);
    };
    assert_eq!(
        (
            claimed.id,
            claimed.state,
            claimed.attempts,
            claimed.lease_owner.as_deref(),
            claimed.lease_expires_at
        ),
        (c1.id, JobState::Running, 1, Some("a"), Some(next_lease))
    );

    let a1 = engine.jobs.get(OWNER, a1.id).await.expect("get");
    assert_eq!(
        (a1.state, a1.progress_percent, a1.result_type.as_deref()),
        (JobState::Succeeded, 100, Some("google.protobuf.Empty"))
    );
    assert!(a1.finished_at.is_some() && a1.lease_owner.is_none());
    let a2 = engine.jobs.get(OWNER, a2.id).await.expect("get");
    assert_eq!(
        (a2.state, a2.error.as_deref(), a2.finished_at, a2.run_after),
        (JobState::Queued, Some("again"), None, retry_at)
    );
    let b1 = engine.jobs.get(OWNER, b1.id).await.expect("get");
    assert_eq!(
        (b1.state, b1.lease_owner.as_deref()),
        (JobState::Running, Some("b"))
    );

    // Each write announced its changes: the submissions (queued), the claims (started), one
    // event per recorded outcome (a retry is queued again) and none for b's job, and the
    // claim made with the outcomes (started). On PostgreSQL the events of submissions and
    // claims are sent after their commit, and those of outcomes (and the claims made with
    // them) with it, so only the set of events is certain, not their order.
    let mut received = receive(&mut events, 10, |_| false).await;
    let mut expected = vec![
        (a1.id, EventKind::Queued),
        (a2.id, EventKind::Queued),
        (b1.id, EventKind::Queued),
        (c1.id, EventKind::Queued),
        (a1.id, EventKind::Changed),
        (a2.id, EventKind::Changed),
        (b1.id, EventKind::Changed),
        (a1.id, EventKind::Changed),
        (a2.id, EventKind::Queued),
        (c1.id, EventKind::Changed),
    ];
    for events in [&mut received, &mut expected] {
        events.sort_by_key(|(id, kind)| (*id, format!("{kind:?}")));
    }
    assert_eq!(received, expected);

    // So do cancelling a running job (a request to its worker), retrying and releasing.
    engine.jobs.cancel(OWNER, b1.id).await.expect("cancel");
    let released = store
        .release("b", crate::model::now())
        .await
        .expect("release");
    assert_eq!(released, 1);
    let received = receive(&mut events, 2, |_| false).await;
    assert_eq!(
        received,
        vec![
            (b1.id, EventKind::CancelRequested),
            (b1.id, EventKind::Queued)
        ]
    );
}

/// One statement changing many jobs announces each of them, though on PostgreSQL its events
/// travel several to a notification (a payload is limited to 8,000 bytes: this takes several).
async fn a_claim_of_many_jobs_announces_each(backend: Backend) {
    let engine = Engine::start(backend).await;
    let total = 300;
    let mut submitted = Vec::with_capacity(total);
    for _ in 0..total {
        submitted.push(engine.submit().await.id);
    }
    let mut events = engine.store().subscribe();
    let now = now();
    let lease = now + chrono::Duration::seconds(60);
    let claimed = engine
        .store()
        .claim("test.count", "w", total as i64, now, lease)
        .await
        .expect("claim");
    let mut claimed: Vec<Uuid> = claimed.iter().map(|job| job.id).collect();
    claimed.sort();
    submitted.sort();
    assert_eq!(claimed, submitted);

    let mut started = std::collections::HashSet::new();
    while started.len() < total {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {total} claims announced", started.len()))
            .expect("an event");
        if event.kind == EventKind::Changed {
            assert_eq!(event.owner_id, OWNER);
            assert!(started.insert(event.job_id), "a claim announced twice");
        }
    }
    started.retain(|id| claimed.binary_search(id).is_err());
    assert!(started.is_empty(), "events for jobs not claimed");
}

/// Under asynchronous worker commits only the workers' connections skip the wait for the WAL
/// flush; jobs run once each and their ends reach watchers as before.
#[tokio::test]
async fn asynchronous_worker_commits_apply_to_workers_writes_only() {
    let engine = Engine::start_with(Backend::Postgres, WorkerCommits::Asynchronous).await;
    for (db, expected) in [
        (engine.store().db(), "on"),
        (engine.store().worker_db(), "off"),
    ] {
        let Db::Postgres(pool) = db else {
            unreachable!("a PostgreSQL test database");
        };
        let (setting,): (String,) = sqlx::query_as("SHOW synchronous_commit")
            .fetch_one(pool)
            .await
            .expect("show");
        assert_eq!(setting, expected);
        let (seqscan,): (String,) = sqlx::query_as("SHOW enable_seqscan")
            .fetch_one(pool)
            .await
            .expect("show");
        assert_eq!(seqscan, "off", "both pools keep the store's plan settings");
    }

    let mut submitted = Vec::new();
    for _ in 0..20 {
        submitted.push(engine.submit().await.id);
    }
    let mut watch = engine
        .jobs
        .watch(OWNER, submitted[19])
        .await
        .expect("watch");
    let counter = FakeCounter::default();
    let stop = engine.shutdown.child_token();
    let worker = engine.jobs.worker(
        vec![Arc::new(counter.clone())],
        WorkerConfig {
            poll_interval: Duration::from_millis(50),
            ..WorkerConfig::default()
        },
    );
    let running = tokio::spawn(worker.run(stop.clone()));
    let last = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let job = watch.next().await.expect("an update").expect("a job");
            if job.state.is_terminal() {
                return job;
            }
        }
    })
    .await
    .expect("the last job's end is watched");
    assert_eq!(last.state, JobState::Succeeded);
    for id in &submitted {
        let job = engine.jobs.get(OWNER, *id).await.expect("get");
        assert_eq!(job.state, JobState::Succeeded, "{id}");
        assert_eq!(job.attempts, 1, "{id}");
    }
    let runs = counter
        .runs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert_eq!(runs.len(), 20);
    assert!(runs.values().all(|&n| n == 1), "{runs:?}");
    stop.cancel();
    running.await.expect("worker");
}

aimesh_kit::backend_tests!(
    a_dead_workers_job_runs_again_after_its_lease,
    a_busy_worker_runs_a_dead_workers_job_within_a_poll_interval,
    outcomes_recorded_together_apply_under_the_lease_and_announce_each,
    a_claim_of_many_jobs_announces_each,
);

/// The store's connections run the hot statements on their generic plans (what PostgreSQL
/// caches for a prepared statement), never planning them afresh, and those plans, made on an
/// empty table (a new install, the benchmark's start), reach rows only through indexes: a
/// plan made then is kept as the table grows.
#[tokio::test]
async fn hot_statements_run_on_generic_plans_that_never_scan_the_table() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let db = database.connect().await;
    db.migrate(&MIGRATIONS).await.expect("migrate");
    let store = JobStore::open(db, WorkerCommits::Durable, CancellationToken::new())
        .await
        .expect("store");
    let Db::Postgres(pool) = store.db() else {
        unreachable!("a PostgreSQL test database");
    };
    // The connection as the store opens it: no setting of the test's own.
    let mut conn = pool.acquire().await.expect("connection");
    let claim = "(text, timestamptz, timestamptz, text, int8)";
    let statements = [
        (
            "claim_due",
            POSTGRES.claim_due,
            claim,
            "('w', now(), now(), 'k', 4)",
        ),
        (
            "claim_lapsed",
            POSTGRES.claim_lapsed,
            claim,
            "('w', now(), now(), 'k', 4)",
        ),
        (
            "insert_many",
            POSTGRES.insert,
            "(uuid[], text[], text[], text[], bytea[], int4[], text[], text[], \
             timestamptz[], timestamptz[])",
            "('{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')",
        ),
        (
            "finish_many",
            POSTGRES.finish,
            "(uuid[], text[], text[], bytea[], text[], timestamptz[], timestamptz, text, \
             text[], int8[], timestamptz)",
            "('{}', '{}', '{}', '{}', '{}', '{}', now(), 'w', '{k}', '{4}', now())",
        ),
        (
            "list",
            POSTGRES.list,
            "(text, uuid, text, text, int8)",
            "('o', NULL, NULL, NULL, 21)",
        ),
        (
            "list_all",
            POSTGRES.list_all,
            "(uuid, text, text, int8)",
            "(NULL, 'QUEUED', NULL, 21)",
        ),
    ];
    for (name, sql, types, arguments) in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PREPARE {name}{types} AS {sql}"
        )))
        .execute(&mut *conn)
        .await
        .expect("prepare");
        let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN EXECUTE {name}{arguments}"
        )))
        .fetch_all(&mut *conn)
        .await
        .expect("explain");
        let plan: Vec<String> = plan.into_iter().map(|(line,)| line).collect();
        assert!(
            !plan.iter().any(|line| line.contains("Seq Scan")),
            "{name}: {plan:#?}"
        );
    }
    // Left to itself, PostgreSQL plans every statement afresh for its first five runs (and
    // the one that ends jobs for good): here not one was.
    let plans: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements \
         WHERE from_sql ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("prepared statements");
    let mut names: Vec<&str> = statements.iter().map(|(name, ..)| *name).collect();
    names.sort_unstable();
    let prepared: Vec<&str> = plans.iter().map(|(name, ..)| name.as_str()).collect();
    assert_eq!(prepared, names);
    for (name, generic, custom) in &plans {
        assert_eq!(
            (*generic, *custom),
            (1, 0),
            "{name}: generic and custom plans"
        );
    }
}
