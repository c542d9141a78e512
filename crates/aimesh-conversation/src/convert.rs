//! Conversions between the protobuf messages of `aimesh.conversation.v1` and the domain:
//! request fields parsed and checked (every offending field reported, named), domain values
//! turned into responses.

use aimesh_kit::{
    error::{Violations, parse_uuid},
    paging,
    proto::timestamp,
};
use aimesh_proto::conversation::v1 as pb;
use uuid::Uuid;

use crate::{
    domain::{Citation, DocumentContext, Intent, Message, Role, Session, Stage, Status},
    error::{ConversationError, ConversationResult},
    service::ReplyEvent,
};

/// The filters page tokens of sessions are bound to.
pub const SESSIONS_FILTER: &str = "sessions";

fn finish<T: aimesh_kit::error::Checked>(
    violations: Violations,
    values: T,
) -> ConversationResult<T::Values> {
    violations
        .finish(values)
        .map_err(ConversationError::InvalidArgument)
}

/// Parses one id field.
pub fn id(field: &str, value: &str) -> ConversationResult<Uuid> {
    let mut violations = Violations::new();
    let id = violations.check(field, parse_uuid(value));
    finish(violations, id)
}

/// Parses a session id and a message id.
pub fn ids(session_id: &str, message_id: &str) -> ConversationResult<(Uuid, Uuid)> {
    let mut violations = Violations::new();
    let session = violations.check("session_id", parse_uuid(session_id));
    let message = violations.check("id", parse_uuid(message_id));
    finish(violations, (session, message))
}

/// Parses a page size and a page token whose cursor is a message id.
pub fn message_page(
    session_id: Uuid,
    page_size: i32,
    token: &str,
) -> ConversationResult<(u32, Option<Uuid>)> {
    let mut violations = Violations::new();
    let size = violations.check("page_size", paging::validate_page_size(page_size));
    let after = violations.check(
        "page_token",
        paging::decode_uuid(token, &session_id.to_string()),
    );
    finish(violations, (size, after))
}

/// Parses a page size and a page token of ListSessions (cursor: activity and id).
pub fn session_page(page_size: i32, token: &str) -> ConversationResult<(u32, Option<(i64, Uuid)>)> {
    let mut violations = Violations::new();
    let size = violations.check("page_size", paging::validate_page_size(page_size));
    let after = violations.check(
        "page_token",
        if token.is_empty() {
            Ok(None)
        } else {
            paging::decode(token, SESSIONS_FILTER).and_then(|cursor| {
                let (activity, id) = cursor
                    .split_first_chunk::<8>()
                    .ok_or(paging::PageTokenError::Malformed)?;
                let id = Uuid::from_slice(id).map_err(|_| paging::PageTokenError::Malformed)?;
                Ok(Some((i64::from_be_bytes(*activity), id)))
            })
        },
    );
    finish(violations, (size, after))
}

/// The page token of the sessions after `cursor`.
pub fn session_token(cursor: Option<(i64, Uuid)>) -> String {
    cursor
        .map(|(activity, id)| {
            let mut raw = activity.to_be_bytes().to_vec();
            raw.extend_from_slice(id.as_bytes());
            paging::encode(&raw, SESSIONS_FILTER)
        })
        .unwrap_or_default()
}

/// The page token of the messages after `cursor`.
pub fn message_token(session_id: Uuid, cursor: Option<Uuid>) -> String {
    cursor
        .map(|id| paging::encode(id.as_bytes(), &session_id.to_string()))
        .unwrap_or_default()
}

/// Parses an optional session id (empty: none).
pub fn optional_id(field: &str, value: &str) -> ConversationResult<Option<Uuid>> {
    if value.is_empty() {
        Ok(None)
    } else {
        id(field, value).map(Some)
    }
}

/// Parses a `document_context`.
pub fn context(
    context: Option<pb::DocumentContext>,
) -> ConversationResult<Option<DocumentContext>> {
    let Some(context) = context else {
        return Ok(None);
    };
    let document_id = optional_id("document_context.document_id", &context.document_id)?;
    let relevant_text = (!context.relevant_text.trim().is_empty()).then_some(context.relevant_text);
    if document_id.is_none() && relevant_text.is_none() {
        return Ok(None);
    }
    Ok(Some(DocumentContext {
        document_id,
        relevant_text,
    }))
}

/// A title: empty means none.
pub fn title(value: String) -> Option<String> {
    (!value.trim().is_empty()).then_some(value)
}

// === domain -> responses ===

/// The proto form of a status.
pub fn status_to_proto(status: Status) -> pb::MessageStatus {
    match status {
        Status::Processing => pb::MessageStatus::Processing,
        Status::Done => pb::MessageStatus::Done,
        Status::Failed => pb::MessageStatus::Failed,
        Status::Cancelled => pb::MessageStatus::Cancelled,
    }
}

/// The proto form of an intent.
pub fn intent_to_proto(intent: Intent) -> pb::Intent {
    match intent {
        Intent::Chat => pb::Intent::Chat,
        Intent::Documents => pb::Intent::Documents,
        Intent::GenerateImage => pb::Intent::GenerateImage,
        Intent::EditImage => pb::Intent::EditImage,
    }
}

/// The proto form of a stage.
pub fn stage_to_proto(stage: Stage) -> pb::Stage {
    match stage {
        Stage::Queued => pb::Stage::Queued,
        Stage::Refine => pb::Stage::Refine,
        Stage::Intent => pb::Stage::Intent,
        Stage::Act => pb::Stage::Act,
        Stage::Finalise => pb::Stage::Finalise,
    }
}

impl From<&Session> for pb::Session {
    fn from(session: &Session) -> Self {
        pb::Session {
            id: session.id.to_string(),
            title: session.title.clone(),
            message_count: session.message_count,
            create_time: Some(timestamp(session.created_at)),
            last_activity_time: Some(timestamp(session.last_activity_at)),
        }
    }
}

impl From<&Citation> for pb::Citation {
    fn from(citation: &Citation) -> Self {
        pb::Citation {
            index: citation.index,
            document_id: citation
                .document_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            filename: citation.filename.clone(),
            page: citation.page,
            text: citation.text.clone(),
            score: citation.score,
        }
    }
}

impl From<&Message> for pb::Message {
    fn from(message: &Message) -> Self {
        let string = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
        pb::Message {
            id: message.id.to_string(),
            session_id: message.session_id.to_string(),
            role: match message.role {
                Role::User => pb::Role::User,
                Role::Assistant => pb::Role::Assistant,
            } as i32,
            content: message.content.clone(),
            status: status_to_proto(message.status) as i32,
            stage: message.stage.map_or(pb::Stage::Unspecified, stage_to_proto) as i32,
            failure_reason: message.failure_reason.clone().unwrap_or_default(),
            reply_to: string(message.reply_to),
            refined_prompt: message.refined_prompt.clone(),
            intent: message
                .intent
                .map_or(pb::Intent::Unspecified, intent_to_proto) as i32,
            intent_confidence: message.intent_confidence,
            citations: message.citations.iter().map(Into::into).collect(),
            image_id: string(message.image_id),
            job_id: string(message.job_id),
            model: message.model.clone(),
            completion_tokens: message.completion_tokens as i32,
            create_time: Some(timestamp(message.created_at)),
            update_time: Some(timestamp(message.updated_at)),
        }
    }
}

impl From<ReplyEvent> for pb::WatchMessageResponse {
    fn from(event: ReplyEvent) -> Self {
        use pb::watch_message_response::Event;
        pb::WatchMessageResponse {
            event: Some(match event {
                ReplyEvent::Stage {
                    stage,
                    detail,
                    percent,
                } => Event::Stage(pb::StageChange {
                    stage: stage_to_proto(stage) as i32,
                    detail,
                    percent,
                }),
                ReplyEvent::Delta(text) => Event::Delta(text),
                ReplyEvent::Final(message) => Event::Message(message.as_ref().into()),
            }),
        }
    }
}
