//! Persistence of documents, their chunks and resumable uploads, for SQLite and PostgreSQL
//! alike: the SQL is written once, in the subset both understand, and [`with_db!`] runs it on
//! whichever pool is configured.

use aimesh_ai::analysis::study::StudyNotes;
use aimesh_events::{NewEvent, Outbox, pb};
use aimesh_kit::{
    db::{Db, Migrations},
    traced, with_db,
};
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::{
    domain::{
        Document, DocumentPage, ListQuery, NewChunk, Processed, Status, StoredChunk, TopK, Upload,
        encode_vector,
    },
    error::{ProcessingError, ProcessingResult},
};

/// The processing service's migrations.
pub const MIGRATIONS: Migrations = aimesh_kit::migrations!("processing");

/// The columns of a document without its text.
const SUMMARY_COLUMNS: &str = "id, owner_id, filename, content_type, size_bytes, sha256, status, \
     failure_reason, format, page_count, chunk_count, NULL AS text, generate_notes, job_id, \
     created_at, updated_at";

#[derive(sqlx::FromRow)]
struct DocumentRow {
    id: Uuid,
    owner_id: String,
    filename: String,
    content_type: String,
    size_bytes: i64,
    sha256: String,
    status: String,
    failure_reason: Option<String>,
    format: Option<String>,
    page_count: i32,
    chunk_count: i32,
    text: Option<String>,
    generate_notes: bool,
    job_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl DocumentRow {
    fn into_document(self) -> ProcessingResult<Document> {
        let status = Status::parse(&self.status).ok_or_else(|| {
            ProcessingError::Internal(format!("unknown document status {:?}", self.status))
        })?;
        Ok(Document {
            id: self.id,
            owner_id: self.owner_id,
            filename: self.filename,
            content_type: self.content_type,
            size_bytes: self.size_bytes,
            sha256: self.sha256,
            status,
            failure_reason: self.failure_reason,
            format: self.format,
            page_count: self.page_count,
            chunk_count: self.chunk_count,
            text: self.text,
            generate_notes: self.generate_notes,
            job_id: self.job_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct UploadRow {
    id: Uuid,
    owner_id: String,
    filename: String,
    content_type: String,
    size_bytes: i64,
    received_bytes: i64,
    generate_notes: bool,
    created_at: DateTime<Utc>,
}

impl From<UploadRow> for Upload {
    fn from(row: UploadRow) -> Self {
        Upload {
            id: row.id,
            owner_id: row.owner_id,
            filename: row.filename,
            content_type: row.content_type,
            size_bytes: row.size_bytes,
            received_bytes: row.received_bytes,
            generate_notes: row.generate_notes,
            created_at: row.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ChunkRow {
    document_id: Uuid,
    seq: i32,
    filename: String,
    page: i32,
    char_start: i32,
    char_end: i32,
    text: String,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The bytes were stored; the upload now has this many.
    Stored(i64),
    /// The offset was not the stored one, which is this.
    WrongOffset(i64),
    /// No such upload for this owner.
    NotFound,
}

/// A recorded part of a resumable upload, its bytes staged in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPart {
    /// Where the part starts in the upload.
    pub offset: i64,
    /// Its size in bytes.
    pub size: i64,
    /// Its name in the upload's staging.
    pub key: String,
}

/// Documents in a database.
#[derive(Debug, Clone)]
pub struct DocumentStore {
    db: Db,
}

impl DocumentStore {
    /// Creates a store on a migrated database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Inserts a PENDING document unless the owner has one with the same SHA-256; returns
    /// whether it was inserted. An inserted document records `processing.document.uploaded`
    /// in the same transaction.
    pub async fn insert(&self, document: &Document) -> ProcessingResult<bool> {
        let event = NewEvent::new(
            &document.owner_id,
            document.id,
            pb::DocumentUploaded {
                name: document.filename.clone(),
                media_type: document.content_type.clone(),
                size_bytes: document.size_bytes,
            },
        )
        .at(document.created_at);
        let inserted = with_db!(&self.db, INSERT "documents", |pool| async {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO documents (id, owner_id, filename, content_type, size_bytes, sha256, \
                 status, page_count, chunk_count, generate_notes, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8, $9, $9) \
                 ON CONFLICT (owner_id, sha256) DO NOTHING",
            )
            .bind(document.id)
            .bind(&document.owner_id)
            .bind(&document.filename)
            .bind(&document.content_type)
            .bind(document.size_bytes)
            .bind(&document.sha256)
            .bind(document.status.as_str())
            .bind(document.generate_notes)
            .bind(document.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(inserted)
        }
        .await)?;
        Ok(inserted == 1)
    }

    /// Returns a document with its text, whoever owns it (callers check ownership).
    pub async fn get(&self, id: Uuid) -> ProcessingResult<Option<Document>> {
        let row: Option<DocumentRow> = with_db!(&self.db, SELECT "documents", |pool| {
            sqlx::query_as(
                "SELECT id, owner_id, filename, content_type, size_bytes, sha256, status, \
                 failure_reason, format, page_count, chunk_count, text, generate_notes, job_id, \
                 created_at, updated_at FROM documents WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })?;
        row.map(DocumentRow::into_document).transpose()
    }

    /// Returns the owner's document with this SHA-256, without its text.
    pub async fn find_by_sha256(
        &self,
        owner_id: &str,
        sha256: &str,
    ) -> ProcessingResult<Option<Document>> {
        let row: Option<DocumentRow> = with_db!(&self.db, SELECT "documents", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(SUMMARY_COLUMNS)
                .push(" FROM documents WHERE owner_id = ")
                .push_bind(owner_id)
                .push(" AND sha256 = ")
                .push_bind(sha256);
            sql.build_query_as().fetch_optional(pool).await
        })?;
        row.map(DocumentRow::into_document).transpose()
    }

    /// Lists an owner's documents, newest first, one page at a time, without their text.
    pub async fn list(&self, owner_id: &str, query: &ListQuery) -> ProcessingResult<DocumentPage> {
        let limit = i64::from(query.page_size) + 1;
        let mut rows: Vec<DocumentRow> = with_db!(&self.db, SELECT "documents", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(SUMMARY_COLUMNS)
                .push(" FROM documents WHERE owner_id = ")
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
        let documents = rows
            .into_iter()
            .map(DocumentRow::into_document)
            .collect::<ProcessingResult<_>>()?;
        Ok(DocumentPage {
            documents,
            next_after,
        })
    }

    /// Bytes the owner uses: their documents and the declared sizes of their uploads in
    /// progress.
    pub async fn usage(&self, owner_id: &str) -> ProcessingResult<i64> {
        let (documents,): (Option<i64>,) = with_db!(&self.db, SELECT "documents", |pool| {
            sqlx::query_as(
                "SELECT CAST(SUM(size_bytes) AS BIGINT) FROM documents WHERE owner_id = $1",
            )
            .bind(owner_id)
            .fetch_one(pool)
            .await
        })?;
        let (uploads,): (Option<i64>,) = with_db!(&self.db, SELECT "uploads", |pool| {
            sqlx::query_as("SELECT CAST(SUM(size_bytes) AS BIGINT) FROM uploads WHERE owner_id = $1")
                .bind(owner_id)
                .fetch_one(pool)
                .await
        })?;
        Ok(documents.unwrap_or(0) + uploads.unwrap_or(0))
    }

    /// Marks the owner's document PENDING, clearing the last outcome, before its job is
    /// submitted. Returns false when the owner has no such document.
    pub async fn set_pending(
        &self,
        owner_id: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> ProcessingResult<bool> {
        let updated = with_db!(&self.db, UPDATE "documents", |pool| {
            sqlx::query(
                "UPDATE documents SET status = 'PENDING', failure_reason = NULL, \
                 updated_at = $1 WHERE id = $2 AND owner_id = $3",
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

    /// Records a document's processing job; its status is left alone (the job's worker may
    /// already have moved it on).
    pub async fn set_job(&self, id: Uuid, job_id: Uuid) -> ProcessingResult<()> {
        with_db!(&self.db, UPDATE "documents", |pool| {
            sqlx::query("UPDATE documents SET job_id = $1 WHERE id = $2")
                .bind(job_id)
                .bind(id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }

    /// Returns a document's study notes, if it has any.
    pub async fn notes(&self, id: Uuid) -> ProcessingResult<Option<StudyNotes>> {
        let row: Option<(String,)> = with_db!(&self.db, SELECT "document_notes", |pool| {
            sqlx::query_as("SELECT notes FROM document_notes WHERE document_id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        row.map(|(json,)| {
            serde_json::from_str(&json).map_err(|error| {
                ProcessingError::Internal(format!("unreadable stored notes: {error}"))
            })
        })
        .transpose()
    }

    /// Sets a document's status (and failure reason). Ending its processing (READY or
    /// FAILED) records `processing.document.processed` in the same transaction.
    pub async fn set_status(
        &self,
        id: Uuid,
        status: Status,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> ProcessingResult<()> {
        let ended = matches!(status, Status::Ready | Status::Failed);
        with_db!(&self.db, UPDATE "documents", |pool| async {
            let mut tx = pool.begin().await?;
            let updated: Option<(String, i32)> = sqlx::query_as(
                "UPDATE documents SET status = $1, failure_reason = $2, updated_at = $3 \
                 WHERE id = $4 RETURNING owner_id, page_count",
            )
            .bind(status.as_str())
            .bind(reason)
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if ended && let Some((owner_id, page_count)) = &updated {
                let event = processed_event(owner_id, id, status, *page_count, reason, now);
                tx.record(&event).await?;
            }
            tx.commit().await
        }
        .await)?;
        Ok(())
    }

    /// Replaces a document's chunks and study notes and marks it READY with what processing
    /// found, in one transaction (a repeated attempt leaves exactly one set of chunks and of
    /// notes; no notes removes earlier ones) that also records
    /// `processing.document.processed`. Returns false when the document no longer exists.
    pub async fn store_processed(
        &self,
        id: Uuid,
        processed: &Processed,
        chunks: &[NewChunk],
        notes: Option<&StudyNotes>,
        now: DateTime<Utc>,
    ) -> ProcessingResult<bool> {
        let notes = notes
            .map(serde_json::to_string)
            .transpose()
            .map_err(|error| {
                ProcessingError::Internal(format!("failed to encode notes: {error}"))
            })?;
        let updated = with_db!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let update = sqlx::query_as::<_, (String,)>(
                "UPDATE documents SET status = 'READY', failure_reason = NULL, format = $1, \
                 content_type = CASE WHEN content_type = '' THEN $2 ELSE content_type END, page_count = $3, chunk_count = $4, text = $5, \
                 updated_at = $6 WHERE id = $7 RETURNING owner_id",
            )
            .bind(&processed.format)
            .bind(&processed.content_type)
            .bind(processed.page_count)
            .bind(chunks.len() as i32)
            .bind(&processed.text)
            .bind(now)
            .bind(id);
            let updated =
                traced!(&self.db, UPDATE "documents", update.fetch_optional(&mut *tx)).await?;
            if let Some((owner_id,)) = &updated {
                let delete =
                    sqlx::query("DELETE FROM document_chunks WHERE document_id = $1").bind(id);
                traced!(&self.db, DELETE "document_chunks", delete.execute(&mut *tx)).await?;
                for chunk in chunks {
                    let insert = sqlx::query(
                        "INSERT INTO document_chunks (document_id, seq, page, char_start, \
                         char_end, text, embedding) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(id)
                    .bind(chunk.seq)
                    .bind(chunk.page)
                    .bind(chunk.char_start)
                    .bind(chunk.char_end)
                    .bind(&chunk.text)
                    .bind(encode_vector(&chunk.embedding));
                    traced!(&self.db, INSERT "document_chunks", insert.execute(&mut *tx)).await?;
                }
                let delete =
                    sqlx::query("DELETE FROM document_notes WHERE document_id = $1").bind(id);
                traced!(&self.db, DELETE "document_notes", delete.execute(&mut *tx)).await?;
                if let Some(notes) = &notes {
                    let insert = sqlx::query(
                        "INSERT INTO document_notes (document_id, notes, created_at) \
                         VALUES ($1, $2, $3)",
                    )
                    .bind(id)
                    .bind(notes)
                    .bind(now);
                    traced!(&self.db, INSERT "document_notes", insert.execute(&mut *tx)).await?;
                }
                let event =
                    processed_event(owner_id, id, Status::Ready, processed.page_count, None, now);
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(updated.is_some())
        })?;
        Ok(updated)
    }

    /// Deletes the owner's document and its chunks, recording `processing.document.deleted`
    /// in the same transaction; returns its SHA-256, or `None` when the owner has no such
    /// document.
    pub async fn delete(&self, owner_id: &str, id: Uuid) -> ProcessingResult<Option<String>> {
        let event = NewEvent::new(owner_id, id, pb::DocumentDeleted {});
        let sha256: Option<(String,)> = with_db!(&self.db, DELETE "documents", |pool| async {
            let mut tx = pool.begin().await?;
            let deleted: Option<(String,)> = sqlx::query_as(
                "DELETE FROM documents WHERE id = $1 AND owner_id = $2 RETURNING sha256",
            )
            .bind(id)
            .bind(owner_id)
            .fetch_optional(&mut *tx)
            .await?;
            if deleted.is_some() {
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(deleted)
        }
        .await)?;
        Ok(sha256.map(|(sha,)| sha))
    }

    /// Deletes every document (with its chunks) and upload (with its parts) of an owner;
    /// returns how many documents and uploads went.
    pub async fn delete_owner(&self, owner_id: &str) -> ProcessingResult<u64> {
        let documents = with_db!(&self.db, DELETE "documents", |pool| {
            sqlx::query("DELETE FROM documents WHERE owner_id = $1")
                .bind(owner_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        let uploads = with_db!(&self.db, DELETE "uploads", |pool| {
            sqlx::query("DELETE FROM uploads WHERE owner_id = $1")
                .bind(owner_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(documents + uploads)
    }

    /// Counts the owner's documents whose bytes have this SHA-256.
    pub async fn references(&self, owner_id: &str, sha256: &str) -> ProcessingResult<i64> {
        let (count,): (i64,) = with_db!(&self.db, SELECT "documents", |pool| {
            sqlx::query_as("SELECT COUNT(*) FROM documents WHERE owner_id = $1 AND sha256 = $2")
                .bind(owner_id)
                .bind(sha256)
                .fetch_one(pool)
                .await
        })?;
        Ok(count)
    }

    /// Scores the embedded chunks of `owner_id`'s READY documents (of `document_ids`, when
    /// not empty) with `score` as their vectors stream from the database, and returns the `k`
    /// best with their passages, best first. Only vectors are read for every chunk (one at a
    /// time, never all in memory); passages only for the `k` kept. A vector `score` answers
    /// `None` for is skipped.
    pub async fn top_chunks(
        &self,
        owner_id: &str,
        document_ids: &[Uuid],
        k: usize,
        mut score: impl FnMut(&[u8]) -> Option<f32>,
    ) -> ProcessingResult<Vec<(StoredChunk, f32)>> {
        use futures::TryStreamExt;

        let mut top = TopK::new(k);
        with_db!(&self.db, SELECT "document_chunks", |pool| {
            let mut sql = QueryBuilder::new(
                "SELECT c.document_id, c.seq, c.embedding FROM document_chunks c \
                 JOIN documents d ON d.id = c.document_id WHERE d.owner_id = ",
            );
            sql.push_bind(owner_id).push(" AND d.status = 'READY'");
            if !document_ids.is_empty() {
                sql.push(" AND d.id IN (");
                let mut list = sql.separated(", ");
                for id in document_ids {
                    list.push_bind(*id);
                }
                sql.push(")");
            }
            let mut rows = sql.build_query_as::<(Uuid, i32, Vec<u8>)>().fetch(pool);
            while let Some((document_id, seq, embedding)) = rows.try_next().await? {
                if let Some(value) = score(&embedding) {
                    top.push(value, (document_id, seq));
                }
            }
            Ok::<_, sqlx::Error>(())
        })?;
        let kept = top.into_sorted();
        if kept.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<ChunkRow> = with_db!(&self.db, SELECT "document_chunks", |pool| {
            let mut sql = QueryBuilder::new(
                "SELECT c.document_id, c.seq, d.filename, c.page, c.char_start, c.char_end, \
                 c.text FROM document_chunks c JOIN documents d ON d.id = c.document_id WHERE ",
            );
            let mut keys = sql.separated(" OR ");
            for (_, (document_id, seq)) in &kept {
                keys.push("(c.document_id = ")
                    .push_bind_unseparated(*document_id)
                    .push_unseparated(" AND c.seq = ")
                    .push_bind_unseparated(*seq)
                    .push_unseparated(")");
            }
            sql.build_query_as().fetch_all(pool).await
        })?;
        let mut passages: std::collections::HashMap<(Uuid, i32), ChunkRow> = rows
            .into_iter()
            .map(|row| ((row.document_id, row.seq), row))
            .collect();
        // A chunk deleted between the two reads (its document deleted) is left out.
        Ok(kept
            .into_iter()
            .filter_map(|(value, key)| {
                let row = passages.remove(&key)?;
                let chunk = StoredChunk {
                    document_id: row.document_id,
                    filename: row.filename,
                    page: row.page,
                    char_start: row.char_start,
                    char_end: row.char_end,
                    text: row.text,
                };
                Some((chunk, value))
            })
            .collect())
    }

    /// Inserts an upload.
    pub async fn create_upload(&self, upload: &Upload) -> ProcessingResult<()> {
        with_db!(&self.db, INSERT "uploads", |pool| {
            sqlx::query(
                "INSERT INTO uploads (id, owner_id, filename, content_type, size_bytes, \
                 received_bytes, generate_notes, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
            )
            .bind(upload.id)
            .bind(&upload.owner_id)
            .bind(&upload.filename)
            .bind(&upload.content_type)
            .bind(upload.size_bytes)
            .bind(upload.generate_notes)
            .bind(upload.created_at)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Returns the owner's upload.
    pub async fn get_upload(&self, owner_id: &str, id: Uuid) -> ProcessingResult<Option<Upload>> {
        let row: Option<UploadRow> = with_db!(&self.db, SELECT "uploads", |pool| {
            sqlx::query_as(
                "SELECT id, owner_id, filename, content_type, size_bytes, received_bytes, \
                 generate_notes, created_at FROM uploads WHERE id = $1 AND owner_id = $2",
            )
            .bind(id)
            .bind(owner_id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(Into::into))
    }

    /// Records the part `part_key` (`len` bytes already staged in the blob store) at exactly
    /// the upload's stored offset, in one transaction: the offset moves only if it was
    /// `offset`, so two racing appends cannot both land.
    pub async fn append(
        &self,
        owner_id: &str,
        id: Uuid,
        offset: i64,
        len: i64,
        part_key: &str,
    ) -> ProcessingResult<Appended> {
        let stored = with_db!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let update = sqlx::query_as::<_, (i64,)>(
                "UPDATE uploads SET received_bytes = received_bytes + $1 \
                 WHERE id = $2 AND owner_id = $3 AND received_bytes = $4 \
                 AND received_bytes + $1 <= size_bytes RETURNING received_bytes",
            )
            .bind(len)
            .bind(id)
            .bind(owner_id)
            .bind(offset);
            let stored =
                traced!(&self.db, UPDATE "uploads", update.fetch_optional(&mut *tx)).await?;
            if stored.is_some() {
                let insert = sqlx::query(
                    "INSERT INTO upload_parts (upload_id, start_offset, size_bytes, part_key) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(offset)
                .bind(len)
                .bind(part_key);
                traced!(&self.db, INSERT "upload_parts", insert.execute(&mut *tx)).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(stored)
        })?;
        if let Some((received,)) = stored {
            return Ok(Appended::Stored(received));
        }
        Ok(match self.get_upload(owner_id, id).await? {
            Some(upload) => Appended::WrongOffset(upload.received_bytes),
            None => Appended::NotFound,
        })
    }

    /// Returns an upload's parts in order: where each starts, its size and its name in the
    /// blob store's staging.
    pub async fn upload_parts(&self, id: Uuid) -> ProcessingResult<Vec<UploadPart>> {
        let parts: Vec<(i64, i64, String)> = with_db!(&self.db, SELECT "upload_parts", |pool| {
            sqlx::query_as(
                "SELECT start_offset, size_bytes, part_key FROM upload_parts \
                 WHERE upload_id = $1 ORDER BY start_offset",
            )
            .bind(id)
            .fetch_all(pool)
            .await
        })?;
        Ok(parts
            .into_iter()
            .map(|(offset, size, key)| UploadPart { offset, size, key })
            .collect())
    }

    /// Deletes up to `limit` uploads (with their parts) created before `before`; returns how
    /// many went.
    pub async fn delete_uploads_before(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> ProcessingResult<u64> {
        let deleted = with_db!(&self.db, DELETE "uploads", |pool| {
            sqlx::query(
                "DELETE FROM uploads WHERE id IN \
                 (SELECT id FROM uploads WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
            )
            .bind(before)
            .bind(limit)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(deleted)
    }

    /// Deletes an upload and its parts.
    pub async fn delete_upload(&self, id: Uuid) -> ProcessingResult<()> {
        with_db!(&self.db, DELETE "uploads", |pool| {
            sqlx::query("DELETE FROM uploads WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }
}

/// The `processing.document.processed` event of `owner_id`'s document `id` ending its
/// processing in `status` (READY or FAILED) at `now`.
fn processed_event(
    owner_id: &str,
    id: Uuid,
    status: Status,
    page_count: i32,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> NewEvent {
    let ready = status == Status::Ready;
    NewEvent::new(
        owner_id,
        id,
        pb::DocumentProcessed {
            ready,
            page_count: if ready { page_count } else { 0 },
            failure_reason: if ready {
                String::new()
            } else {
                reason.unwrap_or_default().to_owned()
            },
        },
    )
    .at(now)
}
