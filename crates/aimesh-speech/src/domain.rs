//! The speech domain: transcriptions, synthesised audio, their limits and the rules their
//! fields follow.

use std::fmt;

use aimesh_ai::speech::{
    WHISPER_LANGUAGES,
    convert::{MODEL_IDS, MULTILINGUAL_MODEL_ID},
    is_multilingual,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest filename, in characters.
pub const FILENAME_MAX_CHARS: usize = 255;
/// Longest declared media type, in bytes.
pub const CONTENT_TYPE_MAX_LEN: usize = 255;
/// The language transcribed when the caller names none and the model knows English only.
pub const DEFAULT_LANGUAGE: &str = "en";
/// The language a caller names to have it detected.
pub const DETECT_LANGUAGE: &str = "auto";

/// Where a transcription is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Stored, waiting for a worker.
    Pending,
    /// Being transcribed.
    Running,
    /// Transcribed.
    Ready,
    /// Transcription failed.
    Failed,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Running => "RUNNING",
            Status::Ready => "READY",
            Status::Failed => "FAILED",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "PENDING" => Status::Pending,
            "RUNNING" => Status::Running,
            "READY" => Status::Ready,
            "FAILED" => Status::Failed,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A timed stretch of a transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Start, in seconds.
    pub start: f64,
    /// End, in seconds.
    pub end: f64,
    /// What was said.
    pub text: String,
}

/// A recording and its transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcription {
    /// Identifier.
    pub id: Uuid,
    /// Owner.
    pub owner_id: String,
    /// Filename given at upload.
    pub filename: String,
    /// Media type given at upload.
    pub content_type: String,
    /// Size of the recording.
    pub size_bytes: i64,
    /// The recording's blob name, while it is stored.
    pub blob: Option<String>,
    /// Status.
    pub status: Status,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// Language asked for, or once READY the one transcribed; empty while it is still to be
    /// detected.
    pub language: String,
    /// The probability of the detected language (`None` when it was asked for).
    pub language_probability: Option<f64>,
    /// Engine that transcribed it.
    pub engine: Option<String>,
    /// Length of the recording, in seconds (once READY).
    pub duration_seconds: f64,
    /// The transcript (when read with it).
    pub text: Option<String>,
    /// The timed segments (when read with them).
    pub segments: Vec<Segment>,
    /// The last job.
    pub job_id: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A validated CreateTranscription.
#[derive(Debug, Clone)]
pub struct NewTranscription {
    /// Filename.
    pub filename: String,
    /// Media type (may be empty).
    pub content_type: String,
    /// The recording.
    pub data: bytes::Bytes,
    /// Language (a Whisper language code, lowercase), [`DETECT_LANGUAGE`], or `None`: the
    /// model's default.
    pub language: Option<String>,
    /// The model asked for (a Whisper model of the catalog), or `None`.
    pub model: Option<String>,
}

/// The outcome of a transcription job, stored on READY.
#[derive(Debug, Clone)]
pub struct Transcribed {
    /// Engine.
    pub engine: String,
    /// The language transcribed.
    pub language: String,
    /// Its probability, when it was detected.
    pub language_probability: Option<f64>,
    /// Length, in seconds.
    pub duration_seconds: f64,
    /// The whole text.
    pub text: String,
    /// Timed segments.
    pub segments: Vec<Segment>,
}

/// A listing of transcriptions.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Page size.
    pub page_size: u32,
    /// Keyset: ids below this.
    pub after: Option<Uuid>,
    /// Only this status.
    pub status: Option<Status>,
}

impl ListQuery {
    /// The filters a page token is bound to.
    pub fn filter_key(&self) -> String {
        self.status
            .map(Status::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

/// A page of records, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The records.
    pub items: Vec<T>,
    /// Where the next page starts.
    pub next_after: Option<Uuid>,
}

/// The payload of a transcription job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranscribeJob {
    /// The transcription.
    pub transcription_id: Uuid,
    /// The model to run (resolved at creation); absent: the engine's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A transcript export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Plain text, one segment per line.
    Text,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
}

impl ExportFormat {
    /// Parses the request's format name (empty: text).
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "txt" | "text" => Ok(ExportFormat::Text),
            "srt" => Ok(ExportFormat::Srt),
            "vtt" | "webvtt" => Ok(ExportFormat::Vtt),
            _ => Err("must be one of txt, srt, vtt".to_owned()),
        }
    }

    /// The media type of the exported file.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Text => "text/plain; charset=utf-8",
            ExportFormat::Srt => "application/x-subrip",
            ExportFormat::Vtt => "text/vtt; charset=utf-8",
        }
    }
}

/// A stored audio format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// 16-bit PCM WAV.
    Wav,
    /// MP3 (LAME).
    Mp3,
    /// Opus in Ogg (libopus).
    OggOpus,
}

impl AudioFormat {
    /// The stored name (also part of the cache key).
    pub fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Mp3 => "mp3",
            AudioFormat::OggOpus => "ogg-opus",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "wav" => Some(AudioFormat::Wav),
            "mp3" => Some(AudioFormat::Mp3),
            "ogg-opus" => Some(AudioFormat::OggOpus),
            _ => None,
        }
    }

    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::OggOpus => "audio/ogg",
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Mp3 => "mp3",
            AudioFormat::OggOpus => "ogg",
        }
    }
}

/// Sample rates synthesised audio may be stored at (0 in a request: the engine's own).
pub const SAMPLE_RATES: [u32; 7] = [8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000];

/// Stored synthesised speech.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Identifier.
    pub id: Uuid,
    /// Owner.
    pub owner_id: String,
    /// The cache key: SHA-256 of the request.
    pub request_key: String,
    /// Text spoken.
    pub text: String,
    /// Voice identifier (empty: the default).
    pub voice: String,
    /// Format.
    pub format: AudioFormat,
    /// Rate (0: the default).
    pub words_per_minute: u32,
    /// Samples per second of the stored file.
    pub sample_rate: u32,
    /// Size of the file.
    pub size_bytes: i64,
    /// Length, in seconds.
    pub duration_seconds: f64,
    /// The synthesiser.
    pub engine: String,
    /// The file's blob name.
    pub blob: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last synthesised, served from the cache or downloaded.
    pub last_used_at: DateTime<Utc>,
}

/// A validated SynthesizeAudio.
#[derive(Debug, Clone)]
pub struct NewAudio {
    /// Text.
    pub text: String,
    /// Voice asked for (empty: the default).
    pub voice: String,
    /// Format.
    pub format: AudioFormat,
    /// Rate (0: the default).
    pub words_per_minute: u32,
    /// Samples per second asked for (0: the engine's own).
    pub sample_rate: u32,
}

/// Checks a filename.
pub fn validate_filename(filename: &str) -> Result<String, String> {
    let filename = filename.trim();
    if filename.is_empty() {
        return Err("must not be empty".into());
    }
    if filename.chars().count() > FILENAME_MAX_CHARS {
        return Err(format!("must be at most {FILENAME_MAX_CHARS} characters"));
    }
    if filename
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err("must not contain path separators or control characters".into());
    }
    if filename == "." || filename == ".." {
        return Err("must name a file".into());
    }
    Ok(filename.to_owned())
}

/// Checks a declared media type (empty: none).
pub fn validate_content_type(content_type: &str) -> Result<String, String> {
    if content_type.len() > CONTENT_TYPE_MAX_LEN {
        return Err(format!("must be at most {CONTENT_TYPE_MAX_LEN} bytes"));
    }
    if content_type.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(content_type.trim().to_owned())
}

/// Checks a language: a BCP-47 tag whose primary subtag (2 or 3 letters, one Whisper knows)
/// is kept, lowercase, or `auto` (detect it); empty (`None`) means the model's default.
pub fn validate_language(language: &str) -> Result<Option<String>, String> {
    let language = language.trim();
    if language.is_empty() {
        return Ok(None);
    }
    if language.eq_ignore_ascii_case(DETECT_LANGUAGE) {
        return Ok(Some(DETECT_LANGUAGE.to_owned()));
    }
    let primary = language.split(['-', '_']).next().unwrap_or_default();
    if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(
            "is not a language tag (e.g. \"en\", \"es\", \"fr-FR\") nor \"auto\"".to_owned(),
        );
    }
    let primary = primary.to_ascii_lowercase();
    if !WHISPER_LANGUAGES.contains(&primary.as_str()) {
        return Err(format!("{primary:?} is not a language Whisper transcribes"));
    }
    Ok(Some(primary))
}

/// Checks a model name: empty (`None`) or a Whisper model of the catalog.
pub fn validate_model(model: &str) -> Result<Option<String>, String> {
    let model = model.trim();
    if model.is_empty() {
        return Ok(None);
    }
    if !MODEL_IDS.contains(&model) {
        return Err(format!(
            "{} is not a transcription model; one of {}",
            aimesh_kit::error::excerpt(model),
            MODEL_IDS.join(", ")
        ));
    }
    Ok(Some(model.to_owned()))
}

/// Which model transcribes a recording and in which language (`None`: detected), from what
/// the caller asked and the default model: a named model is kept; otherwise the default,
/// unless the language asked for (or its detection) needs the multilingual model. An
/// English-only model transcribes English only. Errors name the field at fault.
pub fn resolve_model(
    model: Option<&str>,
    language: Option<&str>,
    default_model: &str,
) -> Result<(String, Option<String>), (&'static str, String)> {
    let needs_multilingual = match language {
        Some(DETECT_LANGUAGE) => true,
        Some(language) => language != DEFAULT_LANGUAGE,
        None => false,
    };
    let model = match model {
        Some(model) => model,
        None if needs_multilingual && !is_multilingual(default_model) => MULTILINGUAL_MODEL_ID,
        None => default_model,
    };
    if !is_multilingual(model) {
        return match language {
            None | Some(DEFAULT_LANGUAGE) => Ok((model.to_owned(), Some(DEFAULT_LANGUAGE.into()))),
            Some(other) => Err((
                "language",
                format!(
                    "{other:?}: {model} transcribes English (\"en\") only; ask for \
                     {MULTILINGUAL_MODEL_ID}, or leave the model empty"
                ),
            )),
        };
    }
    let language = language
        .filter(|&language| language != DETECT_LANGUAGE)
        .map(str::to_owned);
    Ok((model.to_owned(), language))
}

/// The current time, as the databases keep it.
pub fn now() -> DateTime<Utc> {
    aimesh_kit::db::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_keep_their_primary_subtag() {
        assert_eq!(validate_language(""), Ok(None));
        assert_eq!(validate_language("fr-FR"), Ok(Some("fr".into())));
        assert_eq!(validate_language("ES"), Ok(Some("es".into())));
        assert_eq!(validate_language("Auto"), Ok(Some("auto".into())));
        for bad in ["e", "english", "12", "e n", "xx"] {
            assert!(validate_language(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_model_follows_the_language() {
        let tiny = "whisper-tiny.en";
        let base = "whisper-base";
        let resolve = |model, language, default| resolve_model(model, language, default);
        // English by default on tiny.en; detection or another language needs base.
        assert_eq!(
            resolve(None, None, tiny),
            Ok((tiny.into(), Some("en".into())))
        );
        assert_eq!(resolve(None, Some("auto"), tiny), Ok((base.into(), None)));
        assert_eq!(
            resolve(None, Some("es"), tiny),
            Ok((base.into(), Some("es".into())))
        );
        assert_eq!(resolve(Some(base), None, tiny), Ok((base.into(), None)));
        // A multilingual default detects when no language is named.
        assert_eq!(resolve(None, None, base), Ok((base.into(), None)));
        assert_eq!(
            resolve(None, Some("en"), base),
            Ok((base.into(), Some("en".into())))
        );
        // tiny.en knows English only.
        assert_eq!(
            resolve(Some(tiny), Some("fr"), tiny).unwrap_err().0,
            "language"
        );
        assert_eq!(
            resolve(Some(tiny), Some("auto"), base).unwrap_err().0,
            "language"
        );
    }

    #[test]
    fn export_formats_parse() {
        assert_eq!(ExportFormat::parse(""), Ok(ExportFormat::Text));
        assert_eq!(ExportFormat::parse("SRT"), Ok(ExportFormat::Srt));
        assert_eq!(ExportFormat::parse("vtt"), Ok(ExportFormat::Vtt));
        assert!(ExportFormat::parse("docx").is_err());
    }
}
