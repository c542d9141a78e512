//! Tasks domain logic: reading the source (a READY document, a note through the
//! [`NoteSource`] port, a READY transcription through the [`TranscriptionSource`] port),
//! resolving a translation's languages and engine, submitting the job,
//! ownership, and keeping a task's status in step with its job. No tonic, no SQL.

use std::sync::Arc;

use aimesh_ai::translate::{Translators, detect::detect_language};
use aimesh_jobs::{Job, JobState, Jobs, SubmitOptions};
use uuid::Uuid;

use super::{
    domain::{
        NewTask, SourceKind, Task, TaskJob, TaskPage, TaskQuery, TaskSource, TaskStatus, TaskType,
        TranslateSpec,
    },
    store::TaskStore,
};
use crate::{
    domain::{Status, now},
    error::{ProcessingError, ProcessingResult},
    service::Processing,
    sources::{NoteSource, TranscriptionSource},
};

/// Attempts a task's job gets before it fails for good.
const TASK_ATTEMPTS: i32 = 3;

/// A source's text, read for a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceText {
    /// The text.
    pub text: String,
    /// Its language, when the source records one (notes do).
    pub language: Option<String>,
}

/// The tasks service.
#[derive(Clone)]
pub struct Tasks {
    store: TaskStore,
    processing: Processing,
    jobs: Jobs,
    notes: Option<Arc<dyn NoteSource>>,
    transcriptions: Option<Arc<dyn TranscriptionSource>>,
    translators: Arc<Translators>,
}

impl Tasks {
    /// Creates the service: documents come from `processing`, notes from `notes` (without
    /// it, a note source is refused as unavailable), translations from `translators`.
    pub fn new(
        store: TaskStore,
        processing: Processing,
        jobs: Jobs,
        notes: Option<Arc<dyn NoteSource>>,
        translators: Arc<Translators>,
    ) -> Self {
        Self {
            store,
            processing,
            jobs,
            notes,
            transcriptions: None,
            translators,
        }
    }

    /// Reads transcriptions from `source` (without it, a transcription source is refused as
    /// unavailable).
    pub fn with_transcriptions(mut self, source: Arc<dyn TranscriptionSource>) -> Self {
        self.transcriptions = Some(source);
        self
    }

    /// Returns the store.
    pub fn store(&self) -> &TaskStore {
        &self.store
    }

    /// Returns the processing service (documents, the embeddings engine).
    pub fn processing(&self) -> &Processing {
        &self.processing
    }

    /// Returns the translation engines.
    pub fn translators(&self) -> &Arc<Translators> {
        &self.translators
    }

    /// Reads `owner`'s source text: a READY document, a note or a READY transcription.
    pub async fn source_text(
        &self,
        owner: &str,
        source: TaskSource,
    ) -> ProcessingResult<SourceText> {
        match source.kind {
            SourceKind::Document => {
                let document = self.processing.get(owner, source.id).await?;
                if document.status != Status::Ready {
                    return Err(ProcessingError::NotReady(format!(
                        "document {} is {}: tasks run on READY documents (watch its job {} to \
                         know when it is)",
                        document.id,
                        document.status,
                        document.job_id.map(|id| id.to_string()).unwrap_or_default()
                    )));
                }
                Ok(SourceText {
                    text: document.text.unwrap_or_default(),
                    language: None,
                })
            }
            SourceKind::Note => {
                let notes = self.notes.as_ref().ok_or_else(|| {
                    ProcessingError::EngineUnavailable(
                        "notes are not readable from this process".into(),
                    )
                })?;
                let note = notes
                    .note(owner, source.id)
                    .await
                    .map_err(ProcessingError::Internal)?
                    .ok_or(ProcessingError::NoteNotFound(source.id))?;
                Ok(SourceText {
                    text: note.text,
                    language: Some(note.language).filter(|l| !l.is_empty()),
                })
            }
            SourceKind::Transcription => {
                let transcriptions = self.transcriptions.as_ref().ok_or_else(|| {
                    ProcessingError::EngineUnavailable(
                        "transcriptions are not readable from this process".into(),
                    )
                })?;
                let transcription = transcriptions
                    .transcription(owner, source.id)
                    .await
                    .map_err(ProcessingError::Internal)?
                    .ok_or(ProcessingError::TranscriptionNotFound(source.id))?;
                if !transcription.ready {
                    return Err(ProcessingError::NotReady(format!(
                        "transcription {} is {}: tasks run on READY transcriptions (watch its \
                         job {} to know when it is)",
                        transcription.id,
                        transcription.status,
                        transcription
                            .job_id
                            .map(|id| id.to_string())
                            .unwrap_or_default()
                    )));
                }
                Ok(SourceText {
                    text: transcription.text,
                    language: Some(transcription.language).filter(|l| !l.is_empty()),
                })
            }
        }
    }

    /// Starts a task for `owner` and returns it (QUEUED) with its job. The source must be
    /// readable now; a translation's languages and engine are resolved now, so a pair no
    /// engine offers is refused here, not as a failed job.
    pub async fn submit(&self, owner: &str, new: NewTask) -> ProcessingResult<(Task, Job)> {
        let source = self.source_text(owner, new.source).await?;
        if source.text.trim().is_empty() {
            return Err(ProcessingError::NotReady(format!(
                "the {} has no text to work on",
                new.source.kind.as_str().to_lowercase()
            )));
        }
        let translate = match new.task_type {
            TaskType::Translate => Some(self.resolve_translation(&new, &source)?),
            _ => None,
        };
        let at = now();
        let mut task = Task {
            id: Uuid::now_v7(),
            owner_id: owner.to_owned(),
            source: new.source,
            task_type: new.task_type,
            status: TaskStatus::Queued,
            failure_reason: None,
            job_id: None,
            translate,
            result: None,
            created_at: at,
            updated_at: at,
        };
        // The task exists before its job: a fast worker finds it, and recording the job
        // afterwards does not touch the status the worker sets.
        self.store.insert(&task).await?;
        let payload = serde_json::to_vec(&TaskJob { task_id: task.id }).map_err(|error| {
            ProcessingError::Internal(format!("failed to encode the job payload: {error}"))
        })?;
        let kind = match task.task_type {
            TaskType::Translate => super::job::TRANSLATE_KIND,
            _ => super::job::KIND,
        };
        let submitted = self
            .jobs
            .submit(
                owner,
                kind,
                payload,
                SubmitOptions {
                    max_attempts: TASK_ATTEMPTS,
                    ..SubmitOptions::default()
                },
            )
            .await;
        let job = match submitted {
            Ok(job) => job,
            Err(error) => {
                let _ = self.store.delete(task.id).await;
                return Err(error.into());
            }
        };
        self.store.set_job(task.id, job.id).await?;
        task.job_id = Some(job.id);
        Ok((task, job))
    }

    fn resolve_translation(
        &self,
        new: &NewTask,
        source: &SourceText,
    ) -> ProcessingResult<TranslateSpec> {
        let target = new.target_language.clone();
        let (source_language, detected) = match (&new.source_language, &source.language) {
            (Some(given), _) => (given.clone(), false),
            (None, Some(recorded)) => (recorded.clone(), false),
            (None, None) => {
                let found = detect_language(&source.text).ok_or_else(|| {
                    ProcessingError::invalid(
                        "translate.source_language",
                        "the text's language could not be detected: give it",
                    )
                })?;
                (found.tag, true)
            }
        };
        let primary = |tag: &str| tag.split('-').next().unwrap_or(tag).to_ascii_lowercase();
        if primary(&source_language) == primary(&target) {
            return Err(ProcessingError::invalid(
                "translate.target_language",
                format!(
                    "the text is already in {source_language}{}: choose another target language",
                    if detected { " (detected)" } else { "" }
                ),
            ));
        }
        let Some((engine, pair)) = self.translators.find(&source_language, &target, None) else {
            return Err(ProcessingError::invalid(
                "translate.target_language",
                format!(
                    "no engine here translates {source_language}{} to {target}; \
                     aimesh.notes.v1.NotesService/ListLanguages tells which pairs exist",
                    if detected { " (detected)" } else { "" }
                ),
            ));
        };
        Ok(TranslateSpec {
            source_language: pair.source,
            source_detected: detected,
            target_language: pair.target,
            engine: engine.name().to_owned(),
        })
    }

    /// Returns `owner`'s task, its status brought in step with its job.
    pub async fn get(&self, owner: &str, id: Uuid) -> ProcessingResult<Task> {
        let task = match self.store.get(id).await? {
            Some(task) if task.owner_id == owner => task,
            _ => return Err(ProcessingError::TaskNotFound(id)),
        };
        self.reconcile(task).await
    }

    /// Lists `owner`'s tasks.
    pub async fn list(&self, owner: &str, query: &TaskQuery) -> ProcessingResult<TaskPage> {
        let mut page = self.store.list(owner, query).await?;
        let mut tasks = Vec::with_capacity(page.tasks.len());
        for task in page.tasks {
            tasks.push(self.reconcile(task).await?);
        }
        page.tasks = tasks;
        Ok(page)
    }

    /// A task whose job ended without the task noticing (cancelled while queued, failed
    /// past its handler) takes the job's outcome.
    async fn reconcile(&self, task: Task) -> ProcessingResult<Task> {
        let Some(job_id) = task.job_id.filter(|_| !task.status.is_terminal()) else {
            return Ok(task);
        };
        let Ok(job) = self.jobs.get(&task.owner_id, job_id).await else {
            return Ok(task);
        };
        let (status, reason) = match job.state {
            JobState::Failed => (
                TaskStatus::Failed,
                job.error.clone().unwrap_or_else(|| "the job failed".into()),
            ),
            JobState::Cancelled => (TaskStatus::Cancelled, "the job was cancelled".to_owned()),
            _ => return Ok(task),
        };
        self.store
            .set_status(task.id, status, Some(&reason), now())
            .await?;
        Ok(self.store.get(task.id).await?.unwrap_or(task))
    }
}
