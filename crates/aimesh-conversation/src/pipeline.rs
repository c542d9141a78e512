//! The `conversation.reply` job handler: the pipeline that turns a user message into its
//! reply, in four stages reported as the job's progress (`"<stage>: <detail>"`, the reply so
//! far as its partial output) and recorded on the assistant message:
//!
//! 1. refine: the message rewritten by the chat model into a self-contained request, using
//!    the session's history (kept as it is when there is no history);
//! 2. intent: chat, documents, generate image or edit image, by [`IntentClassifier`] over the
//!    user's own words (a `document_context` means documents);
//! 3. act: a chat reply streamed token by token with the history trimmed to the context
//!    budget; an answer from the caller's documents with the passages cited (or "not in your
//!    documents"); an image made or edited through the gallery;
//! 4. finalise: the message DONE with its outputs.
//!
//! A failure at any stage ends the message FAILED with that stage and the reason (and the
//! fix, when there is one), said in words in the reply too. A cancelled job leaves the
//! message CANCELLED with the reply so far.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use aimesh_ai::{
    chat::{ChatEvent, ChatMessage, ChatModel, GenerationParams},
    engine::EngineError,
};
use aimesh_jobs::{JobContext, JobError, JobHandler, JobOutput};
use aimesh_proto::conversation::v1 as pb;
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::{
    domain::{Citation, Intent, Message, Outputs, ReplyJob, Stage, Status, now},
    error::ConversationError,
    intent::IntentClassifier,
    ports::{Passage, PortError},
    prompt::{self, Turn},
    service::Conversation,
};

/// The job kind of replies.
pub const KIND: &str = "conversation.reply";

/// The system prompt of chat replies.
pub const SYSTEM_PROMPT: &str = "You are a helpful, concise assistant.";

/// Passages retrieved for a documents answer.
const PASSAGES: u32 = 4;
/// Least similarity of a passage worth citing (all-MiniLM-L6-v2 cosine).
pub const MIN_RELEVANCE: f32 = 0.3;
/// Longest passage given to the model, in characters.
const PASSAGE_CHARS: usize = 600;
/// Tokens kept free of the context beyond the reply's.
const CONTEXT_MARGIN: usize = 16;
/// Most tokens of a refined request.
const REFINE_TOKENS: u32 = 64;
/// Turns of history the refine stage reads.
const REFINE_TURNS: usize = 3;
/// Least time between two progress records of a streamed reply.
const REPORT_EVERY: Duration = Duration::from_millis(20);
/// How often a busy chat engine is asked again before the reply fails.
const BUSY_TRIES: u32 = 30;

/// What a documents answer says when nothing relevant was found.
pub const NOT_IN_DOCUMENTS: &str =
    "I could not find anything about that in your documents: it is not in your documents.";

/// Runs `conversation.reply` jobs; their payload is a [`ReplyJob`] (JSON).
pub struct ReplyHandler {
    conversation: Conversation,
}

impl ReplyHandler {
    /// Creates the handler; the conversation must be able to reply
    /// ([`Conversation::can_reply`]).
    pub fn new(conversation: Conversation) -> Self {
        Self { conversation }
    }
}

impl JobHandler for ReplyHandler {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let conversation = self.conversation.clone();
        Box::pin(async move {
            let request: ReplyJob = serde_json::from_slice(&ctx.job.payload)
                .map_err(|e| JobError::Permanent(format!("unreadable job payload: {e}")))?;
            let message = match conversation.store().message(request.message_id).await {
                Ok(Some(message)) if message.owner_id == ctx.job.owner_id => message,
                Ok(_) => return Err(JobError::Permanent("the message no longer exists".into())),
                Err(error) => return Err(JobError::Retryable(error.to_string())),
            };
            if message.status != Status::Processing {
                return Err(JobError::Permanent(format!(
                    "the message is {} already",
                    message.status
                )));
            }
            let mut run = Run {
                conversation,
                ctx,
                message,
                stage: Stage::Refine,
                outputs: Outputs::default(),
                last_report: None,
            };
            let outcome = run.pipeline().await;
            run.end(outcome).await
        })
    }
}

/// Why the pipeline stopped.
enum Stop {
    /// The job was cancelled.
    Cancelled,
    /// It failed: the reason, said to the user too.
    Failed(String),
}

impl From<ConversationError> for Stop {
    fn from(error: ConversationError) -> Self {
        Stop::Failed(error.to_string())
    }
}

impl From<EngineError> for Stop {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Cancelled { .. } => Stop::Cancelled,
            other => Stop::Failed(other.to_string()),
        }
    }
}

/// One run of the pipeline on one message.
struct Run {
    conversation: Conversation,
    ctx: JobContext,
    message: Message,
    stage: Stage,
    outputs: Outputs,
    last_report: Option<Instant>,
}

impl Run {
    fn chat(&self) -> Result<Arc<dyn ChatModel>, Stop> {
        self.conversation
            .pipeline()
            .chat
            .clone()
            .map_err(|reason| Stop::Failed(format!("no chat model is loaded here: {reason}")))
    }

    fn intents(&self) -> Result<IntentClassifier, Stop> {
        self.conversation
            .intents()
            .cloned()
            .ok_or_else(|| Stop::Failed("no embeddings engine is loaded here".into()))
    }

    /// Enters a stage: recorded on the message and as the job's progress.
    async fn enter(&mut self, stage: Stage, percent: i32, detail: &str) -> Result<(), Stop> {
        self.stage = stage;
        let still = self
            .conversation
            .store()
            .progress(
                self.message.id,
                stage,
                &self.outputs.refined_prompt,
                self.outputs.intent,
                now(),
            )
            .await?;
        if !still || self.ctx.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        self.ctx
            .progress(
                percent,
                &format!("{stage}: {detail}"),
                &self.outputs.content,
            )
            .await;
        Ok(())
    }

    /// Records the reply so far (at most every [`REPORT_EVERY`], unless `force`).
    async fn report(&mut self, percent: i32, force: bool) {
        if !force
            && self
                .last_report
                .is_some_and(|last| last.elapsed() < REPORT_EVERY)
        {
            return;
        }
        self.last_report = Some(Instant::now());
        let detail = self
            .outputs
            .intent
            .map_or("", |(intent, _)| intent.as_str());
        self.ctx
            .progress(
                percent,
                &format!("{}: {detail}", self.stage),
                &self.outputs.content,
            )
            .await;
    }

    async fn pipeline(&mut self) -> Result<(), Stop> {
        let store = self.conversation.store().clone();
        let history = store
            .history(self.message.session_id, self.message.id)
            .await?;
        let user = history
            .iter()
            .rev()
            .find(|m| Some(m.id) == self.message.reply_to)
            .cloned()
            .ok_or_else(|| Stop::Failed("the message answered no longer exists".into()))?;
        let earlier: Vec<Message> = history.iter().filter(|m| m.id < user.id).cloned().collect();
        let turns = prompt::turns(&earlier);
        let context = self.message.document_context.clone().unwrap_or_default();

        // 1. refine
        self.enter(Stage::Refine, 5, "rewriting the request")
            .await?;
        self.outputs.refined_prompt = if turns.is_empty() {
            user.content.clone()
        } else {
            self.refine(&turns, &user.content).await?
        };

        // 2. intent
        self.enter(Stage::Intent, 15, "detecting the intent")
            .await?;
        let detected = if context.document_id.is_some() || context.relevant_text.is_some() {
            (Intent::Documents, 1.0)
        } else {
            let found = self.intents()?.classify(&user.content).await?;
            match found.intent {
                // A picture asked for about a given image is that image, edited.
                Intent::GenerateImage if user.image_id.is_some() => {
                    (Intent::EditImage, found.confidence)
                }
                intent => (intent, found.confidence),
            }
        };
        self.outputs.intent = Some(detected);

        // 3. act
        let (intent, confidence) = detected;
        self.enter(Stage::Act, 25, &format!("{intent} ({confidence:.2})"))
            .await?;
        match intent {
            Intent::Chat => {
                let chat = self.chat()?;
                let budget = self.budget(chat.as_ref());
                let count = counter(chat.clone());
                let messages = prompt::fit(SYSTEM_PROMPT, &turns, &user.content, budget, &count)
                    .ok_or_else(|| {
                        Stop::Failed(
                            "the message does not fit in the chat model's context; shorten it"
                                .into(),
                        )
                    })?;
                self.generate(chat, messages).await?;
            }
            Intent::Documents => {
                self.answer_from_documents(&turns, &user.content, &context)
                    .await?
            }
            Intent::GenerateImage => self.generate_image().await?,
            Intent::EditImage => self.edit_image(&user, &earlier).await?,
        }

        // 4. finalise
        self.enter(Stage::Finalise, 98, "storing the reply").await?;
        let finished = store
            .finish(
                self.message.id,
                Status::Done,
                Stage::Finalise,
                None,
                &self.outputs,
                now(),
            )
            .await?;
        if !finished {
            return Err(Stop::Cancelled);
        }
        Ok(())
    }

    /// The tokens a prompt may take: the context less the reply's tokens.
    fn budget(&self, chat: &dyn ChatModel) -> usize {
        chat.context_length()
            .saturating_sub(self.conversation.config().reply_max_tokens as usize + CONTEXT_MARGIN)
    }

    async fn refine(&mut self, turns: &[Turn], text: &str) -> Result<String, Stop> {
        let chat = self.chat()?;
        let mut transcript = String::new();
        for turn in &turns[turns.len().saturating_sub(REFINE_TURNS)..] {
            transcript.push_str(&format!(
                "User: {}\nAssistant: {}\n",
                prompt::clip(&turn.user, 300),
                prompt::clip(&turn.assistant, 300)
            ));
        }
        let messages = vec![
            ChatMessage::system(
                "Rewrite the user's last message as one self-contained request, replacing \
                 references to the conversation with what they refer to. Reply with the \
                 rewritten request only.",
            ),
            ChatMessage::user(format!("Conversation:\n{transcript}\nLast message: {text}")),
        ];
        let params = GenerationParams {
            max_tokens: REFINE_TOKENS,
            stop: vec!["\n".into()],
            ..GenerationParams::default()
        };
        let (refined, _) = self.complete(chat, messages, params, false).await?;
        let refined = refined.trim().trim_matches('"').trim();
        // A small model sometimes answers instead of rewriting; an empty or rambling
        // rewrite is worse than the message itself.
        if refined.is_empty() || refined.chars().count() > 3 * text.chars().count() + 200 {
            Ok(text.to_owned())
        } else {
            Ok(refined.to_owned())
        }
    }

    /// Streams a reply of `chat` to `messages` into the outputs.
    async fn generate(
        &mut self,
        chat: Arc<dyn ChatModel>,
        messages: Vec<ChatMessage>,
    ) -> Result<(), Stop> {
        let params = GenerationParams {
            max_tokens: self.conversation.config().reply_max_tokens,
            ..GenerationParams::default()
        };
        self.outputs.model = chat.name().to_owned();
        let (_, tokens) = self.complete(chat, messages, params, true).await?;
        self.outputs.completion_tokens = i64::from(tokens);
        Ok(())
    }

    /// Runs one generation; with `stream`, each piece is appended to the reply and reported.
    async fn complete(
        &mut self,
        chat: Arc<dyn ChatModel>,
        messages: Vec<ChatMessage>,
        params: GenerationParams,
        stream: bool,
    ) -> Result<(String, u32), Stop> {
        let mut tries = 0;
        let mut events = loop {
            match chat.chat(messages.clone(), params.clone()) {
                Ok(events) => break events,
                Err(EngineError::Busy { .. }) if tries < BUSY_TRIES => {
                    tries += 1;
                    tokio::select! {
                        _ = self.ctx.cancel.cancelled() => return Err(Stop::Cancelled),
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                Err(error) => return Err(error.into()),
            }
        };
        let mut text = String::new();
        let mut tokens = 0;
        loop {
            let event = tokio::select! {
                _ = self.ctx.cancel.cancelled() => return Err(Stop::Cancelled),
                event = events.recv() => event,
            };
            match event {
                Some(Ok(ChatEvent::Token { text: piece })) => {
                    text.push_str(&piece);
                    if stream {
                        self.outputs.content.push_str(&piece);
                        self.report(60, false).await;
                    }
                }
                Some(Ok(ChatEvent::Done {
                    completion_tokens, ..
                })) => {
                    tokens = completion_tokens;
                    break;
                }
                Some(Err(error)) => return Err(error.into()),
                None => break,
            }
        }
        if stream {
            self.report(90, true).await;
        }
        Ok((text, tokens))
    }

    async fn answer_from_documents(
        &mut self,
        turns: &[Turn],
        question: &str,
        context: &crate::domain::DocumentContext,
    ) -> Result<(), Stop> {
        let owner = self.message.owner_id.clone();
        let passages: Vec<Passage> = match &context.relevant_text {
            Some(text) => vec![Passage {
                document_id: context.document_id.unwrap_or(Uuid::nil()),
                filename: String::new(),
                page: 0,
                text: text.clone(),
                score: 1.0,
            }],
            None => {
                let search = self
                    .conversation
                    .pipeline()
                    .documents
                    .clone()
                    .ok_or_else(|| {
                        Stop::Failed(
                            "document search is not available here: serve the processing service \
                         in the same mesh"
                                .into(),
                        )
                    })?;
                let ids = context.document_id.into_iter().collect();
                let query = self.outputs.refined_prompt.clone();
                let found = tokio::select! {
                    _ = self.ctx.cancel.cancelled() => return Err(Stop::Cancelled),
                    found = search.search(&owner, &query, PASSAGES, ids) => found,
                };
                match found {
                    Ok(found) => found
                        .into_iter()
                        .filter(|p| p.score >= MIN_RELEVANCE)
                        .collect(),
                    Err(PortError::NotFound(what)) => {
                        return Err(Stop::Failed(format!(
                            "{what} not found among your documents"
                        )));
                    }
                    Err(error) => return Err(Stop::Failed(error.to_string())),
                }
            }
        };
        if passages.is_empty() {
            self.outputs.content = NOT_IN_DOCUMENTS.to_owned();
            self.report(90, true).await;
            return Ok(());
        }
        self.outputs.citations = passages
            .iter()
            .enumerate()
            .map(|(i, p)| Citation {
                index: i as i32 + 1,
                document_id: (!p.document_id.is_nil()).then_some(p.document_id),
                filename: p.filename.clone(),
                page: p.page,
                text: p.text.clone(),
                score: p.score,
            })
            .collect();
        let chat = self.chat()?;
        let mut system = String::from(
            "Answer the question using only the numbered passages below, citing them as [1], \
             [2]. If they do not contain the answer, say it is not in the documents.\n",
        );
        for citation in &self.outputs.citations {
            system.push_str(&format!(
                "\n[{}] {}\n",
                citation.index,
                prompt::clip(&citation.text, PASSAGE_CHARS)
            ));
        }
        let budget = self.budget(chat.as_ref());
        let count = counter(chat.clone());
        let messages = prompt::fit(&system, turns, question, budget, &count)
            .or_else(|| prompt::fit(&system, &[], question, budget, &count))
            .ok_or_else(|| {
                Stop::Failed(
                    "the passages and the question do not fit in the chat model's context".into(),
                )
            })?;
        self.generate(chat, messages).await?;
        let mut sources = String::from("\n\nSources:");
        for citation in &self.outputs.citations {
            let name = if citation.filename.is_empty() {
                "the given context".to_owned()
            } else if citation.page > 0 {
                format!("{}, page {}", citation.filename, citation.page)
            } else {
                citation.filename.clone()
            };
            sources.push_str(&format!("\n[{}] {name}", citation.index));
        }
        self.outputs.content.push_str(&sources);
        self.report(95, true).await;
        Ok(())
    }

    async fn generate_image(&mut self) -> Result<(), Stop> {
        let images = self.images()?;
        let owner = self.message.owner_id.clone();
        let prompt = self.outputs.refined_prompt.clone();
        let made = tokio::select! {
            _ = self.ctx.cancel.cancelled() => return Err(Stop::Cancelled),
            made = images.generate(&owner, &prompt) => made,
        };
        self.image_made(made, &format!("Here is the image I made for: {prompt}"))
    }

    /// Edits the image the user's message is about, else the session's latest.
    async fn edit_image(&mut self, user: &Message, earlier: &[Message]) -> Result<(), Stop> {
        let images = self.images()?;
        let Some(source) = user
            .image_id
            .or_else(|| earlier.iter().rev().find_map(|m| m.image_id))
        else {
            return Err(Stop::Failed(
                "there is no image to edit: send the message with a gallery image (image_id), \
                 or ask for an image first"
                    .into(),
            ));
        };
        let owner = self.message.owner_id.clone();
        // The user's own words name the edit: the refined request may carry words of the
        // history ("the sketch") that name another.
        let instruction = user.content.clone();
        let made = tokio::select! {
            _ = self.ctx.cancel.cancelled() => return Err(Stop::Cancelled),
            made = images.edit(&owner, source, &instruction) => made,
        };
        self.image_made(made, "Here is the edited image.")
    }

    fn images(&self) -> Result<Arc<dyn crate::ports::ImageMaker>, Stop> {
        self.conversation.pipeline().images.clone().ok_or_else(|| {
            Stop::Failed(
                "images cannot be made here: serve the gallery service in the same mesh".into(),
            )
        })
    }

    fn image_made(&mut self, made: Result<Uuid, PortError>, reply: &str) -> Result<(), Stop> {
        match made {
            Ok(id) => {
                self.outputs.image_id = Some(id);
                self.outputs.content = reply.to_owned();
                Ok(())
            }
            Err(error) => Err(Stop::Failed(error.to_string())),
        }
    }

    /// Records how the run ended on the message and as the job's outcome.
    async fn end(mut self, outcome: Result<(), Stop>) -> Result<JobOutput, JobError> {
        let store = self.conversation.store().clone();
        let (status, error) = match outcome {
            Ok(()) => (Status::Done, None),
            Err(Stop::Cancelled) => {
                let _ = store
                    .finish(
                        self.message.id,
                        Status::Cancelled,
                        self.stage,
                        Some("cancelled by its owner"),
                        &self.outputs,
                        now(),
                    )
                    .await;
                return Err(JobError::Cancelled);
            }
            Err(Stop::Failed(reason)) => {
                let said = format!(
                    "Sorry, I could not do that ({} stage failed): {reason}",
                    self.stage
                );
                if self.outputs.content.is_empty() {
                    self.outputs.content = said;
                } else {
                    self.outputs.content.push_str(&format!("\n\n{said}"));
                }
                self.report(100, true).await;
                let _ = store
                    .finish(
                        self.message.id,
                        Status::Failed,
                        self.stage,
                        Some(&reason),
                        &self.outputs,
                        now(),
                    )
                    .await;
                (Status::Failed, Some(reason))
            }
        };
        if let Some(reason) = error {
            return Err(JobError::Permanent(format!(
                "{} stage: {reason}",
                self.stage
            )));
        }
        Ok(JobOutput::message(&pb::ReplyResult {
            message_id: self.message.id.to_string(),
            status: crate::convert::status_to_proto(status) as i32,
            intent: self
                .outputs
                .intent
                .map_or(pb::Intent::Unspecified, |(intent, _)| {
                    crate::convert::intent_to_proto(intent)
                }) as i32,
            completion_tokens: self.outputs.completion_tokens as i32,
        }))
    }
}

/// A token counter over `chat`'s tokenizer, estimating when it has none.
fn counter(chat: Arc<dyn ChatModel>) -> impl Fn(&str) -> usize {
    move |text: &str| {
        chat.count_tokens(text)
            .unwrap_or_else(|| prompt::estimate_tokens(text))
    }
}
