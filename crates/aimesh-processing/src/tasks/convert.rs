//! Conversions between the task messages of `aimesh.processing.v1` and the tasks domain.

use aimesh_kit::{
    error::{Violations, parse_uuid},
    paging,
    proto::timestamp,
};
use aimesh_proto::processing::v1 as pb;

use super::domain::{
    self, DEFAULT_TARGET_LANGUAGE, NewTask, SentimentScore, SourceKind, Task, TaskOutput,
    TaskQuery, TaskSource, TaskStatus, TaskType,
};
use crate::error::ProcessingError;

fn finish<T: aimesh_kit::error::Checked>(
    violations: Violations,
    values: T,
) -> Result<T::Values, ProcessingError> {
    violations
        .finish(values)
        .map_err(ProcessingError::InvalidArgument)
}

fn task_type(value: i32) -> Result<Option<TaskType>, &'static str> {
    Ok(
        match pb::TaskType::try_from(value).map_err(|_| "is not a known task type")? {
            pb::TaskType::Unspecified => None,
            pb::TaskType::Summarize => Some(TaskType::Summarize),
            pb::TaskType::Keywords => Some(TaskType::Keywords),
            pb::TaskType::Sentiment => Some(TaskType::Sentiment),
            pb::TaskType::Translate => Some(TaskType::Translate),
            pb::TaskType::Qa => Some(TaskType::Qa),
        },
    )
}

fn task_status(value: i32) -> Result<Option<TaskStatus>, &'static str> {
    Ok(
        match pb::TaskStatus::try_from(value).map_err(|_| "is not a known status")? {
            pb::TaskStatus::Unspecified => None,
            pb::TaskStatus::Queued => Some(TaskStatus::Queued),
            pb::TaskStatus::Running => Some(TaskStatus::Running),
            pb::TaskStatus::Succeeded => Some(TaskStatus::Succeeded),
            pb::TaskStatus::Failed => Some(TaskStatus::Failed),
            pb::TaskStatus::Cancelled => Some(TaskStatus::Cancelled),
        },
    )
}

impl TryFrom<pb::SubmitTaskRequest> for NewTask {
    type Error = ProcessingError;

    fn try_from(request: pb::SubmitTaskRequest) -> Result<Self, Self::Error> {
        use pb::task_source::Kind;
        let mut violations = Violations::new();
        let source = match request.source.and_then(|s| s.kind) {
            None => {
                violations.add(
                    "source",
                    "must name a document_id, a note_id or a transcription_id",
                );
                None
            }
            Some(Kind::DocumentId(id)) => violations
                .check("source.document_id", parse_uuid(&id))
                .map(|id| TaskSource {
                    kind: SourceKind::Document,
                    id,
                }),
            Some(Kind::NoteId(id)) => {
                violations
                    .check("source.note_id", parse_uuid(&id))
                    .map(|id| TaskSource {
                        kind: SourceKind::Note,
                        id,
                    })
            }
            Some(Kind::TranscriptionId(id)) => violations
                .check("source.transcription_id", parse_uuid(&id))
                .map(|id| TaskSource {
                    kind: SourceKind::Transcription,
                    id,
                }),
        };
        let kind = violations.check(
            "type",
            task_type(request.r#type).and_then(|t| t.ok_or("must be set")),
        );
        let options = request.translate.unwrap_or_default();
        let target = if options.target_language.trim().is_empty() {
            Some(DEFAULT_TARGET_LANGUAGE.to_owned())
        } else {
            violations.check(
                "translate.target_language",
                domain::validate_language(&options.target_language),
            )
        };
        let source_language = if options.source_language.trim().is_empty() {
            Some(None)
        } else {
            violations
                .check(
                    "translate.source_language",
                    domain::validate_language(&options.source_language),
                )
                .map(Some)
        };
        let (source, task_type, target_language, source_language) =
            finish(violations, (source, kind, target, source_language))?;
        Ok(NewTask {
            source,
            task_type,
            target_language,
            source_language,
        })
    }
}

impl TryFrom<&pb::ListTasksRequest> for TaskQuery {
    type Error = ProcessingError;

    fn try_from(request: &pb::ListTasksRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let page_size = violations.check(
            "page_size",
            crate::domain::validate_page_size(request.page_size),
        );
        let document_id = if request.document_id.is_empty() {
            Some(None)
        } else {
            violations
                .check("document_id", parse_uuid(&request.document_id))
                .map(Some)
        };
        let kind = violations.check("type", task_type(request.r#type));
        let status = violations.check("status", task_status(request.status));
        let (page_size, document_id, task_type, status) =
            finish(violations, (page_size, document_id, kind, status))?;
        let mut query = TaskQuery {
            page_size,
            after: None,
            document_id,
            task_type,
            status,
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

// === domain -> responses ===

impl From<TaskType> for pb::TaskType {
    fn from(kind: TaskType) -> Self {
        match kind {
            TaskType::Summarize => pb::TaskType::Summarize,
            TaskType::Keywords => pb::TaskType::Keywords,
            TaskType::Sentiment => pb::TaskType::Sentiment,
            TaskType::Translate => pb::TaskType::Translate,
            TaskType::Qa => pb::TaskType::Qa,
        }
    }
}

impl From<TaskStatus> for pb::TaskStatus {
    fn from(status: TaskStatus) -> Self {
        match status {
            TaskStatus::Queued => pb::TaskStatus::Queued,
            TaskStatus::Running => pb::TaskStatus::Running,
            TaskStatus::Succeeded => pb::TaskStatus::Succeeded,
            TaskStatus::Failed => pb::TaskStatus::Failed,
            TaskStatus::Cancelled => pb::TaskStatus::Cancelled,
        }
    }
}

impl From<&SentimentScore> for pb::SentimentScore {
    fn from(score: &SentimentScore) -> Self {
        pb::SentimentScore {
            label: score.label.clone(),
            confidence: score.confidence,
            score: score.score,
        }
    }
}

impl From<&TaskOutput> for pb::task_result::Kind {
    fn from(output: &TaskOutput) -> Self {
        use pb::task_result::Kind;
        match output {
            TaskOutput::Summary {
                sentences,
                total_sentences,
            } => Kind::Summary(pb::SummaryResult {
                sentences: sentences.clone(),
                text: sentences.join(" "),
                total_sentences: *total_sentences as i32,
            }),
            TaskOutput::Keywords { keywords } => Kind::Keywords(pb::KeywordsResult {
                keywords: keywords
                    .iter()
                    .enumerate()
                    .map(|(i, (phrase, score))| pb::RankedPhrase {
                        rank: i as i32 + 1,
                        phrase: phrase.clone(),
                        score: *score,
                    })
                    .collect(),
            }),
            TaskOutput::Sentiment { overall, sections } => Kind::Sentiment(pb::SentimentResult {
                overall: Some(overall.into()),
                sections: sections
                    .iter()
                    .enumerate()
                    .map(|(i, section)| pb::SectionSentiment {
                        index: i as i32,
                        title: section.title.clone(),
                        sentiment: Some((&section.sentiment).into()),
                    })
                    .collect(),
            }),
            TaskOutput::Translation {
                source_language,
                source_detected,
                target_language,
                text,
            } => Kind::Translation(pb::TranslationResult {
                source_language: source_language.clone(),
                source_detected: *source_detected,
                target_language: target_language.clone(),
                text: text.clone(),
            }),
            TaskOutput::Qa { pairs } => Kind::Qa(pb::QaResult {
                pairs: pairs
                    .iter()
                    .map(|pair| pb::QaPair {
                        question: pair.question.clone(),
                        answer: pair.answer.clone(),
                        passage: Some(pb::Passage {
                            text: pair.passage.clone(),
                            sentence_index: pair.sentence_index as i32,
                        }),
                        follow_ups: pair.follow_ups.clone(),
                    })
                    .collect(),
            }),
        }
    }
}

impl From<&Task> for pb::Task {
    fn from(task: &Task) -> Self {
        use pb::task_source::Kind;
        let id = task.source.id.to_string();
        let source = match task.source.kind {
            SourceKind::Document => Kind::DocumentId(id),
            SourceKind::Note => Kind::NoteId(id),
            SourceKind::Transcription => Kind::TranscriptionId(id),
        };
        pb::Task {
            id: task.id.to_string(),
            source: Some(pb::TaskSource { kind: Some(source) }),
            r#type: pb::TaskType::from(task.task_type).into(),
            status: pb::TaskStatus::from(task.status).into(),
            job_id: task.job_id.map(|id| id.to_string()).unwrap_or_default(),
            failure_reason: task.failure_reason.clone().unwrap_or_default(),
            translate: task.translate.as_ref().map(|spec| pb::TranslateOptions {
                target_language: spec.target_language.clone(),
                source_language: spec.source_language.clone(),
            }),
            result: task.result.as_ref().map(|result| pb::TaskResult {
                engine: result.engine.clone(),
                kind: Some((&result.output).into()),
            }),
            create_time: Some(timestamp(task.created_at)),
            update_time: Some(timestamp(task.updated_at)),
        }
    }
}
