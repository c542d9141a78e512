//! Persistence of jobs and schedules, for SQLite and PostgreSQL. Every state change is one
//! conditional statement (see `queries/`), so concurrent workers, API calls and lease expiry
//! cannot interleave badly: a worker's writes apply only while it still holds the job's lease.
//! Each statement is traced as a database client span (`INSERT jobs`, `UPDATE jobs`...) except
//! the polled ones.
//!
//! Every write announces the changes it committed: the store owns the engine's [`Fanout`] and
//! dispatches a write's events once it committed on SQLite, while on PostgreSQL the statement
//! itself notified them, or the store's [`Notifier`] sends them right after the commit (see
//! [`crate::notify`] for which and why). No caller has to remember to.

use std::{collections::HashSet, sync::Arc};

use aimesh_kit::{
    db::{Db, Migrations},
    with_db,
};
use chrono::{DateTime, Utc};
use sqlx::{FromRow, Row, postgres::PgRow};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::{
    engine::WorkerCommits,
    error::{JobsError, JobsResult},
    model::{EventKind, Job, JobEvent, JobQuery, JobState, Outcome},
    notify::{Fanout, JobWatch, Notifier},
    queries::Statements,
};

/// The job engine's migrations.
pub const MIGRATIONS: Migrations = aimesh_kit::migrations!("jobs");

/// Planner settings of the store's own PostgreSQL connections (see [`JobStore::open`]).
///
/// The jobs table swings from empty to many thousand rows within seconds, faster than
/// autovacuum's statistics follow, and PostgreSQL keeps the generic plan it made for a
/// prepared statement until the table's statistics change. A plan made while the table was
/// small is a sequential scan (the cheapest way through a few pages), and it would stay one as
/// the table grows: a claim would then read every row. Every statement here reaches its rows
/// through an index (a primary key lookup, or a walk of a partial index in order), so on these
/// connections sequential scans are ruled out and the plans stay index plans at any size.
///
/// Every statement also runs on its generic plan, made once per connection. PostgreSQL plans
/// a prepared statement afresh for its first five runs and then keeps planning afresh unless
/// the generic plan looks as cheap, and for the statement that ends jobs and claims their
/// successors (`finish.sql`: arrays, CTEs, a window) it never does: planning it took longer
/// than running it (0.4–0.5 ms against 0.3–0.4 ms, `EXPLAIN (ANALYZE)` on PostgreSQL 15), on
/// every outcome a worker records. Its generic plan is the same index plan. No statement here
/// needs a parameter's value to choose its index: each names its index's column or partial
/// index's state, and listing one owner's jobs has a statement of its own.
const POSTGRES_SETTINGS: &[(&str, &str)] = &[
    ("enable_seqscan", "off"),
    ("plan_cache_mode", "force_generic_plan"),
];

/// What the connections of workers' writes add to [`POSTGRES_SETTINGS`] under
/// [`WorkerCommits::Asynchronous`]: commits that do not wait for their WAL flush.
const POSTGRES_ASYNC_COMMITS: &[(&str, &str)] = &[("synchronous_commit", "off")];

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    owner_id: String,
    kind: String,
    state: String,
    payload: Vec<u8>,
    attempts: i32,
    max_attempts: i32,
    progress_percent: i32,
    progress_message: String,
    partial_output: String,
    result_type: Option<String>,
    result: Option<Vec<u8>>,
    error: Option<String>,
    idempotency_key: Option<String>,
    trace_context: Option<String>,
    cancel_requested: bool,
    lease_owner: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    run_after: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<JobRow> for Job {
    type Error = sqlx::Error;

    fn try_from(row: JobRow) -> Result<Self, Self::Error> {
        Ok(Job {
            id: row.id,
            owner_id: row.owner_id,
            kind: row.kind,
            state: parse_state(&row.state)?,
            payload: row.payload,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            progress_percent: row.progress_percent,
            progress_message: row.progress_message,
            partial_output: row.partial_output,
            result_type: row.result_type,
            result: row.result,
            error: row.error,
            idempotency_key: row.idempotency_key,
            trace_context: row.trace_context,
            cancel_requested: row.cancel_requested,
            lease_owner: row.lease_owner,
            lease_expires_at: row.lease_expires_at,
            run_after: row.run_after,
            created_at: row.created_at,
            updated_at: row.updated_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        })
    }
}

fn parse_state(state: &str) -> Result<JobState, sqlx::Error> {
    state
        .parse()
        .map_err(|e: String| sqlx::Error::Decode(e.into()))
}

fn jobs(rows: Vec<JobRow>) -> JobsResult<Vec<Job>> {
    rows.into_iter()
        .map(|row| Job::try_from(row).map_err(JobsError::Db))
        .collect()
}

/// The job a changing statement reports, for its event.
#[derive(sqlx::FromRow)]
struct ChangedRow {
    id: Uuid,
    kind: String,
    owner_id: String,
}

impl ChangedRow {
    fn event(self, kind: EventKind) -> JobEvent {
        JobEvent {
            kind,
            job_id: self.id,
            owner_id: self.owner_id,
            job_kind: self.kind,
        }
    }
}

/// A job whose attempt a finishing statement ended.
#[derive(sqlx::FromRow)]
struct FinishedRow {
    id: Uuid,
    kind: String,
    owner_id: String,
    state: String,
}

/// What [`JobStore::finish_many`] did.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The jobs whose outcome applied (the worker still held their lease).
    pub(crate) applied: Vec<Uuid>,
    /// The jobs claimed for the slots that ended.
    pub(crate) claimed: Vec<Job>,
}

/// A job that finished lately, for statistics.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct FinishedJob {
    pub(crate) kind: String,
    pub(crate) state: String,
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
}

/// The template of a schedule's jobs, as a take returns it.
#[derive(sqlx::FromRow)]
struct ScheduleRow {
    kind: String,
    payload: Vec<u8>,
    max_attempts: i32,
}

/// Jobs in a database, and the events of their changes.
#[derive(Debug, Clone)]
pub(crate) struct JobStore {
    db: Db,
    /// Where workers' writes go — claims, heartbeats, progress and outcomes: `db`, or on
    /// PostgreSQL under [`WorkerCommits::Asynchronous`] a pool whose commits do not wait for
    /// their WAL flush.
    worker_db: Db,
    sql: &'static Statements,
    events: Arc<Fanout>,
    /// Sends the events of the writes that do not notify them themselves (PostgreSQL).
    notifier: Option<Arc<Notifier>>,
}

impl JobStore {
    /// Opens the store on a migrated database and starts listening for job events (until
    /// `shutdown`). On PostgreSQL the store has a pool of its own, as large as `db`'s, whose
    /// connections plan with [`POSTGRES_SETTINGS`]; the job engine's traffic then also never
    /// waits for a connection the rest of the process holds. Under
    /// [`WorkerCommits::Asynchronous`] workers' writes have a second such pool, whose commits
    /// do not wait for their WAL flush (its connections are opened as they are needed).
    pub(crate) async fn open(
        db: Db,
        worker_commits: WorkerCommits,
        shutdown: CancellationToken,
    ) -> JobsResult<Self> {
        let events = Fanout::start(&db, shutdown).await?;
        let db = db.with_postgres_settings(POSTGRES_SETTINGS);
        // A pool made from the store's keeps its settings; on SQLite it is the same pool.
        let worker_db = match worker_commits {
            WorkerCommits::Durable => db.clone(),
            WorkerCommits::Asynchronous => db.with_postgres_settings(POSTGRES_ASYNC_COMMITS),
        };
        let notifier = match &db {
            Db::Postgres(pool) => Some(Arc::new(Notifier::start(pool.clone()))),
            Db::Sqlite(_) => None,
        };
        Ok(Self {
            sql: Statements::of(&db),
            worker_db,
            db,
            events,
            notifier,
        })
    }

    /// Returns the database.
    #[cfg(test)]
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// Returns the database workers' writes go to.
    #[cfg(test)]
    pub(crate) fn worker_db(&self) -> &Db {
        &self.worker_db
    }

    /// Sends the events still waiting and closes the store's own PostgreSQL pools. On SQLite
    /// the store uses the pool it was opened with, which its owner closes.
    pub(crate) async fn close(&self) {
        if let Some(notifier) = &self.notifier {
            notifier.close().await;
        }
        if let Db::Postgres(pool) = &self.db {
            pool.close().await;
        }
        if let Db::Postgres(pool) = &self.worker_db {
            pool.close().await;
        }
    }

    /// Dispatches the events of a committed write in this process, on SQLite. On PostgreSQL
    /// the statement notified them, and the listener dispatches them as they arrive.
    fn announce(&self, events: impl IntoIterator<Item = JobEvent>) {
        if let Db::Sqlite(_) = &self.db {
            for event in events {
                self.events.dispatch(event);
            }
        }
    }

    /// Announces the events of a committed write whose statement did not notify them: in this
    /// process on SQLite, through the [`Notifier`] on PostgreSQL (whose listener dispatches
    /// them as they arrive).
    ///
    /// Takes the events collected: a lazy iterator borrowing the write's rows would be held
    /// across the wait for room in the notifier's queue.
    async fn announce_committed(&self, events: Vec<JobEvent>) {
        match &self.notifier {
            Some(notifier) => notifier.send(events).await,
            None => events
                .into_iter()
                .for_each(|event| self.events.dispatch(event)),
        }
    }

    /// Subscribes to every event from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    /// Subscribes to cancellation requests (and resyncs) only.
    pub(crate) fn subscribe_cancellations(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe_cancellations()
    }

    /// Returns what is notified when a job of `kind` is queued, or events may have been lost.
    pub(crate) fn queued(&self, kind: &str) -> Arc<Notify> {
        self.events.queued(kind)
    }

    /// Watches the events about job `id` from now on.
    pub(crate) fn watch_job(&self, id: Uuid) -> JobWatch {
        self.events.watch_job(id)
    }

    /// Inserts a job; with an idempotency key already used by the owner, returns that job
    /// instead (and `false`). See [`JobStore::insert_many`].
    pub(crate) async fn insert(&self, job: &Job) -> JobsResult<(Job, bool)> {
        let mut inserted = self.insert_many(std::slice::from_ref(job), &[]).await?;
        inserted
            .pop()
            .ok_or(JobsError::Db(sqlx::Error::RowNotFound))
    }

    /// Inserts jobs in one transaction — one statement on PostgreSQL — and announces each new
    /// job as queued. A job whose owner already used its idempotency key (before, or earlier in
    /// `jobs`) is not inserted: the existing job comes back instead, with `false`. Returns the
    /// jobs in the order given.
    ///
    /// The database span is a child of the current span; `links` are the span contexts of
    /// the other traces the batch serves.
    pub(crate) async fn insert_many(
        &self,
        jobs: &[Job],
        links: &[opentelemetry::trace::SpanContext],
    ) -> JobsResult<Vec<(Job, bool)>> {
        let span = aimesh_kit::db::query_span(&self.db, "INSERT", "jobs", "INSERT jobs");
        for link in links {
            span.add_link(link.clone());
        }
        let inserted: HashSet<Uuid> = match &self.db {
            Db::Sqlite(pool) => {
                aimesh_kit::db::traced(span, async {
                    let mut tx = pool.begin().await?;
                    let mut inserted = HashSet::with_capacity(jobs.len());
                    for job in jobs {
                        let id: Option<(Uuid,)> = bind_job(sqlx::query_as(self.sql.insert), job)
                            .fetch_optional(&mut *tx)
                            .await?;
                        inserted.extend(id.map(|(id,)| id));
                    }
                    tx.commit().await?;
                    Ok(inserted)
                })
                .await?
            }
            Db::Postgres(pool) => {
                aimesh_kit::db::traced(span, insert_postgres(self.sql.insert, jobs, pool))
                    .await?
                    .into_iter()
                    .collect()
            }
        };
        self.announce_committed(
            jobs.iter()
                .filter(|job| inserted.contains(&job.id))
                .map(|job| JobEvent::of(EventKind::Queued, job))
                .collect(),
        )
        .await;
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            if inserted.contains(&job.id) {
                results.push((job.clone(), true));
                continue;
            }
            let existing: Option<JobRow> = with_db!(&self.db, SELECT "jobs", |pool| {
                sqlx::query_as(self.sql.get_by_key)
                    .bind(&job.owner_id)
                    .bind(&job.idempotency_key)
                    .fetch_optional(pool)
                    .await
            })?;
            let existing = existing.ok_or(JobsError::Db(sqlx::Error::RowNotFound))?;
            results.push((existing.try_into()?, false));
        }
        Ok(results)
    }

    /// Returns a job by id.
    pub(crate) async fn get(&self, id: Uuid) -> JobsResult<Option<Job>> {
        let row: Option<JobRow> = with_db!(&self.db, SELECT "jobs", |pool| {
            sqlx::query_as(self.sql.get)
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        row.map(Job::try_from).transpose().map_err(JobsError::Db)
    }

    /// Lists an owner's jobs, newest first (one more than the page size, to detect a next page).
    pub(crate) async fn list(&self, owner_id: &str, query: &JobQuery) -> JobsResult<Vec<Job>> {
        let limit = i64::from(query.page_size) + 1;
        let rows: Vec<JobRow> = with_db!(&self.db, SELECT "jobs", |pool| {
            sqlx::query_as(self.sql.list)
                .bind(owner_id)
                .bind(query.after)
                .bind(query.state.map(JobState::as_str))
                .bind(query.kind.as_deref())
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        jobs(rows)
    }

    /// Lists every owner's jobs (only `owner_id`'s, when given), newest first (one more than
    /// the page size).
    pub(crate) async fn list_all(
        &self,
        owner_id: Option<&str>,
        query: &JobQuery,
    ) -> JobsResult<Vec<Job>> {
        // One owner's jobs through the statement made for them (it walks the owner index):
        // a generic plan of one statement for both cases could not (see POSTGRES_SETTINGS).
        if let Some(owner_id) = owner_id {
            return self.list(owner_id, query).await;
        }
        let limit = i64::from(query.page_size) + 1;
        let rows: Vec<JobRow> = with_db!(&self.db, SELECT "jobs", |pool| {
            sqlx::query_as(self.sql.list_all)
                .bind(query.after)
                .bind(query.state.map(JobState::as_str))
                .bind(query.kind.as_deref())
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        jobs(rows)
    }

    /// Counts queued and running jobs per kind: `(kind, state, count, oldest submission)`.
    pub(crate) async fn stats_active(
        &self,
    ) -> JobsResult<Vec<(String, JobState, i64, Option<DateTime<Utc>>)>> {
        let rows: Vec<(String, String, i64, Option<DateTime<Utc>>)> = with_db!(&self.db, SELECT "jobs", |pool| {
            sqlx::query_as(self.sql.stats_active).fetch_all(pool).await
        })?;
        rows.into_iter()
            .map(|(kind, state, count, oldest)| Ok((kind, parse_state(&state)?, count, oldest)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(JobsError::Db)
    }

    /// Returns the jobs that succeeded or failed since `since` (at most `limit`, latest
    /// first): `(kind, state, started_at, finished_at)`.
    pub(crate) async fn stats_finished(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> JobsResult<Vec<FinishedJob>> {
        let rows: Vec<FinishedJob> = with_db!(&self.db, SELECT "jobs", |pool| {
            sqlx::query_as(self.sql.stats_finished)
                .bind(since)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// Deletes at most `limit` jobs that finished before `before`, the oldest first; returns
    /// how many.
    pub(crate) async fn purge_finished(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> JobsResult<u64> {
        let deleted = with_db!(&self.db, DELETE "jobs", |pool| {
            sqlx::query(self.sql.purge_finished)
                .bind(before)
                .bind(limit)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(deleted)
    }

    /// Deletes every job of `owner_id`; returns how many.
    pub(crate) async fn delete_owner(&self, owner_id: &str) -> JobsResult<u64> {
        let deleted = with_db!(&self.db, DELETE "jobs", |pool| {
            sqlx::query(self.sql.delete_owner)
                .bind(owner_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(deleted)
    }

    /// Claims up to `limit` queued jobs of `kind` whose time has come for `worker`, oldest
    /// first; each claim starts an attempt and is announced as a change. PostgreSQL skips rows
    /// other workers are claiming (`FOR UPDATE SKIP LOCKED`); SQLite serialises writers.
    ///
    /// Untraced: workers poll with it, and an idle poll is not worth a trace. The jobs it
    /// claims are traced by their worker's `job.run` spans, in the submitter's trace.
    pub(crate) async fn claim(
        &self,
        kind: &str,
        worker: &str,
        limit: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> JobsResult<Vec<Job>> {
        self.claim_with(self.sql.claim_due, kind, worker, limit, now, lease_until)
            .await
    }

    /// Claims up to `limit` running jobs of `kind` whose lease lapsed (their worker died or
    /// lost touch) for `worker`, as [`JobStore::claim`] claims queued ones. Workers call it
    /// now and then rather than with every claim: a lease lasts many seconds, and walking the
    /// index of leased jobs is what every claim would otherwise pay.
    pub(crate) async fn claim_lapsed(
        &self,
        kind: &str,
        worker: &str,
        limit: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> JobsResult<Vec<Job>> {
        self.claim_with(self.sql.claim_lapsed, kind, worker, limit, now, lease_until)
            .await
    }

    async fn claim_with(
        &self,
        sql: &'static str,
        kind: &str,
        worker: &str,
        limit: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> JobsResult<Vec<Job>> {
        let rows: Vec<JobRow> = with_db!(&self.worker_db, |pool| {
            sqlx::query_as(sql)
                .bind(worker)
                .bind(lease_until)
                .bind(now)
                .bind(kind)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        let claimed = jobs(rows)?;
        // They started.
        self.announce_committed(
            claimed
                .iter()
                .map(|job| JobEvent::of(EventKind::Changed, job))
                .collect(),
        )
        .await;
        Ok(claimed)
    }

    /// Extends a lease. Returns `None` when the worker lost it, else whether cancellation was
    /// requested.
    pub(crate) async fn heartbeat(
        &self,
        id: Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> JobsResult<Option<bool>> {
        let row: Option<(bool,)> = with_db!(&self.worker_db, UPDATE "jobs", |pool| {
            sqlx::query_as(self.sql.heartbeat)
                .bind(lease_until)
                .bind(id)
                .bind(worker)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|(cancel,)| cancel))
    }

    /// Records progress, announced as a change; returns whether the worker still holds the
    /// job.
    pub(crate) async fn progress(
        &self,
        id: Uuid,
        worker: &str,
        percent: i32,
        message: &str,
        partial_output: &str,
        now: DateTime<Utc>,
    ) -> JobsResult<bool> {
        let updated: Option<ChangedRow> = with_db!(&self.worker_db, UPDATE "jobs", |pool| {
            sqlx::query_as(self.sql.progress)
                .bind(percent)
                .bind(message)
                .bind(partial_output)
                .bind(now)
                .bind(id)
                .bind(worker)
                .fetch_optional(pool)
                .await
        })?;
        let held = updated.is_some();
        self.announce_committed(Vec::from_iter(
            updated.map(|row| row.event(EventKind::Changed)),
        ))
        .await;
        Ok(held)
    }

    /// Finishes several of `worker`'s attempts (see [`Outcome`]) and claims the jobs their
    /// slots run next, in one transaction — one statement on PostgreSQL: `successors` says how
    /// many queued jobs of each kind to claim for `worker`, as [`JobStore::claim`] would,
    /// leased until `lease_until`. Announces each job ended as changed (or queued, for a
    /// retry) and each job claimed as changed (it started). Outcomes for jobs whose lease
    /// `worker` lost are skipped.
    ///
    /// Ending a batch of jobs and starting the next ones in one commit halves the commits a
    /// busy worker makes, and its claims come in batches as large as its outcomes'.
    ///
    /// The database span is a child of the current span; `links` are the span contexts of
    /// the other traces the batch serves (OpenTelemetry's model of batch operations).
    pub(crate) async fn finish_many(
        &self,
        worker: &str,
        outcomes: &[Outcome],
        successors: &[(&str, i64)],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        links: &[opentelemetry::trace::SpanContext],
    ) -> JobsResult<Finished> {
        let span = aimesh_kit::db::query_span(&self.worker_db, "UPDATE", "jobs", "UPDATE jobs");
        for link in links {
            span.add_link(link.clone());
        }
        let (finished, claimed): (Vec<FinishedRow>, Vec<JobRow>) = match &self.worker_db {
            Db::Sqlite(pool) => {
                aimesh_kit::db::traced(span, async {
                    let mut tx = pool.begin().await?;
                    let mut finished = Vec::with_capacity(outcomes.len());
                    for outcome in outcomes {
                        let (result_type, result) = outcome
                            .result
                            .as_ref()
                            .map(|r| (&r.type_name, &r.value))
                            .unzip();
                        let row: Option<FinishedRow> = sqlx::query_as(self.sql.finish)
                            .bind(outcome.state.as_str())
                            .bind(result_type)
                            .bind(result)
                            .bind(&outcome.error)
                            .bind(outcome.retry_at)
                            .bind(outcome.state.is_terminal().then_some(now))
                            .bind(now)
                            .bind(outcome.id)
                            .bind(worker)
                            .fetch_optional(&mut *tx)
                            .await?;
                        finished.extend(row);
                    }
                    let mut claimed = Vec::new();
                    for &(kind, count) in successors {
                        let rows: Vec<JobRow> = sqlx::query_as(self.sql.claim_due)
                            .bind(worker)
                            .bind(lease_until)
                            .bind(now)
                            .bind(kind)
                            .bind(count)
                            .fetch_all(&mut *tx)
                            .await?;
                        claimed.extend(rows);
                    }
                    tx.commit().await?;
                    Ok((finished, claimed))
                })
                .await?
            }
            Db::Postgres(pool) => {
                let mut ids = Vec::with_capacity(outcomes.len());
                let mut states = Vec::with_capacity(outcomes.len());
                let mut result_types = Vec::with_capacity(outcomes.len());
                let mut results = Vec::with_capacity(outcomes.len());
                let mut errors = Vec::with_capacity(outcomes.len());
                let mut retry_ats = Vec::with_capacity(outcomes.len());
                for outcome in outcomes {
                    ids.push(outcome.id);
                    states.push(outcome.state.as_str());
                    result_types.push(outcome.result.as_ref().map(|r| r.type_name.as_str()));
                    results.push(outcome.result.as_ref().map(|r| r.value.as_slice()));
                    errors.push(outcome.error.as_deref());
                    retry_ats.push(outcome.retry_at);
                }
                let (kinds, counts): (Vec<&str>, Vec<i64>) = successors.iter().copied().unzip();
                // A row is a job claimed, whole, or a job ended, of which only the columns
                // of a `FinishedRow` are given.
                let rows: Vec<PgRow> = aimesh_kit::db::traced(
                    span,
                    sqlx::query(self.sql.finish)
                        .bind(&ids)
                        .bind(&states)
                        .bind(&result_types)
                        .bind(&results)
                        .bind(&errors)
                        .bind(&retry_ats)
                        .bind(now)
                        .bind(worker)
                        .bind(&kinds)
                        .bind(&counts)
                        .bind(lease_until)
                        .fetch_all(pool),
                )
                .await?;
                let mut finished = Vec::with_capacity(outcomes.len());
                let mut claimed = Vec::with_capacity(rows.len().saturating_sub(outcomes.len()));
                for row in &rows {
                    if row.try_get("claimed")? {
                        claimed.push(JobRow::from_row(row)?);
                    } else {
                        finished.push(FinishedRow::from_row(row)?);
                    }
                }
                (finished, claimed)
            }
        };
        let applied = finished.iter().map(|row| row.id).collect();
        let claimed = jobs(claimed)?;
        let mut events = Vec::with_capacity(finished.len() + claimed.len());
        for row in finished {
            // A retry makes the job claimable again.
            let kind = match parse_state(&row.state)? {
                JobState::Queued => EventKind::Queued,
                _ => EventKind::Changed,
            };
            events.push(JobEvent {
                kind,
                job_id: row.id,
                owner_id: row.owner_id,
                job_kind: row.kind,
            });
        }
        events.extend(
            claimed
                .iter()
                .map(|job| JobEvent::of(EventKind::Changed, job)),
        );
        self.announce(events);
        Ok(Finished { applied, claimed })
    }

    /// Cancels an owner's queued or running job: a queued one at once, a running one by
    /// flagging it for its worker (announced as a cancellation request). Returns the job after
    /// the change, or `None` when no job of the owner's was queued or running.
    pub(crate) async fn cancel(
        &self,
        owner_id: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> JobsResult<Option<Job>> {
        let job = self.change(self.sql.cancel, owner_id, id, now).await?;
        self.announce(job.iter().map(|job| {
            let kind = if job.state == JobState::Running {
                EventKind::CancelRequested
            } else {
                EventKind::Changed
            };
            JobEvent::of(kind, job)
        }));
        Ok(job)
    }

    /// Queues an owner's failed or cancelled job again with a fresh attempt budget, announced
    /// as queued. Returns the job after the change, or `None` when no job of the owner's was
    /// failed or cancelled.
    pub(crate) async fn retry(
        &self,
        owner_id: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> JobsResult<Option<Job>> {
        let job = self.change(self.sql.retry, owner_id, id, now).await?;
        self.announce(job.iter().map(|job| JobEvent::of(EventKind::Queued, job)));
        Ok(job)
    }

    /// Runs an owner's change of one job (`$1` now, `$2` the job, `$3` the owner), returning
    /// the changed job.
    async fn change(
        &self,
        sql: &'static str,
        owner_id: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> JobsResult<Option<Job>> {
        let row: Option<JobRow> = with_db!(&self.db, UPDATE "jobs", |pool| {
            sqlx::query_as(sql)
                .bind(now)
                .bind(id)
                .bind(owner_id)
                .fetch_optional(pool)
                .await
        })?;
        row.map(Job::try_from).transpose().map_err(JobsError::Db)
    }

    /// Gives a worker's running jobs back to the queue (at shutdown), without spending the
    /// attempt, and announces each as queued. Returns how many it released.
    pub(crate) async fn release(&self, worker: &str, now: DateTime<Utc>) -> JobsResult<usize> {
        let rows: Vec<ChangedRow> = with_db!(&self.db, UPDATE "jobs", |pool| {
            sqlx::query_as(self.sql.release)
                .bind(now)
                .bind(worker)
                .fetch_all(pool)
                .await
        })?;
        let released = rows.len();
        self.announce(rows.into_iter().map(|row| row.event(EventKind::Queued)));
        Ok(released)
    }

    /// Counts queued jobs per kind. Untraced: a metrics loop polls it.
    pub(crate) async fn queue_depth(&self) -> JobsResult<Vec<(String, i64)>> {
        let rows = with_db!(&self.db, |pool| {
            sqlx::query_as(self.sql.queue_depth).fetch_all(pool).await
        })?;
        Ok(rows)
    }

    /// Registers a schedule, due first at `first_run` — unless it exists with the same
    /// cadence, which keeps its next run. Returns when it is next due.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn register_schedule(
        &self,
        name: &str,
        kind: &str,
        payload: &[u8],
        max_attempts: i32,
        cadence: &str,
        first_run: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> JobsResult<DateTime<Utc>> {
        with_db!(&self.db, INSERT "job_schedules", |pool| {
            sqlx::query(self.sql.schedule_register)
                .bind(name)
                .bind(kind)
                .bind(payload)
                .bind(max_attempts)
                .bind(cadence)
                .bind(first_run)
                .bind(now)
                .execute(pool)
                .await
                .map(drop)
        })?;
        self.schedule_next_run(name)
            .await?
            .ok_or(JobsError::Db(sqlx::Error::RowNotFound))
    }

    /// Returns when a schedule is next due. Untraced: the scheduler polls it.
    pub(crate) async fn schedule_next_run(&self, name: &str) -> JobsResult<Option<DateTime<Utc>>> {
        let row: Option<(DateTime<Utc>,)> = with_db!(&self.db, |pool| {
            sqlx::query_as(self.sql.schedule_next_run)
                .bind(name)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|(at,)| at))
    }

    /// Fires the tick of schedule `name` due at `due`, in one transaction: moves its next run
    /// to `next` if no one else did, and then submits its job for `owner_id` with
    /// `idempotency_key`, runnable from `due`, announced as queued. Returns the job, or `None`
    /// when another replica took the tick.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fire_schedule(
        &self,
        name: &str,
        due: DateTime<Utc>,
        next: DateTime<Utc>,
        owner_id: &str,
        idempotency_key: String,
        now: DateTime<Utc>,
    ) -> JobsResult<Option<Job>> {
        let job = |row: ScheduleRow| Job {
            id: Uuid::now_v7(),
            owner_id: owner_id.to_owned(),
            kind: row.kind,
            state: JobState::Queued,
            payload: row.payload,
            attempts: 0,
            max_attempts: row.max_attempts.max(1),
            progress_percent: 0,
            progress_message: String::new(),
            partial_output: String::new(),
            result_type: None,
            result: None,
            error: None,
            idempotency_key: Some(idempotency_key.clone()),
            trace_context: None,
            cancel_requested: false,
            lease_owner: None,
            lease_expires_at: None,
            run_after: due,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
        };
        // The tick is taken by the conditional update and its job inserted in one transaction:
        // a replica that stops between the two takes neither.
        let fired = match &self.db {
            Db::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let taken: Option<ScheduleRow> = sqlx::query_as(self.sql.schedule_take)
                    .bind(next)
                    .bind(now)
                    .bind(name)
                    .bind(due)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(job) = taken.map(job) else {
                    return Ok(None);
                };
                let inserted: Option<(Uuid,)> = bind_job(sqlx::query_as(self.sql.insert), &job)
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.commit().await?;
                inserted.map(|_| job)
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let taken: Option<ScheduleRow> = sqlx::query_as(self.sql.schedule_take)
                    .bind(next)
                    .bind(now)
                    .bind(name)
                    .bind(due)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(job) = taken.map(job) else {
                    return Ok(None);
                };
                let inserted =
                    insert_postgres(self.sql.insert, std::slice::from_ref(&job), &mut *tx).await?;
                tx.commit().await?;
                (!inserted.is_empty()).then_some(job)
            }
        };
        self.announce_committed(
            fired
                .iter()
                .map(|job| JobEvent::of(EventKind::Queued, job))
                .collect(),
        )
        .await;
        Ok(fired)
    }
}

/// Binds a job's columns to SQLite's insert statement.
fn bind_job<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments>,
    job: &'q Job,
) -> sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments> {
    query
        .bind(job.id)
        .bind(&job.owner_id)
        .bind(&job.kind)
        .bind(job.state.as_str())
        .bind(&job.payload)
        .bind(job.max_attempts)
        .bind(&job.idempotency_key)
        .bind(&job.trace_context)
        .bind(job.run_after)
        .bind(job.created_at)
}

/// Runs PostgreSQL's insert statement, the jobs' columns as arrays; returns the inserted ids.
async fn insert_postgres<'c>(
    sql: &'static str,
    jobs: &[Job],
    executor: impl sqlx::PgExecutor<'c>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let owners: Vec<&str> = jobs.iter().map(|j| j.owner_id.as_str()).collect();
    let kinds: Vec<&str> = jobs.iter().map(|j| j.kind.as_str()).collect();
    let states: Vec<&str> = jobs.iter().map(|j| j.state.as_str()).collect();
    let payloads: Vec<&[u8]> = jobs.iter().map(|j| j.payload.as_slice()).collect();
    let max_attempts: Vec<i32> = jobs.iter().map(|j| j.max_attempts).collect();
    let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.idempotency_key.as_deref()).collect();
    let traces: Vec<Option<&str>> = jobs.iter().map(|j| j.trace_context.as_deref()).collect();
    let run_after: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.run_after).collect();
    let created: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.created_at).collect();
    let rows: Vec<(Uuid,)> = sqlx::query_as(sql)
        .bind(&ids)
        .bind(&owners)
        .bind(&kinds)
        .bind(&states)
        .bind(&payloads)
        .bind(&max_attempts)
        .bind(&keys)
        .bind(&traces)
        .bind(&run_after)
        .bind(&created)
        .fetch_all(executor)
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

#[cfg(test)]
mod tests;
