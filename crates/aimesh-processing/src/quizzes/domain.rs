//! The quizzes domain: a quiz, its questions, a graded submission and the history's
//! statistics.

use std::collections::BTreeMap;

use aimesh_ai::analysis::study::{Level, QuestionKind, QuizQuestion};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::tasks::domain::names;

/// Questions when the caller asks for none.
pub const DEFAULT_QUESTIONS: u32 = 5;
/// Most questions one quiz has.
pub const MAX_QUESTIONS: u32 = 20;
/// Longest answer accepted, in characters.
pub const ANSWER_MAX_CHARS: usize = 1000;

names! {
    /// The kinds of questions a quiz asks.
    QuizKind {
        /// Four options, one right.
        MultipleChoice = "MULTIPLE_CHOICE",
        /// True or false.
        TrueFalse = "TRUE_FALSE",
        /// Free text.
        ShortAnswer = "SHORT_ANSWER",
        /// The three in turn.
        Mixed = "MIXED",
    }
}

impl QuizKind {
    /// The question kinds, taken in turn.
    pub fn question_kinds(self) -> Vec<QuestionKind> {
        match self {
            QuizKind::MultipleChoice => vec![QuestionKind::MultipleChoice],
            QuizKind::TrueFalse => vec![QuestionKind::TrueFalse],
            QuizKind::ShortAnswer => vec![QuestionKind::ShortAnswer],
            QuizKind::Mixed => vec![
                QuestionKind::MultipleChoice,
                QuestionKind::TrueFalse,
                QuestionKind::ShortAnswer,
            ],
        }
    }
}

names! {
    /// How hard a quiz is.
    Difficulty {
        /// Easy.
        Easy = "EASY",
        /// Medium.
        Medium = "MEDIUM",
        /// Hard.
        Hard = "HARD",
    }
}

impl Difficulty {
    /// The generator's level.
    pub fn level(self) -> Level {
        match self {
            Difficulty::Easy => Level::Easy,
            Difficulty::Medium => Level::Medium,
            Difficulty::Hard => Level::Hard,
        }
    }
}

names! {
    /// Where a quiz is.
    QuizStatus {
        /// Being generated.
        Pending = "PENDING",
        /// Its questions are ready.
        Ready = "READY",
        /// Generation failed.
        Failed = "FAILED",
    }
}

/// A validated GenerateQuiz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQuiz {
    /// The document.
    pub document_id: Uuid,
    /// Questions wanted.
    pub num_questions: u32,
    /// Difficulty.
    pub difficulty: Difficulty,
    /// Kinds of questions.
    pub kind: QuizKind,
}

/// A stored quiz.
#[derive(Debug, Clone, PartialEq)]
pub struct Quiz {
    /// Identifier (UUIDv7).
    pub id: Uuid,
    /// Owner's user id.
    pub owner_id: String,
    /// The document.
    pub document_id: Uuid,
    /// Questions asked for.
    pub num_questions: u32,
    /// Difficulty.
    pub difficulty: Difficulty,
    /// Kinds of questions.
    pub kind: QuizKind,
    /// Where it is.
    pub status: QuizStatus,
    /// Why generation failed.
    pub failure_reason: Option<String>,
    /// The generation job.
    pub job_id: Option<Uuid>,
    /// The generator.
    pub engine: Option<String>,
    /// The questions (READY); their ids are `q1`, `q2`, ... in order.
    pub questions: Vec<QuizQuestion>,
    /// Graded submissions so far.
    pub submissions: i64,
    /// Request time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The id of the question at `index`.
pub fn question_id(index: usize) -> String {
    format!("q{}", index + 1)
}

/// A validated SubmitQuiz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    /// The quiz.
    pub quiz_id: Uuid,
    /// Answers by question id.
    pub answers: BTreeMap<String, String>,
}

/// The grading of one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graded {
    /// The question.
    pub question_id: String,
    /// Whether it is right.
    pub correct: bool,
    /// The answer given.
    pub user_answer: String,
    /// The right answer.
    pub correct_answer: String,
    /// Short answers: similarity to the reference.
    pub similarity: f32,
    /// Why it was graded so.
    pub feedback: String,
    /// The cited sentence.
    pub sentence: String,
    /// Its position among the document's sentences.
    pub sentence_index: usize,
}

/// A graded submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// Identifier (UUIDv7).
    pub id: Uuid,
    /// The quiz.
    pub quiz_id: Uuid,
    /// Owner's user id.
    pub owner_id: String,
    /// The quiz's document.
    pub document_id: Uuid,
    /// Right answers.
    pub correct_count: i32,
    /// Questions.
    pub total_questions: i32,
    /// Percent right.
    pub score: f64,
    /// Per question (empty in history listings).
    pub results: Vec<Graded>,
    /// Grading time.
    pub submitted_at: DateTime<Utc>,
}

/// A validated ListQuizHistory query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Submissions per page.
    pub page_size: u32,
    /// Only submissions older than this one.
    pub after: Option<Uuid>,
    /// Only submissions on this document.
    pub document_id: Option<Uuid>,
}

impl HistoryQuery {
    /// The filters a page token is bound to.
    pub fn filter_key(&self) -> String {
        format!(
            "document={}",
            self.document_id
                .map(|id| id.to_string())
                .unwrap_or_default()
        )
    }
}

/// Score statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuizStats {
    /// Submissions.
    pub submissions: i64,
    /// Distinct quizzes.
    pub quizzes: i64,
    /// Mean score.
    pub average: f64,
    /// Best score.
    pub best: f64,
    /// Worst score.
    pub worst: f64,
    /// Newest score.
    pub last: f64,
}

/// A page of the history.
#[derive(Debug, Clone)]
pub struct History {
    /// Submissions, newest first.
    pub submissions: Vec<Submission>,
    /// The cursor of the next page.
    pub next_after: Option<Uuid>,
    /// Statistics over every matching submission.
    pub stats: QuizStats,
}

/// The payload of a quiz job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuizJob {
    /// The quiz.
    pub quiz_id: Uuid,
}

/// Checks the number of questions (0 means the default).
pub fn validate_num_questions(n: i32) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(0) => Ok(DEFAULT_QUESTIONS),
        Ok(n) if n <= MAX_QUESTIONS => Ok(n),
        _ => Err(format!("must be between 0 and {MAX_QUESTIONS}")),
    }
}

/// Whether a true/false answer says `truth` ("true"/"false", "t"/"f", "yes"/"no").
pub fn parse_truth(answer: &str) -> Option<bool> {
    match answer.trim().to_lowercase().as_str() {
        "true" | "t" | "yes" | "y" => Some(true),
        "false" | "f" | "no" | "n" => Some(false),
        _ => None,
    }
}

/// Whether a multiple-choice answer picks `right` (same text, ignoring case and spacing).
pub fn same_option(answer: &str, right: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    norm(answer) == norm(right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_counts_are_bounded() {
        assert_eq!(validate_num_questions(0), Ok(DEFAULT_QUESTIONS));
        assert_eq!(validate_num_questions(20), Ok(20));
        assert!(validate_num_questions(21).is_err());
        assert!(validate_num_questions(-1).is_err());
    }

    #[test]
    fn answers_are_compared_leniently() {
        assert_eq!(parse_truth(" True "), Some(true));
        assert_eq!(parse_truth("no"), Some(false));
        assert_eq!(parse_truth("maybe"), None);
        assert!(same_option("  neil   ARMSTRONG", "Neil Armstrong"));
        assert!(!same_option("Buzz Aldrin", "Neil Armstrong"));
    }

    #[test]
    fn mixed_quizzes_take_every_kind_in_turn() {
        assert_eq!(QuizKind::Mixed.question_kinds().len(), 3);
        assert_eq!(question_id(0), "q1");
    }
}
