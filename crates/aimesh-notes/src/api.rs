//! The tonic adapter of `aimesh.notes.v1.NotesService`: validates requests, converts between
//! protobuf and domain types, calls [`Notes`] and maps its errors.

use std::sync::Arc;

use aimesh_ai::translate::Translators;
use aimesh_jobs::{Jobs, SubmitOptions, api::job_to_proto};
use aimesh_kit::{
    auth::principal,
    error::Violations,
    paging::{self, PageTokenError},
    proto::timestamp,
};
use aimesh_proto::notes::v1::{self as pb, notes_service_server::NotesService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    domain::{self, ListQuery, NewNote, Note, NotePatch, NoteStats, Translation},
    error::NotesError,
    service::Notes,
};

/// The gRPC face of the notes service.
#[derive(Clone)]
pub struct NotesApi {
    notes: Notes,
    jobs: Jobs,
    translators: Arc<Translators>,
}

impl NotesApi {
    /// Wraps the service; translations are submitted to `jobs` for engines in `translators`.
    pub fn new(notes: Notes, jobs: Jobs, translators: Arc<Translators>) -> Self {
        Self {
            notes,
            jobs,
            translators,
        }
    }

    /// Returns the tonic server for this API.
    pub fn into_server(self) -> pb::notes_service_server::NotesServiceServer<Self> {
        pb::notes_service_server::NotesServiceServer::new(self)
    }
}

/// The fields UpdateNote can change.
const UPDATABLE: [&str; 3] = ["title", "original_text", "original_language"];

#[tonic::async_trait]
impl NotesService for NotesApi {
    async fn create_note(
        &self,
        request: Request<pb::CreateNoteRequest>,
    ) -> Result<Response<pb::CreateNoteResponse>, Status> {
        let caller = principal(&request)?;
        let new = new_note(request.into_inner())?;
        let note = self.notes.create(&caller.user_id, new).await?;
        Ok(Response::new(pb::CreateNoteResponse {
            note: Some(note_to_proto(&note)),
        }))
    }

    async fn get_note(
        &self,
        request: Request<pb::GetNoteRequest>,
    ) -> Result<Response<pb::GetNoteResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let note = self.notes.get(&caller.user_id, id).await?;
        Ok(Response::new(pb::GetNoteResponse {
            note: Some(note_to_proto(&note)),
        }))
    }

    async fn list_notes(
        &self,
        request: Request<pb::ListNotesRequest>,
    ) -> Result<Response<pb::ListNotesResponse>, Status> {
        let caller = principal(&request)?;
        let query = list_query(request.get_ref())?;
        let page = self.notes.list(&caller.user_id, &query).await?;
        let next_page_token = page
            .next_after
            .map(|after| paging::encode(after.as_bytes(), &query.filter_key()))
            .unwrap_or_default();
        Ok(Response::new(pb::ListNotesResponse {
            notes: page.notes.iter().map(note_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_note(
        &self,
        request: Request<pb::UpdateNoteRequest>,
    ) -> Result<Response<pb::UpdateNoteResponse>, Status> {
        let caller = principal(&request)?;
        let (id, patch) = note_patch(request.into_inner())?;
        let note = self.notes.update(&caller.user_id, id, &patch).await?;
        Ok(Response::new(pb::UpdateNoteResponse {
            note: Some(note_to_proto(&note)),
        }))
    }

    async fn delete_note(
        &self,
        request: Request<pb::DeleteNoteRequest>,
    ) -> Result<Response<pb::DeleteNoteResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.get_ref();
        let mut violations = Violations::new();
        let id = violations.check("id", domain::parse_id(&request.id));
        let version = violations.check("version", domain::validate_version(request.version));
        invalid(violations)?;
        let (Some(id), Some(version)) = (id, version) else {
            unreachable!("violations are empty")
        };
        self.notes.delete(&caller.user_id, id, version).await?;
        Ok(Response::new(pb::DeleteNoteResponse {}))
    }

    async fn translate_note(
        &self,
        request: Request<pb::TranslateNoteRequest>,
    ) -> Result<Response<pb::TranslateNoteResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let mut violations = Violations::new();
        let id = violations.check("id", domain::parse_id(&request.id));
        let target = violations.check(
            "target_language",
            domain::validate_language(&request.target_language),
        );
        let source = if request.source_language.is_empty() {
            Some(None)
        } else {
            violations
                .check(
                    "source_language",
                    domain::validate_language(&request.source_language),
                )
                .map(Some)
        };
        if request.engine.len() > 64 {
            violations.add("engine", "must be at most 64 bytes");
        }
        if request.idempotency_key.len() > aimesh_jobs::engine::MAX_IDEMPOTENCY_KEY_LEN {
            violations.add(
                "idempotency_key",
                format!(
                    "must be at most {} bytes",
                    aimesh_jobs::engine::MAX_IDEMPOTENCY_KEY_LEN
                ),
            );
        }
        invalid(violations)?;
        let (Some(id), Some(target), Some(source)) = (id, target, source) else {
            unreachable!("violations are empty")
        };
        let note = self.notes.get(&caller.user_id, id).await?;
        let source = source.unwrap_or_else(|| note.original_language.clone());
        let mut violations = Violations::new();
        if source == target {
            violations.add("target_language", "is the language the text is in");
        }
        let engine = (!request.engine.is_empty()).then_some(request.engine.as_str());
        let found = self.translators.find(&source, &target, engine);
        if found.is_none() && violations.is_empty() {
            violations.add(
                "target_language",
                format!(
                    "no {}engine translates {source} to {target}; ListLanguages tells which pairs exist",
                    engine.map(|e| format!("{e} ")).unwrap_or_default()
                ),
            );
        }
        invalid(violations)?;
        let Some((engine, pair)) = found else {
            unreachable!("violations are empty")
        };
        let payload = pb::TranslateNoteRequest {
            id: id.to_string(),
            target_language: pair.target,
            source_language: pair.source,
            engine: engine.name().to_owned(),
            idempotency_key: String::new(),
        };
        let job = self
            .jobs
            .submit(
                &caller.user_id,
                crate::translate::KIND,
                prost::Message::encode_to_vec(&payload),
                SubmitOptions {
                    idempotency_key: Some(request.idempotency_key),
                    max_attempts: 3,
                    ..SubmitOptions::default()
                },
            )
            .await
            .map_err(Status::from)?;
        Ok(Response::new(pb::TranslateNoteResponse {
            job: Some(job_to_proto(&job)),
        }))
    }

    async fn list_languages(
        &self,
        request: Request<pb::ListLanguagesRequest>,
    ) -> Result<Response<pb::ListLanguagesResponse>, Status> {
        principal(&request)?;
        let engines = self
            .translators
            .engines()
            .iter()
            .map(|engine| pb::TranslationEngine {
                name: engine.name().to_owned(),
                pairs: engine
                    .pairs()
                    .iter()
                    .map(|pair| pb::LanguagePair {
                        source_language: pair.source.clone(),
                        target_language: pair.target.clone(),
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(pb::ListLanguagesResponse { engines }))
    }

    async fn get_note_stats(
        &self,
        request: Request<pb::GetNoteStatsRequest>,
    ) -> Result<Response<pb::GetNoteStatsResponse>, Status> {
        let caller = principal(&request)?;
        let stats = self.notes.stats(&caller.user_id).await?;
        Ok(Response::new(stats_to_proto(stats)))
    }
}

// === requests -> domain ===

fn invalid(violations: Violations) -> Result<(), NotesError> {
    violations
        .into_result()
        .map_err(NotesError::InvalidArgument)
}

fn parse_id(field: &str, id: &str) -> Result<Uuid, NotesError> {
    let mut violations = Violations::new();
    let id = violations.check(field, domain::parse_id(id));
    invalid(violations)?;
    Ok(id.unwrap_or_default())
}

fn new_note(request: pb::CreateNoteRequest) -> Result<NewNote, NotesError> {
    let mut violations = Violations::new();
    let Some(note) = request.note else {
        violations.add("note", "is required");
        invalid(violations)?;
        unreachable!("a missing note is a violation")
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
    invalid(violations)?;
    match (title, text, language) {
        (Some(title), Some(original_text), Some(original_language)) => Ok(NewNote {
            title,
            original_text,
            original_language,
        }),
        _ => unreachable!("violations are empty"),
    }
}

fn note_patch(request: pb::UpdateNoteRequest) -> Result<(Uuid, NotePatch), NotesError> {
    let mut violations = Violations::new();
    let Some(note) = request.note else {
        violations.add("note", "is required");
        invalid(violations)?;
        unreachable!("a missing note is a violation")
    };
    let id = violations.check("note.id", domain::parse_id(&note.id));
    let expected_version = violations.check("note.version", domain::validate_version(note.version));

    // With a mask, exactly the named fields change (and must be valid); without one, every
    // updatable field that is set changes.
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
    let mut patch = NotePatch {
        expected_version: expected_version.flatten(),
        ..NotePatch::default()
    };
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
    invalid(violations)?;
    Ok((id.unwrap_or_default(), patch))
}

fn list_query(request: &pb::ListNotesRequest) -> Result<ListQuery, NotesError> {
    let mut violations = Violations::new();
    let page_size = violations.check("page_size", domain::validate_page_size(request.page_size));
    let language = if request.language.is_empty() {
        Some(None)
    } else {
        violations
            .check("language", domain::validate_language(&request.language))
            .map(Some)
    };
    let text = violations.check("query", domain::validate_query(&request.query));
    invalid(violations)?;
    let (Some(page_size), Some(language), Some(text)) = (page_size, language, text) else {
        unreachable!("violations are empty")
    };
    let mut query = ListQuery {
        page_size,
        after: None,
        language,
        text,
    };
    if !request.page_token.is_empty() {
        let after = paging::decode(&request.page_token, &query.filter_key())
            .and_then(|cursor| Uuid::from_slice(&cursor).map_err(|_| PageTokenError::Malformed));
        match after {
            Ok(after) => query.after = Some(after),
            Err(error) => {
                let mut violations = Violations::new();
                violations.add("page_token", error.to_string());
                invalid(violations)?;
            }
        }
    }
    Ok(query)
}

// === domain -> responses ===

fn translation_to_proto(translation: &Translation) -> pb::Translation {
    pb::Translation {
        target_language: translation.target_language.clone(),
        text: translation.text.clone(),
        engine: translation.engine.clone(),
        create_time: Some(timestamp(translation.created_at)),
    }
}

fn note_to_proto(note: &Note) -> pb::Note {
    pb::Note {
        id: note.id.to_string(),
        title: note.title.clone(),
        original_text: note.original_text.clone(),
        original_language: note.original_language.clone(),
        translations: note.translations.iter().map(translation_to_proto).collect(),
        create_time: Some(timestamp(note.created_at)),
        update_time: Some(timestamp(note.updated_at)),
        version: note.version,
    }
}

fn stats_to_proto(stats: NoteStats) -> pb::GetNoteStatsResponse {
    let counts = |counts: Vec<domain::LanguageCount>| {
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
