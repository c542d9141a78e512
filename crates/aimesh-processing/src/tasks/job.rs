//! Running tasks as jobs. `processing.task` (summaries, key phrases, sentiment, questions)
//! needs the embeddings engine; `processing.task.translate` needs a translation engine, so a
//! worker claims only the kinds it has engines for. The handler marks the task RUNNING, reads
//! its source again, runs the engine and stores the typed result with the task SUCCEEDED;
//! a failure that will not be retried leaves the task FAILED (or CANCELLED), never RUNNING.

use std::sync::Arc;

use aimesh_ai::{
    analysis::{
        Analyzer, MAX_TEXT_BYTES,
        sentiment::{self, Sentiment},
        study::{prose, sections},
        text,
    },
    engine::EngineError,
    translate::{LanguagePair, Translators, segment},
};
use aimesh_jobs::{JobContext, JobError, JobHandler, JobOutput};
use aimesh_proto::processing::v1 as pb;
use futures::future::BoxFuture;

use super::{
    domain::{
        KEYWORDS, QA_PAIRS, SectionSentiment, SentimentScore, Task, TaskJob, TaskOutput,
        TaskResult, TaskStatus, TaskType, sentiment_confidence, summary_length,
    },
    service::Tasks,
};
use crate::{domain::now, error::ProcessingError};

/// The job kind of tasks the embeddings engine runs.
pub const KIND: &str = "processing.task";
/// The job kind of translation tasks.
pub const TRANSLATE_KIND: &str = "processing.task.translate";

/// Words of a section's text that make its title when it has no heading.
const TITLE_WORDS: usize = 6;

/// Runs task jobs of one kind ([`KIND`] or [`TRANSLATE_KIND`]); their payload is a
/// [`TaskJob`] (JSON).
pub struct TaskHandler {
    tasks: Tasks,
    kind: &'static str,
}

impl TaskHandler {
    /// The handler of [`KIND`] (needs the embeddings engine).
    pub fn analysis(tasks: Tasks) -> Self {
        Self { tasks, kind: KIND }
    }

    /// The handler of [`TRANSLATE_KIND`] (needs a translation engine).
    pub fn translation(tasks: Tasks) -> Self {
        Self {
            tasks,
            kind: TRANSLATE_KIND,
        }
    }
}

impl JobHandler for TaskHandler {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let tasks = self.tasks.clone();
        Box::pin(async move {
            let last_attempt = ctx.job.attempts >= ctx.job.max_attempts;
            let payload = ctx.job.payload.clone();
            let outcome = run(tasks.clone(), ctx).await;
            let ended = match &outcome {
                Err(JobError::Permanent(reason)) => Some((TaskStatus::Failed, reason.clone())),
                Err(JobError::Retryable(reason)) if last_attempt => {
                    Some((TaskStatus::Failed, reason.clone()))
                }
                Err(JobError::Cancelled) => {
                    Some((TaskStatus::Cancelled, "the job was cancelled".to_owned()))
                }
                _ => None,
            };
            if let (Some((status, reason)), Ok(request)) =
                (ended, serde_json::from_slice::<TaskJob>(&payload))
            {
                let _ = tasks
                    .store()
                    .set_status(request.task_id, status, Some(&reason), now())
                    .await;
            }
            outcome
        })
    }
}

fn retryable(error: ProcessingError) -> JobError {
    match error {
        ProcessingError::DocumentNotFound(_) | ProcessingError::NoteNotFound(_) => {
            JobError::Permanent("the task's source no longer exists".into())
        }
        ProcessingError::NotReady(reason) => JobError::Permanent(reason),
        other => JobError::Retryable(other.to_string()),
    }
}

fn engine_failure(error: EngineError) -> JobError {
    match error {
        EngineError::InvalidInput { .. } => JobError::Permanent(error.to_string()),
        other => JobError::Retryable(other.to_string()),
    }
}

/// The longest prefix of `text` the analyses take, cut at a character boundary.
fn bounded(text: &str) -> &str {
    if text.len() <= MAX_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

async fn run(tasks: Tasks, ctx: JobContext) -> Result<JobOutput, JobError> {
    let request: TaskJob = serde_json::from_slice(&ctx.job.payload)
        .map_err(|e| JobError::Permanent(format!("unreadable job payload: {e}")))?;
    let owner = ctx.job.owner_id.clone();
    let task = tasks
        .store()
        .get(request.task_id)
        .await
        .map_err(retryable)?
        .filter(|task| task.owner_id == owner)
        .ok_or_else(|| JobError::Permanent("the task no longer exists".into()))?;
    if task.status.is_terminal() {
        return Err(JobError::Permanent(format!(
            "the task is already {}",
            task.status
        )));
    }
    tasks
        .store()
        .set_status(task.id, TaskStatus::Running, None, now())
        .await
        .map_err(retryable)?;
    ctx.progress(5, "reading the source", "").await;
    let source = tasks
        .source_text(&owner, task.source)
        .await
        .map_err(retryable)?;
    let text = bounded(&source.text);
    let result = match task.task_type {
        TaskType::Translate => translate(&tasks, &task, text, &ctx).await?,
        kind => {
            let analyzer = Analyzer::new(
                tasks
                    .processing()
                    .embedder()
                    .map_err(|e| JobError::Retryable(e.to_string()))?
                    .clone(),
            );
            ctx.progress(
                20,
                &format!("{}: analysing", kind.as_str().to_lowercase()),
                "",
            )
            .await;
            let analysed = tokio::select! {
                _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
                analysed = analyse(&analyzer, kind, text) => analysed,
            };
            analysed.map_err(engine_failure)?
        }
    };
    if ctx.cancel.is_cancelled() {
        return Err(JobError::Cancelled);
    }
    let at = now();
    if !tasks
        .store()
        .succeed(task.id, &result, at)
        .await
        .map_err(retryable)?
    {
        return Err(JobError::Permanent(
            "the task ended while it ran (cancelled or failed)".into(),
        ));
    }
    let done = Task {
        status: TaskStatus::Succeeded,
        result: Some(result),
        updated_at: at,
        ..task
    };
    Ok(JobOutput::message(&pb::Task::from(&done)))
}

/// Runs an analysis task.
async fn analyse(
    analyzer: &Analyzer,
    kind: TaskType,
    text: &str,
) -> Result<TaskResult, EngineError> {
    Ok(match kind {
        TaskType::Summarize => {
            // Sentences of the prose: a heading is no sentence of a summary.
            let prose = prose(text);
            let total = text::sentences(&prose).len();
            let summary = analyzer.summarize(&prose, summary_length(total)).await?;
            TaskResult {
                engine: summary.engine,
                output: TaskOutput::Summary {
                    sentences: summary.sentences.into_iter().map(|s| s.text).collect(),
                    total_sentences: summary.total_sentences,
                },
            }
        }
        TaskType::Keywords => {
            let keywords = analyzer.keywords(&prose(text), KEYWORDS).await?;
            let mut ranked: Vec<(String, f32)> = keywords
                .keywords
                .into_iter()
                .map(|k| (k.phrase, k.score))
                .collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            TaskResult {
                engine: keywords.engine,
                output: TaskOutput::Keywords { keywords: ranked },
            }
        }
        TaskType::Sentiment => {
            let overall = analyzer.sentiment(text)?;
            let sections = sections(text)
                .into_iter()
                .map(|section| {
                    let title = section.heading.clone().unwrap_or_else(|| {
                        let words = text::words(&section.text);
                        let mut title = words
                            .iter()
                            .take(TITLE_WORDS)
                            .copied()
                            .collect::<Vec<_>>()
                            .join(" ");
                        if words.len() > TITLE_WORDS {
                            title.push('…');
                        }
                        title
                    });
                    SectionSentiment {
                        title,
                        sentiment: score(&sentiment::analyze(&section.text)),
                    }
                })
                .collect();
            TaskResult {
                engine: overall.engine.to_owned(),
                output: TaskOutput::Sentiment {
                    overall: score(&overall),
                    sections,
                },
            }
        }
        TaskType::Qa => {
            let qa = analyzer.questions(text, QA_PAIRS).await?;
            TaskResult {
                engine: qa.engine,
                output: TaskOutput::Qa { pairs: qa.pairs },
            }
        }
        TaskType::Translate => {
            return Err(EngineError::invalid(
                "type",
                "a translation is not an analysis",
            ));
        }
    })
}

fn score(sentiment: &Sentiment) -> SentimentScore {
    let label = sentiment.label.as_str();
    SentimentScore {
        label: label.to_owned(),
        confidence: sentiment_confidence(label, sentiment.score),
        score: sentiment.score,
    }
}

/// Runs a translation task segment by segment, reporting the text so far.
async fn translate(
    tasks: &Tasks,
    task: &Task,
    text: &str,
    ctx: &JobContext,
) -> Result<TaskResult, JobError> {
    let spec = task
        .translate
        .clone()
        .ok_or_else(|| JobError::Permanent("the task has no translation options".into()))?;
    let translators: &Arc<Translators> = tasks.translators();
    let engine = translators.get(&spec.engine).ok_or_else(|| {
        JobError::Retryable(format!(
            "engine {} is not available on this worker",
            spec.engine
        ))
    })?;
    let pair = LanguagePair {
        source: spec.source_language.clone(),
        target: spec.target_language.clone(),
    };
    let segments = segment::split(text);
    let total = segments.len().max(1);
    let mut translated: Vec<String> = Vec::with_capacity(segments.len());
    for (done, piece) in segments.iter().enumerate() {
        let out = tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
            out = engine.translate(&pair, &piece.text) => {
                out.map_err(|e| JobError::Retryable(e.to_string()))?
            }
        };
        translated.push(out);
        let partial = segment::join(
            translated
                .iter()
                .zip(&segments)
                .map(|(text, piece)| (text.as_str(), piece.separator.as_str())),
        );
        let percent = 10 + ((done + 1) * 85 / total) as i32;
        ctx.progress(
            percent.min(95),
            &format!("translate: {} of {total} segments", done + 1),
            &partial,
        )
        .await;
    }
    let text = segment::join(
        translated
            .iter()
            .zip(&segments)
            .map(|(text, piece)| (text.as_str(), piece.separator.as_str())),
    );
    Ok(TaskResult {
        engine: engine.name().to_owned(),
        output: TaskOutput::Translation {
            source_language: spec.source_language,
            source_detected: spec.source_detected,
            target_language: spec.target_language,
            text,
        },
    })
}
