//! Persistence of notes, for SQLite and PostgreSQL alike: the SQL below is written once, in the
//! subset both understand, and [`with_db!`] runs it on whichever pool is configured, each call
//! traced as a database client span (`SELECT notes`, ...).

use std::collections::HashMap;

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
        LanguageCount, ListQuery, NewNote, Note, NotePage, NotePatch, NoteStats, Translation,
    },
    error::{NotesError, NotesResult},
};

/// The notes service's migrations.
pub const MIGRATIONS: Migrations = aimesh_kit::migrations!("notes");

const NOTE_COLUMNS: &str =
    "id, owner_id, title, original_text, original_language, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct NoteRow {
    id: Uuid,
    owner_id: String,
    title: String,
    original_text: String,
    original_language: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TranslationRow {
    note_id: Uuid,
    target_language: String,
    text: String,
    engine: String,
    created_at: DateTime<Utc>,
}

impl NoteRow {
    fn into_note(self, translations: Vec<Translation>) -> Note {
        Note {
            id: self.id,
            owner_id: self.owner_id,
            title: self.title,
            original_text: self.original_text,
            original_language: self.original_language,
            translations,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        }
    }
}

impl From<TranslationRow> for Translation {
    fn from(row: TranslationRow) -> Self {
        Translation {
            target_language: row.target_language,
            text: row.text,
            engine: row.engine,
            created_at: row.created_at,
        }
    }
}

/// Notes in a database.
#[derive(Debug, Clone)]
pub struct NotesStore {
    db: Db,
}

impl NotesStore {
    /// Creates a store on a migrated database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Inserts a note for `owner_id`, recording `notes.note.created`.
    pub async fn create(
        &self,
        owner_id: &str,
        new: NewNote,
        now: DateTime<Utc>,
    ) -> NotesResult<Note> {
        let id = Uuid::now_v7();
        let event = NewEvent::new(
            owner_id,
            id,
            pb::NoteCreated {
                title: new.title.clone(),
                language: new.original_language.clone(),
            },
        )
        .at(now);
        with_db!(&self.db, INSERT "notes", |pool| async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO notes (id, owner_id, title, original_text, original_language, \
                 version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
            )
            .bind(id)
            .bind(owner_id)
            .bind(&new.title)
            .bind(&new.original_text)
            .bind(&new.original_language)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.record(&event).await?;
            tx.commit().await
        }.await)?;
        Ok(Note {
            id,
            owner_id: owner_id.to_owned(),
            title: new.title,
            original_text: new.original_text,
            original_language: new.original_language,
            translations: Vec::new(),
            created_at: now,
            updated_at: now,
            version: 1,
        })
    }

    /// Returns a note by id, whoever owns it (callers check ownership).
    pub async fn get(&self, id: Uuid) -> NotesResult<Option<Note>> {
        let row: Option<NoteRow> = with_db!(&self.db, SELECT "notes", |pool| {
            sqlx::query_as(
                "SELECT id, owner_id, title, original_text, original_language, version, \
                 created_at, updated_at FROM notes WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })?;
        let Some(row) = row else { return Ok(None) };
        let mut translations = self.translations(&[id]).await?;
        Ok(Some(
            row.into_note(translations.remove(&id).unwrap_or_default()),
        ))
    }

    /// Lists an owner's notes, newest first, one page at a time.
    pub async fn list(&self, owner_id: &str, query: &ListQuery) -> NotesResult<NotePage> {
        let limit = i64::from(query.page_size) + 1;
        let pattern = query.text.as_deref().map(like_pattern);
        let mut rows: Vec<NoteRow> = with_db!(&self.db, SELECT "notes", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(NOTE_COLUMNS)
                .push(" FROM notes WHERE owner_id = ")
                .push_bind(owner_id);
            if let Some(after) = query.after {
                sql.push(" AND id < ").push_bind(after);
            }
            if let Some(language) = &query.language {
                sql.push(" AND original_language = ").push_bind(language);
            }
            if let Some(pattern) = &pattern {
                sql.push(" AND (lower(title) LIKE ")
                    .push_bind(pattern)
                    .push(" ESCAPE '\\' OR lower(original_text) LIKE ")
                    .push_bind(pattern)
                    .push(" ESCAPE '\\')");
            }
            sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
            sql.build_query_as().fetch_all(pool).await
        })?;

        let next_after = aimesh_kit::paging::take_page(&mut rows, query.page_size, |row| row.id);
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        let mut translations = self.translations(&ids).await?;
        let notes = rows
            .into_iter()
            .map(|row| {
                let own = translations.remove(&row.id).unwrap_or_default();
                row.into_note(own)
            })
            .collect();
        Ok(NotePage { notes, next_after })
    }

    /// Applies a patch to an owner's note, bumping its version and recording
    /// `notes.note.updated`.
    pub async fn update(
        &self,
        owner_id: &str,
        id: Uuid,
        patch: &NotePatch,
        now: DateTime<Utc>,
    ) -> NotesResult<Note> {
        let row: Option<NoteRow> = with_db!(&self.db, UPDATE "notes", |pool| async {
            let mut tx = pool.begin().await?;
            let row: Option<NoteRow> = sqlx::query_as(
                "UPDATE notes SET title = COALESCE($1, title), \
                 original_text = COALESCE($2, original_text), \
                 original_language = COALESCE($3, original_language), \
                 version = version + 1, updated_at = $4 \
                 WHERE id = $5 AND owner_id = $6 AND ($7 IS NULL OR version = $7) \
                 RETURNING id, owner_id, title, original_text, original_language, version, \
                 created_at, updated_at",
            )
            .bind(patch.title.as_deref())
            .bind(patch.original_text.as_deref())
            .bind(patch.original_language.as_deref())
            .bind(now)
            .bind(id)
            .bind(owner_id)
            .bind(patch.expected_version)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = &row {
                let updated = pb::NoteUpdated {
                    version: row.version,
                };
                let event = NewEvent::new(owner_id, id, updated).at(now);
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }.await)?;
        match row {
            Some(row) => {
                let mut translations = self.translations(&[id]).await?;
                Ok(row.into_note(translations.remove(&id).unwrap_or_default()))
            }
            None => Err(self
                .explain_miss(owner_id, id, patch.expected_version)
                .await),
        }
    }

    /// Deletes an owner's note and its translations, recording `notes.note.deleted`.
    pub async fn delete(
        &self,
        owner_id: &str,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> NotesResult<()> {
        let event = NewEvent::new(owner_id, id, pb::NoteDeleted {});
        let deleted = with_db!(&self.db, DELETE "notes", |pool| async {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query(
                "DELETE FROM notes WHERE id = $1 AND owner_id = $2 \
                 AND ($3 IS NULL OR version = $3)",
            )
            .bind(id)
            .bind(owner_id)
            .bind(expected_version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if deleted > 0 {
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(deleted)
        }.await)?;
        if deleted == 0 {
            return Err(self.explain_miss(owner_id, id, expected_version).await);
        }
        Ok(())
    }

    /// Deletes every note of an owner (and, by cascade, their translations); returns the
    /// deleted notes' ids.
    pub async fn delete_owner(&self, owner_id: &str) -> NotesResult<Vec<Uuid>> {
        let ids: Vec<(Uuid,)> = with_db!(&self.db, DELETE "notes", |pool| {
            sqlx::query_as("DELETE FROM notes WHERE owner_id = $1 RETURNING id")
                .bind(owner_id)
                .fetch_all(pool)
                .await
        })?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Stores (or replaces) the translation of an owner's note into one language, bumping the
    /// note's version and recording `notes.note.translated`.
    pub async fn put_translation(
        &self,
        owner_id: &str,
        id: Uuid,
        translation: &Translation,
    ) -> NotesResult<()> {
        let event = NewEvent::new(
            owner_id,
            id,
            pb::NoteTranslated {
                target_language: translation.target_language.clone(),
                engine: translation.engine.clone(),
            },
        )
        .at(translation.created_at);
        let updated = with_db!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let update = sqlx::query(
                "UPDATE notes SET version = version + 1, updated_at = $1 \
                 WHERE id = $2 AND owner_id = $3",
            )
            .bind(translation.created_at)
            .bind(id)
            .bind(owner_id);
            let updated = traced!(&self.db, UPDATE "notes", update.execute(&mut *tx))
                .await?
                .rows_affected();
            if updated == 1 {
                let upsert = sqlx::query(
                    "INSERT INTO note_translations (note_id, target_language, text, engine, \
                     created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (note_id, target_language) DO UPDATE SET \
                     text = excluded.text, engine = excluded.engine, \
                     created_at = excluded.created_at",
                )
                .bind(id)
                .bind(&translation.target_language)
                .bind(&translation.text)
                .bind(&translation.engine)
                .bind(translation.created_at);
                traced!(&self.db, INSERT "note_translations", upsert.execute(&mut *tx)).await?;
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(updated)
        })?;
        if updated == 0 {
            return Err(NotesError::NotFound(id));
        }
        Ok(())
    }

    /// Computes an owner's statistics with grouped queries.
    pub async fn stats(&self, owner_id: &str) -> NotesResult<NoteStats> {
        let (total_notes, last_activity): (i64, Option<DateTime<Utc>>) = with_db!(&self.db, SELECT "notes", |pool| {
            sqlx::query_as("SELECT COUNT(*), MAX(updated_at) FROM notes WHERE owner_id = $1")
                .bind(owner_id)
                .fetch_one(pool)
                .await
        })?;
        let notes_by_language: Vec<(String, i64)> = with_db!(&self.db, SELECT "notes", |pool| {
            sqlx::query_as(
                "SELECT original_language, COUNT(*) AS c FROM notes WHERE owner_id = $1 \
                 GROUP BY original_language ORDER BY c DESC, original_language",
            )
            .bind(owner_id)
            .fetch_all(pool)
            .await
        })?;
        let translations_by_language: Vec<(String, i64)> = with_db!(&self.db, SELECT "note_translations", |pool| {
            sqlx::query_as(
                "SELECT t.target_language, COUNT(*) AS c FROM note_translations t \
                 JOIN notes n ON n.id = t.note_id WHERE n.owner_id = $1 \
                 GROUP BY t.target_language ORDER BY c DESC, t.target_language",
            )
            .bind(owner_id)
            .fetch_all(pool)
            .await
        })?;
        let counts = |rows: Vec<(String, i64)>| {
            rows.into_iter()
                .map(|(language, count)| LanguageCount { language, count })
                .collect::<Vec<_>>()
        };
        let translations_by_language = counts(translations_by_language);
        Ok(NoteStats {
            total_notes,
            total_translations: translations_by_language.iter().map(|c| c.count).sum(),
            notes_by_language: counts(notes_by_language),
            translations_by_language,
            last_activity,
        })
    }

    /// Loads the translations of several notes in one query.
    async fn translations(&self, ids: &[Uuid]) -> NotesResult<HashMap<Uuid, Vec<Translation>>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<TranslationRow> = with_db!(&self.db, SELECT "note_translations", |pool| {
            let mut sql = QueryBuilder::new(
                "SELECT note_id, target_language, text, engine, created_at \
                 FROM note_translations WHERE note_id IN (",
            );
            let mut list = sql.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            sql.push(") ORDER BY note_id, target_language");
            sql.build_query_as().fetch_all(pool).await
        })?;
        let mut by_note: HashMap<Uuid, Vec<Translation>> = HashMap::new();
        for row in rows {
            by_note.entry(row.note_id).or_default().push(row.into());
        }
        Ok(by_note)
    }

    /// Tells why a conditional write touched no row: the note is not the owner's (NOT_FOUND)
    /// or its version moved on (ABORTED).
    async fn explain_miss(&self, owner_id: &str, id: Uuid, expected: Option<i64>) -> NotesError {
        let current: Result<Option<(String, i64)>, sqlx::Error> = with_db!(&self.db, SELECT "notes", |pool| {
            sqlx::query_as("SELECT owner_id, version FROM notes WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        });
        match (current, expected) {
            (Err(error), _) => NotesError::Db(error),
            (Ok(Some((owner, current))), Some(expected)) if owner == owner_id => {
                NotesError::VersionMismatch {
                    id,
                    expected,
                    current,
                }
            }
            _ => NotesError::NotFound(id),
        }
    }
}

/// Builds a case-insensitive `LIKE` pattern matching `text` anywhere, with `\` escaping.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for ch in text.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_A\\b"), "%50\\%\\_a\\\\b%");
    }
}
