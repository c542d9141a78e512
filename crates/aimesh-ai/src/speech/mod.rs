//! Speech: speech-to-text behind the [`Transcriber`] trait and text-to-speech behind the
//! [`Synthesizer`] trait.
//!
//! Engines:
//!
//! - [`Whisper`]: OpenAI's Whisper (tiny.en, English, and base, multilingual with language
//!   detection, from the pinned catalog) on candle. The catalog
//!   ships CTranslate2 weights; [`prepare`] converts them once into safetensors with candle's
//!   names (see [`convert`]) and records the digests of the derived files, which every load
//!   verifies.
//! - [`EspeakNg`]: the eSpeak NG formant synthesiser, run as a subprocess.
//!
//! Audio comes in as the bytes of a WAV, FLAC, MP3 or Ogg Vorbis file (see [`audio`]) and is
//! downmixed and resampled to 16 kHz mono before the model sees it.

pub mod audio;
pub mod convert;
mod decoder;
mod encoder;
pub mod mel;
mod tts;
mod whisper;

use futures::future::BoxFuture;

pub use self::convert::{convert_ct2, prepare, prepare_model};
pub use self::tts::{EspeakNg, MAX_TEXT_CHARS, WORDS_PER_MINUTE};
pub use self::whisper::{Stages, Whisper, WhisperModel, WhisperOptions};
use crate::engine::EngineError;

/// A Whisper attention block's query, key and value projections (under `vb`) stacked into
/// one `3 d × d` matrix and one bias, the key's zero (it has none), the query's rows and bias
/// scaled by `query_scale`: one product instead of three.
fn stacked_qkv(
    vb: &candle_nn::VarBuilder<'_>,
    d: usize,
    query_scale: f64,
) -> candle_core::Result<(candle_core::Tensor, candle_core::Tensor)> {
    use candle_core::{DType, Tensor};
    let weight = Tensor::cat(
        &[
            (vb.get((d, d), "q_proj.weight")? * query_scale)?,
            vb.get((d, d), "k_proj.weight")?,
            vb.get((d, d), "v_proj.weight")?,
        ],
        0,
    )?;
    let bias = Tensor::cat(
        &[
            (vb.get(d, "q_proj.bias")? * query_scale)?,
            Tensor::zeros(d, DType::F32, vb.device())?,
            vb.get(d, "v_proj.bias")?,
        ],
        0,
    )?;
    Ok((weight, bias))
}

/// How far a transcript is from what was said: the word-level edit distance (substitutions,
/// insertions and deletions) from `reference` to `hypothesis`, and the reference's words.
/// Words are compared lowercased, punctuation dropped (apostrophes kept).
pub fn word_edits(reference: &str, hypothesis: &str) -> (usize, usize) {
    let words = |text: &str| -> Vec<String> {
        text.to_lowercase()
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (r, h) = (words(reference), words(hypothesis));
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let substituted = diagonal + usize::from(rw != hw);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    (row[h.len()], r.len())
}

/// The word error rate of `hypothesis`: [`word_edits`] over the reference's words.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let (edits, words) = word_edits(reference, hypothesis);
    edits as f64 / words.max(1) as f64
}

/// A stretch of a transcript with its place in the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Start, in seconds from the beginning of the audio.
    pub start: f64,
    /// End, in seconds from the beginning of the audio.
    pub end: f64,
    /// What was said.
    pub text: String,
}

/// The text of a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The whole text, the segments' texts joined.
    pub text: String,
    /// The text in timed segments, in order.
    pub segments: Vec<Segment>,
    /// Length of the audio, in seconds.
    pub duration: f64,
    /// Language of the text (BCP-47), e.g. `en`: the one asked for, or the one detected.
    pub language: String,
    /// The probability of the detected language; `None` when it was asked for (or the model
    /// knows English only).
    pub language_probability: Option<f64>,
    /// The model that transcribed it, e.g. `whisper-base`.
    pub model: String,
}

/// What a transcription asks of the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TranscribeOptions {
    /// The model to run (a catalog id); `None`: the engine's default, or a model knowing
    /// `language`.
    pub model: Option<String>,
    /// The spoken language (a Whisper language code, e.g. `es`); `None`: detected by a
    /// multilingual model, English for an English-only one.
    pub language: Option<String>,
}

/// The languages multilingual Whisper models know, by their codes (Whisper's own, in its
/// vocabulary order).
pub const WHISPER_LANGUAGES: &[&str] = &[
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su",
];

/// Whether the catalog's Whisper model `id` knows languages other than English.
pub fn is_multilingual(id: &str) -> bool {
    id == convert::MULTILINGUAL_MODEL_ID
}

/// A speech-to-text engine.
pub trait Transcriber: Send + Sync + 'static {
    /// Returns whether the engine is serving: false while its inference thread restarts
    /// after a panic, and once it has stopped for good.
    fn is_alive(&self) -> bool {
        true
    }

    /// The engine's name: its default model, e.g. `whisper-tiny.en`.
    fn name(&self) -> &'static str;
    /// The models it runs, the default first.
    fn models(&self) -> Vec<&'static str> {
        vec![self.name()]
    }
    /// Transcribes an audio file with the default options (see
    /// [`Transcriber::transcribe_with`]).
    fn transcribe(&self, audio: Vec<u8>) -> BoxFuture<'static, Result<Transcript, EngineError>> {
        self.transcribe_with(audio, TranscribeOptions::default())
    }
    /// Transcribes an audio file (WAV, FLAC, MP3 or Ogg Vorbis, as bytes). Undecodable or
    /// empty audio, or audio longer than the engine accepts, is refused with
    /// [`EngineError::InvalidInput`] naming the field `audio`; a model not loaded names
    /// `model`, a language no loaded model knows `language`.
    fn transcribe_with(
        &self,
        audio: Vec<u8>,
        options: TranscribeOptions,
    ) -> BoxFuture<'static, Result<Transcript, EngineError>>;
}

/// A voice a synthesiser offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voice {
    /// Human-readable name, e.g. `English_(America)`.
    pub name: String,
    /// Language (BCP-47, lowercase as the engine lists it), e.g. `en-us`.
    pub language: String,
    /// The engine's identifier of the voice, e.g. `gmw/en-US`.
    pub identifier: String,
    /// `M`, `F` or empty when the engine does not say.
    pub gender: String,
}

/// Synthesised speech.
#[derive(Debug, Clone, PartialEq)]
pub struct Speech {
    /// A complete 16-bit PCM WAV file.
    pub wav: Vec<u8>,
    /// Samples per second.
    pub sample_rate: u32,
    /// Length, in seconds.
    pub duration: f64,
}

/// A text-to-speech engine.
pub trait Synthesizer: Send + Sync + 'static {
    /// The engine's name, e.g. `espeak-ng`.
    fn name(&self) -> &'static str;
    /// The voices it offers.
    fn voices(&self) -> &[Voice];
    /// Speaks `text` with `voice` (a voice's identifier, language or name; the engine's
    /// default when `None`) at `words_per_minute` (the engine's default when `None`).
    /// Refuses with [`EngineError::InvalidInput`] naming `text`, `voice` or
    /// `words_per_minute`.
    fn synthesize(
        &self,
        text: String,
        voice: Option<String>,
        words_per_minute: Option<u32>,
    ) -> BoxFuture<'static, Result<Speech, EngineError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_error_rate_is_levenshtein_over_words() {
        assert_eq!(word_error_rate("the quick fox", "The quick, fox."), 0.0);
        assert!((word_error_rate("the quick brown fox", "the quick fox") - 0.25).abs() < 1e-9);
        assert!((word_error_rate("a b", "a x b y") - 1.0).abs() < 1e-9);
        assert_eq!(word_edits("it's late", "its late"), (1, 2));
    }
}
