//! Quizzes domain logic: ownership, submitting generation as a job, grading, history. No
//! tonic, no SQL.

use aimesh_ai::analysis::{Analyzer, study::QuestionKind};
use aimesh_jobs::{Job, Jobs, SubmitOptions};
use uuid::Uuid;

use super::{
    domain::{
        Answers, Graded, History, HistoryQuery, NewQuiz, Quiz, QuizJob, QuizStatus, Submission,
        parse_truth, question_id, same_option,
    },
    store::QuizStore,
};
use crate::{
    domain::{Status, now},
    error::{ProcessingError, ProcessingResult},
    service::Processing,
};

/// Attempts a quiz job gets before it fails for good.
const QUIZ_ATTEMPTS: i32 = 3;

/// The quizzes service.
#[derive(Clone)]
pub struct Quizzes {
    store: QuizStore,
    processing: Processing,
    jobs: Jobs,
}

impl Quizzes {
    /// Creates the service; documents and the embeddings engine come from `processing`.
    pub fn new(store: QuizStore, processing: Processing, jobs: Jobs) -> Self {
        Self {
            store,
            processing,
            jobs,
        }
    }

    /// Returns the store.
    pub fn store(&self) -> &QuizStore {
        &self.store
    }

    /// Returns the processing service.
    pub fn processing(&self) -> &Processing {
        &self.processing
    }

    /// The analyzer over the embeddings engine, or why there is none.
    pub fn analyzer(&self) -> ProcessingResult<Analyzer> {
        Ok(Analyzer::new(self.processing.embedder()?.clone()))
    }

    /// Starts generating a quiz on `owner`'s READY document; returns it (PENDING) and its job.
    pub async fn generate(&self, owner: &str, new: NewQuiz) -> ProcessingResult<(Quiz, Job)> {
        let document = self.processing.get(owner, new.document_id).await?;
        if document.status != Status::Ready {
            return Err(ProcessingError::NotReady(format!(
                "document {} is {}: quizzes are made from READY documents",
                document.id, document.status
            )));
        }
        let at = now();
        let mut quiz = Quiz {
            id: Uuid::now_v7(),
            owner_id: owner.to_owned(),
            document_id: document.id,
            num_questions: new.num_questions,
            difficulty: new.difficulty,
            kind: new.kind,
            status: QuizStatus::Pending,
            failure_reason: None,
            job_id: None,
            engine: None,
            questions: Vec::new(),
            submissions: 0,
            created_at: at,
            updated_at: at,
        };
        self.store.insert(&quiz).await?;
        let payload = serde_json::to_vec(&QuizJob { quiz_id: quiz.id }).map_err(|error| {
            ProcessingError::Internal(format!("failed to encode the job payload: {error}"))
        })?;
        let submitted = self
            .jobs
            .submit(
                owner,
                super::job::KIND,
                payload,
                SubmitOptions {
                    max_attempts: QUIZ_ATTEMPTS,
                    ..SubmitOptions::default()
                },
            )
            .await;
        let job = match submitted {
            Ok(job) => job,
            Err(error) => {
                let _ = self.store.delete(quiz.id).await;
                return Err(error.into());
            }
        };
        self.store.set_job(quiz.id, job.id).await?;
        quiz.job_id = Some(job.id);
        Ok((quiz, job))
    }

    /// Returns `owner`'s quiz.
    pub async fn get(&self, owner: &str, id: Uuid) -> ProcessingResult<Quiz> {
        match self.store.get(id).await? {
            Some(quiz) if quiz.owner_id == owner => Ok(quiz),
            _ => Err(ProcessingError::QuizNotFound(id)),
        }
    }

    /// Grades `owner`'s answers to a READY quiz and keeps the submission.
    pub async fn submit(&self, owner: &str, answers: Answers) -> ProcessingResult<Submission> {
        let quiz = self.get(owner, answers.quiz_id).await?;
        if quiz.status != QuizStatus::Ready {
            return Err(ProcessingError::NotReady(format!(
                "quiz {} is {}: only a READY quiz can be submitted",
                quiz.id, quiz.status
            )));
        }
        let ids: Vec<String> = (0..quiz.questions.len()).map(question_id).collect();
        let unknown: Vec<&String> = answers
            .answers
            .keys()
            .filter(|key| !ids.contains(key))
            .collect();
        if !unknown.is_empty() {
            return Err(ProcessingError::invalid(
                "answers",
                format!(
                    "the quiz has no question {}; its questions are q1 to q{}",
                    unknown
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    quiz.questions.len()
                ),
            ));
        }
        let needs_analyzer = quiz
            .questions
            .iter()
            .any(|q| q.kind == QuestionKind::ShortAnswer);
        let analyzer = if needs_analyzer {
            Some(self.analyzer()?)
        } else {
            None
        };
        let mut results = Vec::with_capacity(quiz.questions.len());
        for (i, question) in quiz.questions.iter().enumerate() {
            let id = question_id(i);
            let given = answers.answers.get(&id).cloned().unwrap_or_default();
            let (correct, similarity, feedback) = match question.kind {
                QuestionKind::MultipleChoice => {
                    let correct = same_option(&given, &question.answer);
                    let feedback = if correct {
                        "right".to_owned()
                    } else if given.trim().is_empty() {
                        format!("no answer given; the answer is \"{}\"", question.answer)
                    } else if !question.options.iter().any(|o| same_option(&given, o)) {
                        format!(
                            "\"{given}\" is not one of the options; the answer is \"{}\"",
                            question.answer
                        )
                    } else {
                        format!("wrong: the answer is \"{}\"", question.answer)
                    };
                    (correct, 0.0, feedback)
                }
                QuestionKind::TrueFalse => {
                    let truth = question.answer == "True";
                    match parse_truth(&given) {
                        Some(said) if said == truth => (true, 0.0, "right".to_owned()),
                        Some(_) => (
                            false,
                            0.0,
                            format!("wrong: the statement is {}", question.answer.to_lowercase()),
                        ),
                        None => (
                            false,
                            0.0,
                            format!(
                                "answer \"true\" or \"false\"; the statement is {}",
                                question.answer.to_lowercase()
                            ),
                        ),
                    }
                }
                QuestionKind::ShortAnswer => {
                    let analyzer = analyzer.as_ref().ok_or_else(|| {
                        ProcessingError::Internal("no analyzer for a short answer".into())
                    })?;
                    let grade = analyzer
                        .grade_short_answer(&given, &question.answer)
                        .await
                        .map_err(|e| ProcessingError::EngineUnavailable(e.to_string()))?;
                    (grade.correct, grade.similarity, grade.feedback)
                }
            };
            results.push(Graded {
                question_id: id,
                correct,
                user_answer: given,
                correct_answer: question.answer.clone(),
                similarity,
                feedback,
                sentence: question.sentence.clone(),
                sentence_index: question.sentence_index,
            });
        }
        let total = results.len() as i32;
        let correct_count = results.iter().filter(|r| r.correct).count() as i32;
        let submission = Submission {
            id: Uuid::now_v7(),
            quiz_id: quiz.id,
            owner_id: owner.to_owned(),
            document_id: quiz.document_id,
            correct_count,
            total_questions: total,
            score: if total == 0 {
                0.0
            } else {
                f64::from(correct_count) * 100.0 / f64::from(total)
            },
            results,
            submitted_at: now(),
        };
        self.store.insert_submission(&submission).await?;
        Ok(submission)
    }

    /// Lists `owner`'s graded submissions with statistics.
    pub async fn history(&self, owner: &str, query: &HistoryQuery) -> ProcessingResult<History> {
        if let Some(document) = query.document_id {
            self.processing.get(owner, document).await?;
        }
        self.store.history(owner, query).await
    }
}
