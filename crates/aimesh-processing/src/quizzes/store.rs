//! Persistence of quizzes and their submissions, for SQLite and PostgreSQL alike. Questions
//! and per-question results are JSON.

use aimesh_ai::analysis::study::QuizQuestion;
use aimesh_events::{NewEvent, Outbox, pb};
use aimesh_kit::{db::Db, with_db};
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::domain::{
    Difficulty, Graded, History, HistoryQuery, Quiz, QuizKind, QuizStats, QuizStatus, Submission,
};
use crate::error::{ProcessingError, ProcessingResult};

const QUIZ_COLUMNS: &str = "q.id, q.owner_id, q.document_id, q.num_questions, q.difficulty, \
     q.quiz_type, q.status, q.failure_reason, q.job_id, q.engine, q.questions, q.created_at, \
     q.updated_at, (SELECT COUNT(*) FROM quiz_submissions s WHERE s.quiz_id = q.id) AS submissions";

#[derive(sqlx::FromRow)]
struct QuizRow {
    id: Uuid,
    owner_id: String,
    document_id: Uuid,
    num_questions: i32,
    difficulty: String,
    quiz_type: String,
    status: String,
    failure_reason: Option<String>,
    job_id: Option<Uuid>,
    engine: Option<String>,
    questions: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    submissions: i64,
}

fn corrupt(what: &str, value: &str) -> ProcessingError {
    ProcessingError::Internal(format!("unreadable stored {what} {value:?}"))
}

impl QuizRow {
    fn into_quiz(self) -> ProcessingResult<Quiz> {
        let questions: Vec<QuizQuestion> = match self.questions.as_deref() {
            Some(json) => {
                serde_json::from_str(json).map_err(|e| corrupt("questions", &e.to_string()))?
            }
            None => Vec::new(),
        };
        Ok(Quiz {
            id: self.id,
            owner_id: self.owner_id,
            document_id: self.document_id,
            num_questions: self.num_questions.max(0) as u32,
            difficulty: Difficulty::parse(&self.difficulty)
                .ok_or_else(|| corrupt("difficulty", &self.difficulty))?,
            kind: QuizKind::parse(&self.quiz_type)
                .ok_or_else(|| corrupt("quiz type", &self.quiz_type))?,
            status: QuizStatus::parse(&self.status)
                .ok_or_else(|| corrupt("status", &self.status))?,
            failure_reason: self.failure_reason,
            job_id: self.job_id,
            engine: self.engine,
            questions,
            submissions: self.submissions,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SubmissionRow {
    id: Uuid,
    quiz_id: Uuid,
    owner_id: String,
    document_id: Uuid,
    correct_count: i32,
    total_questions: i32,
    score: f64,
    results: String,
    submitted_at: DateTime<Utc>,
}

impl SubmissionRow {
    fn into_submission(self, with_results: bool) -> ProcessingResult<Submission> {
        let results: Vec<Graded> = if with_results {
            serde_json::from_str(&self.results).map_err(|e| corrupt("results", &e.to_string()))?
        } else {
            Vec::new()
        };
        Ok(Submission {
            id: self.id,
            quiz_id: self.quiz_id,
            owner_id: self.owner_id,
            document_id: self.document_id,
            correct_count: self.correct_count,
            total_questions: self.total_questions,
            score: self.score,
            results,
            submitted_at: self.submitted_at,
        })
    }
}

fn json<T: serde::Serialize>(value: &T) -> ProcessingResult<String> {
    serde_json::to_string(value)
        .map_err(|e| ProcessingError::Internal(format!("failed to encode JSON: {e}")))
}

/// Quizzes in a database.
#[derive(Debug, Clone)]
pub struct QuizStore {
    db: Db,
}

impl QuizStore {
    /// Creates a store on a migrated database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Inserts a quiz.
    pub async fn insert(&self, quiz: &Quiz) -> ProcessingResult<()> {
        with_db!(&self.db, INSERT "quizzes", |pool| {
            sqlx::query(
                "INSERT INTO quizzes (id, owner_id, document_id, num_questions, difficulty, \
                 quiz_type, status, job_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            )
            .bind(quiz.id)
            .bind(&quiz.owner_id)
            .bind(quiz.document_id)
            .bind(quiz.num_questions as i32)
            .bind(quiz.difficulty.as_str())
            .bind(quiz.kind.as_str())
            .bind(quiz.status.as_str())
            .bind(quiz.job_id)
            .bind(quiz.created_at)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Records the job of a quiz (its status is left alone).
    pub async fn set_job(&self, id: Uuid, job_id: Uuid) -> ProcessingResult<()> {
        with_db!(&self.db, UPDATE "quizzes", |pool| {
            sqlx::query("UPDATE quizzes SET job_id = $1 WHERE id = $2")
                .bind(job_id)
                .bind(id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }

    /// Deletes a quiz (whose job could not be submitted).
    pub async fn delete(&self, id: Uuid) -> ProcessingResult<()> {
        with_db!(&self.db, DELETE "quizzes", |pool| {
            sqlx::query("DELETE FROM quizzes WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }

    /// Returns every quiz of an owner, newest first (an account's export).
    pub async fn list_owner(&self, owner_id: &str) -> ProcessingResult<Vec<Quiz>> {
        let rows: Vec<QuizRow> = with_db!(&self.db, SELECT "quizzes", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(QUIZ_COLUMNS)
                .push(" FROM quizzes q WHERE q.owner_id = ")
                .push_bind(owner_id)
                .push(" ORDER BY q.id DESC");
            sql.build_query_as().fetch_all(pool).await
        })?;
        rows.into_iter().map(QuizRow::into_quiz).collect()
    }

    /// Deletes every quiz and submission of an owner; returns how many went.
    pub async fn delete_owner(&self, owner_id: &str) -> ProcessingResult<u64> {
        let submissions = with_db!(&self.db, DELETE "quiz_submissions", |pool| {
            sqlx::query("DELETE FROM quiz_submissions WHERE owner_id = $1")
                .bind(owner_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        let quizzes = with_db!(&self.db, DELETE "quizzes", |pool| {
            sqlx::query("DELETE FROM quizzes WHERE owner_id = $1")
                .bind(owner_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(submissions + quizzes)
    }

    /// Returns a quiz, whoever owns it (callers check ownership).
    pub async fn get(&self, id: Uuid) -> ProcessingResult<Option<Quiz>> {
        let row: Option<QuizRow> = with_db!(&self.db, SELECT "quizzes", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(QUIZ_COLUMNS)
                .push(" FROM quizzes q WHERE q.id = ")
                .push_bind(id);
            sql.build_query_as().fetch_optional(pool).await
        })?;
        row.map(QuizRow::into_quiz).transpose()
    }

    /// Stores the questions of a PENDING quiz and marks it READY; returns whether it did.
    pub async fn ready(
        &self,
        id: Uuid,
        engine: &str,
        questions: &[QuizQuestion],
        now: DateTime<Utc>,
    ) -> ProcessingResult<bool> {
        let questions = json(&questions)?;
        let updated = with_db!(&self.db, UPDATE "quizzes", |pool| {
            sqlx::query(
                "UPDATE quizzes SET status = 'READY', failure_reason = NULL, engine = $1, \
                 questions = $2, updated_at = $3 WHERE id = $4 AND status = 'PENDING'",
            )
            .bind(engine)
            .bind(&questions)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(updated == 1)
    }

    /// Marks a PENDING quiz FAILED; returns whether it did.
    pub async fn fail(&self, id: Uuid, reason: &str, now: DateTime<Utc>) -> ProcessingResult<bool> {
        let updated = with_db!(&self.db, UPDATE "quizzes", |pool| {
            sqlx::query(
                "UPDATE quizzes SET status = 'FAILED', failure_reason = $1, updated_at = $2 \
                 WHERE id = $3 AND status = 'PENDING'",
            )
            .bind(reason)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(updated == 1)
    }

    /// Stores a graded submission, recording `processing.quiz.submitted` (about the quiz) in
    /// the same transaction.
    pub async fn insert_submission(&self, submission: &Submission) -> ProcessingResult<()> {
        let results = json(&submission.results)?;
        let event = NewEvent::new(
            &submission.owner_id,
            submission.quiz_id,
            pb::QuizSubmitted {
                submission_id: submission.id.to_string(),
                score: submission.correct_count,
                max_score: submission.total_questions,
            },
        )
        .at(submission.submitted_at);
        with_db!(&self.db, INSERT "quiz_submissions", |pool| async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO quiz_submissions (id, quiz_id, owner_id, document_id, \
                 correct_count, total_questions, score, results, submitted_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(submission.id)
            .bind(submission.quiz_id)
            .bind(&submission.owner_id)
            .bind(submission.document_id)
            .bind(submission.correct_count)
            .bind(submission.total_questions)
            .bind(submission.score)
            .bind(&results)
            .bind(submission.submitted_at)
            .execute(&mut *tx)
            .await?;
            tx.record(&event).await?;
            tx.commit().await
        }
        .await)?;
        Ok(())
    }

    /// Lists an owner's submissions, newest first, with statistics over all that match.
    pub async fn history(&self, owner_id: &str, query: &HistoryQuery) -> ProcessingResult<History> {
        let limit = i64::from(query.page_size) + 1;
        let mut rows: Vec<SubmissionRow> = with_db!(&self.db, SELECT "quiz_submissions", |pool| {
            let mut sql = QueryBuilder::new(
                "SELECT id, quiz_id, owner_id, document_id, correct_count, total_questions, \
                 score, results, submitted_at FROM quiz_submissions WHERE owner_id = ",
            );
            sql.push_bind(owner_id);
            if let Some(after) = query.after {
                sql.push(" AND id < ").push_bind(after);
            }
            if let Some(document) = query.document_id {
                sql.push(" AND document_id = ").push_bind(document);
            }
            sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
            sql.build_query_as().fetch_all(pool).await
        })?;
        let next_after = aimesh_kit::paging::take_page(&mut rows, query.page_size, |row| row.id);
        let (submissions, quizzes, average, best, worst): (
            i64,
            i64,
            Option<f64>,
            Option<f64>,
            Option<f64>,
        ) = with_db!(&self.db, SELECT "quiz_submissions", |pool| {
            let mut sql = QueryBuilder::new(
                "SELECT COUNT(*), COUNT(DISTINCT quiz_id), CAST(AVG(score) AS DOUBLE PRECISION), \
                 CAST(MAX(score) AS DOUBLE PRECISION), CAST(MIN(score) AS DOUBLE PRECISION) \
                 FROM quiz_submissions WHERE owner_id = ",
            );
            sql.push_bind(owner_id);
            if let Some(document) = query.document_id {
                sql.push(" AND document_id = ").push_bind(document);
            }
            sql.build_query_as().fetch_one(pool).await
        })?;
        let last: Option<(f64,)> = with_db!(&self.db, SELECT "quiz_submissions", |pool| {
            let mut sql =
                QueryBuilder::new("SELECT score FROM quiz_submissions WHERE owner_id = ");
            sql.push_bind(owner_id);
            if let Some(document) = query.document_id {
                sql.push(" AND document_id = ").push_bind(document);
            }
            sql.push(" ORDER BY id DESC LIMIT 1");
            sql.build_query_as().fetch_optional(pool).await
        })?;
        Ok(History {
            submissions: rows
                .into_iter()
                .map(|row| row.into_submission(false))
                .collect::<ProcessingResult<_>>()?,
            next_after,
            stats: QuizStats {
                submissions,
                quizzes,
                average: average.unwrap_or(0.0),
                best: best.unwrap_or(0.0),
                worst: worst.unwrap_or(0.0),
                last: last.map(|(score,)| score).unwrap_or(0.0),
            },
        })
    }
}
