//! Persistence of jobs, for SQLite and PostgreSQL. Every state change is one conditional
//! statement, so concurrent workers, API calls and lease expiry cannot interleave badly:
//! a worker's writes apply only while it still holds the job's lease. Each statement is traced
//! as a database client span (`INSERT jobs`, `UPDATE jobs`...) except the polled ones.

use aimesh_kit::{
    db::{Db, Migrations},
    with_db,
};
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    error::{JobsError, JobsResult},
    model::{Job, JobQuery, JobState},
    notify::{notified, pg_notify_each},
    worker::JobOutput,
};

/// How an attempt ended, for [`JobStore::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The job.
    pub id: Uuid,
    /// SUCCEEDED (with a result), FAILED or CANCELLED, or QUEUED again at `retry_at`.
    pub state: JobState,
    /// The result of a success.
    pub result: Option<JobOutput>,
    /// The error of a failure (kept on a retry).
    pub error: Option<String>,
    /// When a retry may run.
    pub retry_at: Option<DateTime<Utc>>,
}

/// The job engine's migrations.
pub const MIGRATIONS: Migrations = aimesh_kit::migrations!("jobs");

/// The columns of a job row, in [`JobRow`]'s order (a macro, so it joins literals in `concat!`).
macro_rules! columns {
    () => {
        "id, owner_id, kind, state, payload, attempts, max_attempts, progress_percent, \
         progress_message, partial_output, result_type, result, error, idempotency_key, \
         trace_context, cancel_requested, lease_owner, lease_expires_at, run_after, created_at, \
         updated_at, started_at, finished_at"
    };
}

const COLUMNS: &str = columns!();

/// The claim statements, for SQLite and for PostgreSQL, of the jobs that `$select` picks
/// (a query of job ids; `$3` is now, `$4` the kind, `$5` the limit): each picked job starts an
/// attempt under `worker` (`$1`) with a lease until `$2`, and comes back whole. On PostgreSQL
/// the picked rows are locked, skipping those other workers are claiming, then fetched by
/// primary key through an array, and each claimed job is notified as changed, all in one
/// statement.
macro_rules! claim_statements {
    ($select:literal) => {{
        macro_rules! start {
                () => {
                    "UPDATE jobs SET state = 'RUNNING', attempts = attempts + 1, lease_owner = $1, \
                 lease_expires_at = $2, started_at = COALESCE(started_at, $3), updated_at = $3, \
                 progress_percent = 0, progress_message = '', partial_output = ''"
                };
            }
        (
            concat!(
                start!(),
                " WHERE id IN (",
                $select,
                ") RETURNING ",
                columns!()
            ),
            concat!(
                "WITH picked AS (",
                $select,
                " FOR UPDATE SKIP LOCKED), claimed AS (",
                start!(),
                " WHERE id = ANY(ARRAY(SELECT id FROM picked)) RETURNING ",
                columns!(),
                "), ",
                pg_notify_each!("'changed'", "claimed"),
                " SELECT claimed.* FROM claimed WHERE ",
                notified!()
            ),
        )
    }};
}

/// Claims queued jobs whose time has come, oldest first (see [`JobStore::claim`]).
const CLAIM_DUE: (&str, &str) = claim_statements!(
    "SELECT id FROM jobs WHERE kind = $4 AND state = 'QUEUED' AND run_after <= $3 \
     ORDER BY run_after LIMIT $5"
);

/// Claims running jobs whose lease lapsed (see [`JobStore::claim_lapsed`]).
const CLAIM_LAPSED: (&str, &str) = claim_statements!(
    "SELECT id FROM jobs WHERE kind = $4 AND state = 'RUNNING' AND lease_expires_at < $3 \
     ORDER BY lease_expires_at LIMIT $5"
);

/// Inserts jobs on PostgreSQL (see [`JobStore::insert_many`]), `$1`–`$10` their columns.
const INSERT_MANY: &str = concat!(
    "WITH inserted AS (INSERT INTO jobs (id, owner_id, kind, state, payload, \
         max_attempts, idempotency_key, trace_context, run_after, created_at, \
         updated_at) SELECT id, owner_id, kind, state, payload, max_attempts, \
         idempotency_key, trace_context, run_after, created_at, created_at \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], \
         $6::int4[], $7::text[], $8::text[], $9::timestamptz[], \
         $10::timestamptz[]) AS j(id, owner_id, kind, state, payload, \
         max_attempts, idempotency_key, trace_context, run_after, created_at) \
         ON CONFLICT (owner_id, idempotency_key) DO NOTHING \
         RETURNING id, kind, owner_id), ",
    pg_notify_each!("'queued'", "inserted"),
    " SELECT inserted.id FROM inserted WHERE ",
    notified!()
);

/// Records outcomes on PostgreSQL (see [`JobStore::finish_many`]): `$1`–`$6` the outcomes'
/// columns, `$7` now, `$8` the worker whose lease must still hold.
///
/// Only the lease owner is checked: a job has one only while RUNNING (claims set it; finishing
/// and releasing clear it). With `state = 'RUNNING'` too, the planner would walk the partial
/// index of running jobs — dead entries and all, under churn — instead of fetching the rows by
/// primary key. The ids are also a condition of their own, so that whatever the join, the
/// rows are looked up by primary key.
const FINISH_MANY: &str = concat!(
    "WITH outcome AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], \
         $4::bytea[], $5::text[], $6::timestamptz[]) \
         AS o(id, state, result_type, result, error, retry_at)), \
         finished AS (UPDATE jobs SET state = o.state, result_type = o.result_type, \
         result = o.result, error = o.error, \
         run_after = COALESCE(o.retry_at, jobs.run_after), \
         finished_at = CASE WHEN o.state IN ('SUCCEEDED', 'FAILED', 'CANCELLED') \
         THEN $7 END, updated_at = $7, \
         progress_percent = CASE WHEN o.state = 'SUCCEEDED' THEN 100 \
         ELSE jobs.progress_percent END, \
         lease_owner = NULL, lease_expires_at = NULL \
         FROM outcome o \
         WHERE jobs.id = ANY($1) AND jobs.id = o.id AND jobs.lease_owner = $8 \
         RETURNING jobs.id, jobs.kind, jobs.owner_id, jobs.state), ",
    pg_notify_each!(
        "CASE WHEN finished.state = 'QUEUED' THEN 'queued' ELSE 'changed' END",
        "finished"
    ),
    " SELECT finished.id FROM finished WHERE ",
    notified!()
);

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
            state: row
                .state
                .parse()
                .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
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

fn jobs(rows: Vec<JobRow>) -> JobsResult<Vec<Job>> {
    rows.into_iter()
        .map(|row| Job::try_from(row).map_err(JobsError::Db))
        .collect()
}

/// Planner settings of the store's own PostgreSQL connections (see [`JobStore::new`]).
///
/// The jobs table swings from empty to many thousand rows within seconds, faster than
/// autovacuum's statistics follow, and PostgreSQL keeps the generic plan it made for a
/// prepared statement until the table's statistics change. A plan made while the table was
/// small is a sequential scan (the cheapest way through a few pages), and it would stay one as
/// the table grows: a claim would then read every row. Every statement here reaches its rows
/// through an index (a primary key lookup, or a walk of a partial index in order), so on these
/// connections sequential scans are ruled out and the plans stay index plans at any size.
pub const POSTGRES_SETTINGS: &[(&str, &str)] = &[("enable_seqscan", "off")];

/// Jobs in a database.
#[derive(Debug, Clone)]
pub struct JobStore {
    db: Db,
}

impl JobStore {
    /// Creates a store on a migrated database. On PostgreSQL the store has a pool of its own,
    /// as large as `db`'s, whose connections plan with [`POSTGRES_SETTINGS`]; the job engine's
    /// traffic then also never waits for a connection the rest of the process holds.
    pub fn new(db: Db) -> Self {
        Self {
            db: db.with_postgres_settings(POSTGRES_SETTINGS),
        }
    }

    /// Returns the database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Inserts a job; with an idempotency key already used by the owner, returns that job
    /// instead (and `false`). See [`JobStore::insert_many`].
    pub async fn insert(&self, job: &Job) -> JobsResult<(Job, bool)> {
        let mut inserted = self.insert_many(std::slice::from_ref(job), &[]).await?;
        inserted
            .pop()
            .ok_or(JobsError::Db(sqlx::Error::RowNotFound))
    }

    /// Inserts jobs in one transaction — one statement on PostgreSQL, which also notifies
    /// each new job as queued. A job whose owner already used its idempotency key (before, or
    /// earlier in `jobs`) is not inserted: the existing job comes back instead, with `false`.
    /// Returns the jobs in the order given.
    ///
    /// The database span is a child of the current span; `links` are the span contexts of
    /// the other traces the batch serves.
    pub async fn insert_many(
        &self,
        jobs: &[Job],
        links: &[opentelemetry::trace::SpanContext],
    ) -> JobsResult<Vec<(Job, bool)>> {
        let span = aimesh_kit::db::query_span(&self.db, "INSERT", "jobs", "INSERT jobs");
        for link in links {
            span.add_link(link.clone());
        }
        let inserted: Vec<Uuid> = match &self.db {
            Db::Sqlite(pool) => {
                aimesh_kit::db::traced(span, async {
                    let mut tx = pool.begin().await?;
                    let mut inserted = Vec::with_capacity(jobs.len());
                    for job in jobs {
                        let id: Option<(Uuid,)> = sqlx::query_as(
                            "INSERT INTO jobs (id, owner_id, kind, state, payload, attempts, \
                             max_attempts, idempotency_key, trace_context, run_after, created_at, \
                             updated_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10, $10) \
                             ON CONFLICT (owner_id, idempotency_key) DO NOTHING RETURNING id",
                        )
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
                let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
                let owners: Vec<&str> = jobs.iter().map(|j| j.owner_id.as_str()).collect();
                let kinds: Vec<&str> = jobs.iter().map(|j| j.kind.as_str()).collect();
                let states: Vec<&str> = jobs.iter().map(|j| j.state.as_str()).collect();
                let payloads: Vec<&[u8]> = jobs.iter().map(|j| j.payload.as_slice()).collect();
                let max_attempts: Vec<i32> = jobs.iter().map(|j| j.max_attempts).collect();
                let keys: Vec<Option<&str>> =
                    jobs.iter().map(|j| j.idempotency_key.as_deref()).collect();
                let traces: Vec<Option<&str>> =
                    jobs.iter().map(|j| j.trace_context.as_deref()).collect();
                let run_after: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.run_after).collect();
                let created: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.created_at).collect();
                let rows: Vec<(Uuid,)> = aimesh_kit::db::traced(
                    span,
                    sqlx::query_as(INSERT_MANY)
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
                        .fetch_all(pool),
                )
                .await?;
                rows.into_iter().map(|(id,)| id).collect()
            }
        };
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            if inserted.contains(&job.id) {
                results.push((job.clone(), true));
                continue;
            }
            let existing: Option<JobRow> = with_db!(&self.db, SELECT "jobs", |pool| {
                sqlx::query_as(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM jobs WHERE owner_id = $1 AND idempotency_key = $2"
                ))
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
    pub async fn get(&self, id: Uuid) -> JobsResult<Option<Job>> {
        let row: Option<JobRow> = with_db!(&self.db, SELECT "jobs", |pool| {
            sqlx::query_as(concat!("SELECT ", columns!(), " FROM jobs WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        row.map(Job::try_from).transpose().map_err(JobsError::Db)
    }

    /// Lists an owner's jobs, newest first (one more than the page size, to detect a next page).
    pub async fn list(&self, owner_id: &str, query: &JobQuery) -> JobsResult<Vec<Job>> {
        let limit = i64::from(query.page_size) + 1;
        let rows: Vec<JobRow> = with_db!(&self.db, SELECT "jobs", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(COLUMNS)
                .push(" FROM jobs WHERE owner_id = ")
                .push_bind(owner_id);
            if let Some(after) = query.after {
                sql.push(" AND id < ").push_bind(after);
            }
            if let Some(state) = query.state {
                sql.push(" AND state = ").push_bind(state.as_str());
            }
            if let Some(kind) = &query.kind {
                sql.push(" AND kind = ").push_bind(kind);
            }
            sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
            sql.build_query_as().fetch_all(pool).await
        })?;
        jobs(rows)
    }

    /// Claims up to `limit` queued jobs of `kind` whose time has come for `worker`, oldest
    /// first; each claim starts an attempt. PostgreSQL skips rows other workers are claiming
    /// (`FOR UPDATE SKIP LOCKED`) and notifies the claimed jobs as changed (they started);
    /// SQLite serialises writers.
    ///
    /// Untraced: workers poll with it, and an idle poll is not worth a trace. The jobs it
    /// claims are traced by their worker's `job.run` spans, in the submitter's trace.
    pub async fn claim(
        &self,
        kind: &str,
        worker: &str,
        limit: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> JobsResult<Vec<Job>> {
        self.claim_with(CLAIM_DUE, kind, worker, limit, now, lease_until)
            .await
    }

    /// Claims up to `limit` running jobs of `kind` whose lease lapsed (their worker died or
    /// lost touch) for `worker`, as [`JobStore::claim`] claims queued ones. Workers call it
    /// now and then rather than with every claim: a lease lasts many seconds, and walking the
    /// index of leased jobs is what every claim would otherwise pay.
    pub async fn claim_lapsed(
        &self,
        kind: &str,
        worker: &str,
        limit: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> JobsResult<Vec<Job>> {
        self.claim_with(CLAIM_LAPSED, kind, worker, limit, now, lease_until)
            .await
    }

    /// Runs a claim statement of [`claim_statements!`] (for SQLite, for PostgreSQL).
    async fn claim_with(
        &self,
        (sqlite, postgres): (&'static str, &'static str),
        kind: &str,
        worker: &str,
        limit: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> JobsResult<Vec<Job>> {
        let sql = match &self.db {
            Db::Sqlite(_) => sqlite,
            Db::Postgres(_) => postgres,
        };
        let rows: Vec<JobRow> = with_db!(&self.db, |pool| {
            sqlx::query_as(sql)
                .bind(worker)
                .bind(lease_until)
                .bind(now)
                .bind(kind)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        jobs(rows)
    }

    /// Extends a lease. Returns `None` when the worker lost it, else whether cancellation was
    /// requested.
    pub async fn heartbeat(
        &self,
        id: Uuid,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> JobsResult<Option<bool>> {
        let row: Option<(bool,)> = with_db!(&self.db, UPDATE "jobs", |pool| {
            sqlx::query_as(
                "UPDATE jobs SET lease_expires_at = $1 \
                 WHERE id = $2 AND lease_owner = $3 AND state = 'RUNNING' \
                 RETURNING cancel_requested",
            )
            .bind(lease_until)
            .bind(id)
            .bind(worker)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(cancel,)| cancel))
    }

    /// Records progress (notified as a change on PostgreSQL); returns whether the worker still
    /// holds the job.
    pub async fn progress(
        &self,
        id: Uuid,
        worker: &str,
        percent: i32,
        message: &str,
        partial_output: &str,
        now: DateTime<Utc>,
    ) -> JobsResult<bool> {
        macro_rules! progress {
            () => {
                "UPDATE jobs SET progress_percent = $1, progress_message = $2, \
                 partial_output = $3, updated_at = $4 \
                 WHERE id = $5 AND lease_owner = $6 AND state = 'RUNNING'"
            };
        }
        let sql = match &self.db {
            Db::Sqlite(_) => concat!(progress!(), " RETURNING id"),
            Db::Postgres(_) => concat!(
                "WITH updated AS (",
                progress!(),
                " RETURNING id, kind, owner_id), ",
                pg_notify_each!("'changed'", "updated"),
                " SELECT updated.id FROM updated WHERE ",
                notified!()
            ),
        };
        let updated: Option<(Uuid,)> = with_db!(&self.db, UPDATE "jobs", |pool| {
            sqlx::query_as(sql)
                .bind(percent)
                .bind(message)
                .bind(partial_output)
                .bind(now)
                .bind(id)
                .bind(worker)
                .fetch_optional(pool)
                .await
        })?;
        Ok(updated.is_some())
    }

    /// Finishes an attempt (see [`Outcome`]). Applies only while `worker` holds the lease;
    /// returns whether it did.
    pub async fn finish(
        &self,
        worker: &str,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> JobsResult<bool> {
        let applied = self
            .finish_many(worker, std::slice::from_ref(outcome), now, &[])
            .await?;
        Ok(!applied.is_empty())
    }

    /// Finishes several of `worker`'s attempts in one transaction — one statement on
    /// PostgreSQL, which also notifies each job as changed (or queued, for a retry). Outcomes
    /// for jobs whose lease `worker` lost are skipped; returns the ids that applied.
    ///
    /// The database span is a child of the current span; `links` are the span contexts of
    /// the other traces the batch serves (OpenTelemetry's model of batch operations).
    pub async fn finish_many(
        &self,
        worker: &str,
        outcomes: &[Outcome],
        now: DateTime<Utc>,
        links: &[opentelemetry::trace::SpanContext],
    ) -> JobsResult<Vec<Uuid>> {
        let span = aimesh_kit::db::query_span(&self.db, "UPDATE", "jobs", "UPDATE jobs");
        for link in links {
            span.add_link(link.clone());
        }
        let applied = match &self.db {
            Db::Sqlite(pool) => {
                aimesh_kit::db::traced(span, async {
                    let mut tx = pool.begin().await?;
                    let mut applied = Vec::with_capacity(outcomes.len());
                    for outcome in outcomes {
                        let (result_type, result) = outcome.result.as_ref().map(|r| (&r.type_name, &r.value)).unzip();
                        let done: Option<(Uuid,)> = sqlx::query_as(
                            "UPDATE jobs SET state = $1, result_type = $2, result = $3, error = $4, \
                             run_after = COALESCE($5, run_after), finished_at = $6, updated_at = $7, \
                             progress_percent = CASE WHEN $1 = 'SUCCEEDED' THEN 100 ELSE progress_percent END, \
                             lease_owner = NULL, lease_expires_at = NULL \
                             WHERE id = $8 AND lease_owner = $9 AND state = 'RUNNING' RETURNING id",
                        )
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
                        applied.extend(done.map(|(id,)| id));
                    }
                    tx.commit().await?;
                    Ok(applied)
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
                let rows: Vec<(Uuid,)> = aimesh_kit::db::traced(
                    span,
                    sqlx::query_as(FINISH_MANY)
                    .bind(&ids)
                    .bind(&states)
                    .bind(&result_types)
                    .bind(&results)
                    .bind(&errors)
                    .bind(&retry_ats)
                    .bind(now)
                    .bind(worker)
                    .fetch_all(pool),
                )
                .await?;
                rows.into_iter().map(|(id,)| id).collect()
            }
        };
        Ok(applied)
    }

    /// Cancels an owner's job: a queued one at once, a running one by flagging it for its
    /// worker. Returns the job after the change, or `None` when it is not the owner's.
    pub async fn cancel(
        &self,
        owner_id: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> JobsResult<Option<Job>> {
        with_db!(&self.db, UPDATE "jobs", |pool| {
            sqlx::query(
                "UPDATE jobs SET state = CASE WHEN state = 'QUEUED' THEN 'CANCELLED' ELSE state END, \
                 finished_at = CASE WHEN state = 'QUEUED' THEN $1 ELSE finished_at END, \
                 cancel_requested = CASE WHEN state = 'RUNNING' THEN TRUE ELSE cancel_requested END, \
                 updated_at = $1 \
                 WHERE id = $2 AND owner_id = $3 AND state IN ('QUEUED', 'RUNNING')",
            )
            .bind(now)
            .bind(id)
            .bind(owner_id)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(self.get(id).await?.filter(|job| job.owner_id == owner_id))
    }

    /// Queues an owner's failed or cancelled job again with a fresh attempt budget; returns
    /// whether it did.
    pub async fn retry(&self, owner_id: &str, id: Uuid, now: DateTime<Utc>) -> JobsResult<bool> {
        let updated = with_db!(&self.db, UPDATE "jobs", |pool| {
            sqlx::query(
                "UPDATE jobs SET state = 'QUEUED', attempts = 0, error = NULL, \
                 cancel_requested = FALSE, finished_at = NULL, run_after = $1, updated_at = $1, \
                 progress_percent = 0, progress_message = '', partial_output = '' \
                 WHERE id = $2 AND owner_id = $3 AND state IN ('FAILED', 'CANCELLED')",
            )
            .bind(now)
            .bind(id)
            .bind(owner_id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(updated == 1)
    }

    /// Gives a worker's running jobs back to the queue (at shutdown), without spending the
    /// attempt. Returns the released ids.
    pub async fn release(&self, worker: &str, now: DateTime<Utc>) -> JobsResult<Vec<Uuid>> {
        let ids: Vec<(Uuid,)> = with_db!(&self.db, UPDATE "jobs", |pool| {
            sqlx::query_as(
                "UPDATE jobs SET state = 'QUEUED', attempts = attempts - 1, lease_owner = NULL, \
                 lease_expires_at = NULL, run_after = $1, updated_at = $1 \
                 WHERE lease_owner = $2 AND state = 'RUNNING' RETURNING id",
            )
            .bind(now)
            .bind(worker)
            .fetch_all(pool)
            .await
        })?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Counts queued jobs per kind. Untraced: a metrics loop polls it.
    pub async fn queue_depth(&self) -> JobsResult<Vec<(String, i64)>> {
        let rows = with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT kind, COUNT(*) FROM jobs WHERE state = 'QUEUED' GROUP BY kind ORDER BY kind",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use aimesh_kit::testing::{Backend, TestDatabase};

    use super::*;

    /// The hot statements' generic plans (what PostgreSQL caches for a prepared statement),
    /// made on an empty table (a new install, the benchmark's start), reach rows only through
    /// indexes: a plan made then is kept as the table grows.
    #[tokio::test]
    async fn plans_made_on_an_empty_table_never_scan_it() {
        let database = TestDatabase::create(Backend::Postgres).await;
        let db = database.connect().await;
        db.migrate(&MIGRATIONS).await.expect("migrate");
        let store = JobStore::new(db);
        let Db::Postgres(pool) = store.db() else {
            unreachable!("a PostgreSQL test database");
        };
        let mut conn = pool.acquire().await.expect("connection");
        sqlx::query("SET plan_cache_mode = force_generic_plan")
            .execute(&mut *conn)
            .await
            .expect("set");
        let claim = "(text, timestamptz, timestamptz, text, int8)";
        let statements = [
            (
                "claim_due",
                CLAIM_DUE.1,
                claim,
                "('w', now(), now(), 'k', 4)",
            ),
            (
                "claim_lapsed",
                CLAIM_LAPSED.1,
                claim,
                "('w', now(), now(), 'k', 4)",
            ),
            (
                "insert_many",
                INSERT_MANY,
                "(uuid[], text[], text[], text[], bytea[], int4[], text[], text[], \
                 timestamptz[], timestamptz[])",
                "('{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')",
            ),
            (
                "finish_many",
                FINISH_MANY,
                "(uuid[], text[], text[], bytea[], text[], timestamptz[], timestamptz, text)",
                "('{}', '{}', '{}', '{}', '{}', '{}', now(), 'w')",
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
    }
}
