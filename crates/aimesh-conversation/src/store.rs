//! Persistence of sessions and messages, for SQLite and PostgreSQL alike: the SQL is written
//! once, in the subset both understand, and [`with_db!`] runs it on the configured pool.

use aimesh_events::{NewEvent, Outbox, pb};
use aimesh_kit::{
    db::{Db, Migrations},
    traced, with_db,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    domain::{
        Citation, DocumentContext, Intent, Message, MessagePage, Outputs, Role, Session,
        SessionPage, Stage, Status,
    },
    error::{ConversationError, ConversationResult},
};

/// The conversation service's migrations.
pub const MIGRATIONS: Migrations = aimesh_kit::migrations!("conversation");

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    owner_id: String,
    title: String,
    message_count: i64,
    created_at: DateTime<Utc>,
    activity: i64,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id: row.id,
            owner_id: row.owner_id,
            title: row.title,
            message_count: row.message_count,
            last_activity_at: DateTime::from_timestamp_micros(row.activity)
                .unwrap_or(row.created_at),
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: Uuid,
    session_id: Uuid,
    owner_id: String,
    role: String,
    content: String,
    status: String,
    stage: Option<String>,
    failure_reason: Option<String>,
    reply_to: Option<Uuid>,
    refined_prompt: String,
    intent: Option<String>,
    intent_confidence: f32,
    citations: String,
    image_id: Option<Uuid>,
    job_id: Option<Uuid>,
    model: String,
    completion_tokens: i64,
    document_context: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<MessageRow> for Message {
    type Error = ConversationError;

    fn try_from(row: MessageRow) -> Result<Self, Self::Error> {
        let corrupt = |what: &str| ConversationError::Internal(format!("stored {what} unreadable"));
        Ok(Message {
            id: row.id,
            session_id: row.session_id,
            owner_id: row.owner_id,
            role: Role::parse(&row.role).ok_or_else(|| corrupt("role"))?,
            content: row.content,
            status: Status::parse(&row.status).ok_or_else(|| corrupt("status"))?,
            stage: row.stage.as_deref().and_then(Stage::parse),
            failure_reason: row.failure_reason,
            reply_to: row.reply_to,
            refined_prompt: row.refined_prompt,
            intent: row.intent.as_deref().and_then(Intent::parse),
            intent_confidence: row.intent_confidence,
            citations: serde_json::from_str::<Vec<Citation>>(&row.citations)
                .map_err(|_| corrupt("citations"))?,
            image_id: row.image_id,
            job_id: row.job_id,
            model: row.model,
            completion_tokens: row.completion_tokens,
            document_context: row
                .document_context
                .as_deref()
                .map(serde_json::from_str::<DocumentContext>)
                .transpose()
                .map_err(|_| corrupt("document context"))?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// The `conversation.message.answered` event of a reply that ended DONE (`failure` is
/// `None`) or FAILED (at the stage, for the reason, in `failure`).
fn answered(
    owner_id: &str,
    id: Uuid,
    session_id: Uuid,
    failure: Option<(Stage, &str)>,
    outputs: &Outputs,
) -> NewEvent {
    let (failure_stage, failure_reason) = failure
        .map(|(stage, reason)| (stage.as_str().to_owned(), reason.to_owned()))
        .unwrap_or_default();
    NewEvent::new(
        owner_id,
        id,
        pb::MessageAnswered {
            session_id: session_id.to_string(),
            succeeded: failure.is_none(),
            intent: outputs
                .intent
                .map(|(intent, _)| intent.as_str().to_owned())
                .unwrap_or_default(),
            failure_stage,
            failure_reason,
            image_id: outputs
                .image_id
                .map(|image| image.to_string())
                .unwrap_or_default(),
        },
    )
}

fn messages(rows: Vec<MessageRow>) -> ConversationResult<Vec<Message>> {
    rows.into_iter().map(Message::try_from).collect()
}

fn json<T: serde::Serialize>(value: &T) -> ConversationResult<String> {
    serde_json::to_string(value)
        .map_err(|error| ConversationError::Internal(format!("failed to encode: {error}")))
}

/// Sessions and messages in a database.
#[derive(Debug, Clone)]
pub struct ConversationStore {
    db: Db,
}

impl ConversationStore {
    /// Creates a store on a migrated database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Inserts a session for `owner_id`.
    pub async fn create_session(
        &self,
        owner_id: &str,
        title: &str,
        now: DateTime<Utc>,
    ) -> ConversationResult<Session> {
        let id = Uuid::now_v7();
        with_db!(&self.db, INSERT "chat_sessions", |pool| {
            sqlx::query(
                "INSERT INTO chat_sessions (id, owner_id, title, message_count, created_at, \
                 activity) VALUES ($1, $2, $3, 0, $4, $5)",
            )
            .bind(id)
            .bind(owner_id)
            .bind(title)
            .bind(now)
            .bind(now.timestamp_micros())
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(Session {
            id,
            owner_id: owner_id.to_owned(),
            title: title.to_owned(),
            message_count: 0,
            created_at: now,
            last_activity_at: now,
        })
    }

    /// Returns `owner_id`'s session.
    pub async fn session(&self, owner_id: &str, id: Uuid) -> ConversationResult<Option<Session>> {
        let row: Option<SessionRow> = with_db!(&self.db, SELECT "chat_sessions", |pool| {
            sqlx::query_as("SELECT id, owner_id, title, message_count, created_at, activity FROM chat_sessions WHERE id = $1 AND owner_id = $2")
            .bind(id)
            .bind(owner_id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(Into::into))
    }

    /// Lists `owner_id`'s sessions, the most recently active first, one page at a time.
    pub async fn list_sessions(
        &self,
        owner_id: &str,
        page_size: u32,
        after: Option<(i64, Uuid)>,
    ) -> ConversationResult<SessionPage> {
        let limit = i64::from(page_size) + 1;
        let (activity, id) = after.unwrap_or((i64::MAX, Uuid::max()));
        let mut rows: Vec<SessionRow> = with_db!(&self.db, SELECT "chat_sessions", |pool| {
            sqlx::query_as("SELECT id, owner_id, title, message_count, created_at, activity FROM chat_sessions WHERE owner_id = $1 \
                 AND (activity < $2 OR (activity = $2 AND id < $3)) \
                 ORDER BY activity DESC, id DESC LIMIT $4")
            .bind(owner_id)
            .bind(activity)
            .bind(id)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        let next_after =
            aimesh_kit::paging::take_page(&mut rows, page_size, |row| (row.activity, row.id));
        Ok(SessionPage {
            sessions: rows.into_iter().map(Into::into).collect(),
            next_after,
        })
    }

    /// Renames `owner_id`'s session (an empty `only_if_untitled` title rule aside: with
    /// `only_if_untitled`, a session that has a title keeps it).
    pub async fn rename_session(
        &self,
        owner_id: &str,
        id: Uuid,
        title: &str,
        only_if_untitled: bool,
        now: DateTime<Utc>,
    ) -> ConversationResult<Option<Session>> {
        let row: Option<SessionRow> = with_db!(&self.db, UPDATE "chat_sessions", |pool| {
            sqlx::query_as("UPDATE chat_sessions SET title = $1, activity = $2 \
                 WHERE id = $3 AND owner_id = $4 AND ($5 = 0 OR title = '') \
                 RETURNING id, owner_id, title, message_count, created_at, activity")
            .bind(title)
            .bind(now.timestamp_micros())
            .bind(id)
            .bind(owner_id)
            .bind(i64::from(only_if_untitled))
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(Into::into))
    }

    /// Deletes `owner_id`'s session with its messages; returns whether it existed.
    pub async fn delete_session(&self, owner_id: &str, id: Uuid) -> ConversationResult<bool> {
        let deleted = with_db!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let messages =
                sqlx::query("DELETE FROM chat_messages WHERE session_id = $1 AND owner_id = $2")
                    .bind(id)
                    .bind(owner_id);
            traced!(&self.db, DELETE "chat_messages", messages.execute(&mut *tx)).await?;
            let session = sqlx::query("DELETE FROM chat_sessions WHERE id = $1 AND owner_id = $2")
                .bind(id)
                .bind(owner_id);
            let deleted = traced!(&self.db, DELETE "chat_sessions", session.execute(&mut *tx))
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(deleted)
        })?;
        Ok(deleted > 0)
    }

    /// Deletes every session and message of `owner_id`; returns how many sessions went.
    pub async fn delete_owner(&self, owner_id: &str) -> ConversationResult<u64> {
        with_db!(&self.db, DELETE "chat_messages", |pool| {
            sqlx::query("DELETE FROM chat_messages WHERE owner_id = $1")
                .bind(owner_id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        let deleted = with_db!(&self.db, DELETE "chat_sessions", |pool| {
            sqlx::query("DELETE FROM chat_sessions WHERE owner_id = $1")
                .bind(owner_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(deleted)
    }

    /// Inserts messages into `session` (in order) and records the activity.
    pub async fn insert_messages(
        &self,
        session: &Session,
        new: &[&Message],
        now: DateTime<Utc>,
    ) -> ConversationResult<()> {
        let mut encoded = Vec::with_capacity(new.len());
        for message in new {
            encoded.push((
                json(&message.citations)?,
                message.document_context.as_ref().map(json).transpose()?,
            ));
        }
        with_db!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            for (message, (citations, context)) in new.iter().zip(&encoded) {
                let insert = sqlx::query("INSERT INTO chat_messages (id, session_id, owner_id, role, content, status, stage, \
                 failure_reason, reply_to, refined_prompt, intent, intent_confidence, citations, \
                 image_id, job_id, model, completion_tokens, document_context, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, \
                     $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)")
                .bind(message.id)
                .bind(message.session_id)
                .bind(&message.owner_id)
                .bind(message.role.as_str())
                .bind(&message.content)
                .bind(message.status.as_str())
                .bind(message.stage.map(Stage::as_str))
                .bind(message.failure_reason.as_deref())
                .bind(message.reply_to)
                .bind(&message.refined_prompt)
                .bind(message.intent.map(Intent::as_str))
                .bind(message.intent_confidence)
                .bind(citations)
                .bind(message.image_id)
                .bind(message.job_id)
                .bind(&message.model)
                .bind(message.completion_tokens)
                .bind(context.as_deref())
                .bind(message.created_at)
                .bind(message.updated_at);
                traced!(&self.db, INSERT "chat_messages", insert.execute(&mut *tx)).await?;
            }
            let touch = sqlx::query(
                "UPDATE chat_sessions SET message_count = message_count + $1, activity = $2 \
                 WHERE id = $3",
            )
            .bind(new.len() as i64)
            .bind(now.timestamp_micros())
            .bind(session.id);
            traced!(&self.db, UPDATE "chat_sessions", touch.execute(&mut *tx)).await?;
            tx.commit().await
        })?;
        Ok(())
    }

    /// Returns a message by id, whoever owns it (callers check ownership).
    pub async fn message(&self, id: Uuid) -> ConversationResult<Option<Message>> {
        let row: Option<MessageRow> = with_db!(&self.db, SELECT "chat_messages", |pool| {
            sqlx::query_as("SELECT id, session_id, owner_id, role, content, status, stage, \
                 failure_reason, reply_to, refined_prompt, intent, intent_confidence, citations, \
                 image_id, job_id, model, completion_tokens, document_context, created_at, \
                 updated_at FROM chat_messages WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        row.map(Message::try_from).transpose()
    }

    /// Lists a session's messages, oldest first, one page at a time.
    pub async fn list_messages(
        &self,
        session_id: Uuid,
        page_size: u32,
        after: Option<Uuid>,
    ) -> ConversationResult<MessagePage> {
        let limit = i64::from(page_size) + 1;
        let mut rows: Vec<MessageRow> = with_db!(&self.db, SELECT "chat_messages", |pool| {
            sqlx::query_as("SELECT id, session_id, owner_id, role, content, status, stage, \
                 failure_reason, reply_to, refined_prompt, intent, intent_confidence, citations, \
                 image_id, job_id, model, completion_tokens, document_context, created_at, \
                 updated_at FROM chat_messages WHERE session_id = $1 \
                 AND id > $2 ORDER BY id LIMIT $3")
            .bind(session_id)
            .bind(after.unwrap_or(Uuid::nil()))
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        let next_after = aimesh_kit::paging::take_page(&mut rows, page_size, |row| row.id);
        Ok(MessagePage {
            messages: messages(rows)?,
            next_after,
        })
    }

    /// The session's messages before `before`, oldest first (the history a reply reads).
    pub async fn history(
        &self,
        session_id: Uuid,
        before: Uuid,
    ) -> ConversationResult<Vec<Message>> {
        let rows: Vec<MessageRow> = with_db!(&self.db, SELECT "chat_messages", |pool| {
            sqlx::query_as("SELECT id, session_id, owner_id, role, content, status, stage, \
                 failure_reason, reply_to, refined_prompt, intent, intent_confidence, citations, \
                 image_id, job_id, model, completion_tokens, document_context, created_at, \
                 updated_at FROM chat_messages WHERE session_id = $1 \
                 AND id < $2 ORDER BY id")
            .bind(session_id)
            .bind(before)
            .fetch_all(pool)
            .await
        })?;
        messages(rows)
    }

    /// The session's last message.
    pub async fn last_message(&self, session_id: Uuid) -> ConversationResult<Option<Message>> {
        let row: Option<MessageRow> = with_db!(&self.db, SELECT "chat_messages", |pool| {
            sqlx::query_as("SELECT id, session_id, owner_id, role, content, status, stage, \
                 failure_reason, reply_to, refined_prompt, intent, intent_confidence, citations, \
                 image_id, job_id, model, completion_tokens, document_context, created_at, \
                 updated_at FROM chat_messages WHERE session_id = $1 \
                 ORDER BY id DESC LIMIT 1")
            .bind(session_id)
            .fetch_optional(pool)
            .await
        })?;
        row.map(Message::try_from).transpose()
    }

    /// Deletes the session's messages from `from` on (`from` included when `inclusive`);
    /// returns the deleted messages.
    pub async fn delete_from(
        &self,
        session_id: Uuid,
        from: Uuid,
        inclusive: bool,
    ) -> ConversationResult<Vec<Message>> {
        let rows: Vec<MessageRow> = with_db!(&self.db, DELETE "chat_messages", |pool| {
            sqlx::query_as("DELETE FROM chat_messages WHERE session_id = $1 \
                 AND (id > $2 OR ($3 = 1 AND id = $2)) RETURNING id, session_id, owner_id, role, content, status, stage, \
                 failure_reason, reply_to, refined_prompt, intent, intent_confidence, citations, \
                 image_id, job_id, model, completion_tokens, document_context, created_at, \
                 updated_at")
            .bind(session_id)
            .bind(from)
            .bind(i64::from(inclusive))
            .fetch_all(pool)
            .await
        })?;
        let deleted = messages(rows)?;
        if !deleted.is_empty() {
            with_db!(&self.db, UPDATE "chat_sessions", |pool| {
                sqlx::query(
                    "UPDATE chat_sessions SET message_count = message_count - $1 WHERE id = $2",
                )
                .bind(deleted.len() as i64)
                .bind(session_id)
                .execute(pool)
                .await
                .map(drop)
            })?;
        }
        Ok(deleted)
    }

    /// Replaces a message's text.
    pub async fn set_content(
        &self,
        id: Uuid,
        content: &str,
        now: DateTime<Utc>,
    ) -> ConversationResult<()> {
        with_db!(&self.db, UPDATE "chat_messages", |pool| {
            sqlx::query("UPDATE chat_messages SET content = $1, updated_at = $2 WHERE id = $3")
                .bind(content)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }

    /// Records the job producing a message.
    pub async fn set_job(&self, id: Uuid, job_id: Uuid) -> ConversationResult<()> {
        with_db!(&self.db, UPDATE "chat_messages", |pool| {
            sqlx::query("UPDATE chat_messages SET job_id = $1 WHERE id = $2")
                .bind(job_id)
                .bind(id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }

    /// Records a processing message's stage and the outputs known so far; returns whether
    /// the message is still processing.
    pub async fn progress(
        &self,
        id: Uuid,
        stage: Stage,
        refined_prompt: &str,
        intent: Option<(Intent, f32)>,
        now: DateTime<Utc>,
    ) -> ConversationResult<bool> {
        let updated = with_db!(&self.db, UPDATE "chat_messages", |pool| {
            sqlx::query(
                "UPDATE chat_messages SET stage = $1, refined_prompt = $2, intent = $3, \
                 intent_confidence = $4, updated_at = $5 WHERE id = $6 AND status = 'processing'",
            )
            .bind(stage.as_str())
            .bind(refined_prompt)
            .bind(intent.map(|(intent, _)| intent.as_str()))
            .bind(intent.map_or(0.0, |(_, confidence)| confidence))
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(updated > 0)
    }

    /// Ends a processing message with its outputs; returns whether it was still processing
    /// (a message cancelled or deleted meanwhile is left as it is). Ending it DONE or FAILED
    /// records `conversation.message.answered` in the same transaction.
    pub async fn finish(
        &self,
        id: Uuid,
        status: Status,
        stage: Stage,
        failure_reason: Option<&str>,
        outputs: &Outputs,
        now: DateTime<Utc>,
    ) -> ConversationResult<bool> {
        let citations = json(&outputs.citations)?;
        let updated = with_db!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let update = sqlx::query_as(
                "UPDATE chat_messages SET status = $1, stage = $2, failure_reason = $3, \
                 content = $4, refined_prompt = $5, intent = $6, intent_confidence = $7, \
                 citations = $8, image_id = $9, model = $10, completion_tokens = $11, \
                 updated_at = $12 WHERE id = $13 AND status = 'processing' \
                 RETURNING session_id, owner_id",
            )
            .bind(status.as_str())
            .bind(stage.as_str())
            .bind(failure_reason)
            .bind(&outputs.content)
            .bind(&outputs.refined_prompt)
            .bind(outputs.intent.map(|(intent, _)| intent.as_str()))
            .bind(outputs.intent.map_or(0.0, |(_, confidence)| confidence))
            .bind(citations)
            .bind(outputs.image_id)
            .bind(&outputs.model)
            .bind(outputs.completion_tokens)
            .bind(now)
            .bind(id);
            let row: Option<(Uuid, String)> =
                traced!(&self.db, UPDATE "chat_messages", update.fetch_optional(&mut *tx)).await?;
            if let Some((session_id, owner_id)) = &row
                && matches!(status, Status::Done | Status::Failed)
            {
                let failure = (status == Status::Failed)
                    .then_some((stage, failure_reason.unwrap_or_default()));
                let event = answered(owner_id, id, *session_id, failure, outputs).at(now);
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row.is_some())
        })?;
        Ok(updated)
    }

    /// Marks a processing message cancelled, keeping what it holds; returns whether it was
    /// processing.
    pub async fn cancel(&self, id: Uuid, now: DateTime<Utc>) -> ConversationResult<bool> {
        let updated = with_db!(&self.db, UPDATE "chat_messages", |pool| {
            sqlx::query(
                "UPDATE chat_messages SET status = 'cancelled', failure_reason = $1, \
                 updated_at = $2 WHERE id = $3 AND status = 'processing'",
            )
            .bind("cancelled by its owner")
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(updated > 0)
    }

    /// Counts `owner_id`'s replies in progress.
    pub async fn processing_count(&self, owner_id: &str) -> ConversationResult<i64> {
        let (count,): (i64,) = with_db!(&self.db, SELECT "chat_messages", |pool| {
            sqlx::query_as(
                "SELECT COUNT(*) FROM chat_messages WHERE owner_id = $1 AND status = 'processing'",
            )
            .bind(owner_id)
            .fetch_one(pool)
            .await
        })?;
        Ok(count)
    }
}
