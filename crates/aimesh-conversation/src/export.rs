//! The conversations of an account in its data export: `conversation/sessions.json`
//! (`aimesh.conversation.v1.Session`) and `conversation/messages.json`
//! (`aimesh.conversation.v1.Message`, every session's, oldest first within a session).

use aimesh_kit::export::ExportArchive;
use aimesh_proto::conversation::v1 as pb;

use crate::{error::ConversationError, service::Conversation};

/// Records read per page.
const PAGE: u32 = 100;

/// Writes `owner`'s sessions and messages into `archive`; returns how many records.
pub(crate) async fn export(
    conversation: &Conversation,
    owner: &str,
    archive: &ExportArchive,
) -> Result<u64, String> {
    let error = |e: ConversationError| e.to_string();
    let mut sessions = Vec::new();
    let mut after = None;
    loop {
        let page = conversation
            .list_sessions(owner, PAGE, after)
            .await
            .map_err(error)?;
        sessions.extend(page.sessions);
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut messages = Vec::new();
    for session in &sessions {
        let mut after = None;
        loop {
            let page = match conversation
                .list_messages(owner, session.id, PAGE, after)
                .await
            {
                Ok(page) => page,
                // Deleted since it was listed.
                Err(ConversationError::SessionNotFound(_)) => break,
                Err(e) => return Err(e.to_string()),
            };
            messages.extend(page.messages.iter().map(pb::Message::from));
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    let sessions: Vec<pb::Session> = sessions.iter().map(Into::into).collect();
    archive
        .records("conversation/sessions.json", &sessions)
        .await?;
    archive
        .records("conversation/messages.json", &messages)
        .await?;
    Ok((sessions.len() + messages.len()) as u64)
}
