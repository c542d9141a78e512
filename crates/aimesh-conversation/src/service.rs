//! Conversation domain logic: sessions and messages per owner, the limits on what a message
//! may hold and how many replies a user may have in progress, replies submitted as jobs, and
//! the live view of a reply built on the job's progress. No tonic, no SQL.

use std::{sync::Arc, time::Duration};

use aimesh_ai::{chat::ChatModel, embed::Embedder};
use aimesh_jobs::{Job, JobState, Jobs, JobsError, SubmitOptions};
use futures::{StreamExt, stream::BoxStream};
use uuid::Uuid;

use crate::{
    domain::{
        DocumentContext, Message, MessagePage, Outputs, ReplyJob, Role, Sent, Session, SessionPage,
        Stage, Status, now,
    },
    error::{ConversationError, ConversationResult},
    intent::IntentClassifier,
    ports::{DocumentSearch, ImageMaker},
    prompt::title_from,
    store::ConversationStore,
};

/// Longest session title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest `document_context.relevant_text`, in characters.
pub const MAX_CONTEXT_CHARS: usize = 20_000;

/// Control tokens of the common chat templates, refused in messages even where no chat
/// engine is loaded (the engine's own are checked too when it is).
const CONTROL_TOKENS: &[&str] = &[
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<start_of_turn>",
    "<end_of_turn>",
];

/// The service's limits.
#[derive(Debug, Clone)]
pub struct ConversationConfig {
    /// Longest message, in characters.
    pub max_message_chars: usize,
    /// Replies one user may have in progress at once.
    pub max_pipelines_per_user: u32,
    /// Most tokens a reply may have.
    pub reply_max_tokens: u32,
    /// What a refused user is told to wait before retrying.
    pub busy_retry: Duration,
    /// Longest a reply's job may wait for a worker before the reply fails saying that no
    /// process runs replies (none has the chat and embeddings engines).
    pub reply_queue_timeout: Duration,
}

impl Default for ConversationConfig {
    fn default() -> Self {
        Self {
            max_message_chars: 8000,
            max_pipelines_per_user: 2,
            reply_max_tokens: 256,
            busy_retry: Duration::from_secs(2),
            reply_queue_timeout: Duration::from_secs(300),
        }
    }
}

/// The engines and ports the pipeline runs on; what is missing says why.
#[derive(Clone)]
pub struct Pipeline {
    /// The chat model.
    pub chat: Result<Arc<dyn ChatModel>, String>,
    /// The embeddings engine (intent detection).
    pub embedder: Result<Arc<dyn Embedder>, String>,
    /// Search of the caller's documents.
    pub documents: Option<Arc<dyn DocumentSearch>>,
    /// The caller's gallery.
    pub images: Option<Arc<dyn ImageMaker>>,
}

/// One event of a watched reply.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyEvent {
    /// The pipeline entered a stage.
    Stage {
        /// The stage.
        stage: Stage,
        /// What it does.
        detail: String,
        /// Progress of the whole pipeline.
        percent: i32,
    },
    /// More of the reply's text.
    Delta(String),
    /// The message as it ended.
    Final(Box<Message>),
}

/// The conversation service.
#[derive(Clone)]
pub struct Conversation {
    store: ConversationStore,
    jobs: Jobs,
    config: Arc<ConversationConfig>,
    pipeline: Arc<Pipeline>,
    intents: Option<IntentClassifier>,
}

impl Conversation {
    /// Creates the service; replies run as jobs of `jobs` on `pipeline`.
    pub fn new(
        store: ConversationStore,
        jobs: Jobs,
        config: ConversationConfig,
        pipeline: Pipeline,
    ) -> Self {
        let intents = pipeline.embedder.clone().ok().map(IntentClassifier::new);
        Self {
            store,
            jobs,
            config: Arc::new(config),
            pipeline: Arc::new(pipeline),
            intents,
        }
    }

    /// The store.
    pub fn store(&self) -> &ConversationStore {
        &self.store
    }

    /// The limits.
    pub fn config(&self) -> &ConversationConfig {
        &self.config
    }

    /// The engines and ports.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The intent classifier, when an embeddings engine is loaded.
    pub fn intents(&self) -> Option<&IntentClassifier> {
        self.intents.as_ref()
    }

    /// Whether this process can run replies (it has a chat model and an embeddings engine).
    pub fn can_reply(&self) -> bool {
        self.pipeline.chat.is_ok() && self.intents.is_some()
    }

    // === sessions ===

    /// Creates a session for `owner`.
    pub async fn create_session(
        &self,
        owner: &str,
        title: Option<String>,
    ) -> ConversationResult<Session> {
        let title = title.unwrap_or_default();
        self.check_title(&title, true)?;
        self.store.create_session(owner, title.trim(), now()).await
    }

    /// Returns `owner`'s session.
    pub async fn session(&self, owner: &str, id: Uuid) -> ConversationResult<Session> {
        self.store
            .session(owner, id)
            .await?
            .ok_or(ConversationError::SessionNotFound(id))
    }

    /// Lists `owner`'s sessions, the most recently active first.
    pub async fn list_sessions(
        &self,
        owner: &str,
        page_size: u32,
        after: Option<(i64, Uuid)>,
    ) -> ConversationResult<SessionPage> {
        self.store.list_sessions(owner, page_size, after).await
    }

    /// Renames `owner`'s session.
    pub async fn rename_session(
        &self,
        owner: &str,
        id: Uuid,
        title: &str,
    ) -> ConversationResult<Session> {
        self.check_title(title, false)?;
        self.store
            .rename_session(owner, id, title.trim(), false, now())
            .await?
            .ok_or(ConversationError::SessionNotFound(id))
    }

    /// Deletes `owner`'s session with its messages, cancelling replies in progress.
    pub async fn delete_session(&self, owner: &str, id: Uuid) -> ConversationResult<()> {
        self.session(owner, id).await?;
        for message in self.store.history(id, Uuid::max()).await? {
            self.stop_job(owner, &message).await;
        }
        if !self.store.delete_session(owner, id).await? {
            return Err(ConversationError::SessionNotFound(id));
        }
        Ok(())
    }

    fn check_title(&self, title: &str, may_be_empty: bool) -> ConversationResult<()> {
        let chars = title.trim().chars().count();
        if chars == 0 && !may_be_empty {
            return Err(ConversationError::invalid("title", "must not be empty"));
        }
        if title.contains('\0') {
            return Err(ConversationError::invalid(
                "title",
                "must not contain NUL characters",
            ));
        }
        if chars > MAX_TITLE_CHARS {
            return Err(ConversationError::invalid(
                "title",
                format!("{chars} characters, at most {MAX_TITLE_CHARS}"),
            ));
        }
        Ok(())
    }

    // === messages ===

    /// Checks a message's text against the limits: not empty, not too long, and no chat
    /// control token (which would let a message rewrite the conversation's structure).
    pub fn check_content(&self, field: &str, content: &str) -> ConversationResult<()> {
        let chars = content.chars().count();
        if content.trim().is_empty() {
            return Err(ConversationError::invalid(field, "must not be empty"));
        }
        // Text columns cannot hold NUL (PostgreSQL refuses it), and no message needs one.
        if content.contains('\0') {
            return Err(ConversationError::invalid(
                field,
                "must not contain NUL characters",
            ));
        }
        if chars > self.config.max_message_chars {
            return Err(ConversationError::invalid(
                field,
                format!(
                    "{chars} characters, at most {} (AIMESH_CHAT_MAX_MESSAGE_CHARS)",
                    self.config.max_message_chars
                ),
            ));
        }
        let control = CONTROL_TOKENS
            .iter()
            .find(|token| content.contains(**token))
            .map(|token| (*token).to_owned())
            .or_else(|| {
                self.pipeline
                    .chat
                    .as_ref()
                    .ok()
                    .and_then(|chat| chat.control_token_in(content))
            });
        if let Some(token) = control {
            return Err(ConversationError::invalid(
                field,
                format!("contains the control token {token}"),
            ));
        }
        Ok(())
    }

    fn check_context(&self, context: &Option<DocumentContext>) -> ConversationResult<()> {
        if let Some(text) = context.as_ref().and_then(|c| c.relevant_text.as_deref()) {
            let chars = text.chars().count();
            if chars > MAX_CONTEXT_CHARS {
                return Err(ConversationError::invalid(
                    "document_context.relevant_text",
                    format!("{chars} characters, at most {MAX_CONTEXT_CHARS}"),
                ));
            }
            self.check_content("document_context.relevant_text", text)?;
        }
        Ok(())
    }

    async fn check_capacity(&self, owner: &str) -> ConversationResult<()> {
        let running = self.store.processing_count(owner).await?;
        let limit = self.config.max_pipelines_per_user;
        if running >= i64::from(limit) {
            return Err(ConversationError::Busy {
                limit,
                retry_after: self.config.busy_retry,
            });
        }
        Ok(())
    }

    /// Sends `owner`'s message to a session (a new one when `session_id` is `None`), about
    /// the gallery image `image` when given, and starts its reply.
    pub async fn send(
        &self,
        owner: &str,
        session_id: Option<Uuid>,
        content: String,
        context: Option<DocumentContext>,
        image: Option<Uuid>,
    ) -> ConversationResult<Sent> {
        self.check_content("content", &content)?;
        self.check_context(&context)?;
        let mut session = match session_id {
            Some(id) => self.session(owner, id).await?,
            None => {
                self.check_capacity(owner).await?;
                self.store
                    .create_session(owner, &title_from(&content), now())
                    .await?
            }
        };
        self.check_capacity(owner).await?;
        let at = now();
        let mut user = Message::new(&session, Role::User, content, at);
        user.image_id = image;
        let mut assistant = Message::new(&session, Role::Assistant, String::new(), at);
        assistant.reply_to = Some(user.id);
        assistant.document_context = context;
        self.store
            .insert_messages(&session, &[&user, &assistant], at)
            .await?;
        if session.title.is_empty()
            && let Some(named) = self
                .store
                .rename_session(owner, session.id, &title_from(&user.content), true, at)
                .await?
        {
            session = named;
        }
        let job = self.start(owner, &mut assistant).await?;
        session.message_count += 2;
        session.last_activity_at = at;
        Ok(Sent {
            session,
            user_message: user,
            assistant_message: assistant,
            job,
        })
    }

    /// Submits the job producing `assistant` and records it on the message.
    async fn start(&self, owner: &str, assistant: &mut Message) -> ConversationResult<Job> {
        let payload = serde_json::to_vec(&ReplyJob {
            message_id: assistant.id,
        })
        .map_err(|e| {
            ConversationError::Internal(format!("failed to encode the job payload: {e}"))
        })?;
        let submitted = self
            .jobs
            .submit(
                owner,
                crate::pipeline::KIND,
                payload,
                SubmitOptions {
                    max_attempts: 1,
                    ..SubmitOptions::default()
                },
            )
            .await;
        let job = match submitted {
            Ok(job) => job,
            Err(error) => {
                let reason = format!("the reply could not be queued: {error}");
                let _ = self
                    .store
                    .finish(
                        assistant.id,
                        Status::Failed,
                        Stage::Queued,
                        Some(&reason),
                        &Outputs::default(),
                        now(),
                    )
                    .await;
                return Err(error.into());
            }
        };
        self.store.set_job(assistant.id, job.id).await?;
        assistant.job_id = Some(job.id);
        Ok(job)
    }

    /// Lists the messages of `owner`'s session, oldest first.
    pub async fn list_messages(
        &self,
        owner: &str,
        session_id: Uuid,
        page_size: u32,
        after: Option<Uuid>,
    ) -> ConversationResult<MessagePage> {
        self.session(owner, session_id).await?;
        self.store.list_messages(session_id, page_size, after).await
    }

    /// Returns a message of `owner`'s session. A reply whose job ended without finishing it
    /// (its worker died) is marked FAILED here.
    pub async fn message(
        &self,
        owner: &str,
        session_id: Uuid,
        id: Uuid,
    ) -> ConversationResult<Message> {
        let message = self
            .store
            .message(id)
            .await?
            .filter(|m| m.owner_id == owner && m.session_id == session_id)
            .ok_or(ConversationError::MessageNotFound(id))?;
        self.reconcile(owner, message).await
    }

    async fn reconcile(&self, owner: &str, message: Message) -> ConversationResult<Message> {
        if message.status != Status::Processing {
            return Ok(message);
        }
        let Some(job_id) = message.job_id else {
            return Ok(message);
        };
        let job = match self.jobs.get(owner, job_id).await {
            Ok(job) => job,
            Err(JobsError::NotFound(_)) => return Ok(message),
            Err(error) => return Err(error.into()),
        };
        if !job.state.is_terminal() {
            return self.expire_unclaimed(owner, message, &job).await;
        }
        let (status, reason) = match job.state {
            JobState::Cancelled => (Status::Cancelled, "cancelled".to_owned()),
            _ => (
                Status::Failed,
                format!(
                    "the reply's job ended without finishing it: {}",
                    job.error.as_deref().unwrap_or("no reason recorded")
                ),
            ),
        };
        let outputs = Outputs {
            content: message.content.clone(),
            refined_prompt: message.refined_prompt.clone(),
            intent: message.intent.map(|i| (i, message.intent_confidence)),
            ..Outputs::default()
        };
        let stage = message.stage.unwrap_or(Stage::Queued);
        self.store
            .finish(message.id, status, stage, Some(&reason), &outputs, now())
            .await?;
        Ok(self.store.message(message.id).await?.unwrap_or(message))
    }

    /// Fails a reply whose job no worker has taken within the queue timeout: no process of the
    /// mesh runs replies (they need the chat and embeddings engines), and the client is told so
    /// instead of waiting for ever. The job is cancelled so that a worker started later does
    /// not answer a reply already failed.
    async fn expire_unclaimed(
        &self,
        owner: &str,
        message: Message,
        job: &aimesh_jobs::Job,
    ) -> ConversationResult<Message> {
        let waited = (now() - job.created_at).to_std().unwrap_or_default();
        if job.state != JobState::Queued
            || job.started_at.is_some()
            || waited < self.config.reply_queue_timeout
        {
            return Ok(message);
        }
        let reason = format!(
            "no worker took the reply within {} s: no process of the mesh runs replies \
             (they need the chat and embeddings models; ListModels says which are missing)",
            self.config.reply_queue_timeout.as_secs()
        );
        let outputs = Outputs {
            content: message.content.clone(),
            ..Outputs::default()
        };
        let finished = self
            .store
            .finish(
                message.id,
                Status::Failed,
                Stage::Queued,
                Some(&reason),
                &outputs,
                now(),
            )
            .await?;
        if finished {
            // The reply is failed either way; a job gone meanwhile needs no cancelling.
            let _ = self.jobs.cancel(owner, job.id).await;
        }
        Ok(self.store.message(message.id).await?.unwrap_or(message))
    }

    /// Stops a reply in progress of `owner`'s session.
    pub async fn cancel(
        &self,
        owner: &str,
        session_id: Uuid,
        id: Uuid,
    ) -> ConversationResult<Message> {
        let message = self.message(owner, session_id, id).await?;
        if message.role != Role::Assistant {
            return Err(ConversationError::FailedPrecondition(
                "only a reply (an assistant message) can be cancelled".into(),
            ));
        }
        if message.status != Status::Processing {
            return Err(ConversationError::FailedPrecondition(format!(
                "message {id} is {} already",
                message.status
            )));
        }
        self.stop_job(owner, &message).await;
        self.store.cancel(id, now()).await?;
        self.message(owner, session_id, id).await
    }

    async fn stop_job(&self, owner: &str, message: &Message) {
        if message.status == Status::Processing
            && let Some(job_id) = message.job_id
            && let Err(error) = self.jobs.cancel(owner, job_id).await
        {
            tracing::debug!(%error, %job_id, "reply job not cancelled");
        }
    }

    /// Answers the last user message of `owner`'s session again, replacing its reply.
    pub async fn regenerate(
        &self,
        owner: &str,
        session_id: Uuid,
    ) -> ConversationResult<(Message, Job)> {
        let session = self.session(owner, session_id).await?;
        let last = self.store.last_message(session_id).await?.ok_or_else(|| {
            ConversationError::FailedPrecondition("the session has no message to answer".into())
        })?;
        let (user_id, context) = match last.role {
            Role::User => (last.id, None),
            Role::Assistant => {
                if last.status == Status::Processing {
                    return Err(ConversationError::FailedPrecondition(
                        "the last reply is still in progress: cancel it first".into(),
                    ));
                }
                let user = last.reply_to.ok_or_else(|| {
                    ConversationError::FailedPrecondition(
                        "the last reply answers no message".into(),
                    )
                })?;
                self.store.delete_from(session_id, last.id, true).await?;
                (user, last.document_context.clone())
            }
        };
        self.check_capacity(owner).await?;
        let at = now();
        let mut assistant = Message::new(&session, Role::Assistant, String::new(), at);
        assistant.reply_to = Some(user_id);
        assistant.document_context = context;
        self.store
            .insert_messages(&session, &[&assistant], at)
            .await?;
        let job = self.start(owner, &mut assistant).await?;
        Ok((assistant, job))
    }

    /// Changes a user message of `owner`'s session: the messages after it go, and a new
    /// reply starts from the edit.
    pub async fn edit(
        &self,
        owner: &str,
        session_id: Uuid,
        id: Uuid,
        content: String,
    ) -> ConversationResult<(Message, Message, Job)> {
        self.check_content("content", &content)?;
        let session = self.session(owner, session_id).await?;
        let mut user = self.message(owner, session_id, id).await?;
        if user.role != Role::User {
            return Err(ConversationError::FailedPrecondition(
                "only a user message can be edited".into(),
            ));
        }
        self.check_capacity(owner).await?;
        let later = self.store.history(session_id, Uuid::max()).await?;
        let context = later
            .iter()
            .find(|m| m.reply_to == Some(id))
            .and_then(|m| m.document_context.clone());
        for message in later.iter().filter(|m| m.id > id) {
            self.stop_job(owner, message).await;
        }
        self.store.delete_from(session_id, id, false).await?;
        let at = now();
        self.store.set_content(id, &content, at).await?;
        user.content = content;
        user.updated_at = at;
        let mut assistant = Message::new(&session, Role::Assistant, String::new(), at);
        assistant.reply_to = Some(id);
        assistant.document_context = context;
        self.store
            .insert_messages(&session, &[&assistant], at)
            .await?;
        let job = self.start(owner, &mut assistant).await?;
        Ok((user, assistant, job))
    }

    /// Watches a reply of `owner`'s session: what exists first (the stage and the text so
    /// far), then each stage change and the text as it is produced, and last the message as
    /// it ended. The stream follows the reply's job; dropping it does not stop the reply.
    pub async fn watch(
        &self,
        owner: &str,
        session_id: Uuid,
        id: Uuid,
    ) -> ConversationResult<BoxStream<'static, ConversationResult<ReplyEvent>>> {
        let message = self.message(owner, session_id, id).await?;
        let job_id = match (message.status, message.job_id) {
            (Status::Processing, Some(job_id)) => job_id,
            _ => {
                return Ok(
                    futures::stream::iter([Ok(ReplyEvent::Final(Box::new(message)))]).boxed(),
                );
            }
        };
        let jobs = self.jobs.watch(owner, job_id).await?;
        let this = self.clone();
        let owner = owner.to_owned();
        let state = WatchState {
            jobs,
            sent_stage: None,
            sent_text: 0,
            pending: Vec::new(),
            done: false,
        };
        let events = futures::stream::unfold(state, move |mut state| {
            let this = this.clone();
            let owner = owner.clone();
            async move {
                loop {
                    if let Some(event) = state.pending.pop() {
                        return Some((Ok(event), state));
                    }
                    if state.done {
                        return None;
                    }
                    // Nothing from the job for a while (it may wait for a worker that never
                    // comes): look at the message, which fails a reply left unclaimed.
                    let recheck = this
                        .config
                        .reply_queue_timeout
                        .clamp(Duration::from_millis(200), Duration::from_secs(15));
                    let Ok(next) = tokio::time::timeout(recheck, state.jobs.next()).await else {
                        match this.message(&owner, session_id, id).await {
                            Ok(message) if message.status != Status::Processing => {
                                state.done = true;
                                state.pending = vec![ReplyEvent::Final(Box::new(message))];
                            }
                            Ok(_) => {}
                            Err(error) => {
                                state.done = true;
                                return Some((Err(error), state));
                            }
                        }
                        continue;
                    };
                    match next {
                        Some(Ok(job)) => {
                            let terminal = job.state.is_terminal();
                            let mut events = Vec::new();
                            if let Some((stage, detail)) = parse_progress(&job.progress_message)
                                && state.sent_stage != Some(stage)
                            {
                                state.sent_stage = Some(stage);
                                events.push(ReplyEvent::Stage {
                                    stage,
                                    detail,
                                    percent: job.progress_percent,
                                });
                            }
                            if let Some(delta) = job.partial_output.get(state.sent_text..)
                                && !delta.is_empty()
                            {
                                state.sent_text = job.partial_output.len();
                                events.push(ReplyEvent::Delta(delta.to_owned()));
                            }
                            if terminal {
                                state.done = true;
                                match this.message(&owner, session_id, id).await {
                                    Ok(message) => {
                                        events.push(ReplyEvent::Final(Box::new(message)))
                                    }
                                    Err(error) => return Some((Err(error), state)),
                                }
                            }
                            events.reverse();
                            state.pending = events;
                        }
                        Some(Err(error)) => {
                            state.done = true;
                            return Some((Err(error.into()), state));
                        }
                        None => {
                            state.done = true;
                            match this.message(&owner, session_id, id).await {
                                Ok(message) => {
                                    state.pending = vec![ReplyEvent::Final(Box::new(message))]
                                }
                                Err(error) => return Some((Err(error), state)),
                            }
                        }
                    }
                }
            }
        });
        Ok(events.boxed())
    }

    /// Deletes every session and message of `owner` (the account is being deleted).
    pub async fn delete_owner(&self, owner: &str) -> ConversationResult<u64> {
        self.store.delete_owner(owner).await
    }
}

struct WatchState {
    jobs: aimesh_jobs::JobStream,
    sent_stage: Option<Stage>,
    sent_text: usize,
    pending: Vec<ReplyEvent>,
    done: bool,
}

/// Reads the stage of a job's progress message, `"<stage>: <detail>"`.
pub fn parse_progress(message: &str) -> Option<(Stage, String)> {
    let (stage, detail) = message.split_once(':').unwrap_or((message, ""));
    Some((Stage::parse(stage.trim())?, detail.trim().to_owned()))
}

impl aimesh_kit::owned::OwnedData for Conversation {
    fn name(&self) -> &'static str {
        "conversation"
    }

    fn delete_owner<'a>(
        &'a self,
        owner: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            Conversation::delete_owner(self, owner)
                .await
                .map_err(|error| error.to_string())
        })
    }
    fn export_owner<'a>(
        &'a self,
        owner: &'a str,
        archive: &'a aimesh_kit::export::ExportArchive,
    ) -> futures::future::BoxFuture<'a, Result<u64, String>> {
        Box::pin(crate::export::export(self, owner, archive))
    }
}
