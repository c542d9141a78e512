//! Conversions between the quiz messages of `aimesh.processing.v1` and the quizzes domain.

use aimesh_ai::analysis::study::QuestionKind;
use aimesh_kit::{
    error::{Violations, parse_uuid},
    paging,
    proto::timestamp,
};
use aimesh_proto::processing::v1 as pb;

use super::domain::{
    ANSWER_MAX_CHARS, Answers, Difficulty, Graded, HistoryQuery, NewQuiz, Quiz, QuizKind,
    QuizStats, QuizStatus, Submission, question_id, validate_num_questions,
};
use crate::{convert::parse_id, error::ProcessingError};

fn finish<T: aimesh_kit::error::Checked>(
    violations: Violations,
    values: T,
) -> Result<T::Values, ProcessingError> {
    violations
        .finish(values)
        .map_err(ProcessingError::InvalidArgument)
}

impl TryFrom<pb::GenerateQuizRequest> for NewQuiz {
    type Error = ProcessingError;

    fn try_from(request: pb::GenerateQuizRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let document_id = violations.check("document_id", parse_uuid(&request.document_id));
        let num_questions = violations.check(
            "num_questions",
            validate_num_questions(request.num_questions),
        );
        let difficulty = violations.check(
            "difficulty",
            pb::Difficulty::try_from(request.difficulty)
                .map(|d| match d {
                    pb::Difficulty::Easy => Difficulty::Easy,
                    pb::Difficulty::Unspecified | pb::Difficulty::Medium => Difficulty::Medium,
                    pb::Difficulty::Hard => Difficulty::Hard,
                })
                .map_err(|_| "is not a known difficulty"),
        );
        let kind = violations.check(
            "quiz_type",
            pb::QuizType::try_from(request.quiz_type)
                .map(|t| match t {
                    pb::QuizType::Unspecified | pb::QuizType::MultipleChoice => {
                        QuizKind::MultipleChoice
                    }
                    pb::QuizType::TrueFalse => QuizKind::TrueFalse,
                    pb::QuizType::ShortAnswer => QuizKind::ShortAnswer,
                    pb::QuizType::Mixed => QuizKind::Mixed,
                })
                .map_err(|_| "is not a known quiz type"),
        );
        let (document_id, num_questions, difficulty, kind) =
            finish(violations, (document_id, num_questions, difficulty, kind))?;
        Ok(NewQuiz {
            document_id,
            num_questions,
            difficulty,
            kind,
        })
    }
}

impl TryFrom<pb::SubmitQuizRequest> for Answers {
    type Error = ProcessingError;

    fn try_from(request: pb::SubmitQuizRequest) -> Result<Self, Self::Error> {
        let quiz_id = parse_id("id", &request.id)?;
        let mut violations = Violations::new();
        for (key, answer) in &request.answers {
            if answer.chars().count() > ANSWER_MAX_CHARS {
                violations.add(
                    format!("answers[{key}]"),
                    format!("must be at most {ANSWER_MAX_CHARS} characters"),
                );
            }
        }
        violations
            .into_result()
            .map_err(ProcessingError::InvalidArgument)?;
        Ok(Answers {
            quiz_id,
            answers: request.answers.into_iter().collect(),
        })
    }
}

impl TryFrom<&pb::ListQuizHistoryRequest> for HistoryQuery {
    type Error = ProcessingError;

    fn try_from(request: &pb::ListQuizHistoryRequest) -> Result<Self, Self::Error> {
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
        let (page_size, document_id) = finish(violations, (page_size, document_id))?;
        let mut query = HistoryQuery {
            page_size,
            after: None,
            document_id,
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

fn difficulty(d: Difficulty) -> pb::Difficulty {
    match d {
        Difficulty::Easy => pb::Difficulty::Easy,
        Difficulty::Medium => pb::Difficulty::Medium,
        Difficulty::Hard => pb::Difficulty::Hard,
    }
}

fn quiz_type(k: QuizKind) -> pb::QuizType {
    match k {
        QuizKind::MultipleChoice => pb::QuizType::MultipleChoice,
        QuizKind::TrueFalse => pb::QuizType::TrueFalse,
        QuizKind::ShortAnswer => pb::QuizType::ShortAnswer,
        QuizKind::Mixed => pb::QuizType::Mixed,
    }
}

fn question_type(k: QuestionKind) -> pb::QuestionType {
    match k {
        QuestionKind::MultipleChoice => pb::QuestionType::MultipleChoice,
        QuestionKind::TrueFalse => pb::QuestionType::TrueFalse,
        QuestionKind::ShortAnswer => pb::QuestionType::ShortAnswer,
    }
}

fn status(s: QuizStatus) -> pb::QuizStatus {
    match s {
        QuizStatus::Pending => pb::QuizStatus::Pending,
        QuizStatus::Ready => pb::QuizStatus::Ready,
        QuizStatus::Failed => pb::QuizStatus::Failed,
    }
}

/// A quiz as the API shows it: answers and citations only once it has been submitted (or
/// when `reveal` is set).
pub fn quiz_to_proto(quiz: &Quiz, reveal: bool) -> pb::Quiz {
    let revealed = reveal || quiz.submissions > 0;
    pb::Quiz {
        id: quiz.id.to_string(),
        document_id: quiz.document_id.to_string(),
        num_questions: quiz.num_questions as i32,
        difficulty: difficulty(quiz.difficulty).into(),
        quiz_type: quiz_type(quiz.kind).into(),
        status: status(quiz.status).into(),
        failure_reason: quiz.failure_reason.clone().unwrap_or_default(),
        job_id: quiz.job_id.map(|id| id.to_string()).unwrap_or_default(),
        engine: quiz.engine.clone().unwrap_or_default(),
        questions: quiz
            .questions
            .iter()
            .enumerate()
            .map(|(i, q)| pb::Question {
                id: question_id(i),
                r#type: question_type(q.kind).into(),
                prompt: q.prompt.clone(),
                options: q.options.clone(),
                answer: if revealed {
                    q.answer.clone()
                } else {
                    String::new()
                },
                source: revealed.then(|| pb::Citation {
                    sentence: q.sentence.clone(),
                    sentence_index: q.sentence_index as i32,
                }),
            })
            .collect(),
        answers_revealed: revealed,
        create_time: Some(timestamp(quiz.created_at)),
    }
}

impl From<&Graded> for pb::QuestionResult {
    fn from(graded: &Graded) -> Self {
        pb::QuestionResult {
            question_id: graded.question_id.clone(),
            correct: graded.correct,
            user_answer: graded.user_answer.clone(),
            correct_answer: graded.correct_answer.clone(),
            similarity: graded.similarity,
            feedback: graded.feedback.clone(),
            source: Some(pb::Citation {
                sentence: graded.sentence.clone(),
                sentence_index: graded.sentence_index as i32,
            }),
        }
    }
}

impl From<&Submission> for pb::QuizSubmission {
    fn from(submission: &Submission) -> Self {
        pb::QuizSubmission {
            id: submission.id.to_string(),
            quiz_id: submission.quiz_id.to_string(),
            document_id: submission.document_id.to_string(),
            correct_count: submission.correct_count,
            total_questions: submission.total_questions,
            score: submission.score as f32,
            results: submission.results.iter().map(Into::into).collect(),
            submit_time: Some(timestamp(submission.submitted_at)),
        }
    }
}

impl From<&QuizStats> for pb::QuizStats {
    fn from(stats: &QuizStats) -> Self {
        pb::QuizStats {
            submissions: stats.submissions as i32,
            quizzes: stats.quizzes as i32,
            average_score: stats.average as f32,
            best_score: stats.best as f32,
            worst_score: stats.worst as f32,
            last_score: stats.last as f32,
        }
    }
}
