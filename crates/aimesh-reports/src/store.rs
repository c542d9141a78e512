//! Persistence of reports and the events they hold until rendered, for SQLite and PostgreSQL
//! alike: the SQL is written once, in the subset both understand, and [`with_db!`] runs it on
//! whichever pool is configured.

use aimesh_events::{NewEvent, Outbox, pb};
use aimesh_kit::{
    db::{Db, Migrations},
    traced, with_db,
};
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::{
    domain::{Event, Format},
    error::{ReportsServiceError, ServiceResult},
    report::{
        EVENTS_PER_PAGE, ListQuery, RenderedFile, Report, ReportPage, Status, decode_events,
        encode_events,
    },
};

/// The reports service's migrations.
pub const MIGRATIONS: Migrations = aimesh_kit::migrations!("reports");

/// The columns of a report, in [`ReportRow`]'s order.
const COLUMNS: &str = "id, owner_id, student_id, namespace, format, status, failure_reason, \
     job_id, event_count, unit_count, first_event_at, last_event_at, size_bytes, sha256, \
     created_at, updated_at";

#[derive(sqlx::FromRow)]
struct ReportRow {
    id: Uuid,
    owner_id: String,
    student_id: String,
    namespace: Option<String>,
    format: String,
    status: String,
    failure_reason: Option<String>,
    job_id: Option<Uuid>,
    event_count: i64,
    unit_count: i64,
    first_event_at: Option<DateTime<Utc>>,
    last_event_at: Option<DateTime<Utc>>,
    size_bytes: i64,
    sha256: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ReportRow {
    fn into_report(self) -> ServiceResult<Report> {
        let status = Status::parse(&self.status).ok_or_else(|| {
            ReportsServiceError::Internal(format!("unknown report status {:?}", self.status))
        })?;
        let format = Format::parse(&self.format).ok_or_else(|| {
            ReportsServiceError::Internal(format!("unknown report format {:?}", self.format))
        })?;
        Ok(Report {
            id: self.id,
            owner_id: self.owner_id,
            student_id: self.student_id,
            namespace: self.namespace,
            format,
            status,
            failure_reason: self.failure_reason,
            job_id: self.job_id,
            event_count: self.event_count,
            unit_count: self.unit_count,
            first_event_at: self.first_event_at,
            last_event_at: self.last_event_at,
            size_bytes: self.size_bytes,
            sha256: self.sha256,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The events were stored; the report now holds this many.
    Stored(i64),
    /// Nothing was stored; the report as it is decides why (offset, status, size).
    Refused,
}

/// A report deleted by the retention sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The report.
    pub id: Uuid,
    /// Its owner.
    pub owner_id: String,
    /// Its file's blob, if it had one.
    pub sha256: Option<String>,
}

/// The `reports.report.finished` event of the owner's report `id`, stored in `format` (its
/// stored name, `HTML` or `PDF`): ready, or failed for `failure_reason`.
fn finished_event(
    id: Uuid,
    owner_id: &str,
    format: &str,
    failure_reason: Option<&str>,
    now: DateTime<Utc>,
) -> NewEvent {
    let finished = pb::ReportFinished {
        ready: failure_reason.is_none(),
        format: format.to_ascii_lowercase(),
        failure_reason: failure_reason.unwrap_or_default().to_owned(),
    };
    NewEvent::new(owner_id, id, finished).at(now)
}

/// Reports in a database.
#[derive(Debug, Clone)]
pub struct ReportStore {
    db: Db,
}

impl ReportStore {
    /// Creates a store on a migrated database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Inserts a report with its first events, in one transaction.
    pub async fn insert(&self, report: &Report, events: &[Event]) -> ServiceResult<()> {
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let insert = sqlx::query(
                "INSERT INTO reports (id, owner_id, student_id, namespace, format, status, \
                 job_id, event_count, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            )
            .bind(report.id)
            .bind(&report.owner_id)
            .bind(&report.student_id)
            .bind(&report.namespace)
            .bind(report.format.as_str())
            .bind(report.status.as_str())
            .bind(report.job_id)
            .bind(events.len() as i64)
            .bind(report.created_at);
            traced!(&self.db, INSERT "reports", insert.execute(&mut *tx)).await?;
            for (number, page) in events.chunks(EVENTS_PER_PAGE).enumerate() {
                let insert = sqlx::query(
                    "INSERT INTO report_event_pages (report_id, start_index, event_count, events) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(report.id)
                .bind((number * EVENTS_PER_PAGE) as i64)
                .bind(page.len() as i64)
                .bind(encode_events(page));
                traced!(&self.db, INSERT "report_event_pages", insert.execute(&mut *tx)).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    /// Returns the owner's report.
    pub async fn get(&self, owner_id: &str, id: Uuid) -> ServiceResult<Option<Report>> {
        let row: Option<ReportRow> = with_db!(&self.db, SELECT "reports", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(COLUMNS)
                .push(" FROM reports WHERE id = ")
                .push_bind(id)
                .push(" AND owner_id = ")
                .push_bind(owner_id);
            sql.build_query_as().fetch_optional(pool).await
        })?;
        row.map(ReportRow::into_report).transpose()
    }

    /// Lists an owner's reports, newest first, one page at a time.
    pub async fn list(&self, owner_id: &str, query: &ListQuery) -> ServiceResult<ReportPage> {
        let limit = i64::from(query.page_size) + 1;
        let mut rows: Vec<ReportRow> = with_db!(&self.db, SELECT "reports", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(COLUMNS)
                .push(" FROM reports WHERE owner_id = ")
                .push_bind(owner_id);
            if let Some(after) = query.after {
                sql.push(" AND id < ").push_bind(after);
            }
            if let Some(status) = query.status {
                sql.push(" AND status = ").push_bind(status.as_str());
            }
            sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
            sql.build_query_as().fetch_all(pool).await
        })?;
        let next_after = aimesh_kit::paging::take_page(&mut rows, query.page_size, |row| row.id);
        let reports = rows
            .into_iter()
            .map(ReportRow::into_report)
            .collect::<ServiceResult<_>>()?;
        Ok(ReportPage {
            reports,
            next_after,
        })
    }

    /// Adds events to the owner's DRAFT report at exactly `offset`, its current count, keeping
    /// it at most `max_events`; one transaction, so two racing appends cannot both land.
    pub async fn append(
        &self,
        owner_id: &str,
        id: Uuid,
        offset: i64,
        events: &[Event],
        max_events: i64,
        now: DateTime<Utc>,
    ) -> ServiceResult<Appended> {
        let added = events.len() as i64;
        let stored = with_db!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let update = sqlx::query_as::<_, (i64,)>(
                "UPDATE reports SET event_count = event_count + $1, updated_at = $2 \
                 WHERE id = $3 AND owner_id = $4 AND status = 'DRAFT' AND event_count = $5 \
                 AND event_count + $1 <= $6 RETURNING event_count",
            )
            .bind(added)
            .bind(now)
            .bind(id)
            .bind(owner_id)
            .bind(offset)
            .bind(max_events);
            let stored =
                traced!(&self.db, UPDATE "reports", update.fetch_optional(&mut *tx)).await?;
            if stored.is_some() {
                for (number, page) in events.chunks(EVENTS_PER_PAGE).enumerate() {
                    let insert = sqlx::query(
                        "INSERT INTO report_event_pages (report_id, start_index, event_count, \
                         events) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(id)
                    .bind(offset + (number * EVENTS_PER_PAGE) as i64)
                    .bind(page.len() as i64)
                    .bind(encode_events(page));
                    traced!(&self.db, INSERT "report_event_pages", insert.execute(&mut *tx))
                        .await?;
                }
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(stored)
        })?;
        Ok(match stored {
            Some((count,)) => Appended::Stored(count),
            None => Appended::Refused,
        })
    }

    /// Returns a report's events in the order they were sent.
    pub async fn events(&self, id: Uuid) -> ServiceResult<Vec<Event>> {
        let pages: Vec<(Vec<u8>,)> = with_db!(&self.db, SELECT "report_event_pages", |pool| {
            sqlx::query_as(
                "SELECT events FROM report_event_pages WHERE report_id = $1 \
                 ORDER BY start_index",
            )
            .bind(id)
            .fetch_all(pool)
            .await
        })?;
        let mut events = Vec::new();
        for (page,) in pages {
            events.extend(decode_events(&page).map_err(ReportsServiceError::Internal)?);
        }
        Ok(events)
    }

    /// Moves the owner's DRAFT report that holds events to PENDING. Returns false when it is
    /// not such a report (any more).
    pub async fn set_pending(
        &self,
        owner_id: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> ServiceResult<bool> {
        let updated = with_db!(&self.db, UPDATE "reports", |pool| {
            sqlx::query(
                "UPDATE reports SET status = 'PENDING', updated_at = $1 \
                 WHERE id = $2 AND owner_id = $3 AND status = 'DRAFT' AND event_count > 0",
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

    /// Moves a PENDING report whose job could not be submitted back to DRAFT.
    pub async fn set_draft(&self, id: Uuid, now: DateTime<Utc>) -> ServiceResult<()> {
        with_db!(&self.db, UPDATE "reports", |pool| {
            sqlx::query(
                "UPDATE reports SET status = 'DRAFT', updated_at = $1 \
                 WHERE id = $2 AND status = 'PENDING' AND job_id IS NULL",
            )
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Records a report's rendering job.
    pub async fn set_job(&self, id: Uuid, job_id: Uuid) -> ServiceResult<()> {
        with_db!(&self.db, UPDATE "reports", |pool| {
            sqlx::query("UPDATE reports SET job_id = $1 WHERE id = $2")
                .bind(job_id)
                .bind(id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }

    /// Moves a PENDING report to RUNNING — or a RUNNING one (a repeated attempt), or a FAILED
    /// one (its job retried; its events are kept until it is DONE). Returns false for a draft,
    /// a DONE report or none.
    pub async fn set_running(&self, id: Uuid, now: DateTime<Utc>) -> ServiceResult<bool> {
        let updated = with_db!(&self.db, UPDATE "reports", |pool| {
            sqlx::query(
                "UPDATE reports SET status = 'RUNNING', failure_reason = NULL, updated_at = $1 \
                 WHERE id = $2 AND status IN ('PENDING', 'RUNNING', 'FAILED')",
            )
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(updated == 1)
    }

    /// Marks a RUNNING report DONE with its file and drops its events, recording
    /// `reports.report.finished`, in one transaction. Returns false when it was not RUNNING
    /// (deleted or failed meanwhile).
    pub async fn finish(
        &self,
        id: Uuid,
        file: &RenderedFile,
        now: DateTime<Utc>,
    ) -> ServiceResult<bool> {
        let finished = with_db!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let update = sqlx::query_as::<_, (String, String)>(
                "UPDATE reports SET status = 'DONE', failure_reason = NULL, sha256 = $1, \
                 size_bytes = $2, unit_count = $3, first_event_at = $4, last_event_at = $5, \
                 updated_at = $6 WHERE id = $7 AND status = 'RUNNING' \
                 RETURNING owner_id, format",
            )
            .bind(&file.sha256)
            .bind(file.size_bytes)
            .bind(file.unit_count)
            .bind(file.first_event_at)
            .bind(file.last_event_at)
            .bind(now)
            .bind(id);
            let updated =
                traced!(&self.db, UPDATE "reports", update.fetch_optional(&mut *tx)).await?;
            if let Some((owner_id, format)) = &updated {
                let delete =
                    sqlx::query("DELETE FROM report_event_pages WHERE report_id = $1").bind(id);
                traced!(&self.db, DELETE "report_event_pages", delete.execute(&mut *tx)).await?;
                let event = finished_event(id, owner_id, format, None, now);
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(updated.is_some())
        })?;
        Ok(finished)
    }

    /// Marks a PENDING or RUNNING report FAILED with a reason, recording
    /// `reports.report.finished`; its events are kept.
    pub async fn fail(&self, id: Uuid, reason: &str, now: DateTime<Utc>) -> ServiceResult<()> {
        with_db!(&self.db, UPDATE "reports", |pool| async {
            let mut tx = pool.begin().await?;
            let failed: Option<(String, String)> = sqlx::query_as(
                "UPDATE reports SET status = 'FAILED', failure_reason = $1, updated_at = $2 \
                 WHERE id = $3 AND status IN ('PENDING', 'RUNNING') \
                 RETURNING owner_id, format",
            )
            .bind(reason)
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((owner_id, format)) = &failed {
                let event = finished_event(id, owner_id, format, Some(reason), now);
                tx.record(&event).await?;
            }
            tx.commit().await
        }.await)?;
        Ok(())
    }

    /// Deletes the owner's report and its events; returns its file's blob (`Some(None)` when
    /// it had none), or `None` when the owner has no such report.
    pub async fn delete(&self, owner_id: &str, id: Uuid) -> ServiceResult<Option<Option<String>>> {
        let deleted: Option<(Option<String>,)> = with_db!(&self.db, DELETE "reports", |pool| {
            sqlx::query_as("DELETE FROM reports WHERE id = $1 AND owner_id = $2 RETURNING sha256")
                .bind(id)
                .bind(owner_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(deleted.map(|(sha256,)| sha256))
    }

    /// Deletes every report created before `before`; returns what was deleted.
    pub async fn delete_created_before(
        &self,
        before: DateTime<Utc>,
    ) -> ServiceResult<Vec<Expired>> {
        let rows: Vec<(Uuid, String, Option<String>)> = with_db!(&self.db, DELETE "reports", |pool| {
            sqlx::query_as(
                "DELETE FROM reports WHERE created_at < $1 RETURNING id, owner_id, sha256",
            )
            .bind(before)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, owner_id, sha256)| Expired {
                id,
                owner_id,
                sha256,
            })
            .collect())
    }

    /// Counts the owner's reports whose file is this blob.
    pub async fn references(&self, owner_id: &str, sha256: &str) -> ServiceResult<i64> {
        let (count,): (i64,) = with_db!(&self.db, SELECT "reports", |pool| {
            sqlx::query_as("SELECT COUNT(*) FROM reports WHERE owner_id = $1 AND sha256 = $2")
                .bind(owner_id)
                .bind(sha256)
                .fetch_one(pool)
                .await
        })?;
        Ok(count)
    }

    /// Deletes every report of the owner (their events go with them); returns how many.
    pub async fn delete_owner(&self, owner_id: &str) -> ServiceResult<u64> {
        let deleted = with_db!(&self.db, DELETE "reports", |pool| {
            sqlx::query("DELETE FROM reports WHERE owner_id = $1")
                .bind(owner_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(deleted)
    }

    /// Bytes of the owner's report files.
    pub async fn usage(&self, owner_id: &str) -> ServiceResult<i64> {
        let (used,): (Option<i64>,) = with_db!(&self.db, SELECT "reports", |pool| {
            sqlx::query_as(
                "SELECT CAST(SUM(size_bytes) AS BIGINT) FROM reports WHERE owner_id = $1",
            )
            .bind(owner_id)
            .fetch_one(pool)
            .await
        })?;
        Ok(used.unwrap_or(0))
    }
}
