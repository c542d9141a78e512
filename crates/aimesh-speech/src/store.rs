//! Persistence of transcriptions and synthesised audio, for SQLite and PostgreSQL alike: the
//! SQL is written once, in the subset both understand, and [`with_db!`] runs it on whichever
//! pool is configured.

use aimesh_events::{NewEvent, Outbox, pb};
use aimesh_kit::{
    db::{Db, Migrations},
    traced, with_db,
};
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::{
    domain::{Audio, AudioFormat, ListQuery, Page, Segment, Status, Transcribed, Transcription},
    error::{SpeechError, SpeechResult},
};

/// The speech service's migrations.
pub const MIGRATIONS: Migrations = aimesh_kit::migrations!("speech");

/// The columns of a transcription without its transcript.
const SUMMARY_COLUMNS: &str = "id, owner_id, filename, content_type, size_bytes, blob, status, \
     failure_reason, language, language_probability, engine, duration_seconds, NULL AS text, \
     NULL AS segments, job_id, created_at, updated_at";

/// The columns of a transcription with its transcript.
const FULL_COLUMNS: &str = "id, owner_id, filename, content_type, size_bytes, blob, status, \
     failure_reason, language, language_probability, engine, duration_seconds, text, segments, \
     job_id, created_at, updated_at";

const AUDIO_COLUMNS: &str = "id, owner_id, request_key, text, voice, format, words_per_minute, \
     sample_rate, size_bytes, duration_seconds, engine, blob, created_at, \
     COALESCE(last_used_at, created_at) AS last_used_at";

#[derive(sqlx::FromRow)]
struct TranscriptionRow {
    id: Uuid,
    owner_id: String,
    filename: String,
    content_type: String,
    size_bytes: i64,
    blob: Option<String>,
    status: String,
    failure_reason: Option<String>,
    language: String,
    language_probability: Option<f64>,
    engine: Option<String>,
    duration_seconds: f64,
    text: Option<String>,
    segments: Option<String>,
    job_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TranscriptionRow {
    fn into_domain(self) -> SpeechResult<Transcription> {
        let status = Status::parse(&self.status).ok_or_else(|| {
            SpeechError::Internal(format!("unknown transcription status {:?}", self.status))
        })?;
        let segments: Vec<Segment> = match &self.segments {
            Some(json) => serde_json::from_str(json).map_err(|error| {
                SpeechError::Internal(format!("unreadable stored segments: {error}"))
            })?,
            None => Vec::new(),
        };
        Ok(Transcription {
            id: self.id,
            owner_id: self.owner_id,
            filename: self.filename,
            content_type: self.content_type,
            size_bytes: self.size_bytes,
            blob: self.blob,
            status,
            failure_reason: self.failure_reason,
            language: self.language,
            language_probability: self.language_probability,
            engine: self.engine,
            duration_seconds: self.duration_seconds,
            text: self.text,
            segments,
            job_id: self.job_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AudioRow {
    id: Uuid,
    owner_id: String,
    request_key: String,
    text: String,
    voice: String,
    format: String,
    words_per_minute: i64,
    sample_rate: i64,
    size_bytes: i64,
    duration_seconds: f64,
    engine: String,
    blob: String,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
}

impl AudioRow {
    fn into_domain(self) -> SpeechResult<Audio> {
        let format = AudioFormat::parse(&self.format).ok_or_else(|| {
            SpeechError::Internal(format!("unknown audio format {:?}", self.format))
        })?;
        Ok(Audio {
            id: self.id,
            owner_id: self.owner_id,
            request_key: self.request_key,
            text: self.text,
            voice: self.voice,
            format,
            words_per_minute: u32::try_from(self.words_per_minute).unwrap_or(0),
            sample_rate: u32::try_from(self.sample_rate).unwrap_or(0),
            size_bytes: self.size_bytes,
            duration_seconds: self.duration_seconds,
            engine: self.engine,
            blob: self.blob,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
        })
    }
}

/// A recording whose retention period is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The transcription.
    pub id: Uuid,
    /// Its owner.
    pub owner_id: String,
    /// The recording's blob.
    pub blob: String,
}

/// Transcriptions and audio in a database.
#[derive(Debug, Clone)]
pub struct SpeechStore {
    db: Db,
}

impl SpeechStore {
    /// Creates a store on a migrated database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    // === transcriptions ===

    /// Inserts a transcription.
    pub async fn insert_transcription(&self, t: &Transcription) -> SpeechResult<()> {
        with_db!(&self.db, INSERT "transcriptions", |pool| {
            sqlx::query(
                "INSERT INTO transcriptions (id, owner_id, filename, content_type, size_bytes, \
                 blob, status, language, duration_seconds, job_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $10)",
            )
            .bind(t.id)
            .bind(&t.owner_id)
            .bind(&t.filename)
            .bind(&t.content_type)
            .bind(t.size_bytes)
            .bind(&t.blob)
            .bind(t.status.as_str())
            .bind(&t.language)
            .bind(t.job_id)
            .bind(t.created_at)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Returns a transcription with its transcript, whoever owns it (callers check
    /// ownership).
    pub async fn get_transcription(&self, id: Uuid) -> SpeechResult<Option<Transcription>> {
        let row: Option<TranscriptionRow> = with_db!(&self.db, SELECT "transcriptions", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(FULL_COLUMNS)
                .push(" FROM transcriptions WHERE id = ")
                .push_bind(id);
            sql.build_query_as().fetch_optional(pool).await
        })?;
        row.map(TranscriptionRow::into_domain).transpose()
    }

    /// Lists an owner's transcriptions, newest first, without their transcripts.
    pub async fn list_transcriptions(
        &self,
        owner_id: &str,
        query: &ListQuery,
    ) -> SpeechResult<Page<Transcription>> {
        let limit = i64::from(query.page_size) + 1;
        let mut rows: Vec<TranscriptionRow> = with_db!(&self.db, SELECT "transcriptions", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(SUMMARY_COLUMNS)
                .push(" FROM transcriptions WHERE owner_id = ")
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
        let items = rows
            .into_iter()
            .map(TranscriptionRow::into_domain)
            .collect::<SpeechResult<_>>()?;
        Ok(Page { items, next_after })
    }

    /// Records the job of a transcription.
    pub async fn set_job(&self, id: Uuid, job_id: Uuid) -> SpeechResult<()> {
        with_db!(&self.db, UPDATE "transcriptions", |pool| {
            sqlx::query("UPDATE transcriptions SET job_id = $1 WHERE id = $2")
                .bind(job_id)
                .bind(id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }

    /// Sets a transcription's status (and failure reason); returns false when it is gone.
    /// Setting FAILED records `speech.transcription.finished` in the same transaction.
    pub async fn set_status(
        &self,
        id: Uuid,
        status: Status,
        reason: Option<String>,
        at: DateTime<Utc>,
    ) -> SpeechResult<bool> {
        let failure_reason = reason.clone().unwrap_or_default();
        let updated = with_db!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let update = sqlx::query_as(
                "UPDATE transcriptions SET status = $1, failure_reason = $2, updated_at = $3 \
                 WHERE id = $4 RETURNING owner_id, duration_seconds",
            )
            .bind(status.as_str())
            .bind(reason)
            .bind(at)
            .bind(id);
            let row: Option<(String, f64)> =
                traced!(&self.db, UPDATE "transcriptions", update.fetch_optional(&mut *tx)).await?;
            if let (Some((owner_id, duration_seconds)), Status::Failed) = (&row, status) {
                let event = NewEvent::new(
                    owner_id,
                    id,
                    pb::TranscriptionFinished {
                        succeeded: false,
                        language: String::new(),
                        duration_seconds: *duration_seconds,
                        failure_reason: failure_reason.clone(),
                    },
                )
                .at(at);
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row.is_some())
        })?;
        Ok(updated)
    }

    /// Stores a transcript and marks the transcription READY, recording
    /// `speech.transcription.finished` in the same transaction; returns false when it is gone.
    pub async fn store_transcript(
        &self,
        id: Uuid,
        done: &Transcribed,
        at: DateTime<Utc>,
    ) -> SpeechResult<bool> {
        let segments = serde_json::to_string(&done.segments)
            .map_err(|error| SpeechError::Internal(format!("encoding segments: {error}")))?;
        let updated = with_db!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let update = sqlx::query_as(
                "UPDATE transcriptions SET status = $1, failure_reason = NULL, engine = $2, \
                 duration_seconds = $3, text = $4, segments = $5, updated_at = $6, \
                 language = $7, language_probability = $8 WHERE id = $9 RETURNING owner_id",
            )
            .bind(Status::Ready.as_str())
            .bind(&done.engine)
            .bind(done.duration_seconds)
            .bind(&done.text)
            .bind(&segments)
            .bind(at)
            .bind(&done.language)
            .bind(done.language_probability)
            .bind(id);
            let row: Option<(String,)> =
                traced!(&self.db, UPDATE "transcriptions", update.fetch_optional(&mut *tx)).await?;
            if let Some((owner_id,)) = &row {
                let event = NewEvent::new(
                    owner_id,
                    id,
                    pb::TranscriptionFinished {
                        succeeded: true,
                        language: done.language.clone(),
                        duration_seconds: done.duration_seconds,
                        failure_reason: String::new(),
                    },
                )
                .at(at);
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row.is_some())
        })?;
        Ok(updated)
    }

    /// Deletes the owner's transcription; returns its recording's blob name (if still
    /// stored), or `None` inside when there was no such transcription.
    pub async fn delete_transcription(
        &self,
        owner_id: &str,
        id: Uuid,
    ) -> SpeechResult<Option<Option<String>>> {
        let row: Option<(Option<String>,)> = with_db!(&self.db, DELETE "transcriptions", |pool| {
            sqlx::query_as(
                "DELETE FROM transcriptions WHERE id = $1 AND owner_id = $2 RETURNING blob",
            )
            .bind(id)
            .bind(owner_id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(blob,)| blob))
    }

    /// Finished transcriptions (READY or FAILED) whose recording is still stored and older
    /// than `before`, at most `limit`.
    pub async fn expired_recordings(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> SpeechResult<Vec<Expired>> {
        let rows: Vec<(Uuid, String, String)> = with_db!(&self.db, SELECT "transcriptions", |pool| {
            sqlx::query_as(
                "SELECT id, owner_id, blob FROM transcriptions WHERE blob IS NOT NULL \
                 AND status IN ('READY', 'FAILED') AND created_at < $1 \
                 ORDER BY id LIMIT $2",
            )
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, owner_id, blob)| Expired { id, owner_id, blob })
            .collect())
    }

    /// Forgets a transcription's recording (its blob is deleted by the caller).
    pub async fn clear_recording(&self, id: Uuid, at: DateTime<Utc>) -> SpeechResult<()> {
        with_db!(&self.db, UPDATE "transcriptions", |pool| {
            sqlx::query("UPDATE transcriptions SET blob = NULL, updated_at = $1 WHERE id = $2")
                .bind(at)
                .bind(id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }

    /// Bytes the owner stores: recordings still kept and synthesised audio.
    pub async fn usage(&self, owner_id: &str) -> SpeechResult<i64> {
        let (recordings,): (Option<i64>,) = with_db!(&self.db, SELECT "transcriptions", |pool| {
            sqlx::query_as(
                "SELECT CAST(SUM(size_bytes) AS BIGINT) FROM transcriptions \
                 WHERE owner_id = $1 AND blob IS NOT NULL",
            )
            .bind(owner_id)
            .fetch_one(pool)
            .await
        })?;
        let (audio,): (Option<i64>,) = with_db!(&self.db, SELECT "synthesized_audio", |pool| {
            sqlx::query_as(
                "SELECT CAST(SUM(size_bytes) AS BIGINT) FROM synthesized_audio WHERE owner_id = $1",
            )
            .bind(owner_id)
            .fetch_one(pool)
            .await
        })?;
        Ok(recordings.unwrap_or(0) + audio.unwrap_or(0))
    }

    // === synthesised audio ===

    /// Inserts audio unless the owner has audio for the same request, recording
    /// `speech.audio.generated` in the same transaction; returns whether it was inserted.
    pub async fn insert_audio(&self, audio: &Audio) -> SpeechResult<bool> {
        let event = NewEvent::new(
            &audio.owner_id,
            audio.id,
            pb::AudioGenerated {
                voice: audio.voice.clone(),
                duration_seconds: audio.duration_seconds,
            },
        )
        .at(audio.created_at);
        let inserted = with_db!(&self.db, INSERT "synthesized_audio", |pool| async {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO synthesized_audio (id, owner_id, request_key, text, voice, format, \
                 words_per_minute, sample_rate, content_type, size_bytes, duration_seconds, \
                 engine, blob, created_at, last_used_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                 ON CONFLICT (owner_id, request_key) DO NOTHING",
            )
            .bind(audio.id)
            .bind(&audio.owner_id)
            .bind(&audio.request_key)
            .bind(&audio.text)
            .bind(&audio.voice)
            .bind(audio.format.as_str())
            .bind(i64::from(audio.words_per_minute))
            .bind(i64::from(audio.sample_rate))
            .bind(audio.format.content_type())
            .bind(audio.size_bytes)
            .bind(audio.duration_seconds)
            .bind(&audio.engine)
            .bind(&audio.blob)
            .bind(audio.created_at)
            .bind(audio.last_used_at)
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

    /// Returns the owner's audio.
    pub async fn get_audio(&self, owner_id: &str, id: Uuid) -> SpeechResult<Option<Audio>> {
        let row: Option<AudioRow> = with_db!(&self.db, SELECT "synthesized_audio", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(AUDIO_COLUMNS)
                .push(" FROM synthesized_audio WHERE id = ")
                .push_bind(id)
                .push(" AND owner_id = ")
                .push_bind(owner_id);
            sql.build_query_as().fetch_optional(pool).await
        })?;
        row.map(AudioRow::into_domain).transpose()
    }

    /// Returns the owner's audio for a request key.
    pub async fn find_audio(&self, owner_id: &str, key: &str) -> SpeechResult<Option<Audio>> {
        let row: Option<AudioRow> = with_db!(&self.db, SELECT "synthesized_audio", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(AUDIO_COLUMNS)
                .push(" FROM synthesized_audio WHERE owner_id = ")
                .push_bind(owner_id)
                .push(" AND request_key = ")
                .push_bind(key);
            sql.build_query_as().fetch_optional(pool).await
        })?;
        row.map(AudioRow::into_domain).transpose()
    }

    /// Lists the owner's audio, newest first.
    pub async fn list_audio(
        &self,
        owner_id: &str,
        page_size: u32,
        after: Option<Uuid>,
    ) -> SpeechResult<Page<Audio>> {
        let limit = i64::from(page_size) + 1;
        let mut rows: Vec<AudioRow> = with_db!(&self.db, SELECT "synthesized_audio", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(AUDIO_COLUMNS)
                .push(" FROM synthesized_audio WHERE owner_id = ")
                .push_bind(owner_id);
            if let Some(after) = after {
                sql.push(" AND id < ").push_bind(after);
            }
            sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
            sql.build_query_as().fetch_all(pool).await
        })?;
        let next_after = aimesh_kit::paging::take_page(&mut rows, page_size, |row| row.id);
        let items = rows
            .into_iter()
            .map(AudioRow::into_domain)
            .collect::<SpeechResult<_>>()?;
        Ok(Page { items, next_after })
    }

    /// Deletes every transcription and audio of the owner; returns how many rows went and the
    /// blob names of their files.
    pub async fn delete_owner(&self, owner_id: &str) -> SpeechResult<(u64, Vec<String>)> {
        let recordings: Vec<(Option<String>,)> = with_db!(&self.db, DELETE "transcriptions", |pool| {
            sqlx::query_as("DELETE FROM transcriptions WHERE owner_id = $1 RETURNING blob")
                .bind(owner_id)
                .fetch_all(pool)
                .await
        })?;
        let audio: Vec<(String,)> = with_db!(&self.db, DELETE "synthesized_audio", |pool| {
            sqlx::query_as("DELETE FROM synthesized_audio WHERE owner_id = $1 RETURNING blob")
                .bind(owner_id)
                .fetch_all(pool)
                .await
        })?;
        let rows = (recordings.len() + audio.len()) as u64;
        let blobs = recordings
            .into_iter()
            .filter_map(|(blob,)| blob)
            .chain(audio.into_iter().map(|(blob,)| blob))
            .collect();
        Ok((rows, blobs))
    }

    /// Deletes the owner's audio; returns its blob name, `None` when there was none.
    pub async fn delete_audio(&self, owner_id: &str, id: Uuid) -> SpeechResult<Option<String>> {
        let row: Option<(String,)> = with_db!(&self.db, DELETE "synthesized_audio", |pool| {
            sqlx::query_as(
                "DELETE FROM synthesized_audio WHERE id = $1 AND owner_id = $2 RETURNING blob",
            )
            .bind(id)
            .bind(owner_id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(blob,)| blob))
    }

    /// Marks the owner's audio as used at `at` (a cache hit or a download): the cache evicts
    /// the least recently used audio first.
    pub async fn touch_audio(
        &self,
        owner_id: &str,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> SpeechResult<()> {
        with_db!(&self.db, UPDATE "synthesized_audio", |pool| {
            sqlx::query("UPDATE synthesized_audio SET last_used_at = $1 WHERE id = $2 AND owner_id = $3")
                .bind(at)
                .bind(id)
                .bind(owner_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Evicts the owner's least recently used audio until the rest fits in `budget` bytes,
    /// never `keep` (the audio just made); returns the evicted audio's blob names.
    pub async fn evict_audio(
        &self,
        owner_id: &str,
        budget: i64,
        keep: Uuid,
    ) -> SpeechResult<Vec<String>> {
        let rows: Vec<(String,)> = with_db!(&self.db, DELETE "synthesized_audio", |pool| {
            sqlx::query_as(
                "DELETE FROM synthesized_audio WHERE id IN (\
                   SELECT id FROM (\
                     SELECT id, SUM(size_bytes) OVER (\
                       ORDER BY COALESCE(last_used_at, created_at) DESC, id DESC) AS used \
                     FROM synthesized_audio WHERE owner_id = $1\
                   ) AS ranked WHERE used > $2 AND id <> $3\
                 ) RETURNING blob",
            )
            .bind(owner_id)
            .bind(budget)
            .bind(keep)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(|(blob,)| blob).collect())
    }
}
