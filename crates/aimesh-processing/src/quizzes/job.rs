//! Generating quizzes as jobs: the `processing.quiz` handler reads the document's text, writes
//! the questions with the embeddings engine and stores them with the quiz READY. A quiz whose
//! generation will not be retried ends FAILED, never PENDING.

use aimesh_ai::analysis::{Analyzer, MAX_TEXT_BYTES};
use aimesh_jobs::{JobContext, JobError, JobHandler, JobOutput};
use futures::future::BoxFuture;

use super::{
    domain::{QuizJob, QuizStatus},
    service::Quizzes,
};
use crate::{
    domain::{Status, now},
    error::ProcessingError,
};

/// The job kind of quiz generation.
pub const KIND: &str = "processing.quiz";

/// Runs `processing.quiz` jobs; their payload is a [`QuizJob`] (JSON).
pub struct QuizHandler {
    quizzes: Quizzes,
}

impl QuizHandler {
    /// Creates the handler.
    pub fn new(quizzes: Quizzes) -> Self {
        Self { quizzes }
    }
}

impl JobHandler for QuizHandler {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let quizzes = self.quizzes.clone();
        Box::pin(async move {
            let last_attempt = ctx.job.attempts >= ctx.job.max_attempts;
            let payload = ctx.job.payload.clone();
            let outcome = generate(quizzes.clone(), ctx).await;
            let reason = match &outcome {
                Err(JobError::Permanent(reason)) => Some(reason.clone()),
                Err(JobError::Retryable(reason)) if last_attempt => Some(reason.clone()),
                Err(JobError::Cancelled) => Some("the job was cancelled".to_owned()),
                _ => None,
            };
            if let (Some(reason), Ok(request)) =
                (reason, serde_json::from_slice::<QuizJob>(&payload))
            {
                let _ = quizzes.store().fail(request.quiz_id, &reason, now()).await;
            }
            outcome
        })
    }
}

fn retryable(error: ProcessingError) -> JobError {
    match error {
        ProcessingError::DocumentNotFound(_) => {
            JobError::Permanent("the quiz's document no longer exists".into())
        }
        other => JobError::Retryable(other.to_string()),
    }
}

async fn generate(quizzes: Quizzes, ctx: JobContext) -> Result<JobOutput, JobError> {
    let request: QuizJob = serde_json::from_slice(&ctx.job.payload)
        .map_err(|e| JobError::Permanent(format!("unreadable job payload: {e}")))?;
    let owner = ctx.job.owner_id.clone();
    let quiz = quizzes
        .get(&owner, request.quiz_id)
        .await
        .map_err(|error| match error {
            ProcessingError::QuizNotFound(_) => {
                JobError::Permanent("the quiz no longer exists".into())
            }
            other => JobError::Retryable(other.to_string()),
        })?;
    if quiz.status != QuizStatus::Pending {
        return Err(JobError::Permanent(format!(
            "the quiz is already {}",
            quiz.status
        )));
    }
    let document = quizzes
        .processing()
        .get(&owner, quiz.document_id)
        .await
        .map_err(retryable)?;
    if document.status != Status::Ready {
        return Err(JobError::Permanent(format!(
            "the document is {}, not READY",
            document.status
        )));
    }
    let mut text = document.text.unwrap_or_default();
    if text.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    let analyzer = Analyzer::new(
        quizzes
            .processing()
            .embedder()
            .map_err(|e| JobError::Retryable(e.to_string()))?
            .clone(),
    );
    ctx.progress(
        10,
        &format!("quiz: writing {} questions", quiz.num_questions),
        "",
    )
    .await;
    let kinds = quiz.kind.question_kinds();
    let draft = tokio::select! {
        _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        draft = analyzer.quiz(
            &text,
            quiz.num_questions as usize,
            quiz.difficulty.level(),
            &kinds,
        ) => draft.map_err(|e| match e {
            aimesh_ai::engine::EngineError::InvalidInput { .. } => JobError::Permanent(e.to_string()),
            other => JobError::Retryable(other.to_string()),
        })?,
    };
    if draft.questions.is_empty() {
        return Err(JobError::Permanent(
            "the document has no sentence a question can be made from".into(),
        ));
    }
    let at = now();
    if !quizzes
        .store()
        .ready(quiz.id, &draft.engine, &draft.questions, at)
        .await
        .map_err(retryable)?
    {
        return Err(JobError::Permanent(
            "the quiz ended while it was written".into(),
        ));
    }
    let ready = super::domain::Quiz {
        status: QuizStatus::Ready,
        engine: Some(draft.engine),
        questions: draft.questions,
        updated_at: at,
        ..quiz
    };
    Ok(JobOutput::message(&super::convert::quiz_to_proto(
        &ready, false,
    )))
}
