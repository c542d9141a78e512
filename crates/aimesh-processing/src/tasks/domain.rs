//! The tasks domain: what a task, its source, its options and its typed result are.

use aimesh_ai::analysis::study::QaPair;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The target language of a translation when none is given.
pub const DEFAULT_TARGET_LANGUAGE: &str = "en";
/// Longest language tag accepted.
pub const LANGUAGE_MAX_LEN: usize = 35;
/// Key phrases a KEYWORDS task asks for (at least 10 come back when the text has them).
pub const KEYWORDS: usize = 15;
/// Question and answer pairs a QA task asks for.
pub const QA_PAIRS: usize = 5;

macro_rules! names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses a stored name.
            pub fn parse(value: &str) -> Option<Self> {
                match value { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use names;

names! {
    /// What a task does.
    TaskType {
        /// A summary of 3 to 5 sentences.
        Summarize = "SUMMARIZE",
        /// 10 to 15 ranked key phrases.
        Keywords = "KEYWORDS",
        /// Sentiment overall and per section.
        Sentiment = "SENTIMENT",
        /// A translation.
        Translate = "TRANSLATE",
        /// Questions with grounded answers and follow-ups.
        Qa = "QA",
    }
}

names! {
    /// Where a task is.
    TaskStatus {
        /// Waiting for a worker.
        Queued = "QUEUED",
        /// Being worked on.
        Running = "RUNNING",
        /// Done, with a result.
        Succeeded = "SUCCEEDED",
        /// Failed for good.
        Failed = "FAILED",
        /// Its job was cancelled.
        Cancelled = "CANCELLED",
    }
}

impl TaskStatus {
    /// Whether the task will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

names! {
    /// The kind of text a task works on.
    SourceKind {
        /// A processed document.
        Document = "DOCUMENT",
        /// A note of the notes service.
        Note = "NOTE",
        /// A transcription of the speech service (its transcript, once READY).
        Transcription = "TRANSCRIPTION",
    }
}

/// The text a task works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSource {
    /// Its kind.
    pub kind: SourceKind,
    /// Its id.
    pub id: Uuid,
}

/// The languages and engine of a translation, resolved at submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranslateSpec {
    /// Source language (BCP-47).
    pub source_language: String,
    /// Whether the source language was detected from the text.
    pub source_detected: bool,
    /// Target language.
    pub target_language: String,
    /// The engine chosen.
    pub engine: String,
}

/// A validated SubmitTask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    /// The text to work on.
    pub source: TaskSource,
    /// What to do.
    pub task_type: TaskType,
    /// Translation target (TRANSLATE only).
    pub target_language: String,
    /// Translation source, when given.
    pub source_language: Option<String>,
}

/// A sentiment rating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentimentScore {
    /// `positive`, `negative` or `neutral`.
    pub label: String,
    /// 0 to 1.
    pub confidence: f32,
    /// Compound score, -1 to 1.
    pub score: f32,
}

/// A section's sentiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SectionSentiment {
    /// Its heading or first words.
    pub title: String,
    /// Its rating.
    pub sentiment: SentimentScore,
}

/// The typed output of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutput {
    /// SUMMARIZE.
    Summary {
        /// The chosen sentences, in the text's order.
        sentences: Vec<String>,
        /// Sentences in the text.
        total_sentences: usize,
    },
    /// KEYWORDS.
    Keywords {
        /// Phrases with their scores, best first.
        keywords: Vec<(String, f32)>,
    },
    /// SENTIMENT.
    Sentiment {
        /// The whole text.
        overall: SentimentScore,
        /// Per section.
        sections: Vec<SectionSentiment>,
    },
    /// TRANSLATE.
    Translation {
        /// Source language used.
        source_language: String,
        /// Whether it was detected.
        source_detected: bool,
        /// Target language.
        target_language: String,
        /// The translated text.
        text: String,
    },
    /// QA.
    Qa {
        /// The pairs.
        pairs: Vec<QaPair>,
    },
}

/// A task's result and the engine that produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The engine, e.g. `minilm-centroid`.
    pub engine: String,
    /// The output.
    pub output: TaskOutput,
}

/// A stored task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Identifier (UUIDv7).
    pub id: Uuid,
    /// Owner's user id.
    pub owner_id: String,
    /// Its text.
    pub source: TaskSource,
    /// What it does.
    pub task_type: TaskType,
    /// Where it is.
    pub status: TaskStatus,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// The job that runs it.
    pub job_id: Option<Uuid>,
    /// The translation's languages (TRANSLATE only).
    pub translate: Option<TranslateSpec>,
    /// The result, once SUCCEEDED.
    pub result: Option<TaskResult>,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A validated ListTasks query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskQuery {
    /// Tasks per page.
    pub page_size: u32,
    /// Only tasks older than this one (the page token's cursor).
    pub after: Option<Uuid>,
    /// Only tasks on this document.
    pub document_id: Option<Uuid>,
    /// Only tasks of this type.
    pub task_type: Option<TaskType>,
    /// Only tasks in this status.
    pub status: Option<TaskStatus>,
}

impl TaskQuery {
    /// The filters a page token is bound to.
    pub fn filter_key(&self) -> String {
        format!(
            "document={};type={};status={}",
            self.document_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            self.task_type.map(TaskType::as_str).unwrap_or_default(),
            self.status.map(TaskStatus::as_str).unwrap_or_default()
        )
    }
}

/// A page of tasks.
#[derive(Debug, Clone)]
pub struct TaskPage {
    /// The tasks, newest first.
    pub tasks: Vec<Task>,
    /// The cursor of the next page, if any.
    pub next_after: Option<Uuid>,
}

/// The payload of a task job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskJob {
    /// The task.
    pub task_id: Uuid,
}

/// Checks a language tag: letters, digits and hyphens, starting with two or three letters.
pub fn validate_language(tag: &str) -> Result<String, String> {
    let tag = tag.trim();
    if tag.len() > LANGUAGE_MAX_LEN {
        return Err(format!("must be at most {LANGUAGE_MAX_LEN} characters"));
    }
    let primary = tag.split('-').next().unwrap_or_default();
    let well_formed = (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && tag
            .split('-')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
    if !well_formed {
        return Err("must be a BCP-47 language tag such as \"en\" or \"pt-BR\"".into());
    }
    Ok(tag.to_owned())
}

/// How many sentences a summary of a text of `total` sentences has: 3 to 5, more for longer
/// texts (all of them when there are fewer than 3).
pub fn summary_length(total: usize) -> usize {
    (3 + total / 40).min(5)
}

/// The confidence of a sentiment rating from its compound score (see the API docs).
pub fn sentiment_confidence(label: &str, score: f32) -> f32 {
    let magnitude = score.abs().min(1.0);
    if label == "neutral" {
        1.0 - magnitude
    } else {
        0.5 + magnitude / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in [
            TaskType::Summarize,
            TaskType::Keywords,
            TaskType::Sentiment,
            TaskType::Translate,
            TaskType::Qa,
        ] {
            assert_eq!(TaskType::parse(t.as_str()), Some(t));
        }
        assert_eq!(TaskStatus::parse("bogus"), None);
        assert!(TaskStatus::Cancelled.is_terminal() && !TaskStatus::Running.is_terminal());
    }

    #[test]
    fn languages_are_checked() {
        assert_eq!(validate_language(" pt-BR ").as_deref(), Ok("pt-BR"));
        for bad in ["", "e", "english", "en_US", "en--x", "12"] {
            assert!(validate_language(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn summaries_have_three_to_five_sentences() {
        assert_eq!(summary_length(10), 3);
        assert_eq!(summary_length(90), 5);
        assert_eq!(summary_length(10_000), 5);
    }

    #[test]
    fn confidence_grows_with_the_score() {
        assert!((sentiment_confidence("positive", 0.8) - 0.9).abs() < 1e-6);
        assert!((sentiment_confidence("neutral", 0.0) - 1.0).abs() < 1e-6);
        assert!(sentiment_confidence("negative", -0.2) < sentiment_confidence("negative", -0.9));
    }
}
