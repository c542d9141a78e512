//! The conversations of an account in its data export: `conversation/sessions.json`
//! (`aimesh.conversation.v1.Session`) and `conversation/messages.json`
//! (`aimesh.conversation.v1.Message`, every session's, oldest first within a session).

use aimesh_kit::{export::ExportArchive, paging::all_pages};
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
    let sessions = all_pages(|after| async move {
        let page = conversation.list_sessions(owner, PAGE, after).await?;
        Ok::<_, ConversationError>((page.sessions, page.next_after))
    })
    .await
    .map_err(error)?;
    let mut messages = Vec::new();
    for session in &sessions {
        let listed = all_pages(|after| async move {
            let page = conversation
                .list_messages(owner, session.id, PAGE, after)
                .await?;
            Ok::<_, ConversationError>((page.messages, page.next_after))
        })
        .await;
        match listed {
            Ok(listed) => messages.extend(listed.iter().map(pb::Message::from)),
            // Deleted since it was listed.
            Err(ConversationError::SessionNotFound(_)) => {}
            Err(e) => return Err(e.to_string()),
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
