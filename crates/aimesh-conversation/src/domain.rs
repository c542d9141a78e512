//! The conversation service's domain values: sessions, messages and the pipeline's outputs.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The current time, at the microsecond precision both databases keep.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// A chat session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Identifier (UUIDv7).
    pub id: Uuid,
    /// Owner's user id.
    pub owner_id: String,
    /// Title; empty until given or made from the first message.
    pub title: String,
    /// Messages in the session.
    pub message_count: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last activity (a message sent, a rename).
    pub last_activity_at: DateTime<Utc>,
}

/// A page of sessions.
#[derive(Debug, Clone)]
pub struct SessionPage {
    /// The sessions, the most recently active first.
    pub sessions: Vec<Session>,
    /// The cursor of the next page: the last session's activity and id.
    pub next_after: Option<(i64, Uuid)>,
}

/// A page of messages.
#[derive(Debug, Clone)]
pub struct MessagePage {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// The cursor of the next page: the last message's id.
    pub next_after: Option<Uuid>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The caller.
    User,
    /// The pipeline.
    Assistant,
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Being produced.
    Processing,
    /// Complete.
    Done,
    /// Failed at a stage.
    Failed,
    /// Stopped by its owner.
    Cancelled,
}

/// What a message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Intent {
    /// A conversation with the chat model.
    Chat,
    /// An answer from the caller's documents.
    Documents,
    /// A new image.
    GenerateImage,
    /// An edit of an earlier image.
    EditImage,
}

/// A stage of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for a worker.
    Queued,
    /// Rewriting the request with the history.
    Refine,
    /// Detecting the intent.
    Intent,
    /// Producing the reply.
    Act,
    /// Storing the outputs.
    Finalise,
}

macro_rules! names {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }

            /// Parses a stored name.
            pub fn parse(name: &str) -> Option<Self> {
                match name { $($name => Some(Self::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(Role { User => "user", Assistant => "assistant" });
names!(Status {
    Processing => "processing",
    Done => "done",
    Failed => "failed",
    Cancelled => "cancelled",
});
names!(Intent {
    Chat => "chat",
    Documents => "documents",
    GenerateImage => "generate_image",
    EditImage => "edit_image",
});
names!(Stage {
    Queued => "queued",
    Refine => "refine",
    Intent => "intent",
    Act => "act",
    Finalise => "finalise",
});

impl Intent {
    /// Every intent.
    pub const ALL: [Intent; 4] = [
        Intent::Chat,
        Intent::Documents,
        Intent::GenerateImage,
        Intent::EditImage,
    ];
}

/// A document passage a reply cites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    /// Its number in the reply, from 1.
    pub index: i32,
    /// The document (none for text given as context).
    pub document_id: Option<Uuid>,
    /// The document's file name.
    pub filename: String,
    /// The page, from 1.
    pub page: i32,
    /// The passage.
    pub text: String,
    /// Similarity to the request.
    pub score: f32,
}

/// Context a reply is to use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentContext {
    /// Retrieve from this document only.
    pub document_id: Option<Uuid>,
    /// Answer from this text.
    pub relevant_text: Option<String>,
}

/// A message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Identifier (UUIDv7, the conversation's order).
    pub id: Uuid,
    /// The session.
    pub session_id: Uuid,
    /// Owner's user id.
    pub owner_id: String,
    /// Who wrote it.
    pub role: Role,
    /// The text (the reply so far, while processing).
    pub content: String,
    /// Where it is.
    pub status: Status,
    /// The current or failing stage.
    pub stage: Option<Stage>,
    /// Why it failed, with the fix.
    pub failure_reason: Option<String>,
    /// The user message an assistant message answers.
    pub reply_to: Option<Uuid>,
    /// The refined request.
    pub refined_prompt: String,
    /// The detected intent.
    pub intent: Option<Intent>,
    /// Its confidence.
    pub intent_confidence: f32,
    /// Passages cited.
    pub citations: Vec<Citation>,
    /// The gallery image made.
    pub image_id: Option<Uuid>,
    /// The job producing the reply.
    pub job_id: Option<Uuid>,
    /// The engine that wrote the reply.
    pub model: String,
    /// Tokens generated.
    pub completion_tokens: i64,
    /// The context the reply is to use.
    pub document_context: Option<DocumentContext>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Message {
    /// A new message of `role` in `session`, with nothing produced yet.
    pub fn new(session: &Session, role: Role, content: String, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            session_id: session.id,
            owner_id: session.owner_id.clone(),
            role,
            content,
            status: match role {
                Role::User => Status::Done,
                Role::Assistant => Status::Processing,
            },
            stage: match role {
                Role::User => None,
                Role::Assistant => Some(Stage::Queued),
            },
            failure_reason: None,
            reply_to: None,
            refined_prompt: String::new(),
            intent: None,
            intent_confidence: 0.0,
            citations: Vec::new(),
            image_id: None,
            job_id: None,
            model: String::new(),
            completion_tokens: 0,
            document_context: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// What the pipeline produced for an assistant message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outputs {
    /// The reply.
    pub content: String,
    /// The refined request.
    pub refined_prompt: String,
    /// The intent and its confidence.
    pub intent: Option<(Intent, f32)>,
    /// Passages cited.
    pub citations: Vec<Citation>,
    /// The image made.
    pub image_id: Option<Uuid>,
    /// The engine that wrote the reply.
    pub model: String,
    /// Tokens generated.
    pub completion_tokens: i64,
}

/// A message sent: the user's, and the pending reply with its job.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The session (created when none was named).
    pub session: Session,
    /// The user's message.
    pub user_message: Message,
    /// The pending assistant message.
    pub assistant_message: Message,
    /// The job producing the reply.
    pub job: aimesh_jobs::Job,
}

/// The payload of a `conversation.reply` job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplyJob {
    /// The assistant message to produce.
    pub message_id: Uuid,
}
