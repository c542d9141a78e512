//! Whisper speech-to-text on candle: the converted weights of tiny.en (English) and base
//! (multilingual) (see [`super::convert`]), each run on its own inference thread. The encoder
//! ([`super::encoder`], its feed-forward in 8 bits) and the cached decoder
//! ([`super::decoder`], its matrices in 8 bits) are this crate's own; the log-mel spectrogram
//! is [`super::mel`]'s.
//!
//! A multilingual model is prompted with the language and the transcribe task after the start
//! of transcript. When the caller names no language it is detected first, as Whisper does:
//! the decoder's distribution over the language tokens after the start of transcript, on the
//! first 30-second window; the likeliest language is transcribed, and reported with its
//! probability. An English-only model transcribes English only.
//!
//! Long audio is transcribed in 30-second windows. Each window is decoded greedily with
//! timestamp tokens: the decoder is forced to open with a timestamp (within the first
//! second), timestamps come in pairs that close one segment and open the next, never go
//! back in time, and win over text when their total probability exceeds any text token's.
//! The next window starts at the last closed segment's end, so speech cut by a window's edge
//! is decoded again whole. A window whose no-speech probability is high while its text is
//! unlikely is taken for silence.

use std::{
    path::Path,
    sync::{Arc, mpsc::Receiver},
    time::{Duration, Instant},
};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self as m, Config};
use futures::future::BoxFuture;
use tokenizers::Tokenizer;
use tokio::sync::oneshot;

use super::{
    Segment, TranscribeOptions, Transcriber, Transcript,
    convert::{CONFIG_FILE, MODEL_ID, MODEL_IDS, MULTILINGUAL_MODEL_ID, WEIGHTS_FILE},
    decoder::Decoder,
    encoder::Encoder,
    mel,
};
use crate::{
    engine::{EngineError, EngineQueue},
    models::{self, ModelError},
};

/// Vocabulary size from which a Whisper model is multilingual (Whisper's own rule).
const MULTILINGUAL_VOCAB: usize = 51_865;

/// Seconds per timestamp token.
const SECONDS_PER_TIMESTAMP: f64 = 0.02;
/// Mel frames per timestamp token.
const FRAMES_PER_TIMESTAMP: usize = 2;
/// Seconds per mel frame.
const SECONDS_PER_FRAME: f64 = m::HOP_LENGTH as f64 / m::SAMPLE_RATE as f64;
/// Latest timestamp the first token may take, in timestamp tokens (1 s).
const MAX_INITIAL_TIMESTAMP: u32 = 50;

/// How a [`Whisper`] engine is run.
#[derive(Debug, Clone)]
pub struct WhisperOptions {
    /// Longest audio accepted.
    pub max_duration: Duration,
    /// Requests that may wait for the inference thread before new ones are refused as busy
    /// (per model).
    pub queue_capacity: usize,
    /// The models to load (catalog ids), the default first: requests naming no model and no
    /// language other than the default's run on it.
    pub models: Vec<String>,
}

impl Default for WhisperOptions {
    fn default() -> Self {
        Self {
            max_duration: Duration::from_secs(600),
            queue_capacity: 4,
            models: vec![MODEL_ID.to_owned()],
        }
    }
}

/// Time spent in each stage of one transcription.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stages {
    /// Decoding, resampling and the log-mel spectrogram.
    pub audio: Duration,
    /// The encoder, over all windows.
    pub encoder: Duration,
    /// The decoder, over all windows.
    pub decoder: Duration,
    /// Decoder steps (tokens sampled).
    pub decoder_steps: usize,
    /// 30-second windows decoded.
    pub windows: usize,
}

/// Special token ids of the tokenizer.
#[derive(Debug, Clone)]
struct Specials {
    sot: u32,
    eot: u32,
    no_speech: Option<u32>,
    timestamp_begin: u32,
}

/// The tokens a multilingual model is prompted with.
#[derive(Debug, Clone)]
struct Multilingual {
    /// Language codes (e.g. `es`) and their tokens (`<|es|>`), in vocabulary order.
    languages: Vec<(String, u32)>,
    /// `<|transcribe|>`.
    transcribe: u32,
}

impl Multilingual {
    fn token(&self, language: &str) -> Option<u32> {
        self.languages
            .iter()
            .find(|(code, _)| code == language)
            .map(|&(_, token)| token)
    }
}

/// The Whisper model itself, used synchronously: [`Whisper`] runs one on its inference
/// thread. Public for benchmarks and tools that want the stage timings.
pub struct WhisperModel {
    id: &'static str,
    multilingual: Option<Multilingual>,
    config: Config,
    encoder: Encoder,
    decoder: Decoder,
    tokenizer: Tokenizer,
    filters: Vec<f32>,
    specials: Specials,
    suppress: Vec<u32>,
    suppress_begin: Vec<u32>,
    max_duration: Duration,
    device: Device,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("id", &self.id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The derived config file: candle's fields plus the tokens suppressed at the start.
#[derive(serde::Deserialize)]
struct DerivedConfig {
    #[serde(flatten)]
    config: Config,
    #[serde(default)]
    begin_suppress_tokens: Vec<u32>,
}

impl WhisperModel {
    /// Loads the catalog model `id` (a Whisper model: see [`MODEL_IDS`]) from `models_dir`
    /// after verifying the pinned files and the derived ones (which [`super::prepare`]
    /// makes).
    pub fn load(models_dir: &Path, id: &str, options: &WhisperOptions) -> Result<Self, ModelError> {
        let spec = models::spec(id)
            .filter(|spec| MODEL_IDS.contains(&spec.id))
            .ok_or_else(|| {
                ModelError::invalid(
                    models_dir,
                    format!("{id} is not a Whisper model of the catalog"),
                )
            })?;
        let dir = spec.verify(models_dir)?;
        let weights = dir.join(WEIGHTS_FILE);
        let config_path = dir.join(CONFIG_FILE);
        models::verify_derived(&weights)?;
        models::verify_derived(&config_path)?;

        let text = std::fs::read_to_string(&config_path).map_err(|source| ModelError::Io {
            path: config_path.clone(),
            source,
        })?;
        let derived: DerivedConfig =
            serde_json::from_str(&text).map_err(|e| ModelError::invalid(&config_path, e))?;
        let config = derived.config;
        if config.num_mel_bins != mel::N_MELS {
            return Err(ModelError::invalid(
                &config_path,
                format!("{} mel bins, expected {}", config.num_mel_bins, mel::N_MELS),
            ));
        }
        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(&weights, &device)
            .map_err(|e| ModelError::invalid(&weights, e))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let encoder = Encoder::load(vb.pp("model.encoder"), &config)
            .map_err(|e| ModelError::invalid(&weights, e))?;
        let decoder = Decoder::load(vb.pp("model.decoder"), &config)
            .map_err(|e| ModelError::invalid(&weights, e))?;

        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| ModelError::invalid(&tokenizer_path, e))?;
        let token = |name: &str| {
            tokenizer
                .token_to_id(name)
                .ok_or_else(|| ModelError::invalid(&tokenizer_path, format!("no token {name}")))
        };
        let no_timestamps = token(m::NO_TIMESTAMPS_TOKEN)?;
        let specials = Specials {
            sot: token(m::SOT_TOKEN)?,
            eot: token(m::EOT_TOKEN)?,
            no_speech: m::NO_SPEECH_TOKENS
                .iter()
                .find_map(|name| tokenizer.token_to_id(name)),
            timestamp_begin: tokenizer
                .token_to_id("<|0.00|>")
                .unwrap_or(no_timestamps + 1),
        };
        if specials.timestamp_begin as usize >= config.vocab_size {
            return Err(ModelError::invalid(
                &tokenizer_path,
                "the vocabulary has no timestamp tokens",
            ));
        }
        let multilingual = if config.vocab_size >= MULTILINGUAL_VOCAB {
            // The language tokens run from the one after the start of transcript up to the
            // task tokens.
            let translate = token("<|translate|>")?;
            let languages: Vec<(String, u32)> = (specials.sot + 1..translate)
                .filter_map(|id| {
                    let name = tokenizer.id_to_token(id)?;
                    let code = name.strip_prefix("<|")?.strip_suffix("|>")?;
                    Some((code.to_owned(), id))
                })
                .collect();
            if languages.is_empty() {
                return Err(ModelError::invalid(
                    &tokenizer_path,
                    "a multilingual vocabulary without language tokens",
                ));
            }
            Some(Multilingual {
                languages,
                transcribe: token("<|transcribe|>")?,
            })
        } else {
            None
        };
        tracing::info!(
            model = spec.id,
            d_model = config.d_model,
            layers = config.encoder_layers,
            languages = multilingual.as_ref().map_or(1, |m| m.languages.len()),
            "whisper loaded"
        );
        Ok(Self {
            id: spec.id,
            multilingual,
            suppress: config.suppress_tokens.clone(),
            suppress_begin: derived.begin_suppress_tokens,
            config,
            encoder,
            decoder,
            tokenizer,
            filters: mel::whisper_filters(),
            specials,
            max_duration: options.max_duration,
            device,
        })
    }

    /// The model's catalog id, e.g. `whisper-base`.
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// Whether the model knows other languages than English (and detects them).
    pub fn is_multilingual(&self) -> bool {
        self.multilingual.is_some()
    }

    /// The languages the model transcribes (codes, e.g. `en`, `es`).
    pub fn languages(&self) -> Vec<&str> {
        match &self.multilingual {
            Some(m) => m.languages.iter().map(|(code, _)| code.as_str()).collect(),
            None => vec!["en"],
        }
    }

    /// Transcribes an audio file in `language` (detected when `None`), returning the
    /// transcript and where the time went.
    pub fn transcribe_file(
        &mut self,
        bytes: Vec<u8>,
        language: Option<&str>,
    ) -> Result<(Transcript, Stages), EngineError> {
        let started = Instant::now();
        let pcm = super::audio::decode_mono(bytes, mel::SAMPLE_RATE, self.max_duration)?;
        let (transcript, mut stages) = self.transcribe_samples(&pcm, language)?;
        stages.audio = started
            .elapsed()
            .saturating_sub(stages.encoder + stages.decoder);
        Ok((transcript, stages))
    }

    /// The prompt's language token, or why `language` cannot be transcribed.
    fn language_token(&self, language: &str) -> Result<Option<u32>, EngineError> {
        match &self.multilingual {
            None if language == "en" => Ok(None),
            None => Err(EngineError::invalid(
                "language",
                format!(
                    "{language:?}: {} transcribes English (\"en\") only; ask for \
                     {MULTILINGUAL_MODEL_ID} for other languages",
                    self.id
                ),
            )),
            Some(m) => m.token(language).map(Some).ok_or_else(|| {
                EngineError::invalid(
                    "language",
                    format!("{language:?} is not a language {} knows", self.id),
                )
            }),
        }
    }

    /// The likeliest language of a window and its probability, from the distribution over
    /// the language tokens after the start of transcript (English-only: `en`, certain).
    fn detect_language(&mut self, features: &Tensor) -> candle_core::Result<(String, f64)> {
        let Some(multilingual) = &self.multilingual else {
            return Ok(("en".to_owned(), 1.0));
        };
        let mut state = self.decoder.begin(features)?;
        let logits = self
            .decoder
            .step(&mut state, &[self.specials.sot], &self.device)?;
        let logits: Vec<f32> = logits.to_vec1()?;
        let scores: Vec<f32> = multilingual
            .languages
            .iter()
            .map(|&(_, token)| {
                logits
                    .get(token as usize)
                    .copied()
                    .unwrap_or(f32::NEG_INFINITY)
            })
            .collect();
        let best = argmax(&scores) as usize;
        let probability = log_softmax_at(&scores, best).exp();
        Ok((multilingual.languages[best].0.clone(), probability))
    }

    /// Transcribes 16 kHz mono samples in `language` (detected on the first window when
    /// `None`).
    pub fn transcribe_samples(
        &mut self,
        pcm: &[f32],
        language: Option<&str>,
    ) -> Result<(Transcript, Stages), EngineError> {
        self.transcribe_encoded(pcm, language, |model, window| model.encoder.forward(window))
    }

    /// [`Self::transcribe_samples`] with the audio features of each window's mel frames
    /// computed by `encode` (the tests compare encoders).
    fn transcribe_encoded(
        &mut self,
        pcm: &[f32],
        language: Option<&str>,
        mut encode: impl FnMut(&Self, &Tensor) -> candle_core::Result<Tensor>,
    ) -> Result<(Transcript, Stages), EngineError> {
        let engine = self.id;
        let failed = |e: candle_core::Error| EngineError::failed(engine, e);
        let mut language = match language {
            Some(language) => Some((language.to_owned(), None)),
            None if self.multilingual.is_none() => Some(("en".to_owned(), None)),
            None => None,
        };
        let mut prompt = match &language {
            Some((code, _)) => self.prompt(self.language_token(code)?),
            None => Vec::new(),
        };
        let mut stages = Stages::default();
        let started = Instant::now();
        let duration = pcm.len() as f64 / f64::from(mel::SAMPLE_RATE);
        let content_frames = pcm.len() / m::HOP_LENGTH;
        let mel = self.mel(pcm).map_err(failed)?;
        stages.audio = started.elapsed();

        let mut segments = Vec::new();
        let mut seek = 0;
        while seek < content_frames {
            let window = (content_frames - seek).min(m::N_FRAMES);
            let input = mel.narrow(2, seek, m::N_FRAMES).map_err(failed)?;
            let offset = seek as f64 * SECONDS_PER_FRAME;
            let encoding = Instant::now();
            let features = encode(self, &input).map_err(failed)?;
            stages.encoder += encoding.elapsed();
            let decoding = Instant::now();
            if language.is_none() {
                let (code, probability) = self.detect_language(&features).map_err(failed)?;
                tracing::debug!(language = %code, probability, "language detected");
                prompt = self.prompt(self.language_token(&code)?);
                language = Some((code, Some(probability)));
            }
            let decoded = self.decode(&features, &prompt).map_err(failed)?;
            stages.decoder += decoding.elapsed();
            stages.decoder_steps += decoded.tokens.len() + 1;
            stages.windows += 1;
            if decoded.is_silence() {
                tracing::debug!(offset, "window taken for silence");
                seek += window;
                continue;
            }
            let advance = self.segments(&decoded.tokens, offset, window, &mut segments)?;
            seek += advance.max(1);
        }
        for segment in &mut segments {
            segment.end = segment.end.min(duration);
            segment.start = segment.start.min(segment.end);
        }
        let text = segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        // Audio too short for a window (nothing decoded) detects nothing: English, unknown.
        let (language, language_probability) = language.unwrap_or_else(|| ("en".into(), None));
        Ok((
            Transcript {
                text,
                segments,
                duration,
                language,
                language_probability,
                model: self.id.to_owned(),
            },
            stages,
        ))
    }

    /// The log-mel spectrogram of `pcm`, `[1, mel bins, frames]`, padded with a window of
    /// silence so that every window has 30 s of frames.
    fn mel(&self, pcm: &[f32]) -> candle_core::Result<Tensor> {
        let mut padded = Vec::with_capacity(pcm.len() + m::N_SAMPLES);
        padded.extend_from_slice(pcm);
        padded.resize(pcm.len() + m::N_SAMPLES, 0.0);
        let mel = mel::log_mel_spectrogram(&padded, &self.filters, mel::N_MELS);
        let frames = mel.len() / mel::N_MELS;
        Tensor::from_vec(mel, (1, mel::N_MELS, frames), &self.device)
    }

    /// The decoder's prompt: the start of transcript, then for a multilingual model the
    /// language and the transcribe task.
    fn prompt(&self, language: Option<u32>) -> Vec<u32> {
        match (&self.multilingual, language) {
            (Some(m), Some(language)) => vec![self.specials.sot, language, m.transcribe],
            _ => vec![self.specials.sot],
        }
    }

    /// Greedy decoding of one window after `prompt`.
    fn decode(&mut self, features: &Tensor, prompt: &[u32]) -> candle_core::Result<Decoded> {
        let sample_len = self.decoder.max_positions() / 2;
        let mut state = self.decoder.begin(features)?;
        let mut input = prompt.to_vec();
        let mut sampled: Vec<u32> = Vec::new();
        let mut sum_logprob = 0f64;
        let mut no_speech_prob = 0f64;
        for step in 0..sample_len {
            let logits = self.decoder.step(&mut state, &input, &self.device)?;
            let mut logits: Vec<f32> = logits.to_vec1()?;
            if step == 0
                && let Some(no_speech) = self.specials.no_speech
            {
                no_speech_prob = log_softmax_at(&logits, no_speech as usize).exp();
            }
            self.apply_rules(&mut logits, &sampled);
            let next = argmax(&logits);
            sum_logprob += log_softmax_at(&logits, next as usize);
            if next == self.specials.eot {
                break;
            }
            sampled.push(next);
            input = vec![next];
        }
        Ok(Decoded {
            avg_logprob: sum_logprob / (sampled.len() + 1) as f64,
            tokens: sampled,
            no_speech_prob,
        })
    }

    /// Suppressed tokens and the timestamp rules, applied to the next token's logits.
    fn apply_rules(&self, logits: &mut [f32], sampled: &[u32]) {
        let vocab = logits.len();
        let s = &self.specials;
        let ts = s.timestamp_begin as usize;
        for &token in &self.suppress {
            block(logits, token as usize..token as usize + 1);
        }
        // The special tokens between the end of text and the timestamps (start of
        // transcript, languages, tasks, no timestamps...) belong to the prompt, never to the
        // text.
        block(logits, s.eot as usize + 1..ts);
        if sampled.is_empty() {
            for &token in &self.suppress_begin {
                block(logits, token as usize..token as usize + 1);
            }
            // Open with a timestamp, at most a second in.
            block(logits, 0..ts);
            block(logits, ts + MAX_INITIAL_TIMESTAMP as usize + 1..vocab);
        }
        let is_ts = |token: u32| token as usize >= ts;
        let last_ts = sampled.last().is_some_and(|&t| is_ts(t));
        let penultimate_ts = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
        if last_ts {
            if penultimate_ts {
                // A pair just closed a segment: text must follow.
                block(logits, ts..vocab);
            } else {
                // A segment's text ended: close it with a timestamp (or end).
                block(logits, 0..s.eot as usize);
            }
        }
        if let Some(&latest) = sampled.iter().rev().find(|&&t| is_ts(t)) {
            // Never back in time, and segments are not empty.
            let floor = if last_ts && !penultimate_ts {
                latest
            } else {
                latest + 1
            };
            block(logits, ts..floor as usize);
        }
        // When timestamps together are likelier than any text token, take a timestamp (the
        // log-normaliser, the same on both sides, is left out).
        if ts < vocab {
            let text_max = logits[..ts]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            let ts_max = logits[ts..]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            if ts_max.is_finite() {
                let sum: f64 = logits[ts..]
                    .iter()
                    .map(|&l| f64::from((l - ts_max).exp()))
                    .sum();
                if f64::from(ts_max) + sum.ln() > f64::from(text_max) {
                    block(logits, 0..ts);
                }
            }
        }
    }

    /// Splits a window's tokens into timed segments; returns how many mel frames to advance.
    fn segments(
        &self,
        tokens: &[u32],
        offset: f64,
        window: usize,
        out: &mut Vec<Segment>,
    ) -> Result<usize, EngineError> {
        let ts = self.specials.timestamp_begin;
        let is_ts = |t: u32| t >= ts;
        let time = |t: u32| offset + f64::from(t - ts) * SECONDS_PER_TIMESTAMP;
        let n = tokens.len();
        let single_ending = n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]);
        let mut cuts: Vec<usize> = (1..n)
            .filter(|&i| is_ts(tokens[i - 1]) && is_ts(tokens[i]))
            .collect();
        if cuts.is_empty() {
            let end = match tokens.iter().rev().find(|&&t| is_ts(t)) {
                Some(&last) if last != ts => time(last),
                _ => offset + window as f64 * SECONDS_PER_FRAME,
            };
            let start = tokens
                .first()
                .filter(|&&t| is_ts(t))
                .map_or(offset, |&t| time(t));
            self.push(out, start, end, tokens)?;
            return Ok(window);
        }
        if single_ending {
            cuts.push(n);
        }
        let mut from = 0;
        for &cut in &cuts {
            let part = &tokens[from..cut];
            if let (Some(&first), Some(&last)) = (part.first(), part.last())
                && is_ts(first)
                && is_ts(last)
            {
                self.push(out, time(first), time(last), part)?;
            }
            from = cut;
        }
        if single_ending {
            Ok(window)
        } else {
            let last = tokens[from - 1];
            Ok((last - ts) as usize * FRAMES_PER_TIMESTAMP)
        }
    }

    fn push(
        &self,
        out: &mut Vec<Segment>,
        start: f64,
        end: f64,
        tokens: &[u32],
    ) -> Result<(), EngineError> {
        let text: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|&t| t < self.specials.eot)
            .collect();
        let text = self
            .tokenizer
            .decode(&text, true)
            .map_err(|e| EngineError::failed(self.id, e))?;
        let text = text.trim();
        if !text.is_empty() {
            out.push(Segment {
                start,
                end: end.max(start),
                text: text.to_owned(),
            });
        }
        Ok(())
    }
}

/// What greedy decoding of one window produced.
struct Decoded {
    /// Sampled tokens, without the end of text.
    tokens: Vec<u32>,
    avg_logprob: f64,
    no_speech_prob: f64,
}

impl Decoded {
    fn is_silence(&self) -> bool {
        self.no_speech_prob > m::NO_SPEECH_THRESHOLD && self.avg_logprob < m::LOGPROB_THRESHOLD
    }
}

/// Rules out the tokens of `range` (clipped to the vocabulary).
fn block(logits: &mut [f32], range: std::ops::Range<usize>) {
    let vocab = logits.len();
    for logit in &mut logits[range.start.min(vocab)..range.end.min(vocab)] {
        *logit = f32::NEG_INFINITY;
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn log_softmax_at(logits: &[f32], index: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    f64::from(logits[index] - max) - total.ln()
}

/// A transcription request for an inference thread.
struct Job {
    audio: Vec<u8>,
    language: Option<String>,
    reply: oneshot::Sender<Result<Transcript, EngineError>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("audio_bytes", &self.audio.len())
            .field("language", &self.language)
            .finish_non_exhaustive()
    }
}

/// One loaded model and its inference thread.
#[derive(Debug, Clone)]
struct Loaded {
    id: &'static str,
    languages: Vec<String>,
    queue: EngineQueue<Job>,
}

impl Loaded {
    fn is_multilingual(&self) -> bool {
        self.languages.len() > 1
    }
}

/// Whisper behind [`Transcriber`]: the models [`WhisperOptions::models`] names, each on its
/// own inference thread; each request runs on the model it names, or the one its language
/// needs, or the default.
#[derive(Debug, Clone)]
pub struct Whisper {
    /// Loaded models, the default first.
    loaded: Vec<Loaded>,
    /// Models asked for that could not load, with why.
    failed: Vec<(String, Arc<ModelError>)>,
}

impl Whisper {
    /// Loads the models of `options` from `models_dir` (verifying every file; run
    /// [`super::prepare`] first) and starts their inference threads. The default (first)
    /// model must load; another that cannot is left out and reported by
    /// [`Whisper::unavailable`].
    pub fn load(models_dir: &Path, options: WhisperOptions) -> Result<Self, ModelError> {
        let mut loaded = Vec::new();
        let mut failed = Vec::new();
        let ids = if options.models.is_empty() {
            vec![MODEL_ID.to_owned()]
        } else {
            options.models.clone()
        };
        for (i, id) in ids.iter().enumerate() {
            if loaded.iter().any(|l: &Loaded| l.id == id) {
                continue;
            }
            match Self::load_one(models_dir, id, &options) {
                Ok(model) => loaded.push(model),
                Err(error) if i == 0 => return Err(error),
                Err(error) => {
                    tracing::warn!(model = %id, %error, "whisper model unavailable");
                    failed.push((id.clone(), Arc::new(error)));
                }
            }
        }
        Ok(Self { loaded, failed })
    }

    fn load_one(
        models_dir: &Path,
        id: &str,
        options: &WhisperOptions,
    ) -> Result<Loaded, ModelError> {
        let mut model = WhisperModel::load(models_dir, id, options)?;
        let id = model.id();
        let languages = model.languages().into_iter().map(str::to_owned).collect();
        let queue = EngineQueue::spawn(id, "whisper", options.queue_capacity, move |jobs| {
            serve(&mut model, jobs);
        })
        .map_err(|source| ModelError::Io {
            path: models_dir.to_owned(),
            source,
        })?;
        Ok(Loaded {
            id,
            languages,
            queue,
        })
    }

    /// The models asked for that could not load, with why.
    pub fn unavailable(&self) -> &[(String, Arc<ModelError>)] {
        &self.failed
    }

    /// The model a request runs on: the one it names; else the default when it knows the
    /// language asked for (or, with none asked, any model); else a multilingual one.
    fn pick(&self, options: &TranscribeOptions) -> Result<&Loaded, EngineError> {
        if let Some(id) = options.model.as_deref() {
            let loaded = self.loaded.iter().find(|l| l.id == id).ok_or_else(|| {
                let reason = self
                    .failed
                    .iter()
                    .find(|(failed, _)| failed == id)
                    .map_or_else(
                        || format!("{id:?} is not loaded here (AIMESH_WHISPER_MODELS)"),
                        |(_, why)| format!("{id:?} is not available: {why}"),
                    );
                EngineError::invalid(
                    "model",
                    format!("{reason}; loaded: {}", self.models().join(", ")),
                )
            })?;
            if let Some(language) = options.language.as_deref()
                && !loaded.languages.iter().any(|known| known == language)
            {
                let message = if loaded.is_multilingual() {
                    format!("{language:?} is not a language {id} knows")
                } else {
                    format!(
                        "{language:?}: {id} transcribes English (\"en\") only; ask for \
                         {MULTILINGUAL_MODEL_ID} for other languages"
                    )
                };
                return Err(EngineError::invalid("language", message));
            }
            return Ok(loaded);
        }
        let default = &self.loaded[0];
        let Some(language) = options.language.as_deref() else {
            return Ok(default);
        };
        if default.languages.iter().any(|l| l == language) {
            return Ok(default);
        }
        self.loaded
            .iter()
            .find(|l| l.languages.iter().any(|known| known == language))
            .ok_or_else(|| {
                let hint = if self.loaded.iter().any(Loaded::is_multilingual) {
                    "no loaded model knows it".to_owned()
                } else {
                    format!(
                        "the loaded models know English only; load {MULTILINGUAL_MODEL_ID} \
                         (AIMESH_WHISPER_MODELS) for other languages"
                    )
                };
                EngineError::invalid("language", format!("{language:?}: {hint}"))
            })
    }
}

fn serve(model: &mut WhisperModel, jobs: &Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        if job.reply.is_closed() {
            continue;
        }
        let result = model
            .transcribe_file(job.audio, job.language.as_deref())
            .map(|(transcript, stages)| {
                tracing::debug!(
                    model = model.id(),
                    audio_s = transcript.duration,
                    language = %transcript.language,
                    ?stages,
                    segments = transcript.segments.len(),
                    "transcribed"
                );
                transcript
            });
        let _ = job.reply.send(result);
    }
}

impl Transcriber for Whisper {
    fn name(&self) -> &'static str {
        self.loaded[0].id
    }

    fn models(&self) -> Vec<&'static str> {
        self.loaded.iter().map(|l| l.id).collect()
    }

    fn is_alive(&self) -> bool {
        self.loaded.iter().all(|l| l.queue.is_alive())
    }

    fn transcribe_with(
        &self,
        audio: Vec<u8>,
        options: TranscribeOptions,
    ) -> BoxFuture<'static, Result<Transcript, EngineError>> {
        let picked = self.pick(&options).map(|l| (l.id, l.queue.clone()));
        Box::pin(async move {
            let (engine, queue) = picked?;
            let (reply, answer) = oneshot::channel();
            queue.submit(Job {
                audio,
                language: options.language,
                reply,
            })?;
            answer.await.map_err(|_| EngineError::Stopped { engine })?
        })
    }
}

#[cfg(test)]
mod tests {
    use candle_transformers::models::whisper::model;

    use super::*;
    use crate::speech::{EspeakNg, Synthesizer, audio, word_error_rate as wer};

    /// The encoder with its feed-forward in 8 bits computes the features of candle's f32
    /// encoder, on the same weights, to within 8-bit rounding (relative RMS error), and the
    /// transcripts of 36 s of speech (two windows) are as accurate.
    #[tokio::test]
    async fn the_eight_bit_encoder_gives_candles_features_and_transcript() {
        let dir = models::dir_for_tests();
        crate::speech::prepare_model(&dir, MODEL_ID).expect("whisper prepared");
        let mut model =
            WhisperModel::load(&dir, MODEL_ID, &WhisperOptions::default()).expect("loads");
        let weights = models::spec(MODEL_ID)
            .expect("in the catalog")
            .verify(&dir)
            .expect("verified")
            .join(WEIGHTS_FILE);
        let tensors = candle_core::safetensors::load(&weights, &Device::Cpu).expect("weights");
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let mut reference = model::Whisper::load(&vb, model.config.clone()).expect("candle's");

        // The benchmark's passage (`scripts/bench-transcribe`): 36 s, two windows.
        let passage = "Speech recognition turns spoken words into text. The quick brown fox \
            jumps over the lazy dog. Machine translation is useful when you read a page written \
            in a language you do not know. A service mesh moves requests between programs and \
            records how long each of them took. The weather today is cold in the morning and \
            warm in the afternoon, with a little rain at night. Every engine runs on its own \
            thread, and a full queue refuses new work instead of waiting. The benchmark speaks \
            this passage once, then writes it down several times and keeps the median. Numbers \
            such as twelve, forty two and one hundred are spoken as words."
            .to_owned();
        let speech = EspeakNg::detect()
            .await
            .expect("espeak-ng is installed")
            .synthesize(passage.clone(), None, None)
            .await
            .expect("speaks");
        let pcm = audio::decode_mono(speech.wav, mel::SAMPLE_RATE, Duration::from_secs(120))
            .expect("decodes");
        assert!(
            pcm.len() > m::N_SAMPLES + m::N_SAMPLES / 10,
            "{} samples",
            pcm.len()
        );

        let mut errors = Vec::new();
        let (ours, stages) = model
            .transcribe_encoded(&pcm, None, |model, window| {
                let features = model.encoder.forward(window)?;
                let exact = reference.encoder.forward(window, true)?;
                let error = (&features - &exact)?.sqr()?.sum_all()?.to_scalar::<f32>()?;
                let total = exact.sqr()?.sum_all()?.to_scalar::<f32>()?;
                errors.push((error / total).sqrt());
                Ok(features)
            })
            .expect("transcribes");
        assert!(stages.windows >= 2, "{stages:?}");
        // Measured: 2-3% (with f32 weights in the same code, 0.003%: the rest is 8-bit
        // rounding). A wrong layout or kernel gives errors of order one.
        assert!(
            errors.iter().all(|&e| e < 0.05),
            "relative errors {errors:?}"
        );
        let (exact, _) = model
            .transcribe_encoded(&pcm, None, |_, window| {
                reference.encoder.forward(window, true)
            })
            .expect("transcribes");
        // 8-bit rounding may tip a near tie between two words, and greedy decoding goes on
        // from there: a few words may differ, in both directions, not the whole.
        let (ours_wer, exact_wer) = (wer(&passage, &ours.text), wer(&passage, &exact.text));
        eprintln!("WER {ours_wer} (f32: {exact_wer}), relative errors {errors:?}");
        assert!(
            wer(&exact.text, &ours.text) < 0.06 && ours_wer <= exact_wer + 0.02,
            "WER {ours_wer} against {exact_wer}, relative errors {errors:?}:\n{}\n{}",
            ours.text,
            exact.text
        );
        assert!(ours.text.contains("cold in the morning"), "{}", ours.text);
    }
}
