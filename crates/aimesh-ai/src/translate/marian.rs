//! Marian neural machine translation (the opus-mt models) on candle, one model per language
//! pair, each served by its own inference thread.
//!
//! # Installing a model
//!
//! Each model is a directory, and [`Marian::discover`] loads every model directory inside one
//! directory of models:
//!
//! ```text
//! <models dir>/
//!   opus-mt-en-es/
//!     config.json        the model's Hugging Face Marian config
//!     model.safetensors  its weights
//!     source.spm         SentencePiece model of the source language
//!     vocab.json         piece -> id, shared by both languages
//!     target.spm         optional, not read
//!     aimesh.json        optional: the language pair, when the name does not tell it
//! ```
//!
//! This is the layout of an opus-mt model on the Hugging Face hub (`Helsinki-NLP/opus-mt-*`)
//! once its weights are in `model.safetensors` (convert `pytorch_model.bin` if the model has
//! no safetensors file). Instead of `source.spm` + `vocab.json`, a Hugging Face
//! `tokenizer.json` whose ids are the model's ids may be given; it is preferred when both are
//! present. SentencePiece files are read for unigram models only, which is what opus-mt
//! uses; for a BPE SentencePiece model give a `tokenizer.json`.
//!
//! The language pair comes from `aimesh.json` when present:
//!
//! ```json
//! {"source": "en", "target": "es"}
//! ```
//!
//! `source` and `target` are BCP-47 tags. Models that translate into several languages pick
//! the output language with a token such as `>>spa<<` before the source text: name it as
//! `"target_token": ">>spa<<"` (install the model once per target language). Without
//! `aimesh.json` the directory name must be `opus-mt-[<anything>-]<source>-<target>` with
//! two- or three-letter lowercase codes, e.g. `opus-mt-en-es` or `opus-mt-tc-big-fr-en`.
//!
//! # Inference
//!
//! Each model runs on a thread of its own fed by a bounded queue: a request that finds the
//! queue full fails at once with [`TranslateError::Busy`]. Decoding is greedy, starts from the
//! config's `decoder_start_token_id`, never picks the padding token, and stops at
//! `eos_token_id` or after `2 × input tokens + 16` tokens (fewer when the model's
//! `max_position_embeddings` is smaller). A request whose caller went away is dropped,
//! between decoding steps too.

mod spm;
#[cfg(test)]
mod tests;

use std::{
    fs,
    panic::{self, AssertUnwindSafe},
    path::{Path, PathBuf},
    sync::mpsc::{self, Receiver, SyncSender, TrySendError},
    time::Instant,
};

use candle_core::{DType, Device, Tensor};
use candle_nn::{Activation, VarBuilder};
use candle_transformers::models::marian::{Config, MTModel};
use futures::future::BoxFuture;
use serde::Deserialize;
use tokenizers::Tokenizer;
use tokio::sync::oneshot;

use self::spm::SentencePiece;
use super::{LanguagePair, TranslateError, Translator};

/// The engine's name.
const ENGINE: &str = "marian";
/// Marian's unknown-piece name (`MarianTokenizer`'s default).
const UNK: &str = "<unk>";
/// Marian's end-of-sentence name.
const EOS: &str = "</s>";
/// Marian's padding name.
const PAD: &str = "<pad>";

/// How Marian models are served.
#[derive(Debug, Clone)]
pub struct MarianOptions {
    /// Requests that may wait for each model (besides the one it is running); more fail with
    /// [`TranslateError::Busy`]. At least 1.
    pub queue_capacity: usize,
}

impl Default for MarianOptions {
    fn default() -> Self {
        Self { queue_capacity: 32 }
    }
}

/// Why a model directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MarianLoadError {
    /// A file the model needs is missing.
    #[error("{dir}: missing {what}")]
    Missing {
        /// The model directory.
        dir: PathBuf,
        /// What is missing.
        what: &'static str,
    },
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The language pair is not known.
    #[error("{dir}: {reason}")]
    Pair {
        /// The model directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// `config.json` is not a Marian config this engine runs.
    #[error("{path}: bad config: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The tokenizer files are unreadable or disagree with the config.
    #[error("{dir}: bad tokenizer: {reason}")]
    Tokenizer {
        /// The model directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// `model.safetensors` is unreadable or does not fit the config.
    #[error("{path}: bad weights: {reason}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The inference thread could not start.
    #[error("{dir}: cannot start the inference thread: {source}")]
    Thread {
        /// The model directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The Marian engine: loaded opus-mt style models, one per language pair, as one
/// [`Translator`] named `marian` whose pairs are those of all its models (so that
/// [`Translators::get`](super::Translators::get) by engine name finds every pair).
#[derive(Debug)]
pub struct Marian {
    models: Vec<Model>,
    pairs: Vec<LanguagePair>,
}

/// One loaded model: the queue of its inference thread. The thread ends when this is dropped.
#[derive(Debug)]
struct Model {
    name: String,
    pair: LanguagePair,
    queue: SyncSender<Job>,
    capacity: usize,
}

/// A translation request for an inference thread.
struct Job {
    text: String,
    reply: oneshot::Sender<Result<String, String>>,
}

impl Marian {
    /// Loads the model in `dir` (layout in the [module docs](self)) and starts its inference
    /// thread. Blocking: reads the whole weights file and runs the model once.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, MarianLoadError> {
        Self::load_with(dir, &MarianOptions::default())
    }

    /// [`Marian::load`] with options.
    pub fn load_with(
        dir: impl AsRef<Path>,
        options: &MarianOptions,
    ) -> Result<Self, MarianLoadError> {
        let model = ModelDir::inspect(dir.as_ref())?.open(options)?;
        Ok(Self::from_models(vec![model]))
    }

    /// Loads every model directory in `models_dir`, in name order, and returns them as one
    /// engine, or `None` when none loads. A directory that is not a valid model (a missing
    /// file, a bad config, weights that do not fit it, a pair an earlier directory already
    /// serves) is logged and skipped. Blocking: run it off the async runtime.
    pub fn discover(models_dir: impl AsRef<Path>) -> Option<Self> {
        Self::discover_with(models_dir, &MarianOptions::default())
    }

    /// [`Marian::discover`] with options.
    pub fn discover_with(models_dir: impl AsRef<Path>, options: &MarianOptions) -> Option<Self> {
        let models_dir = models_dir.as_ref();
        let entries = match fs::read_dir(models_dir) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(dir = %models_dir.display(), %error, "cannot list Marian models");
                return None;
            }
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                path.is_dir()
                    && !path
                        .file_name()
                        .is_some_and(|name| name.to_string_lossy().starts_with('.'))
            })
            .collect();
        dirs.sort();
        let mut models: Vec<Model> = Vec::new();
        for dir in dirs {
            let inspected = match ModelDir::inspect(&dir) {
                Ok(inspected) => inspected,
                Err(error) => {
                    tracing::warn!(%error, "skipping Marian model directory");
                    continue;
                }
            };
            if let Some(other) = models.iter().find(|m| m.pair == inspected.pair) {
                tracing::warn!(
                    dir = %dir.display(),
                    source = %inspected.pair.source,
                    target = %inspected.pair.target,
                    served_by = %other.name,
                    "skipping Marian model directory: another model serves its pair"
                );
                continue;
            }
            let started = Instant::now();
            match inspected.open(options) {
                Ok(model) => {
                    tracing::info!(
                        model = %model.name,
                        source = %model.pair.source,
                        target = %model.pair.target,
                        load_ms = started.elapsed().as_millis() as u64,
                        "Marian model loaded"
                    );
                    models.push(model);
                }
                Err(error) => tracing::warn!(%error, "skipping Marian model directory"),
            }
        }
        if models.is_empty() {
            tracing::info!(dir = %models_dir.display(), "no Marian model loaded");
            return None;
        }
        Some(Self::from_models(models))
    }

    fn from_models(models: Vec<Model>) -> Self {
        let pairs = models.iter().map(|model| model.pair.clone()).collect();
        Self { models, pairs }
    }
}

impl Translator for Marian {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn pairs(&self) -> &[LanguagePair] {
        &self.pairs
    }

    fn translate<'a>(
        &'a self,
        pair: &'a LanguagePair,
        text: &'a str,
    ) -> BoxFuture<'a, Result<String, TranslateError>> {
        Box::pin(async move {
            let Some(model) = self.models.iter().find(|model| &model.pair == pair) else {
                return Err(TranslateError::UnsupportedPair {
                    engine: ENGINE,
                    source_language: pair.source.clone(),
                    target_language: pair.target.clone(),
                });
            };
            let failed = |message: String| TranslateError::Engine {
                engine: ENGINE,
                message: format!("model {}: {message}", model.name),
            };
            let (reply, answer) = oneshot::channel();
            let job = Job {
                text: text.to_owned(),
                reply,
            };
            match model.queue.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    return Err(TranslateError::Busy {
                        engine: ENGINE,
                        queued: model.capacity,
                    });
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(failed("its inference thread has stopped".into()));
                }
            }
            match answer.await {
                Ok(Ok(translated)) => Ok(translated),
                Ok(Err(message)) => Err(failed(message)),
                Err(_) => Err(failed(
                    "its inference thread stopped before answering".into(),
                )),
            }
        })
    }
}

/// `aimesh.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    source: String,
    target: String,
    #[serde(default)]
    target_token: Option<String>,
}

/// The fields of a Hugging Face Marian `config.json` the model needs. Shapes are required;
/// the rest default as in Hugging Face's `MarianConfig`.
#[derive(Debug, Deserialize)]
struct HfConfig {
    #[serde(default)]
    model_type: Option<String>,
    vocab_size: usize,
    #[serde(default)]
    decoder_vocab_size: Option<usize>,
    #[serde(default = "default_max_position_embeddings")]
    max_position_embeddings: usize,
    d_model: usize,
    encoder_layers: usize,
    encoder_ffn_dim: usize,
    encoder_attention_heads: usize,
    decoder_layers: usize,
    decoder_ffn_dim: usize,
    decoder_attention_heads: usize,
    #[serde(default)]
    activation_function: Activation,
    #[serde(default)]
    scale_embedding: bool,
    pad_token_id: u32,
    #[serde(default)]
    eos_token_id: Option<u32>,
    #[serde(default)]
    decoder_start_token_id: Option<u32>,
    #[serde(default)]
    forced_eos_token_id: Option<u32>,
    #[serde(default)]
    share_encoder_decoder_embeddings: Option<bool>,
}

fn default_max_position_embeddings() -> usize {
    1024
}

impl HfConfig {
    /// The candle config, or why candle's Marian cannot run this model.
    fn to_marian(&self) -> Result<Config, String> {
        if let Some(model_type) = self.model_type.as_deref().filter(|t| *t != "marian") {
            return Err(format!("model_type is {model_type:?}, not \"marian\""));
        }
        let decoder_vocab_size = self.decoder_vocab_size.unwrap_or(self.vocab_size);
        if decoder_vocab_size != self.vocab_size {
            return Err(format!(
                "decoder_vocab_size {decoder_vocab_size} differs from vocab_size {}: models \
                 with separate source and target vocabularies are not supported",
                self.vocab_size
            ));
        }
        if self.share_encoder_decoder_embeddings == Some(false) {
            return Err(
                "share_encoder_decoder_embeddings is false: models with separate \
                        source and target embeddings are not supported"
                    .into(),
            );
        }
        for (name, heads) in [
            ("encoder_attention_heads", self.encoder_attention_heads),
            ("decoder_attention_heads", self.decoder_attention_heads),
        ] {
            if heads == 0 || !self.d_model.is_multiple_of(heads) {
                return Err(format!(
                    "d_model {} is not divisible by {name} {heads}",
                    self.d_model
                ));
            }
        }
        if self.vocab_size == 0 || self.max_position_embeddings < 2 {
            return Err(
                "vocab_size must be positive and max_position_embeddings at least 2".into(),
            );
        }
        let eos_token_id = self.eos_token_id.unwrap_or(0);
        let decoder_start_token_id = self.decoder_start_token_id.unwrap_or(self.pad_token_id);
        for (name, id) in [
            ("pad_token_id", self.pad_token_id),
            ("eos_token_id", eos_token_id),
            ("decoder_start_token_id", decoder_start_token_id),
        ] {
            if id as usize >= self.vocab_size {
                return Err(format!(
                    "{name} {id} is outside the vocabulary of {}",
                    self.vocab_size
                ));
            }
        }
        Ok(Config {
            vocab_size: self.vocab_size,
            decoder_vocab_size: Some(decoder_vocab_size),
            max_position_embeddings: self.max_position_embeddings,
            encoder_layers: self.encoder_layers,
            encoder_ffn_dim: self.encoder_ffn_dim,
            encoder_attention_heads: self.encoder_attention_heads,
            decoder_layers: self.decoder_layers,
            decoder_ffn_dim: self.decoder_ffn_dim,
            decoder_attention_heads: self.decoder_attention_heads,
            use_cache: true,
            is_encoder_decoder: true,
            activation_function: self.activation_function,
            d_model: self.d_model,
            decoder_start_token_id,
            scale_embedding: self.scale_embedding,
            pad_token_id: self.pad_token_id,
            eos_token_id,
            forced_eos_token_id: self.forced_eos_token_id.unwrap_or(eos_token_id),
            share_encoder_decoder_embeddings: true,
        })
    }
}

/// Where the tokenizer comes from.
#[derive(Debug)]
enum TokenizerFiles {
    Json(PathBuf),
    SentencePiece { source: PathBuf, vocab: PathBuf },
}

/// A model directory whose small files have been read and checked; the weights are not.
#[derive(Debug)]
struct ModelDir {
    dir: PathBuf,
    name: String,
    pair: LanguagePair,
    target_token: Option<String>,
    config: Config,
    tokenizer: TokenizerFiles,
    weights: PathBuf,
}

impl ModelDir {
    fn inspect(dir: &Path) -> Result<Self, MarianLoadError> {
        let name = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        let missing = |what| MarianLoadError::Missing {
            dir: dir.to_owned(),
            what,
        };
        let (pair, target_token) = read_pair(dir, &name)?;

        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(missing("config.json"));
        }
        let config_text = read(&config_path)?;
        let config = serde_json::from_slice::<HfConfig>(&config_text)
            .map_err(|e| e.to_string())
            .and_then(|hf| hf.to_marian())
            .map_err(|reason| MarianLoadError::Config {
                path: config_path.clone(),
                reason,
            })?;

        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(missing("model.safetensors"));
        }
        let tokenizer = if dir.join("tokenizer.json").is_file() {
            TokenizerFiles::Json(dir.join("tokenizer.json"))
        } else if dir.join("source.spm").is_file() && dir.join("vocab.json").is_file() {
            TokenizerFiles::SentencePiece {
                source: dir.join("source.spm"),
                vocab: dir.join("vocab.json"),
            }
        } else {
            return Err(missing(
                "a tokenizer: tokenizer.json, or source.spm with vocab.json",
            ));
        };
        Ok(Self {
            dir: dir.to_owned(),
            name,
            pair,
            target_token,
            config,
            tokenizer,
            weights,
        })
    }

    /// Loads the tokenizer and the weights, tries the model once and starts its thread.
    fn open(self, options: &MarianOptions) -> Result<Model, MarianLoadError> {
        let engine = self.load_engine()?;
        let capacity = options.queue_capacity.max(1);
        let (queue, jobs) = mpsc::sync_channel(capacity);
        std::thread::Builder::new()
            .name(format!("marian-{}", self.name))
            .spawn(move || serve(engine, jobs))
            .map_err(|source| MarianLoadError::Thread {
                dir: self.dir.clone(),
                source,
            })?;
        Ok(Model {
            name: self.name,
            pair: self.pair,
            queue,
            capacity,
        })
    }

    /// Loads the tokenizer and the weights and tries the model once.
    fn load_engine(&self) -> Result<Engine, MarianLoadError> {
        let codec = self.load_tokenizer()?;
        let bad_weights = |reason: String| MarianLoadError::Weights {
            path: self.weights.clone(),
            reason,
        };
        let device = Device::Cpu;
        let model = load_weights(&self.weights, &self.config, &device).map_err(bad_weights)?;
        let prefix = match &self.target_token {
            None => None,
            Some(token) => Some(codec.id(token).ok_or_else(|| MarianLoadError::Tokenizer {
                dir: self.dir.clone(),
                reason: format!("the vocabulary has no target_token {token:?} (aimesh.json)"),
            })?),
        };
        let mut engine = Engine {
            model,
            codec,
            device,
            prefix,
            eos: self.config.eos_token_id,
            pad: self.config.pad_token_id,
            start: self.config.decoder_start_token_id,
            vocab_size: self.config.vocab_size,
            max_positions: self.config.max_position_embeddings,
        };
        engine
            .trial()
            .map_err(|e| bad_weights(format!("the model fails a trial run: {e}")))?;
        Ok(engine)
    }

    fn load_tokenizer(&self) -> Result<Codec, MarianLoadError> {
        let bad = |reason: String| MarianLoadError::Tokenizer {
            dir: self.dir.clone(),
            reason,
        };
        let codec = match &self.tokenizer {
            TokenizerFiles::Json(path) => Codec::Json(Box::new(
                Tokenizer::from_file(path).map_err(|e| bad(format!("tokenizer.json: {e}")))?,
            )),
            TokenizerFiles::SentencePiece { source, vocab } => Codec::SentencePiece(Box::new(
                SentencePiece::new(&read(source)?, &read(vocab)?, UNK).map_err(bad)?,
            )),
        };
        // The tokenizer's ids must be the model's.
        for (token, id, field) in [
            (EOS, self.config.eos_token_id, "eos_token_id"),
            (PAD, self.config.pad_token_id, "pad_token_id"),
        ] {
            if let Some(found) = codec.id(token).filter(|&found| found != id) {
                return Err(bad(format!(
                    "it numbers {token} {found}, but config.json has {field} {id}"
                )));
            }
        }
        match codec.max_id() {
            Some(max) if (max as usize) < self.config.vocab_size => Ok(codec),
            Some(max) => Err(bad(format!(
                "it uses id {max}, beyond the model's vocab_size {}",
                self.config.vocab_size
            ))),
            None => Err(bad("its vocabulary is empty".into())),
        }
    }
}

/// The pair from `aimesh.json`, or else from the directory's name; and the target token.
fn read_pair(dir: &Path, name: &str) -> Result<(LanguagePair, Option<String>), MarianLoadError> {
    let bad = |reason: String| MarianLoadError::Pair {
        dir: dir.to_owned(),
        reason,
    };
    let metadata_path = dir.join("aimesh.json");
    if metadata_path.is_file() {
        let metadata: Metadata = serde_json::from_slice(&read(&metadata_path)?)
            .map_err(|e| bad(format!("aimesh.json: {e}")))?;
        for tag in [&metadata.source, &metadata.target] {
            if !is_language_tag(tag) {
                return Err(bad(format!("aimesh.json: {tag:?} is not a BCP-47 tag")));
            }
        }
        let pair = LanguagePair {
            source: metadata.source,
            target: metadata.target,
        };
        return Ok((pair, metadata.target_token));
    }
    pair_from_name(name)
        .map(|pair| (pair, None))
        .ok_or_else(|| {
            bad(format!(
                "cannot tell the language pair: the name {name:?} is not \
             opus-mt-<source>-<target> and there is no aimesh.json \
             ({{\"source\": \"en\", \"target\": \"es\"}})"
            ))
        })
}

/// `opus-mt-en-es` -> en -> es; `opus-mt-tc-big-fr-en` -> fr -> en.
fn pair_from_name(name: &str) -> Option<LanguagePair> {
    let rest = name.strip_prefix("opus-mt-")?;
    let mut parts = rest.rsplit('-');
    let target = parts.next()?;
    let source = parts.next()?;
    let code = |c: &str| (2..=3).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_lowercase());
    (code(source) && code(target)).then(|| LanguagePair {
        source: source.to_owned(),
        target: target.to_owned(),
    })
}

/// A plausible BCP-47 tag: a 2–8 letter language, then 1–8 character alphanumeric subtags.
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language_ok = parts.next().is_some_and(|language| {
        (2..=8).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_alphabetic())
    });
    language_ok
        && parts.all(|part| {
            (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

fn read(path: &Path) -> Result<Vec<u8>, MarianLoadError> {
    fs::read(path).map_err(|source| MarianLoadError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads the weights (into memory, no mmap: this crate has no unsafe code; the file's bytes
/// are freed once converted) and builds the model, which checks that every tensor is there
/// with the shape the config implies. Weights in f16 or bf16 are converted to f32.
fn load_weights(path: &Path, config: &Config, device: &Device) -> Result<MTModel, String> {
    let mut tensors = candle_core::safetensors::load(path, device)
        .map_err(|e| format!("not a readable safetensors file: {e}"))?;
    // The embedding matrix is shared by the encoder, the decoder and the output layer;
    // exports that dropped duplicates may have kept it under another name.
    const SHARED: &str = "model.shared.weight";
    if !tensors.contains_key(SHARED) {
        let alias = [
            "model.encoder.embed_tokens.weight",
            "model.decoder.embed_tokens.weight",
            "lm_head.weight",
        ]
        .into_iter()
        .find_map(|name| tensors.get(name).cloned());
        if let Some(tensor) = alias {
            tensors.insert(SHARED.to_owned(), tensor);
        }
    }
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    MTModel::new(config, vb).map_err(|e| format!("they do not fit config.json: {e}"))
}

/// Text <-> ids.
enum Codec {
    Json(Box<Tokenizer>),
    SentencePiece(Box<SentencePiece>),
}

impl Codec {
    fn id(&self, token: &str) -> Option<u32> {
        match self {
            Self::Json(tokenizer) => tokenizer.token_to_id(token),
            Self::SentencePiece(spm) => spm.id(token),
        }
    }

    fn max_id(&self) -> Option<u32> {
        match self {
            Self::Json(tokenizer) => tokenizer.get_vocab(true).into_values().max(),
            Self::SentencePiece(spm) => spm.max_id(),
        }
    }

    /// The ids of `text`, without end-of-sentence.
    fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        match self {
            Self::Json(tokenizer) => tokenizer
                .encode(text, false)
                .map(|encoding| encoding.get_ids().to_vec())
                .map_err(|e| format!("tokenization failed: {e}")),
            Self::SentencePiece(spm) => spm.encode(text),
        }
    }

    /// The text of `ids`, leaving out `skip` and the tokenizer's special tokens.
    fn decode(&self, ids: &[u32], skip: &[u32]) -> Result<String, String> {
        match self {
            Self::Json(tokenizer) => {
                let ids: Vec<u32> = ids
                    .iter()
                    .copied()
                    .filter(|id| !skip.contains(id))
                    .collect();
                tokenizer
                    .decode(&ids, true)
                    .map_err(|e| format!("detokenization failed: {e}"))
            }
            Self::SentencePiece(spm) => Ok(spm.decode(ids, skip)),
        }
    }
}

/// A model and its tokenizer, owned by the inference thread.
struct Engine {
    model: MTModel,
    codec: Codec,
    device: Device,
    /// Target-language token put before the source, for multi-target models.
    prefix: Option<u32>,
    eos: u32,
    pad: u32,
    start: u32,
    vocab_size: usize,
    max_positions: usize,
}

impl Engine {
    /// Translates `text`; gives up (with an error nobody reads) once `abandoned` says the
    /// caller went away.
    fn translate(&mut self, text: &str, abandoned: &dyn Fn() -> bool) -> Result<String, String> {
        if text.trim().is_empty() {
            return Ok(String::new());
        }
        let mut input: Vec<u32> = self.prefix.into_iter().collect();
        input.extend(self.codec.encode(text)?);
        input.push(self.eos);
        if input.len() > self.max_positions {
            return Err(format!(
                "the text is {} tokens long; the model reads at most {}",
                input.len(),
                self.max_positions
            ));
        }
        if let Some(id) = input.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(format!(
                "the tokenizer produced id {id}, beyond the vocabulary"
            ));
        }
        let limit = (2 * input.len() + 16).min(self.max_positions - 1);
        let output = self.generate(&input, limit, abandoned)?;
        self.codec
            .decode(&output, &[self.eos, self.pad, self.start])
    }

    /// Greedy decoding of at most `limit` tokens after the start token.
    fn generate(
        &mut self,
        input: &[u32],
        limit: usize,
        abandoned: &dyn Fn() -> bool,
    ) -> Result<Vec<u32>, String> {
        // The encoder's self-attention keeps a cache too in candle's Marian, so every request
        // starts from a clean one.
        self.model.reset_kv_cache();
        let result = self.decode_greedy(input, limit, abandoned);
        self.model.reset_kv_cache();
        result
    }

    fn decode_greedy(
        &mut self,
        input: &[u32],
        limit: usize,
        abandoned: &dyn Fn() -> bool,
    ) -> Result<Vec<u32>, String> {
        let failed = |e: candle_core::Error| format!("inference failed: {e}");
        let input = Tensor::new(input, &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(failed)?;
        let encoded = self.model.encoder().forward(&input, 0).map_err(failed)?;
        let mut tokens = vec![self.start];
        while tokens.len() <= limit {
            if abandoned() {
                return Err("abandoned by the caller".into());
            }
            // With the cache, only the newest token goes in, at its position.
            let position = tokens.len() - 1;
            let step = Tensor::new(&tokens[position..], &self.device)
                .and_then(|t| t.unsqueeze(0))
                .map_err(failed)?;
            let scores = self
                .model
                .decode(&step, &encoded, position)
                .and_then(|logits| logits.squeeze(0)?.squeeze(0)?.to_vec1::<f32>())
                .map_err(failed)?;
            let next = self
                .best(&scores)
                .ok_or("the model produced no finite score")?;
            tokens.push(next);
            if next == self.eos {
                break;
            }
        }
        tokens.remove(0);
        Ok(tokens)
    }

    /// The highest scoring token other than padding (which Marian never generates).
    fn best(&self, scores: &[f32]) -> Option<u32> {
        let mut best: Option<(u32, f32)> = None;
        for (id, &score) in (0u32..).zip(scores) {
            if id == self.pad || !score.is_finite() {
                continue;
            }
            if best.is_none_or(|(_, top)| score > top) {
                best = Some((id, score));
            }
        }
        best.map(|(id, _)| id)
    }

    /// One encoder pass and one decoding step, to catch a model that loads but cannot run.
    fn trial(&mut self) -> Result<(), String> {
        self.generate(&[self.eos], 1, &|| false).map(drop)
    }
}

/// The inference thread: answers requests until every sender is gone.
fn serve(mut engine: Engine, jobs: Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        if job.reply.is_closed() {
            continue;
        }
        let started = Instant::now();
        let reply = &job.reply;
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            engine.translate(&job.text, &|| reply.is_closed())
        }))
        .unwrap_or_else(|_| Err("inference panicked".into()));
        tracing::debug!(
            engine = ENGINE,
            ok = result.is_ok(),
            input_bytes = job.text.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "translated"
        );
        let _ = job.reply.send(result);
    }
}
