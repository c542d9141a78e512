//! The models service: loads the local inference engines once, at start, from the verified
//! files of a models directory, keeps each engine's readiness (and the reason when it is not
//! ready), and serves `aimesh.models.v1.ModelsService` over them.
//!
//! An engine whose model is missing or fails verification does not stop the process: its
//! capability reports NOT_SERVING in health, ListModels says why, and its calls answer
//! FAILED_PRECONDITION with the fix.

pub mod api;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use aimesh_ai::{
    analysis::Analyzer,
    chat::{ChatModel, GgufChat, GgufChatOptions},
    embed::{EmbedOptions, Embedder, MiniLm},
    image::{
        BackgroundRemover, DiffusionLoadError, DiffusionOptions, Esrgan, EsrganOptions,
        ImageGenerator, Matting, MattingOptions, Normalization, StableDiffusion, Upscaler, esrgan,
        matting,
    },
    models::{self, Capability, ModelError},
    speech::{EspeakNg, Synthesizer, Transcriber, Whisper, WhisperOptions, convert as whisper},
};

pub use self::api::ModelsApi;

/// An engine the models service can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum EngineKind {
    /// Sentence embeddings (all-MiniLM-L6-v2) and the text analysis built on them.
    Embeddings,
    /// Chat (SmolLM2-135M-Instruct, or the GGUF model of AIMESH_CHAT_MODEL).
    Chat,
    /// Speech-to-text (Whisper tiny.en and base: AIMESH_WHISPER_MODELS).
    Transcription,
    /// Text-to-speech (eSpeak NG).
    Speech,
    /// Image super-resolution ×2 / ×4 (ESRGAN slim).
    ImageUpscale,
    /// Text-to-image (Stable Diffusion weights a user provides: AIMESH_IMAGE_MODEL_DIR).
    ImageGeneration,
    /// Background removal (a segmentation model a user provides: AIMESH_MATTING_MODEL).
    BackgroundRemoval,
}

impl EngineKind {
    /// Every engine.
    pub const ALL: &'static [EngineKind] = &[
        EngineKind::Embeddings,
        EngineKind::Chat,
        EngineKind::Transcription,
        EngineKind::Speech,
        EngineKind::ImageUpscale,
        EngineKind::ImageGeneration,
        EngineKind::BackgroundRemoval,
    ];

    /// The engine's name in health checks and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Embeddings => "embeddings",
            EngineKind::Chat => "chat",
            EngineKind::Transcription => "transcription",
            EngineKind::Speech => "speech",
            EngineKind::ImageUpscale => "image-upscale",
            EngineKind::ImageGeneration => "image-generation",
            EngineKind::BackgroundRemoval => "background-removal",
        }
    }

    /// The name health reports this engine's readiness under, e.g.
    /// `aimesh.models.v1.ModelsService/chat`.
    pub fn health_name(self) -> String {
        format!("aimesh.models.v1.ModelsService/{}", self.as_str())
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the models are unless `AIMESH_MODELS_DIR` says otherwise.
pub const DEFAULT_MODELS_DIR: &str = ".data/models";

/// How the models service finds and loads its engines.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelsConfig {
    /// Directory of the pinned models, filled by `aimesh models fetch`.
    #[arg(long, env = "AIMESH_MODELS_DIR", default_value = DEFAULT_MODELS_DIR)]
    pub models_dir: PathBuf,

    /// Engines the models service loads, comma-separated: embeddings, chat, transcription,
    /// speech, image-upscale, image-generation, background-removal.
    #[arg(
        long,
        env = "AIMESH_ENGINES",
        value_delimiter = ',',
        value_enum,
        default_value = "embeddings,chat,transcription,speech,image-upscale,image-generation,background-removal"
    )]
    pub engines: Vec<EngineKind>,

    /// The Whisper models speech-to-text loads, comma-separated, the default first:
    /// whisper-tiny.en (English), whisper-base (multilingual, language detection). A request
    /// naming no model runs on the default unless its language needs another.
    #[arg(
        long,
        env = "AIMESH_WHISPER_MODELS",
        value_delimiter = ',',
        value_parser = clap::builder::PossibleValuesParser::new(whisper::MODEL_IDS),
        default_value = "whisper-tiny.en,whisper-base"
    )]
    pub whisper_models: Vec<String>,

    /// The chat model: a GGUF file of a llama, qwen2 or gemma3 chat model (its tokenizer and
    /// chat template read from the file), or the id of a chat model of the catalog
    /// (`aimesh models list`). Unset: smollm2-135m-instruct.
    #[arg(long, env = "AIMESH_CHAT_MODEL")]
    pub chat_model: Option<String>,

    /// The upscaling model of the catalog: esrgan-psnr-small (closer to the original than
    /// Lanczos resizing) or esrgan-slim (optional: fetch it by name; faster, sharper
    /// texture, less faithful).
    #[arg(
        long,
        env = "AIMESH_UPSCALE_MODEL",
        value_parser = clap::builder::PossibleValuesParser::new(esrgan::MODEL_IDS),
        default_value = esrgan::MODEL_ID
    )]
    pub upscale_model: String,

    /// A Jinja chat template file for a chat model whose file has none (base models), or to
    /// replace the file's.
    #[arg(long, env = "AIMESH_CHAT_TEMPLATE")]
    pub chat_template: Option<PathBuf>,

    /// The eSpeak NG executable (text-to-speech).
    #[arg(long, env = "AIMESH_ESPEAK_BIN", default_value = "espeak-ng")]
    pub espeak_bin: String,

    /// Directory of a Stable Diffusion model in the diffusers layout (SD 1.5, 2.1, Turbo;
    /// safetensors) for text-to-image. None ships; unset, image generation is not served.
    #[arg(long, env = "AIMESH_IMAGE_MODEL_DIR")]
    pub image_model_dir: Option<PathBuf>,

    /// A background-removal model: an ONNX file of a salient-object segmentation network
    /// (IS-Net, U²-Net) taking one 1×3×H×W image and giving an H×W mask first. None ships
    /// (the available weights are AGPL-licensed); unset, background removal is not served.
    #[arg(long, env = "AIMESH_MATTING_MODEL")]
    pub matting_model: Option<PathBuf>,

    /// How the background-removal model expects its pixels: isnet (mean 0.5, deviation 1:
    /// IS-Net) or imagenet (ImageNet's mean and deviation: U²-Net).
    #[arg(
        long,
        env = "AIMESH_MATTING_NORMALIZATION",
        value_parser = normalization_parser(),
        default_value = Normalization::default().name()
    )]
    pub matting_normalization: Normalization,
}

/// Parses a [`Normalization`] by name, listing the names in help and errors.
pub fn normalization_parser() -> impl clap::builder::TypedValueParser<Value = Normalization> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Normalization::ALL.map(Normalization::name))
        .map(|name| Normalization::from_name(&name).unwrap_or_default())
}

impl ModelsConfig {
    /// A configuration loading every engine from `models_dir`.
    pub fn new(models_dir: PathBuf) -> Self {
        Self {
            models_dir,
            engines: EngineKind::ALL.to_vec(),
            whisper_models: whisper::MODEL_IDS
                .iter()
                .map(|id| (*id).to_owned())
                .collect(),
            chat_model: None,
            chat_template: None,
            upscale_model: esrgan::MODEL_ID.to_owned(),
            espeak_bin: "espeak-ng".into(),
            image_model_dir: None,
            matting_model: None,
            matting_normalization: Normalization::default(),
        }
    }

    /// A configuration loading no engine (every capability reports itself disabled).
    pub fn disabled() -> Self {
        Self {
            engines: Vec::new(),
            ..Self::new(PathBuf::from(DEFAULT_MODELS_DIR))
        }
    }

    /// Whether `kind` is to be loaded.
    pub fn enabled(&self, kind: EngineKind) -> bool {
        self.engines.contains(&kind)
    }
}

/// Why an engine is not serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// Its model is not installed.
    Missing(String),
    /// Its model failed verification or could not be loaded.
    Invalid(String),
    /// It is not loaded by this process.
    Disabled(String),
    /// It loaded, but its inference thread is down (restarting after a panic, or stopped).
    Failed(String),
}

impl Unavailable {
    /// The reason, with the fix.
    pub fn detail(&self) -> &str {
        match self {
            Unavailable::Missing(detail)
            | Unavailable::Invalid(detail)
            | Unavailable::Disabled(detail)
            | Unavailable::Failed(detail) => detail,
        }
    }

    fn from_model_error(error: &ModelError) -> Self {
        match error {
            ModelError::Missing { .. } => Unavailable::Missing(error.to_string()),
            _ => Unavailable::Invalid(error.to_string()),
        }
    }

    fn disabled(kind: EngineKind) -> Self {
        Unavailable::Disabled(format!(
            "the {kind} engine is not loaded by this process (AIMESH_ENGINES)"
        ))
    }
}

/// An engine, or why there is none.
pub type Slot<T> = Result<T, Unavailable>;

/// The engines of this process.
#[derive(Clone)]
pub struct Engines {
    /// Sentence embeddings.
    pub embedder: Slot<Arc<dyn Embedder>>,
    /// Text analysis on the embeddings.
    pub analyzer: Slot<Analyzer>,
    /// Chat.
    pub chat: Slot<Arc<dyn ChatModel>>,
    /// The chat model configured (AIMESH_CHAT_MODEL): a catalog id or a file; `None` for the
    /// default.
    pub chat_choice: Option<String>,
    /// Speech-to-text.
    pub transcriber: Slot<Arc<dyn Transcriber>>,
    /// Each Whisper model of the catalog: loaded, or why not.
    pub transcription_models: Vec<(&'static str, Result<(), Unavailable>)>,
    /// Text-to-speech.
    pub synthesizer: Slot<Arc<dyn Synthesizer>>,
    /// Image super-resolution.
    pub upscaler: Slot<Arc<dyn Upscaler>>,
    /// The catalog id of the upscaling model configured (AIMESH_UPSCALE_MODEL).
    pub upscale_choice: String,
    /// Text-to-image.
    pub image_generator: Slot<Arc<dyn ImageGenerator>>,
    /// Background removal.
    pub background_remover: Slot<Arc<dyn BackgroundRemover>>,
}

impl fmt::Debug for Engines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = |ready: bool| if ready { "ready" } else { "unavailable" };
        f.debug_struct("Engines")
            .field("embedder", &state(self.embedder.is_ok()))
            .field("chat", &state(self.chat.is_ok()))
            .field("transcriber", &state(self.transcriber.is_ok()))
            .field("synthesizer", &state(self.synthesizer.is_ok()))
            .field("upscaler", &state(self.upscaler.is_ok()))
            .field("image_generator", &state(self.image_generator.is_ok()))
            .field(
                "background_remover",
                &state(self.background_remover.is_ok()),
            )
            .finish()
    }
}

impl Engines {
    /// Loads the enabled engines, concurrently and off the async runtime. Never fails: an
    /// engine that cannot load is recorded as unavailable with the reason (and logged).
    pub async fn load(config: &ModelsConfig) -> Self {
        let dir = config.models_dir.clone();
        let embedder = load_model(config, EngineKind::Embeddings, {
            let dir = dir.clone();
            move || MiniLm::load(&dir, EmbedOptions::default()).map(|m| Arc::new(m) as _)
        });
        let chat = load_model(config, EngineKind::Chat, {
            let dir = dir.clone();
            let (choice, template) = (config.chat_model.clone(), config.chat_template.clone());
            move || load_chat(&dir, choice.as_deref(), template).map(|m| Arc::new(m) as _)
        });
        let transcriber = load_model(config, EngineKind::Transcription, {
            let dir = dir.clone();
            let options = WhisperOptions {
                models: config.whisper_models.clone(),
                ..WhisperOptions::default()
            };
            move || Whisper::load(&dir, options)
        });
        let synthesizer = async {
            if !config.enabled(EngineKind::Speech) {
                return Err(Unavailable::disabled(EngineKind::Speech));
            }
            match EspeakNg::detect_program(&config.espeak_bin).await {
                Ok(engine) => Ok(Arc::new(engine) as Arc<dyn Synthesizer>),
                Err(error) => {
                    tracing::warn!(%error, "text-to-speech unavailable");
                    Err(Unavailable::Missing(format!(
                        "{error}; install eSpeak NG (Debian package espeak-ng) or set \
                         AIMESH_ESPEAK_BIN"
                    )))
                }
            }
        };
        let upscaler = load_model(config, EngineKind::ImageUpscale, {
            let (dir, id) = (dir.clone(), config.upscale_model.clone());
            move || {
                Esrgan::load_catalog(&dir, &id, EsrganOptions::default()).map(|m| Arc::new(m) as _)
            }
        });
        let image_generator = load_image_generator(config);
        let background_remover = load_background_remover(config);
        let (
            embedder,
            chat,
            transcriber,
            synthesizer,
            upscaler,
            image_generator,
            background_remover,
        ) = tokio::join!(
            embedder,
            chat,
            transcriber,
            synthesizer,
            upscaler,
            image_generator,
            background_remover
        );
        let analyzer = embedder.clone().map(Analyzer::new);
        let transcription_models = whisper::MODEL_IDS
            .iter()
            .map(|&id| {
                let state = match &transcriber {
                    Err(unavailable) => Err(unavailable.clone()),
                    Ok(engine) if engine.models().contains(&id) => Ok(()),
                    Ok(engine) => Err(engine
                        .unavailable()
                        .iter()
                        .find(|(failed, _)| failed == id)
                        .map_or_else(
                            || {
                                Unavailable::Disabled(format!(
                                    "{id} is not loaded by this process (AIMESH_WHISPER_MODELS)"
                                ))
                            },
                            |(_, error)| Unavailable::from_model_error(error),
                        )),
                };
                (id, state)
            })
            .collect();
        let transcriber = transcriber.map(|engine| Arc::new(engine) as Arc<dyn Transcriber>);
        Self {
            embedder,
            analyzer,
            chat,
            chat_choice: config.chat_model.clone(),
            transcriber,
            transcription_models,
            synthesizer,
            upscaler,
            upscale_choice: config.upscale_model.clone(),
            image_generator,
            background_remover,
        }
    }

    /// Whether `kind` serves calls, or why not: a loaded engine whose inference thread is
    /// down (see [`aimesh_ai::engine`]) does not.
    pub fn status(&self, kind: EngineKind) -> Result<(), Unavailable> {
        fn alive<T: ?Sized>(
            slot: &Slot<Arc<T>>,
            kind: EngineKind,
            is_alive: impl Fn(&T) -> bool,
        ) -> Result<(), Unavailable> {
            match slot {
                Ok(engine) if is_alive(engine) => Ok(()),
                Ok(_) => Err(Unavailable::Failed(format!(
                    "the {kind} engine's inference thread is down after a panic (it restarts \
                     unless it keeps failing; the logs say why); restart the process if it stays down"
                ))),
                Err(unavailable) => Err(unavailable.clone()),
            }
        }
        match kind {
            EngineKind::Embeddings => alive(&self.embedder, kind, |e| e.is_alive()),
            EngineKind::Chat => alive(&self.chat, kind, |e| e.is_alive()),
            EngineKind::Transcription => alive(&self.transcriber, kind, |e| e.is_alive()),
            EngineKind::Speech => alive(&self.synthesizer, kind, |_| true),
            EngineKind::ImageUpscale => alive(&self.upscaler, kind, |e| e.is_alive()),
            EngineKind::ImageGeneration => alive(&self.image_generator, kind, |e| e.is_alive()),
            EngineKind::BackgroundRemoval => {
                alive(&self.background_remover, kind, |e| e.is_alive())
            }
        }
    }
}

/// The catalog model an engine runs by default, if it runs one (text-to-speech runs a system
/// program).
pub fn catalog_model(kind: EngineKind) -> Option<&'static models::ModelSpec> {
    let capability = match kind {
        EngineKind::Embeddings => Capability::Embeddings,
        EngineKind::Chat => Capability::Chat,
        EngineKind::Transcription => Capability::Transcription,
        EngineKind::ImageUpscale => Capability::ImageUpscale,
        EngineKind::Speech | EngineKind::ImageGeneration | EngineKind::BackgroundRemoval => {
            return None;
        }
    };
    models::CATALOG
        .iter()
        .find(|spec| spec.capability == capability && !spec.optional)
}

/// The fix quoted when no text-to-image model is configured.
pub const IMAGE_MODEL_HINT: &str = "no text-to-image model is configured: set \
    AIMESH_IMAGE_MODEL_DIR to a Stable Diffusion directory in the diffusers layout (SD 1.5, 2.1 \
    or Turbo, safetensors weights with the CLIP tokenizer.json); none ships with aimesh";

async fn load_image_generator(config: &ModelsConfig) -> Slot<Arc<dyn ImageGenerator>> {
    if !config.enabled(EngineKind::ImageGeneration) {
        return Err(Unavailable::disabled(EngineKind::ImageGeneration));
    }
    let Some(dir) = config.image_model_dir.clone() else {
        return Err(Unavailable::Missing(IMAGE_MODEL_HINT.to_owned()));
    };
    let started = std::time::Instant::now();
    let loaded = tokio::task::spawn_blocking(move || {
        StableDiffusion::load(&dir, DiffusionOptions::default())
    })
    .await;
    match loaded {
        Ok(Ok(engine)) => {
            tracing::info!(
                engine = %EngineKind::ImageGeneration,
                model = engine.model(),
                load_ms = started.elapsed().as_millis() as u64,
                "engine loaded"
            );
            Ok(Arc::new(engine) as _)
        }
        Ok(Err(error)) => {
            tracing::warn!(engine = %EngineKind::ImageGeneration, %error, "engine unavailable");
            let detail = format!("{error}; fix the model or AIMESH_IMAGE_MODEL_DIR");
            Err(match error {
                DiffusionLoadError::Missing { .. } => Unavailable::Missing(detail),
                _ => Unavailable::Invalid(detail),
            })
        }
        Err(error) => {
            tracing::error!(engine = %EngineKind::ImageGeneration, %error, "loading the engine panicked");
            Err(Unavailable::Invalid(format!("loading failed: {error}")))
        }
    }
}

/// Loads the background-removal model the operator configured, if any.
async fn load_background_remover(config: &ModelsConfig) -> Slot<Arc<dyn BackgroundRemover>> {
    let Some(path) = config.matting_model.clone() else {
        return Err(if config.enabled(EngineKind::BackgroundRemoval) {
            Unavailable::Missing(matting::unavailable_reason())
        } else {
            Unavailable::disabled(EngineKind::BackgroundRemoval)
        });
    };
    let options = MattingOptions {
        normalization: config.matting_normalization,
        ..MattingOptions::default()
    };
    load_model(config, EngineKind::BackgroundRemoval, move || {
        Matting::load(&path, options).map(|engine| Arc::new(engine) as _)
    })
    .await
    .map_err(|unavailable| match unavailable {
        Unavailable::Invalid(detail) => Unavailable::Invalid(format!(
            "{detail}; fix the model or {}",
            matting::MODEL_SETTING
        )),
        other => other,
    })
}

/// Loads the chat model `choice` names (a catalog id or a GGUF file; the default model
/// when `None`), with the chat template of the file `template` when given.
fn load_chat(
    models_dir: &Path,
    choice: Option<&str>,
    template: Option<PathBuf>,
) -> Result<GgufChat, ModelError> {
    let template = template
        .map(|path| {
            std::fs::read_to_string(&path).map_err(|source| ModelError::Io { path, source })
        })
        .transpose()?;
    let options = GgufChatOptions {
        template,
        ..GgufChatOptions::default()
    };
    match choice {
        None => GgufChat::load(models_dir, options),
        Some(id) if models::spec(id).is_some() => GgufChat::load_catalog(models_dir, id, options),
        Some(path) => GgufChat::load_file(Path::new(path), options),
    }
}

async fn load_model<T: Send + 'static>(
    config: &ModelsConfig,
    kind: EngineKind,
    load: impl FnOnce() -> Result<T, ModelError> + Send + 'static,
) -> Slot<T> {
    if !config.enabled(kind) {
        return Err(Unavailable::disabled(kind));
    }
    let started = std::time::Instant::now();
    // Loading hashes and reads whole weight files: off the async runtime.
    match tokio::task::spawn_blocking(load).await {
        Ok(Ok(engine)) => {
            tracing::info!(
                engine = %kind,
                load_ms = started.elapsed().as_millis() as u64,
                "engine loaded"
            );
            Ok(engine)
        }
        Ok(Err(error)) => {
            tracing::warn!(engine = %kind, %error, "engine unavailable");
            Err(Unavailable::from_model_error(&error))
        }
        Err(error) => {
            tracing::error!(engine = %kind, %error, "loading the engine panicked");
            Err(Unavailable::Invalid(format!("loading failed: {error}")))
        }
    }
}
