//! Conversions between the protobuf messages of `aimesh.notes.v1` and the notes domain.
//!
//! Requests become validated domain values through `TryFrom` (every offending field is
//! reported, as an INVALID_ARGUMENT with the fields named); domain values become responses
//! through `From`.

use aimesh_kit::{
    error::{Violations, parse_uuid},
    paging,
    proto::timestamp,
};
use aimesh_proto::notes::v1 as pb;
use uuid::Uuid;

use crate::{
    domain::{
        self, LanguageCount, ListQuery, NewNote, Note, NotePatch, NoteStats, TranslateRequest,
        Translation,
    },
    error::NotesError,
};

/// The fields UpdateNote can change.
const UPDATABLE: [&str; 3] = ["title", "original_text", "original_language"];

/// Longest engine name accepted, in bytes.
const ENGINE_MAX_LEN: usize = 64;

/// A validated UpdateNote request: the note and its changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteUpdate {
    /// The note.
    pub id: Uuid,
    /// The changes.
    pub patch: NotePatch,
}

/// A validated DeleteNote request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoteDeletion {
    /// The note.
    pub id: Uuid,
    /// When set, the note is deleted only at this version.
    pub expected_version: Option<i64>,
}

fn finish<T: aimesh_kit::error::Checked>(
    violations: Violations,
    values: T,
) -> Result<T::Values, NotesError> {
    violations
        .finish(values)
        .map_err(NotesError::InvalidArgument)
}

/// An optional field: empty means absent, anything else must pass `check`.
fn optional<T>(
    violations: &mut Violations,
    field: &str,
    value: &str,
    check: impl FnOnce(&str) -> Result<T, String>,
) -> Option<Option<T>> {
    if value.is_empty() {
        Some(None)
    } else {
        violations.check(field, check(value)).map(Some)
    }
}

/// Parses the id of a GetNote request.
pub fn note_id(field: &str, id: &str) -> Result<Uuid, NotesError> {
    let mut violations = Violations::new();
    let id = violations.check(field, parse_uuid(id));
    finish(violations, id)
}

// === requests -> domain ===

impl TryFrom<pb::CreateNoteRequest> for NewNote {
    type Error = NotesError;

    fn try_from(request: pb::CreateNoteRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let Some(note) = request.note else {
            violations.add("note", "is required");
            return finish(violations, None::<NewNote>);
        };
        let title = violations.check("note.title", domain::validate_title(&note.title));
        let text = violations.check(
            "note.original_text",
            domain::validate_text(&note.original_text),
        );
        let language = violations.check(
            "note.original_language",
            domain::validate_language(&note.original_language),
        );
        let (title, original_text, original_language) =
            finish(violations, (title, text, language))?;
        Ok(NewNote {
            title,
            original_text,
            original_language,
        })
    }
}

impl TryFrom<pb::UpdateNoteRequest> for NoteUpdate {
    type Error = NotesError;

    fn try_from(request: pb::UpdateNoteRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let Some(note) = request.note else {
            violations.add("note", "is required");
            return finish(violations, None::<NoteUpdate>);
        };
        let id = violations.check("note.id", parse_uuid(&note.id));
        let expected_version =
            violations.check("note.version", domain::validate_version(note.version));

        // With a mask, exactly the named fields change (and must be valid); without one,
        // every updatable field that is set changes.
        let paths: Vec<String> = request.update_mask.map(|m| m.paths).unwrap_or_default();
        for path in &paths {
            if !UPDATABLE.contains(&path.as_str()) {
                violations.add(
                    "update_mask.paths",
                    format!(
                        "unknown or read-only field {path:?}; updatable: {}",
                        UPDATABLE.join(", ")
                    ),
                );
            }
        }
        let wanted = |field: &str, value: &str| {
            if paths.is_empty() {
                !value.is_empty()
            } else {
                paths.iter().any(|p| p == field)
            }
        };
        let mut patch = NotePatch::default();
        if wanted("title", &note.title) {
            patch.title = violations.check("note.title", domain::validate_title(&note.title));
        }
        if wanted("original_text", &note.original_text) {
            patch.original_text = violations.check(
                "note.original_text",
                domain::validate_text(&note.original_text),
            );
        }
        if wanted("original_language", &note.original_language) {
            patch.original_language = violations.check(
                "note.original_language",
                domain::validate_language(&note.original_language),
            );
        }
        if violations.is_empty() && patch.is_empty() {
            violations.add(
                "update_mask",
                "names no field to change; set one of title, original_text, original_language",
            );
        }
        let (id, expected_version) = finish(violations, (id, expected_version))?;
        patch.expected_version = expected_version;
        Ok(NoteUpdate { id, patch })
    }
}

impl TryFrom<&pb::DeleteNoteRequest> for NoteDeletion {
    type Error = NotesError;

    fn try_from(request: &pb::DeleteNoteRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let id = violations.check("id", parse_uuid(&request.id));
        let version = violations.check("version", domain::validate_version(request.version));
        let (id, expected_version) = finish(violations, (id, version))?;
        Ok(NoteDeletion {
            id,
            expected_version,
        })
    }
}

impl TryFrom<&pb::ListNotesRequest> for ListQuery {
    type Error = NotesError;

    fn try_from(request: &pb::ListNotesRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let page_size =
            violations.check("page_size", domain::validate_page_size(request.page_size));
        let language = optional(
            &mut violations,
            "language",
            &request.language,
            domain::validate_language,
        );
        let text = violations.check("query", domain::validate_query(&request.query));
        let (page_size, language, text) = finish(violations, (page_size, language, text))?;
        let mut query = ListQuery {
            page_size,
            after: None,
            language,
            text,
        };
        let mut violations = Violations::new();
        let after = violations.check(
            "page_token",
            paging::decode_uuid(&request.page_token, &query.filter_key()),
        );
        query.after = finish(violations, after)?;
        Ok(query)
    }
}

impl TryFrom<pb::TranslateNoteRequest> for TranslateRequest {
    type Error = NotesError;

    fn try_from(request: pb::TranslateNoteRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let id = violations.check("id", parse_uuid(&request.id));
        let target = violations.check(
            "target_language",
            domain::validate_language(&request.target_language),
        );
        let source = optional(
            &mut violations,
            "source_language",
            &request.source_language,
            domain::validate_language,
        );
        if request.engine.len() > ENGINE_MAX_LEN {
            violations.add("engine", format!("must be at most {ENGINE_MAX_LEN} bytes"));
        }
        let key_limit = aimesh_jobs::engine::MAX_IDEMPOTENCY_KEY_LEN;
        if request.idempotency_key.len() > key_limit {
            violations.add(
                "idempotency_key",
                format!("must be at most {key_limit} bytes"),
            );
        }
        let (note_id, target_language, source_language) = finish(violations, (id, target, source))?;
        Ok(TranslateRequest {
            note_id,
            target_language,
            source_language,
            engine: Some(request.engine).filter(|e| !e.is_empty()),
            idempotency_key: Some(request.idempotency_key).filter(|k| !k.is_empty()),
        })
    }
}

// === domain -> responses ===

impl From<&Translation> for pb::Translation {
    fn from(translation: &Translation) -> Self {
        pb::Translation {
            target_language: translation.target_language.clone(),
            text: translation.text.clone(),
            engine: translation.engine.clone(),
            create_time: Some(timestamp(translation.created_at)),
        }
    }
}

impl From<&Note> for pb::Note {
    fn from(note: &Note) -> Self {
        pb::Note {
            id: note.id.to_string(),
            title: note.title.clone(),
            original_text: note.original_text.clone(),
            original_language: note.original_language.clone(),
            translations: note.translations.iter().map(Into::into).collect(),
            create_time: Some(timestamp(note.created_at)),
            update_time: Some(timestamp(note.updated_at)),
            version: note.version,
        }
    }
}

impl From<NoteStats> for pb::GetNoteStatsResponse {
    fn from(stats: NoteStats) -> Self {
        let counts = |counts: Vec<LanguageCount>| {
            counts
                .into_iter()
                .map(|c| pb::LanguageCount {
                    language: c.language,
                    count: c.count,
                })
                .collect()
        };
        pb::GetNoteStatsResponse {
            total_notes: stats.total_notes,
            total_translations: stats.total_translations,
            notes_by_language: counts(stats.notes_by_language),
            translations_by_language: counts(stats.translations_by_language),
            last_activity_time: stats.last_activity.map(timestamp),
        }
    }
}
