//! The tonic adapter of `aimesh.models.v1.ModelsService`: validates requests, calls the
//! engines and maps their errors.

use std::{pin::Pin, sync::Arc, time::Duration};

use aimesh_ai::{
    analysis::Analyzer,
    chat::{self, ChatEvent, ChatMessage, FinishReason, GenerationParams, Role},
    engine::EngineError,
};
use aimesh_kit::{
    Code, FieldViolation, ServiceError,
    error::{Violations, display_violations, into_status, retry_status},
};
use aimesh_proto::models::v1::{self as pb, models_service_server::ModelsService};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::{EngineKind, Engines, Slot, Unavailable, catalog_model};

/// Most texts in one Embed call.
pub const MAX_EMBED_TEXTS: usize = 256;
/// Longest text in an Embed call, in characters.
pub const MAX_EMBED_CHARS: usize = 10_000;
/// Most messages in one Chat call.
pub const MAX_CHAT_MESSAGES: usize = 64;
/// Longest message content, in characters.
pub const MAX_MESSAGE_CHARS: usize = 20_000;
/// Largest audio file Transcribe accepts.
pub const MAX_AUDIO_BYTES: usize = 25 * 1024 * 1024;
/// Longest text AnalyzeText accepts, in characters.
pub const MAX_ANALYZE_CHARS: usize = 100_000;
/// Most summary sentences.
pub const MAX_SUMMARY_SENTENCES: u32 = 20;
/// Most keywords.
pub const MAX_KEYWORDS: u32 = 50;
/// Largest message the service decodes (an audio file plus framing).
pub const MAX_MESSAGE_BYTES: usize = MAX_AUDIO_BYTES + 64 * 1024;
/// What a busy engine tells clients to wait before retrying.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// The gRPC face of the models service.
#[derive(Clone, Debug)]
pub struct ModelsApi {
    engines: Arc<Engines>,
}

impl ModelsApi {
    /// Serves `engines`.
    pub fn new(engines: Arc<Engines>) -> Self {
        Self { engines }
    }

    /// Returns the tonic server for this API, accepting audio files up to
    /// [`MAX_AUDIO_BYTES`].
    pub fn into_server(self) -> pb::models_service_server::ModelsServiceServer<Self> {
        pb::models_service_server::ModelsServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }
}

/// A models call's failure.
#[derive(Debug, thiserror::Error)]
enum ModelsError {
    #[error("invalid argument: {}", display_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("the {kind} engine is not available: {detail}")]
    Unavailable { kind: EngineKind, detail: String },
    #[error("{0}")]
    Engine(EngineError),
}

impl ServiceError for ModelsError {
    fn code(&self) -> Code {
        match self {
            ModelsError::InvalidArgument(_) => Code::InvalidArgument,
            ModelsError::Unavailable { .. } => Code::FailedPrecondition,
            ModelsError::Engine(error) => match error {
                EngineError::Busy { .. } => Code::ResourceExhausted,
                EngineError::InvalidInput { .. } => Code::InvalidArgument,
                EngineError::Failed { .. } => Code::Internal,
                EngineError::Stopped { .. } => Code::Unavailable,
                EngineError::Cancelled { .. } => Code::Cancelled,
            },
        }
    }

    fn field_violations(&self) -> &[FieldViolation] {
        match self {
            ModelsError::InvalidArgument(violations) => violations,
            _ => &[],
        }
    }
}

impl From<ModelsError> for Status {
    fn from(error: ModelsError) -> Self {
        match error {
            ModelsError::Engine(EngineError::Busy { .. }) => {
                retry_status(&error.to_string(), BUSY_RETRY)
            }
            ModelsError::Engine(EngineError::InvalidInput { field, message }) => into_status(
                ModelsError::InvalidArgument(vec![FieldViolation::new(field, message)]),
            ),
            other => into_status(other),
        }
    }
}

impl From<EngineError> for ModelsError {
    fn from(error: EngineError) -> Self {
        ModelsError::Engine(error)
    }
}

fn ready<T: Clone>(slot: &Slot<T>, kind: EngineKind) -> Result<T, ModelsError> {
    slot.clone()
        .map_err(|unavailable| ModelsError::Unavailable {
            kind,
            detail: unavailable.detail().to_owned(),
        })
}

fn invalid(field: impl Into<String>, description: impl Into<String>) -> ModelsError {
    ModelsError::InvalidArgument(vec![FieldViolation::new(field, description)])
}

fn duration(seconds: f64) -> prost_types::Duration {
    let seconds = seconds.max(0.0);
    let whole = seconds.trunc();
    prost_types::Duration {
        seconds: whole as i64,
        nanos: ((seconds - whole) * 1e9).round().min(999_999_999.0) as i32,
    }
}

type ChatResponseStream = Pin<Box<dyn Stream<Item = Result<pb::ChatResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ModelsService for ModelsApi {
    async fn list_models(
        &self,
        _request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let models = EngineKind::ALL
            .iter()
            .flat_map(|&kind| {
                let (state, detail) = match self.engines.status(kind) {
                    Ok(()) => (pb::ModelState::Ready, String::new()),
                    Err(unavailable) => model_state(&unavailable),
                };
                let capability = match kind {
                    EngineKind::Embeddings => pb::Capability::Embeddings,
                    EngineKind::Chat => pb::Capability::Chat,
                    EngineKind::Transcription => pb::Capability::Transcription,
                    EngineKind::Speech => pb::Capability::SpeechSynthesis,
                    EngineKind::ImageUpscale => pb::Capability::ImageUpscale,
                    EngineKind::ImageGeneration => pb::Capability::ImageGeneration,
                    EngineKind::BackgroundRemoval => pb::Capability::BackgroundRemoval,
                };
                let describe = |id: &str, description: &str, license: &str, source: &str| pb::Model {
                    id: id.to_owned(),
                    description: description.to_owned(),
                    license: license.to_owned(),
                    source: source.to_owned(),
                    ..Default::default()
                };
                let spec = match (kind, self.engines.chat_choice.as_deref()) {
                    (EngineKind::Chat, Some(choice)) => aimesh_ai::models::spec(choice),
                    (EngineKind::ImageUpscale, _) => {
                        aimesh_ai::models::spec(&self.engines.upscale_choice)
                    }
                    _ => catalog_model(kind),
                };
                let mut model = match (spec, kind) {
                    // A file named by AIMESH_CHAT_MODEL (a catalog id has its spec).
                    (None, EngineKind::Chat) => {
                        let engine = self.engines.chat.as_ref().ok();
                        let stem = self
                            .engines
                            .chat_choice
                            .as_deref()
                            .and_then(|file| std::path::Path::new(file).file_stem())
                            .map(|stem| stem.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        describe(
                            engine.map_or(stem.as_str(), |engine| engine.name()),
                            &engine.map_or_else(
                                || "A GGUF chat model the operator provides".to_owned(),
                                |engine| engine.summary(),
                            ),
                            "the provided model's",
                            "AIMESH_CHAT_MODEL",
                        )
                    }
                    (Some(spec), _) => {
                        describe(spec.id, spec.description, spec.license, &spec.source())
                    }
                    (None, EngineKind::ImageGeneration) => {
                        let id = self
                            .engines
                            .image_generator
                            .as_ref()
                            .map_or("stable-diffusion", |engine| engine.model());
                        describe(
                            id,
                            "Stable Diffusion text-to-image (1.5, 2.1 or Turbo weights the operator provides)",
                            "the provided model's",
                            "AIMESH_IMAGE_MODEL_DIR",
                        )
                    }
                    (None, EngineKind::BackgroundRemoval) => describe(
                        "background-removal",
                        "Background removal with an ONNX segmentation model (IS-Net, U²-Net) the operator provides",
                        "the provided model's",
                        "AIMESH_MATTING_MODEL",
                    ),
                    (None, _) => describe(
                        "espeak-ng",
                        "eSpeak NG formant speech synthesiser",
                        "GPL-3.0-or-later",
                        "Debian package espeak-ng",
                    ),
                };
                model.capability = capability as i32;
                model.state = state as i32;
                model.detail = detail;
                if kind != EngineKind::Transcription {
                    return vec![model];
                }
                // One entry per Whisper model, each with its own state (a loaded engine's
                // liveness applies to every model it runs).
                self.engines
                    .transcription_models
                    .iter()
                    .filter_map(|(id, loaded)| {
                        let spec = aimesh_ai::models::spec(id)?;
                        let mut entry = model.clone();
                        entry.id = spec.id.to_owned();
                        entry.description = spec.description.to_owned();
                        entry.license = spec.license.to_owned();
                        entry.source = spec.source();
                        if let Err(unavailable) = loaded {
                            let (state, detail) = model_state(unavailable);
                            entry.state = state as i32;
                            entry.detail = detail;
                        }
                        Some(entry)
                    })
                    .collect()
            })
            .collect();
        Ok(Response::new(pb::ListModelsResponse { models }))
    }

    async fn embed(
        &self,
        request: Request<pb::EmbedRequest>,
    ) -> Result<Response<pb::EmbedResponse>, Status> {
        let texts = request.into_inner().texts;
        let mut violations = Violations::new();
        if texts.is_empty() {
            violations.add("texts", "at least one text is required");
        } else if texts.len() > MAX_EMBED_TEXTS {
            violations.add(
                "texts",
                format!("{} texts, at most {MAX_EMBED_TEXTS}", texts.len()),
            );
        }
        for (i, text) in texts.iter().enumerate().take(MAX_EMBED_TEXTS) {
            let chars = text.chars().count();
            if text.trim().is_empty() {
                violations.add(format!("texts[{i}]"), "must not be empty");
            } else if chars > MAX_EMBED_CHARS {
                violations.add(
                    format!("texts[{i}]"),
                    format!("{chars} characters, at most {MAX_EMBED_CHARS}"),
                );
            }
        }
        violations
            .into_result()
            .map_err(ModelsError::InvalidArgument)?;
        let embedder = ready(&self.engines.embedder, EngineKind::Embeddings)?;
        let vectors = embedder.embed(texts).await.map_err(ModelsError::from)?;
        Ok(Response::new(pb::EmbedResponse {
            model: models_id(EngineKind::Embeddings),
            dimensions: embedder.dimensions() as u32,
            embeddings: vectors
                .into_iter()
                .map(|values| pb::Embedding { values })
                .collect(),
        }))
    }

    type ChatStream = ChatResponseStream;

    async fn chat(
        &self,
        request: Request<pb::ChatRequest>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let (messages, params) = chat_request(request.into_inner())?;
        let model = ready(&self.engines.chat, EngineKind::Chat)?;
        let name = model.name().to_owned();
        let events = model.chat(messages, params).map_err(ModelsError::from)?;
        let stream =
            tokio_stream::wrappers::ReceiverStream::new(events).map(move |event| match event {
                Ok(ChatEvent::Token { text }) => Ok(pb::ChatResponse {
                    text,
                    model: name.clone(),
                    ..Default::default()
                }),
                Ok(ChatEvent::Done {
                    finish_reason,
                    prompt_tokens,
                    completion_tokens,
                }) => Ok(pb::ChatResponse {
                    text: String::new(),
                    finish_reason: match finish_reason {
                        FinishReason::Stop => pb::FinishReason::Stop,
                        FinishReason::Length => pb::FinishReason::Length,
                        FinishReason::StopSequence => pb::FinishReason::StopSequence,
                    } as i32,
                    usage: Some(pb::Usage {
                        prompt_tokens,
                        completion_tokens,
                    }),
                    model: name.clone(),
                }),
                Err(error) => Err(Status::from(ModelsError::from(error))),
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn transcribe(
        &self,
        request: Request<pb::TranscribeRequest>,
    ) -> Result<Response<pb::TranscribeResponse>, Status> {
        let pb::TranscribeRequest {
            audio,
            language,
            model,
        } = request.into_inner();
        let mut violations = Violations::new();
        let language = language.trim().to_ascii_lowercase();
        if !language.is_empty()
            && !aimesh_ai::speech::WHISPER_LANGUAGES.contains(&language.as_str())
        {
            violations.add(
                "language",
                format!(
                    "{} is not a language Whisper knows",
                    aimesh_kit::error::excerpt(&language)
                ),
            );
        }
        let model = model.trim().to_owned();
        if !model.is_empty() && !aimesh_ai::speech::convert::MODEL_IDS.contains(&model.as_str()) {
            violations.add(
                "model",
                format!(
                    "{} is not a transcription model; one of {}",
                    aimesh_kit::error::excerpt(&model),
                    aimesh_ai::speech::convert::MODEL_IDS.join(", ")
                ),
            );
        }
        violations
            .into_result()
            .map_err(ModelsError::InvalidArgument)?;
        if audio.is_empty() {
            return Err(invalid("audio", "an audio file is required").into());
        }
        if audio.len() > MAX_AUDIO_BYTES {
            return Err(invalid(
                "audio",
                format!("{} bytes, at most {MAX_AUDIO_BYTES}", audio.len()),
            )
            .into());
        }
        let transcriber = ready(&self.engines.transcriber, EngineKind::Transcription)?;
        let options = aimesh_ai::speech::TranscribeOptions {
            model: (!model.is_empty()).then_some(model),
            language: (!language.is_empty()).then_some(language),
        };
        let transcript = transcriber
            .transcribe_with(audio, options)
            .await
            .map_err(ModelsError::from)?;
        Ok(Response::new(pb::TranscribeResponse {
            text: transcript.text,
            segments: transcript
                .segments
                .into_iter()
                .map(|segment| pb::TranscriptSegment {
                    start_offset: Some(duration(segment.start)),
                    end_offset: Some(duration(segment.end)),
                    text: segment.text,
                })
                .collect(),
            duration: Some(duration(transcript.duration)),
            language: transcript.language,
            model: transcript.model,
            language_probability: transcript.language_probability.unwrap_or_default(),
        }))
    }

    async fn synthesize(
        &self,
        request: Request<pb::SynthesizeRequest>,
    ) -> Result<Response<pb::SynthesizeResponse>, Status> {
        let request = request.into_inner();
        let synthesizer = ready(&self.engines.synthesizer, EngineKind::Speech)?;
        let voice = (!request.voice.trim().is_empty()).then(|| request.voice.trim().to_owned());
        let rate = (request.words_per_minute != 0).then_some(request.words_per_minute);
        let speech = synthesizer
            .synthesize(request.text, voice.clone(), rate)
            .await
            .map_err(ModelsError::from)?;
        Ok(Response::new(pb::SynthesizeResponse {
            audio: speech.wav,
            content_type: "audio/wav".to_owned(),
            sample_rate: speech.sample_rate,
            duration: Some(duration(speech.duration)),
            voice: voice.unwrap_or_default(),
            engine: synthesizer.name().to_owned(),
        }))
    }

    async fn list_voices(
        &self,
        _request: Request<pb::ListVoicesRequest>,
    ) -> Result<Response<pb::ListVoicesResponse>, Status> {
        let synthesizer = ready(&self.engines.synthesizer, EngineKind::Speech)?;
        Ok(Response::new(pb::ListVoicesResponse {
            voices: synthesizer
                .voices()
                .iter()
                .map(|voice| pb::Voice {
                    name: voice.identifier.clone(),
                    language: voice.language.clone(),
                    description: voice.name.clone(),
                })
                .collect(),
            engine: synthesizer.name().to_owned(),
        }))
    }

    async fn analyze_text(
        &self,
        request: Request<pb::AnalyzeTextRequest>,
    ) -> Result<Response<pb::AnalyzeTextResponse>, Status> {
        let request = request.into_inner();
        let mut violations = Violations::new();
        let chars = request.text.chars().count();
        if request.text.trim().is_empty() {
            violations.add("text", "must not be empty");
        } else if chars > MAX_ANALYZE_CHARS {
            violations.add(
                "text",
                format!("{chars} characters, at most {MAX_ANALYZE_CHARS}"),
            );
        }
        if request.summary_sentences > MAX_SUMMARY_SENTENCES {
            violations.add(
                "summary_sentences",
                format!("at most {MAX_SUMMARY_SENTENCES}"),
            );
        }
        if request.keyword_count > MAX_KEYWORDS {
            violations.add("keyword_count", format!("at most {MAX_KEYWORDS}"));
        }
        if request.summary_sentences == 0
            && request.keyword_count == 0
            && !request.sentiment
            && request.labels.is_empty()
        {
            violations.add(
                "summary_sentences",
                "ask for at least one analysis: summary_sentences, keyword_count, sentiment \
                 or labels",
            );
        }
        violations
            .into_result()
            .map_err(ModelsError::InvalidArgument)?;
        let analyzer: Analyzer = ready(&self.engines.analyzer, EngineKind::Embeddings)?;
        let text = request.text.as_str();
        let mut response = pb::AnalyzeTextResponse::default();
        if request.summary_sentences > 0 {
            let summary = analyzer
                .summarize(text, request.summary_sentences as usize)
                .await
                .map_err(ModelsError::from)?;
            response.summary = Some(pb::Summary {
                sentences: summary.sentences.into_iter().map(|s| s.text).collect(),
                engine: summary.engine,
            });
        }
        if request.keyword_count > 0 {
            let keywords = analyzer
                .keywords(text, request.keyword_count as usize)
                .await
                .map_err(ModelsError::from)?;
            response.keywords = Some(pb::Keywords {
                keywords: keywords
                    .keywords
                    .into_iter()
                    .map(|k| pb::Keyword {
                        text: k.phrase,
                        score: k.score,
                    })
                    .collect(),
                engine: keywords.engine,
            });
        }
        if request.sentiment {
            let sentiment = analyzer.sentiment(text).map_err(ModelsError::from)?;
            response.sentiment = Some(pb::Sentiment {
                label: sentiment.label.as_str().to_owned(),
                score: sentiment.score,
                engine: sentiment.engine.to_owned(),
            });
        }
        if !request.labels.is_empty() {
            let classification = analyzer
                .classify(text, &request.labels)
                .await
                .map_err(ModelsError::from)?;
            response.classification = Some(pb::Classification {
                labels: classification
                    .labels
                    .into_iter()
                    .map(|l| pb::LabelScore {
                        label: l.label,
                        score: l.score,
                    })
                    .collect(),
                engine: classification.engine,
            });
        }
        Ok(Response::new(response))
    }
}

/// The catalog id of the model behind `kind`, or the engine's name.
fn model_state(unavailable: &Unavailable) -> (pb::ModelState, String) {
    let state = match unavailable {
        Unavailable::Missing(_) => pb::ModelState::Missing,
        Unavailable::Invalid(_) => pb::ModelState::Invalid,
        Unavailable::Disabled(_) => pb::ModelState::Disabled,
        Unavailable::Failed(_) => pb::ModelState::Failed,
    };
    (state, unavailable.detail().to_owned())
}

fn models_id(kind: EngineKind) -> String {
    catalog_model(kind).map_or_else(|| kind.as_str().to_owned(), |spec| spec.id.to_owned())
}

/// Validates a ChatRequest into the engine's messages and parameters.
fn chat_request(
    request: pb::ChatRequest,
) -> Result<(Vec<ChatMessage>, GenerationParams), ModelsError> {
    let mut violations = Violations::new();
    if request.messages.is_empty() {
        violations.add("messages", "at least one message is required");
    } else if request.messages.len() > MAX_CHAT_MESSAGES {
        violations.add(
            "messages",
            format!(
                "{} messages, at most {MAX_CHAT_MESSAGES}",
                request.messages.len()
            ),
        );
    }
    let mut messages = Vec::with_capacity(request.messages.len());
    for (i, message) in request.messages.iter().enumerate() {
        let role = match pb::Role::try_from(message.role) {
            Ok(pb::Role::System) => Some(Role::System),
            Ok(pb::Role::User) => Some(Role::User),
            Ok(pb::Role::Assistant) => Some(Role::Assistant),
            _ => {
                violations.add(
                    format!("messages[{i}].role"),
                    "must be ROLE_SYSTEM, ROLE_USER or ROLE_ASSISTANT",
                );
                None
            }
        };
        let chars = message.content.chars().count();
        if chars > MAX_MESSAGE_CHARS {
            violations.add(
                format!("messages[{i}].content"),
                format!("{chars} characters, at most {MAX_MESSAGE_CHARS}"),
            );
        }
        if let Some(role) = role {
            messages.push(ChatMessage::new(role, message.content.clone()));
        }
    }
    let defaults = GenerationParams::default();
    let params = GenerationParams {
        max_tokens: request.max_tokens.unwrap_or(defaults.max_tokens),
        temperature: request.temperature.map_or(defaults.temperature, f64::from),
        top_p: request.top_p.map_or(defaults.top_p, f64::from),
        top_k: request.top_k.map_or(defaults.top_k, |k| k as usize),
        repeat_penalty: request.repeat_penalty.unwrap_or(defaults.repeat_penalty),
        seed: request.seed.or(defaults.seed),
        stop: request.stop,
        ..defaults
    };
    violations
        .into_result()
        .map_err(ModelsError::InvalidArgument)?;
    // The engine's own checks (role order, ranges) name the same fields.
    chat::validate_messages(&messages).map_err(ModelsError::from)?;
    chat::validate_params(&params).map_err(ModelsError::from)?;
    Ok((messages, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_split_into_seconds_and_nanos() {
        let d = duration(2.25);
        assert_eq!((d.seconds, d.nanos), (2, 250_000_000));
        let d = duration(-1.0);
        assert_eq!((d.seconds, d.nanos), (0, 0));
    }

    #[test]
    fn chat_requests_name_the_bad_field() {
        let bad_role = pb::ChatRequest {
            messages: vec![pb::ChatMessage {
                role: 0,
                content: "hi".into(),
            }],
            ..Default::default()
        };
        let error = chat_request(bad_role).expect_err("unspecified role");
        assert_eq!(error.field_violations()[0].field, "messages[0].role");

        let empty = chat_request(pb::ChatRequest::default()).expect_err("no messages");
        assert_eq!(empty.field_violations()[0].field, "messages");
    }

    #[test]
    fn every_catalog_model_has_an_engine() {
        for spec in aimesh_ai::models::CATALOG {
            // The transcription engine runs every Whisper model (ListModels lists each).
            let whisper = aimesh_ai::speech::convert::MODEL_IDS.contains(&spec.id);
            // The optional chat and upscaling models run on their engine when AIMESH_CHAT_MODEL
            // or AIMESH_UPSCALE_MODEL names them.
            let chat = spec.optional
                && matches!(
                    spec.capability,
                    aimesh_ai::models::Capability::Chat
                        | aimesh_ai::models::Capability::ImageUpscale
                );
            assert!(
                whisper
                    || chat
                    || EngineKind::ALL
                        .iter()
                        .any(|&kind| catalog_model(kind).is_some_and(|s| s.id == spec.id)),
                "{} has no engine",
                spec.id
            );
        }
    }
}
