//! The tonic adapter of `aimesh.conversation.v1.ConversationService`: takes the caller from
//! the request, converts the message ([`crate::convert`]), calls [`Conversation`] and maps the
//! result back. No rules live here.

use std::pin::Pin;

use aimesh_jobs::api::job_to_proto;
use aimesh_kit::auth::principal;
use aimesh_proto::conversation::v1::{
    self as pb, conversation_service_server::ConversationService,
};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::{convert, service::Conversation};

/// The gRPC face of the conversation service.
#[derive(Clone)]
pub struct ConversationApi {
    conversation: Conversation,
}

impl ConversationApi {
    /// Wraps the service.
    pub fn new(conversation: Conversation) -> Self {
        Self { conversation }
    }

    /// Returns the tonic server for this API.
    pub fn into_server(self) -> pb::conversation_service_server::ConversationServiceServer<Self> {
        pb::conversation_service_server::ConversationServiceServer::new(self)
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchMessageResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ConversationService for ConversationApi {
    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::CreateSessionResponse>, Status> {
        let caller = principal(&request)?;
        let title = convert::title(request.into_inner().title);
        let session = self
            .conversation
            .create_session(&caller.user_id, title)
            .await?;
        Ok(Response::new(pb::CreateSessionResponse {
            session: Some((&session).into()),
        }))
    }

    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::GetSessionResponse>, Status> {
        let caller = principal(&request)?;
        let id = convert::id("id", &request.get_ref().id)?;
        let session = self.conversation.session(&caller.user_id, id).await?;
        Ok(Response::new(pb::GetSessionResponse {
            session: Some((&session).into()),
        }))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.get_ref();
        let (size, after) = convert::session_page(request.page_size, &request.page_token)?;
        let page = self
            .conversation
            .list_sessions(&caller.user_id, size, after)
            .await?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: page.sessions.iter().map(Into::into).collect(),
            next_page_token: convert::session_token(page.next_after),
        }))
    }

    async fn rename_session(
        &self,
        request: Request<pb::RenameSessionRequest>,
    ) -> Result<Response<pb::RenameSessionResponse>, Status> {
        let caller = principal(&request)?;
        let id = convert::id("id", &request.get_ref().id)?;
        let session = self
            .conversation
            .rename_session(&caller.user_id, id, &request.get_ref().title)
            .await?;
        Ok(Response::new(pb::RenameSessionResponse {
            session: Some((&session).into()),
        }))
    }

    async fn delete_session(
        &self,
        request: Request<pb::DeleteSessionRequest>,
    ) -> Result<Response<pb::DeleteSessionResponse>, Status> {
        let caller = principal(&request)?;
        let id = convert::id("id", &request.get_ref().id)?;
        self.conversation
            .delete_session(&caller.user_id, id)
            .await?;
        Ok(Response::new(pb::DeleteSessionResponse {}))
    }

    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let session = convert::id("session_id", &request.session_id)?;
        let context = convert::context(request.document_context)?;
        let image = convert::optional_id("image_id", &request.image_id)?;
        let sent = self
            .conversation
            .send(
                &caller.user_id,
                Some(session),
                request.content,
                context,
                image,
            )
            .await?;
        Ok(Response::new(pb::SendMessageResponse {
            user_message: Some((&sent.user_message).into()),
            assistant_message: Some((&sent.assistant_message).into()),
            job: Some(job_to_proto(&sent.job)),
        }))
    }

    async fn chat(
        &self,
        request: Request<pb::ChatRequest>,
    ) -> Result<Response<pb::ChatResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let session = convert::optional_id("session_id", &request.session_id)?;
        let context = convert::context(request.document_context)?;
        let image = convert::optional_id("image_id", &request.image_id)?;
        let sent = self
            .conversation
            .send(&caller.user_id, session, request.message, context, image)
            .await
            .map_err(|error| match error {
                // The field is called `message` here.
                crate::ConversationError::InvalidArgument(mut violations) => {
                    for violation in &mut violations {
                        if violation.field == "content" {
                            violation.field = "message".into();
                        }
                    }
                    crate::ConversationError::InvalidArgument(violations)
                }
                other => other,
            })?;
        Ok(Response::new(pb::ChatResponse {
            session: Some((&sent.session).into()),
            user_message: Some((&sent.user_message).into()),
            assistant_message: Some((&sent.assistant_message).into()),
            job: Some(job_to_proto(&sent.job)),
        }))
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.get_ref();
        let session = convert::id("session_id", &request.session_id)?;
        let (size, after) = convert::message_page(session, request.page_size, &request.page_token)?;
        let page = self
            .conversation
            .list_messages(&caller.user_id, session, size, after)
            .await?;
        Ok(Response::new(pb::ListMessagesResponse {
            messages: page.messages.iter().map(Into::into).collect(),
            next_page_token: convert::message_token(session, page.next_after),
        }))
    }

    async fn get_message(
        &self,
        request: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::GetMessageResponse>, Status> {
        let caller = principal(&request)?;
        let (session, id) = convert::ids(&request.get_ref().session_id, &request.get_ref().id)?;
        let message = self
            .conversation
            .message(&caller.user_id, session, id)
            .await?;
        Ok(Response::new(pb::GetMessageResponse {
            message: Some((&message).into()),
        }))
    }

    type WatchMessageStream = WatchStream;

    async fn watch_message(
        &self,
        request: Request<pb::WatchMessageRequest>,
    ) -> Result<Response<Self::WatchMessageStream>, Status> {
        let caller = principal(&request)?;
        let (session, id) = convert::ids(&request.get_ref().session_id, &request.get_ref().id)?;
        let events = self
            .conversation
            .watch(&caller.user_id, session, id)
            .await?;
        let stream = events.map(|event| {
            event
                .map(pb::WatchMessageResponse::from)
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn cancel_message(
        &self,
        request: Request<pb::CancelMessageRequest>,
    ) -> Result<Response<pb::CancelMessageResponse>, Status> {
        let caller = principal(&request)?;
        let (session, id) = convert::ids(&request.get_ref().session_id, &request.get_ref().id)?;
        let message = self
            .conversation
            .cancel(&caller.user_id, session, id)
            .await?;
        Ok(Response::new(pb::CancelMessageResponse {
            message: Some((&message).into()),
        }))
    }

    async fn regenerate_reply(
        &self,
        request: Request<pb::RegenerateReplyRequest>,
    ) -> Result<Response<pb::RegenerateReplyResponse>, Status> {
        let caller = principal(&request)?;
        let session = convert::id("session_id", &request.get_ref().session_id)?;
        let (message, job) = self
            .conversation
            .regenerate(&caller.user_id, session)
            .await?;
        Ok(Response::new(pb::RegenerateReplyResponse {
            assistant_message: Some((&message).into()),
            job: Some(job_to_proto(&job)),
        }))
    }

    async fn edit_message(
        &self,
        request: Request<pb::EditMessageRequest>,
    ) -> Result<Response<pb::EditMessageResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let (session, id) = convert::ids(&request.session_id, &request.id)?;
        let (user, assistant, job) = self
            .conversation
            .edit(&caller.user_id, session, id, request.content)
            .await?;
        Ok(Response::new(pb::EditMessageResponse {
            user_message: Some((&user).into()),
            assistant_message: Some((&assistant).into()),
            job: Some(job_to_proto(&job)),
        }))
    }
}
