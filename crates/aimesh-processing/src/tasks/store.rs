//! Persistence of tasks, for SQLite and PostgreSQL alike. Results and translation options are
//! JSON; status changes are conditional, so a late or repeated attempt cannot overwrite a
//! task that already ended.

use aimesh_events::{NewEvent, Outbox, pb};
use aimesh_kit::{db::Db, with_db};
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::domain::{
    SourceKind, Task, TaskPage, TaskQuery, TaskResult, TaskSource, TaskStatus, TaskType,
    TranslateSpec,
};
use crate::error::{ProcessingError, ProcessingResult};

const COLUMNS: &str = "id, owner_id, source_kind, source_id, task_type, status, failure_reason, \
     job_id, options, result, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: Uuid,
    owner_id: String,
    source_kind: String,
    source_id: Uuid,
    task_type: String,
    status: String,
    failure_reason: Option<String>,
    job_id: Option<Uuid>,
    options: Option<String>,
    result: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn corrupt(what: &str, value: &str) -> ProcessingError {
    ProcessingError::Internal(format!("unreadable stored {what} {value:?}"))
}

impl TaskRow {
    fn into_task(self) -> ProcessingResult<Task> {
        let kind = SourceKind::parse(&self.source_kind)
            .ok_or_else(|| corrupt("source", &self.source_kind))?;
        let task_type =
            TaskType::parse(&self.task_type).ok_or_else(|| corrupt("type", &self.task_type))?;
        let status =
            TaskStatus::parse(&self.status).ok_or_else(|| corrupt("status", &self.status))?;
        let translate = self
            .options
            .as_deref()
            .map(serde_json::from_str::<TranslateSpec>)
            .transpose()
            .map_err(|e| corrupt("options", &e.to_string()))?;
        let result = self
            .result
            .as_deref()
            .map(serde_json::from_str::<TaskResult>)
            .transpose()
            .map_err(|e| corrupt("result", &e.to_string()))?;
        Ok(Task {
            id: self.id,
            owner_id: self.owner_id,
            source: TaskSource {
                kind,
                id: self.source_id,
            },
            task_type,
            status,
            failure_reason: self.failure_reason,
            job_id: self.job_id,
            translate,
            result,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn json<T: serde::Serialize>(value: &T) -> ProcessingResult<String> {
    serde_json::to_string(value)
        .map_err(|e| ProcessingError::Internal(format!("failed to encode JSON: {e}")))
}

/// Tasks in a database.
#[derive(Debug, Clone)]
pub struct TaskStore {
    db: Db,
}

impl TaskStore {
    /// Creates a store on a migrated database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Inserts a task.
    pub async fn insert(&self, task: &Task) -> ProcessingResult<()> {
        let options = task.translate.as_ref().map(json).transpose()?;
        with_db!(&self.db, INSERT "tasks", |pool| {
            sqlx::query(
                "INSERT INTO tasks (id, owner_id, source_kind, source_id, task_type, status, \
                 job_id, options, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            )
            .bind(task.id)
            .bind(&task.owner_id)
            .bind(task.source.kind.as_str())
            .bind(task.source.id)
            .bind(task.task_type.as_str())
            .bind(task.status.as_str())
            .bind(task.job_id)
            .bind(&options)
            .bind(task.created_at)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Records the job of a task (its status is left alone: a worker may already run it).
    pub async fn set_job(&self, id: Uuid, job_id: Uuid) -> ProcessingResult<()> {
        with_db!(&self.db, UPDATE "tasks", |pool| {
            sqlx::query("UPDATE tasks SET job_id = $1 WHERE id = $2")
                .bind(job_id)
                .bind(id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }

    /// Deletes a task (whose job could not be submitted).
    pub async fn delete(&self, id: Uuid) -> ProcessingResult<()> {
        with_db!(&self.db, DELETE "tasks", |pool| {
            sqlx::query("DELETE FROM tasks WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }

    /// Returns a task, whoever owns it (callers check ownership).
    pub async fn get(&self, id: Uuid) -> ProcessingResult<Option<Task>> {
        let row: Option<TaskRow> = with_db!(&self.db, SELECT "tasks", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(COLUMNS).push(" FROM tasks WHERE id = ").push_bind(id);
            sql.build_query_as().fetch_optional(pool).await
        })?;
        row.map(TaskRow::into_task).transpose()
    }

    /// Deletes every task of an owner; returns how many went.
    pub async fn delete_owner(&self, owner_id: &str) -> ProcessingResult<u64> {
        let deleted = with_db!(&self.db, DELETE "tasks", |pool| {
            sqlx::query("DELETE FROM tasks WHERE owner_id = $1")
                .bind(owner_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(deleted)
    }

    /// Lists an owner's tasks, newest first, one page at a time.
    pub async fn list(&self, owner_id: &str, query: &TaskQuery) -> ProcessingResult<TaskPage> {
        let limit = i64::from(query.page_size) + 1;
        let mut rows: Vec<TaskRow> = with_db!(&self.db, SELECT "tasks", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(COLUMNS)
                .push(" FROM tasks WHERE owner_id = ")
                .push_bind(owner_id);
            if let Some(after) = query.after {
                sql.push(" AND id < ").push_bind(after);
            }
            if let Some(document) = query.document_id {
                sql.push(" AND source_kind = 'DOCUMENT' AND source_id = ")
                    .push_bind(document);
            }
            if let Some(task_type) = query.task_type {
                sql.push(" AND task_type = ").push_bind(task_type.as_str());
            }
            if let Some(status) = query.status {
                sql.push(" AND status = ").push_bind(status.as_str());
            }
            sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
            sql.build_query_as().fetch_all(pool).await
        })?;
        let next_after = aimesh_kit::paging::take_page(&mut rows, query.page_size, |row| row.id);
        let tasks = rows
            .into_iter()
            .map(TaskRow::into_task)
            .collect::<ProcessingResult<_>>()?;
        Ok(TaskPage { tasks, next_after })
    }

    /// Moves a task that has not ended to `status` (with a reason); returns whether it moved.
    /// Ending it (SUCCEEDED, FAILED or CANCELLED) records `processing.task.finished` in the
    /// same transaction.
    pub async fn set_status(
        &self,
        id: Uuid,
        status: TaskStatus,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> ProcessingResult<bool> {
        let ended = status.is_terminal();
        let succeeded = status == TaskStatus::Succeeded;
        let updated = with_db!(&self.db, UPDATE "tasks", |pool| async {
            let mut tx = pool.begin().await?;
            let updated: Option<(String, String)> = sqlx::query_as(
                "UPDATE tasks SET status = $1, failure_reason = $2, updated_at = $3 \
                 WHERE id = $4 AND status IN ('QUEUED', 'RUNNING') \
                 RETURNING owner_id, task_type",
            )
            .bind(status.as_str())
            .bind(reason)
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if ended && let Some((owner_id, task_type)) = &updated {
                let event = finished_event(owner_id, id, task_type, succeeded, reason, now);
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(updated.is_some())
        }
        .await)?;
        Ok(updated)
    }

    /// Stores the result of a task that has not ended and marks it SUCCEEDED, recording
    /// `processing.task.finished` in the same transaction; returns whether it did.
    pub async fn succeed(
        &self,
        id: Uuid,
        result: &TaskResult,
        now: DateTime<Utc>,
    ) -> ProcessingResult<bool> {
        let result = json(result)?;
        let updated = with_db!(&self.db, UPDATE "tasks", |pool| async {
            let mut tx = pool.begin().await?;
            let updated: Option<(String, String)> = sqlx::query_as(
                "UPDATE tasks SET status = 'SUCCEEDED', failure_reason = NULL, result = $1, \
                 updated_at = $2 WHERE id = $3 AND status IN ('QUEUED', 'RUNNING') \
                 RETURNING owner_id, task_type",
            )
            .bind(&result)
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((owner_id, task_type)) = &updated {
                let event = finished_event(owner_id, id, task_type, true, None, now);
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(updated.is_some())
        }
        .await)?;
        Ok(updated)
    }
}

/// The `processing.task.finished` event of `owner_id`'s task `id` of the stored type
/// `task_type` (`SUMMARIZE`, ...: the event names it in lower case), ended at `now`, with
/// why it failed (or was cancelled) unless it `succeeded`.
fn finished_event(
    owner_id: &str,
    id: Uuid,
    task_type: &str,
    succeeded: bool,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> NewEvent {
    NewEvent::new(
        owner_id,
        id,
        pb::TaskFinished {
            kind: task_type.to_lowercase(),
            succeeded,
            failure_reason: if succeeded {
                String::new()
            } else {
                reason.unwrap_or_default().to_owned()
            },
        },
    )
    .at(now)
}
