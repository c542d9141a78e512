//! Translating notes as jobs: the `notes.translate` job handler. It translates the note's text
//! segment by segment (reporting progress and the text so far, and stopping between segments
//! when cancelled), stores the translation on the note — an upsert, so a repeated attempt
//! leaves exactly one translation — and invalidates the note's cached copy.

use std::sync::Arc;

use aimesh_ai::translate::{LanguagePair, Translators, segment};
use aimesh_jobs::{JobContext, JobError, JobHandler, JobOutput};
use aimesh_proto::notes::v1 as pb;
use futures::future::BoxFuture;

use crate::{
    domain::{Translation, TranslationJob, now},
    error::NotesError,
    service::Notes,
};

/// The job kind of note translations.
pub const KIND: &str = "notes.translate";

/// Runs `notes.translate` jobs. Their payload is a [`TranslationJob`] (JSON) with the source
/// language and engine resolved at submission.
pub struct TranslateHandler {
    notes: Notes,
    translators: Arc<Translators>,
}

impl TranslateHandler {
    /// Creates the handler.
    pub fn new(notes: Notes, translators: Arc<Translators>) -> Self {
        Self { notes, translators }
    }
}

impl JobHandler for TranslateHandler {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let notes = self.notes.clone();
        let translators = self.translators.clone();
        Box::pin(async move { translate(notes, translators, ctx).await })
    }
}

async fn translate(
    notes: Notes,
    translators: Arc<Translators>,
    ctx: JobContext,
) -> Result<JobOutput, JobError> {
    let request: TranslationJob = serde_json::from_slice(&ctx.job.payload)
        .map_err(|e| JobError::Permanent(format!("unreadable job payload: {e}")))?;
    let id = request.note_id;
    let owner = ctx.job.owner_id.clone();
    let note = notes.get(&owner, id).await.map_err(|error| match error {
        NotesError::NotFound(_) => JobError::Permanent("the note no longer exists".into()),
        other => JobError::Retryable(other.to_string()),
    })?;
    let engine = translators.get(&request.engine).ok_or_else(|| {
        JobError::Permanent(format!(
            "engine {} is not available on this worker",
            request.engine
        ))
    })?;
    let pair = LanguagePair {
        source: request.source_language.clone(),
        target: request.target_language.clone(),
    };

    let segments = segment::split(&note.original_text);
    let total = segments.len().max(1);
    let mut translated: Vec<String> = Vec::with_capacity(segments.len());
    ctx.progress(
        0,
        &format!("translating {total} segments with {}", engine.name()),
        "",
    )
    .await;
    for (done, piece) in segments.iter().enumerate() {
        let started = std::time::Instant::now();
        let text = tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
            text = engine.translate(&pair, &piece.text) => {
                text.map_err(|e| JobError::Retryable(e.to_string()))?
            }
        };
        metrics::histogram!(
            "aimesh_inference_duration_seconds",
            "engine" => engine.name(),
            "task" => "translate"
        )
        .record(started.elapsed().as_secs_f64());
        translated.push(text);
        let partial = segment::join(
            translated
                .iter()
                .zip(&segments)
                .map(|(text, piece)| (text.as_str(), piece.separator.as_str())),
        );
        let percent = ((done + 1) * 100 / total) as i32;
        ctx.progress(
            percent.min(99),
            &format!("translated {} of {total} segments", done + 1),
            &partial,
        )
        .await;
    }
    if ctx.cancel.is_cancelled() {
        return Err(JobError::Cancelled);
    }
    let text = segment::join(
        translated
            .iter()
            .zip(&segments)
            .map(|(text, piece)| (text.as_str(), piece.separator.as_str())),
    );
    let translation = Translation {
        target_language: request.target_language.clone(),
        text: text.clone(),
        engine: engine.name().to_owned(),
        created_at: now(),
    };
    notes
        .put_translation(&owner, id, &translation)
        .await
        .map_err(|error| match error {
            NotesError::NotFound(_) => JobError::Permanent("the note no longer exists".into()),
            other => JobError::Retryable(other.to_string()),
        })?;
    Ok(JobOutput::message(&pb::TranslateNoteResult {
        note_id: id.to_string(),
        source_language: request.source_language,
        target_language: request.target_language,
        engine: engine.name().to_owned(),
        text,
    }))
}
