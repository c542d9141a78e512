//! [`GgufChat`]: a quantized chat model in a GGUF file, by default the catalog's
//! SmolLM2-135M-Instruct (`smollm2-135m-instruct`), or any llama, qwen2 or gemma3 model an
//! operator points at (see [`ARCHITECTURES`]).
//!
//! Loading reads the file's metadata, builds the tokenizer and compiles the chat template from
//! it (or from a template the operator gives, for files without one), loads the weights on
//! the decoder of the file's architecture (see [`WeightFormat`]) and runs the model once.
//! Generation runs on one dedicated thread: each request starts from an empty KV cache, its
//! prompt is processed in chunks of [`PREFILL_CHUNK`] tokens, then one token is sampled and
//! fed back at a time until an end-of-turn token, a stop sequence, `max_tokens` or the end of
//! the context.

use std::{
    fs::File,
    panic::{self, AssertUnwindSafe},
    path::{Path, PathBuf},
    sync::{Arc, mpsc::Receiver},
    time::Instant,
};

use candle_core::{
    Device, Tensor,
    quantized::{GgmlDType, gguf_file},
};
use candle_transformers::{
    generation::{LogitsProcessor, Sampling},
    utils::apply_repeat_penalty,
};
use tokio::sync::mpsc;

use super::{
    ChatEvent, ChatMessage, ChatModel, ChatStream, ChatTemplate, FinishReason, GenerationParams,
    GgufTokenizer, KvCache,
    decoder::{ARCHITECTURES, Decoder, State},
    stop::{Scan, StopScanner},
    validate_messages, validate_params,
};
use crate::{
    engine::{EngineError, EngineQueue},
    models::{self, ModelError},
};

/// The catalog id of the default model.
pub const MODEL_ID: &str = "smollm2-135m-instruct";
/// The engine's name.
const ENGINE: &str = "chat";
/// The most prompt tokens processed in one forward pass (bounds the attention matrices).
pub const PREFILL_CHUNK: usize = 512;
/// The longest context served, in tokens (the model's own limit when lower).
pub const MAX_CONTEXT: usize = 4096;
/// Tokens ending an assistant turn in the chat templates of the architectures served
/// (ChatML, Gemma, Llama 3), besides the file's end-of-sequence and end-of-turn ids.
const END_OF_TURN: &[&str] = &["<|im_end|>", "<end_of_turn>", "<|eot_id|>"];

/// Chat templates of the catalog's models whose files carry none (base models): their
/// family's turn format.
const CATALOG_TEMPLATES: &[(&str, &str)] = &[("gemma3-270m", include_str!("gemma.jinja"))];

/// How the weights are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// As stored in the file (SmolLM2's: Q4_1 matrices, Q8_0 embeddings, which are also its
    /// output matrix): the file's exact weights, the fastest to load and, on x86-64, the
    /// fastest to run. Q4_0 and Q4_1 matrices are repacked, losslessly, for aimesh's tiled
    /// kernels (AVX-512 VNNI, or AVX2), Q8_0 ones too where the CPU has AVX-512 VNNI; other
    /// types go to candle's kernels.
    #[default]
    AsStored,
    /// The matrices converted to Q8_0 at load: Q8_0 holds every Q4_1 value to within 1/16 of
    /// the Q4_1 step; about 1.7 times the memory of the Q4_1 weights. Multiplied by aimesh's
    /// tiled kernels where the CPU has AVX-512 VNNI, by candle's elsewhere.
    Q8_0,
    /// The matrices converted to Q4_K at load: about the memory of the file, multiplied by
    /// candle's tiled kernels on any AVX2 CPU (AMX for long prompts). Rows that are not a
    /// multiple of 256 values are padded with zeros, and Q4_K's block scales are themselves
    /// quantized, so the weights move slightly off the file's (the tests check the greedy
    /// replies stay the same).
    Q4K,
}

/// How [`GgufChat`] is loaded and served.
#[derive(Debug, Clone)]
pub struct GgufChatOptions {
    /// Requests that may wait while one is generated; more fail with [`EngineError::Busy`].
    /// At least 1.
    pub queue_capacity: usize,
    /// How the weights of a llama model are held in memory (the other architectures keep
    /// the file's).
    pub weights: WeightFormat,
    /// How a llama model's KV cache holds keys and values (the other architectures run on
    /// candle's models, whose caches are f32).
    pub kv_cache: KvCache,
    /// A Jinja chat template used instead of the file's `tokenizer.chat_template` (needed
    /// for files without one, such as base models).
    pub template: Option<String>,
}

impl Default for GgufChatOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 16,
            weights: WeightFormat::default(),
            kv_cache: KvCache::default(),
            template: None,
        }
    }
}

/// A GGUF chat model on candle: a [`ChatModel`] whose requests are generated one at a time
/// on a dedicated thread. The thread ends when this is dropped (after the request it is
/// generating).
#[derive(Debug)]
pub struct GgufChat {
    queue: EngineQueue<Job>,
    tokenizer: Arc<GgufTokenizer>,
    template: ChatTemplate,
    context_length: usize,
    id: String,
    summary: String,
}

/// A generation request for the inference thread.
#[derive(Debug)]
struct Job {
    prompt: Vec<u32>,
    params: GenerationParams,
    events: mpsc::Sender<Result<ChatEvent, EngineError>>,
}

impl GgufChat {
    /// Verifies the default model's file in `models_dir` (the catalog's
    /// `smollm2-135m-instruct` directory), loads it and starts the inference thread.
    /// Blocking: hashes and reads the whole file and runs the model once.
    pub fn load(models_dir: &Path, options: GgufChatOptions) -> Result<Self, ModelError> {
        Self::load_catalog(models_dir, MODEL_ID, options)
    }

    /// Verifies the file of the catalog's chat model `id` in `models_dir`, then loads it as
    /// [`GgufChat::load_file`] does.
    pub fn load_catalog(
        models_dir: &Path,
        id: &str,
        mut options: GgufChatOptions,
    ) -> Result<Self, ModelError> {
        if options.template.is_none()
            && let Some((_, template)) = CATALOG_TEMPLATES.iter().find(|(model, _)| *model == id)
        {
            options.template = Some((*template).to_owned());
        }
        let spec = models::spec(id)
            .filter(|spec| spec.capability == models::Capability::Chat)
            .ok_or_else(|| {
                ModelError::invalid(
                    models_dir,
                    format!("{id} is not a chat model of the catalog"),
                )
            })?;
        let dir = spec.verify(models_dir)?;
        let file = spec
            .files
            .first()
            .ok_or_else(|| ModelError::invalid(&dir, "the catalog lists no file"))?;
        let mut model = Self::load_file(&dir.join(file.name), options)?;
        model.id = spec.id.to_owned();
        Ok(model)
    }

    /// Loads a GGUF chat model of one of the [`ARCHITECTURES`], with its tokenizer (byte-level
    /// or SentencePiece BPE) and chat template in its metadata, without verifying it against
    /// the catalog. Its id is the file's name without the extension.
    pub fn load_file(path: &Path, options: GgufChatOptions) -> Result<Self, ModelError> {
        let started = Instant::now();
        let invalid = |reason: String| ModelError::invalid(path, reason);
        let mut reader = File::open(path).map_err(|source| ModelError::Io {
            path: path.to_owned(),
            source,
        })?;
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|error| invalid(format!("not a readable GGUF file: {error}")))?;
        let metadata = &content.metadata;
        let architecture = metadata
            .get("general.architecture")
            .and_then(|value| value.to_string().ok())
            .map(String::as_str)
            .unwrap_or_default();
        if !ARCHITECTURES.contains(&architecture) {
            return Err(invalid(format!(
                "architecture {architecture:?} is not served: supported are {}",
                ARCHITECTURES.join(", ")
            )));
        }
        let architecture = architecture.to_owned();
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(|value| value.to_string().ok())
                .cloned()
        };
        let count = |key: &str| {
            metadata
                .get(&format!("{architecture}.{key}"))
                .and_then(|value| value.to_u32().ok())
        };
        let tokenizer = GgufTokenizer::from_metadata(metadata)
            .map_err(|reason| invalid(format!("bad tokenizer: {reason}")))?;
        let source = options
            .template
            .clone()
            .or_else(|| text("tokenizer.chat_template"))
            .ok_or_else(|| {
                invalid(
                    "no tokenizer.chat_template in the metadata (a base model?): give a chat \
                     template (AIMESH_CHAT_TEMPLATE)"
                        .into(),
                )
            })?;
        let token_text = |id: Option<u32>| {
            id.and_then(|id| tokenizer.token(id))
                .unwrap_or_default()
                .to_owned()
        };
        let template = ChatTemplate::new(
            source.clone(),
            token_text(tokenizer.bos_token_id()),
            token_text(Some(tokenizer.eos_token_id())),
        )
        .map_err(|error| invalid(format!("bad chat template: {error:#}")))?;
        let trial = template
            .render(&[ChatMessage::user("Hi")])
            .map_err(|error| invalid(format!("the chat template does not render: {error:#}")))?;
        if trial.is_empty() {
            return Err(invalid("the chat template renders nothing".into()));
        }
        let mut context_length = count("context_length")
            .map_or(MAX_CONTEXT, |length| (length as usize).min(MAX_CONTEXT));
        if architecture == "gemma3"
            && let Some(window) = count("attention.sliding_window")
        {
            // See the decoder: served exactly within the sliding window.
            context_length = context_length.min(window as usize);
        }
        if context_length < 2 {
            return Err(invalid(format!("a context of {context_length} tokens")));
        }

        let mut end_ids = vec![tokenizer.eos_token_id()];
        if let Some(id) = metadata
            .get("tokenizer.ggml.eot_token_id")
            .and_then(|value| value.to_u32().ok())
        {
            end_ids.push(id);
        }
        end_ids.extend(
            END_OF_TURN
                .iter()
                .filter_map(|token| tokenizer.token_id(token)),
        );
        end_ids.sort_unstable();
        end_ids.dedup();
        let device = Device::Cpu;
        let requantize = match options.weights {
            WeightFormat::AsStored => None,
            WeightFormat::Q8_0 => Some(GgmlDType::Q8_0),
            WeightFormat::Q4K => Some(GgmlDType::Q4K),
        };
        let name = text("general.name");
        let layers = count("block_count").unwrap_or_default();
        let model = Decoder::load(
            &architecture,
            content,
            &mut reader,
            requantize,
            context_length,
        )
        .map_err(|error| invalid(format!("bad weights: {error}")))?;
        let id = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| architecture.clone());
        let summary = format!(
            "{} ({architecture}, {layers} layers, context {context_length} tokens) from {}",
            name.as_deref().unwrap_or("a GGUF chat model"),
            path.file_name()
                .map(|name| name.to_string_lossy())
                .unwrap_or_default(),
        );
        let tokenizer = Arc::new(tokenizer);
        let mut worker = Worker {
            model,
            tokenizer: tokenizer.clone(),
            end_ids,
            context_length,
            kv_cache: options.kv_cache,
            device,
        };
        worker
            .trial()
            .map_err(|error| invalid(format!("the model does not run: {error}")))?;
        tracing::info!(
            engine = ENGINE,
            path = %path.display(),
            %architecture,
            weights = ?options.weights,
            kv_cache = ?options.kv_cache,
            context_length,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "chat model loaded"
        );
        let queue = EngineQueue::spawn(
            ENGINE,
            format!("{ENGINE}-inference"),
            options.queue_capacity,
            move |jobs| worker.serve(jobs),
        )
        .map_err(|source| ModelError::Io {
            path: PathBuf::from(path),
            source,
        })?;
        Ok(Self {
            queue,
            tokenizer,
            template,
            context_length,
            id,
            summary,
        })
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// The prompt `messages` render to, as the model's chat template writes it.
    pub fn render_prompt(&self, messages: &[ChatMessage]) -> Result<String, EngineError> {
        self.template
            .render(messages)
            .map_err(|error| EngineError::invalid("messages", format!("{error:#}")))
    }
}

impl ChatModel for GgufChat {
    fn name(&self) -> &str {
        &self.id
    }

    fn summary(&self) -> String {
        self.summary.clone()
    }

    fn is_alive(&self) -> bool {
        self.queue.is_alive()
    }

    fn context_length(&self) -> usize {
        self.context_length
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.tokenizer.encode(text).ok().map(|ids| ids.len())
    }

    fn control_token_in(&self, text: &str) -> Option<String> {
        self.tokenizer.control_token_in(text).map(str::to_owned)
    }

    fn chat(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerationParams,
    ) -> Result<ChatStream, EngineError> {
        validate_messages(&messages)?;
        validate_params(&params)?;
        // The template's markup is made of control tokens: a message spelling one would
        // rewrite the conversation's structure (prompt injection), so it is refused.
        for (i, message) in messages.iter().enumerate() {
            if let Some(token) = self.tokenizer.control_token_in(&message.content) {
                return Err(EngineError::invalid(
                    "messages",
                    format!("message {i} contains the control token {token}"),
                ));
            }
        }
        let prompt = self
            .tokenizer
            .encode_prompt(&self.render_prompt(&messages)?)?;
        if prompt.len() >= self.context_length {
            return Err(EngineError::invalid(
                "messages",
                format!(
                    "the prompt has {} tokens: the context holds {} (prompt and reply)",
                    prompt.len(),
                    self.context_length
                ),
            ));
        }
        // Room for every event of the reply, so generation never waits for a slow reader.
        let (events, stream) = mpsc::channel(params.max_tokens as usize + 2);
        self.queue.submit(Job {
            prompt,
            params,
            events,
        })?;
        Ok(stream)
    }
}

/// The model on its inference thread.
struct Worker {
    /// The model; each request has a state of its own.
    model: Decoder,
    tokenizer: Arc<GgufTokenizer>,
    /// Tokens ending the reply: end of sequence, end of turn.
    end_ids: Vec<u32>,
    context_length: usize,
    kv_cache: KvCache,
    device: Device,
}

/// How a generation ended, when its receiver is still there.
struct Outcome {
    finish_reason: FinishReason,
    completion_tokens: u32,
}

impl Worker {
    /// One forward pass of one token, to catch a model that loads but cannot run.
    fn trial(&mut self) -> candle_core::Result<()> {
        let mut state = self.model.state(self.kv_cache);
        let logits = self
            .model
            .forward(&[self.tokenizer.eos_token_id()], &mut state)?;
        if logits.iter().any(|l| !l.is_finite()) {
            return Err(candle_core::Error::Msg("the logits are not finite".into()));
        }
        Ok(())
    }

    /// Runs `tokens` after those in `state` and returns the next token's logits, to sample.
    fn step(&mut self, tokens: &[u32], state: &mut State) -> candle_core::Result<Tensor> {
        let logits = self.model.forward(tokens, state)?;
        let vocab = logits.len();
        Tensor::from_vec(logits, vocab, &self.device)
    }

    /// Generates the requests of `jobs` until every sender is gone.
    fn serve(&mut self, jobs: &Receiver<Job>) {
        while let Ok(job) = jobs.recv() {
            if job.events.is_closed() {
                continue;
            }
            let started = Instant::now();
            let result = panic::catch_unwind(AssertUnwindSafe(|| self.generate(&job)))
                .unwrap_or_else(|_| Err(candle_core::Error::Msg("inference panicked".into())));
            let elapsed_ms = started.elapsed().as_millis() as u64;
            match result {
                Ok(Some(outcome)) => {
                    tracing::debug!(
                        engine = ENGINE,
                        prompt_tokens = job.prompt.len(),
                        completion_tokens = outcome.completion_tokens,
                        finish_reason = outcome.finish_reason.as_str(),
                        elapsed_ms,
                        "chat reply generated"
                    );
                    let _ = job.events.blocking_send(Ok(ChatEvent::Done {
                        finish_reason: outcome.finish_reason,
                        prompt_tokens: job.prompt.len() as u32,
                        completion_tokens: outcome.completion_tokens,
                    }));
                }
                Ok(None) => {
                    tracing::debug!(engine = ENGINE, elapsed_ms, "chat reply abandoned")
                }
                Err(error) => {
                    tracing::warn!(engine = ENGINE, error = %error, "chat generation failed");
                    let _ = job
                        .events
                        .blocking_send(Err(EngineError::failed(ENGINE, error)));
                }
            }
        }
    }

    /// Generates one reply, streaming its text; `None` when the receiver went away.
    fn generate(&mut self, job: &Job) -> candle_core::Result<Option<Outcome>> {
        let params = &job.params;
        let send = |text: String| {
            text.is_empty()
                || job
                    .events
                    .blocking_send(Ok(ChatEvent::Token { text }))
                    .is_ok()
        };
        let mut cache = self.model.state(self.kv_cache);
        let mut logits = None;
        for chunk in job.prompt.chunks(self.model.prefill_chunk(PREFILL_CHUNK)) {
            if job.events.is_closed() {
                return Ok(None);
            }
            logits = Some(self.step(chunk, &mut cache)?);
        }
        let Some(mut logits) = logits else {
            return Err(candle_core::Error::Msg("empty prompt".into()));
        };

        let mut sampler = LogitsProcessor::from_sampling(
            params.seed.unwrap_or_else(random_seed),
            sampling(params),
        );
        let mut history = job.prompt.clone();
        let mut pending = Vec::new();
        let mut scanner = StopScanner::new(params.stop.clone());
        let mut completion_tokens = 0u32;
        let finish_reason = loop {
            if params.repeat_penalty != 1.0 {
                let recent = &history[history.len().saturating_sub(params.repeat_last_n)..];
                logits = apply_repeat_penalty(&logits, params.repeat_penalty, recent)?;
            }
            let next = sampler.sample(&logits)?;
            if !params.ignore_eos && self.end_ids.contains(&next) {
                break FinishReason::Stop;
            }
            completion_tokens += 1;
            history.push(next);
            pending.extend_from_slice(self.tokenizer.token_bytes(next));
            let text = take_text(&mut pending);
            if !text.is_empty() {
                match scanner.push(&text) {
                    Scan::Emit(text) => {
                        if !send(text) {
                            return Ok(None);
                        }
                    }
                    Scan::Stopped(text) => {
                        if !send(text) {
                            return Ok(None);
                        }
                        break FinishReason::StopSequence;
                    }
                }
            }
            if completion_tokens >= params.max_tokens || cache.len() >= self.context_length {
                break FinishReason::Length;
            }
            if job.events.is_closed() {
                return Ok(None);
            }
            logits = self.step(&[next], &mut cache)?;
        };
        if finish_reason != FinishReason::StopSequence {
            let mut rest = scanner.finish();
            rest.push_str(&String::from_utf8_lossy(&pending));
            if !send(rest) {
                return Ok(None);
            }
        }
        Ok(Some(Outcome {
            finish_reason,
            completion_tokens,
        }))
    }
}

/// The sampler for `params`.
fn sampling(params: &GenerationParams) -> Sampling {
    let temperature = params.temperature;
    if temperature <= 0.0 {
        return Sampling::ArgMax;
    }
    match (params.top_k, params.top_p < 1.0) {
        (0, false) => Sampling::All { temperature },
        (0, true) => Sampling::TopP {
            p: params.top_p,
            temperature,
        },
        (k, false) => Sampling::TopK { k, temperature },
        (k, true) => Sampling::TopKThenTopP {
            k,
            p: params.top_p,
            temperature,
        },
    }
}

/// A seed for a request that gave none.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// Takes the complete UTF-8 characters at the start of `bytes`, leaving an incomplete one at
/// the end for the next token; bytes that can never be UTF-8 become U+FFFD.
fn take_text(bytes: &mut Vec<u8>) -> String {
    let mut text = String::new();
    loop {
        match std::str::from_utf8(bytes) {
            Ok(valid) => {
                text.push_str(valid);
                bytes.clear();
                return text;
            }
            Err(error) => {
                let valid = error.valid_up_to();
                text.push_str(&String::from_utf8_lossy(&bytes[..valid]));
                match error.error_len() {
                    None => {
                        bytes.drain(..valid);
                        return text;
                    }
                    Some(invalid) => {
                        text.push(char::REPLACEMENT_CHARACTER);
                        bytes.drain(..valid + invalid);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_split_across_tokens_come_out_whole() {
        let mut bytes = "日".as_bytes()[..2].to_vec();
        assert_eq!(take_text(&mut bytes), "");
        bytes.extend_from_slice(&"日".as_bytes()[2..]);
        bytes.extend_from_slice(&"é".as_bytes()[..1]);
        assert_eq!(take_text(&mut bytes), "日");
        assert_eq!(bytes, &"é".as_bytes()[..1]);
        let mut bytes = vec![b'a', 0xFF, b'b'];
        assert_eq!(take_text(&mut bytes), "a\u{FFFD}b");
    }

    #[test]
    fn sampling_follows_the_parameters() {
        let greedy = GenerationParams::default();
        assert!(matches!(sampling(&greedy), Sampling::ArgMax));
        let warm = GenerationParams {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.9,
            ..greedy
        };
        assert!(matches!(
            sampling(&warm),
            Sampling::TopKThenTopP { k: 40, .. }
        ));
    }
}
