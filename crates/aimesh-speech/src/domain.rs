//! The speech domain: transcriptions, synthesised audio, their limits and the rules their
//! fields follow.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest filename, in characters.
pub const FILENAME_MAX_CHARS: usize = 255;
/// Longest declared media type, in bytes.
pub const CONTENT_TYPE_MAX_LEN: usize = 255;
/// The language transcribed when the caller names none.
pub const DEFAULT_LANGUAGE: &str = "en";

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
    /// Language asked for.
    pub language: String,
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
    /// Language (BCP-47 primary subtag, lowercase).
    pub language: String,
}

/// The outcome of a transcription job, stored on READY.
#[derive(Debug, Clone)]
pub struct Transcribed {
    /// Engine.
    pub engine: String,
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
}

impl AudioFormat {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "wav" => Some(AudioFormat::Wav),
            _ => None,
        }
    }

    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Wav => "audio/wav",
        }
    }
}

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

/// Checks a language: a BCP-47 tag whose primary subtag (2 or 3 letters) is kept, lowercase;
/// empty means English.
pub fn validate_language(language: &str) -> Result<String, String> {
    let language = language.trim();
    if language.is_empty() {
        return Ok(DEFAULT_LANGUAGE.to_owned());
    }
    let primary = language.split(['-', '_']).next().unwrap_or_default();
    if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err("is not a language tag (e.g. \"en\", \"es\", \"fr-FR\")".to_owned());
    }
    Ok(primary.to_ascii_lowercase())
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
        assert_eq!(validate_language("").as_deref(), Ok("en"));
        assert_eq!(validate_language("fr-FR").as_deref(), Ok("fr"));
        assert_eq!(validate_language("ES").as_deref(), Ok("es"));
        for bad in ["e", "english", "12", "e n"] {
            assert!(validate_language(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn export_formats_parse() {
        assert_eq!(ExportFormat::parse(""), Ok(ExportFormat::Text));
        assert_eq!(ExportFormat::parse("SRT"), Ok(ExportFormat::Srt));
        assert_eq!(ExportFormat::parse("vtt"), Ok(ExportFormat::Vtt));
        assert!(ExportFormat::parse("docx").is_err());
    }
}
