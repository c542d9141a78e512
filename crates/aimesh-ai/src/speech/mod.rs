//! Speech: speech-to-text behind the [`Transcriber`] trait and text-to-speech behind the
//! [`Synthesizer`] trait.
//!
//! Engines:
//!
//! - [`Whisper`]: OpenAI's Whisper (tiny.en from the pinned catalog) on candle. The catalog
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
pub mod mel;
mod tts;
mod whisper;

use futures::future::BoxFuture;

pub use self::convert::{convert_ct2, prepare};
pub use self::tts::{EspeakNg, MAX_TEXT_CHARS, WORDS_PER_MINUTE};
pub use self::whisper::{Stages, Whisper, WhisperModel, WhisperOptions};
use crate::engine::EngineError;

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
    /// Language of the text (BCP-47), e.g. `en`.
    pub language: String,
}

/// A speech-to-text engine.
pub trait Transcriber: Send + Sync + 'static {
    /// Returns whether the engine is serving: false while its inference thread restarts
    /// after a panic, and once it has stopped for good.
    fn is_alive(&self) -> bool {
        true
    }

    /// The engine's name, e.g. `whisper-tiny.en`.
    fn name(&self) -> &'static str;
    /// Transcribes an audio file (WAV, FLAC, MP3 or Ogg Vorbis, as bytes). Undecodable or
    /// empty audio, or audio longer than the engine accepts, is refused with
    /// [`EngineError::InvalidInput`] naming the field `audio`.
    fn transcribe(&self, audio: Vec<u8>) -> BoxFuture<'static, Result<Transcript, EngineError>>;
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
