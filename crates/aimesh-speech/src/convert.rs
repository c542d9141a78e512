//! Conversions between the protobuf messages of `aimesh.speech.v1` and the speech domain.
//!
//! Requests become validated domain values through `TryFrom` (every offending field is
//! reported, as an INVALID_ARGUMENT with the fields named); domain values become responses
//! through `From`.

use aimesh_ai::speech::{MAX_TEXT_CHARS, Voice, WORDS_PER_MINUTE};
use aimesh_kit::{
    error::{Violations, parse_uuid},
    paging,
    proto::timestamp,
};
use aimesh_proto::speech::v1 as pb;
use bytes::Bytes;
use uuid::Uuid;

use crate::{
    domain::{
        self, Audio, AudioFormat, ExportFormat, ListQuery, NewAudio, NewTranscription,
        SAMPLE_RATES, Segment, Status, Transcription,
    },
    error::SpeechError,
};

fn finish<T: aimesh_kit::error::Checked>(
    violations: Violations,
    values: T,
) -> Result<T::Values, SpeechError> {
    violations
        .finish(values)
        .map_err(SpeechError::InvalidArgument)
}

/// Parses the id a request names in `field`.
pub fn parse_id(field: &str, id: &str) -> Result<Uuid, SpeechError> {
    let mut violations = Violations::new();
    let id = violations.check(field, parse_uuid(id));
    finish(violations, id)
}

/// The domain status a proto status names (`None` for unspecified).
pub fn status_filter(status: pb::TranscriptionStatus) -> Option<Status> {
    match status {
        pb::TranscriptionStatus::Unspecified => None,
        pb::TranscriptionStatus::Pending => Some(Status::Pending),
        pb::TranscriptionStatus::Running => Some(Status::Running),
        pb::TranscriptionStatus::Ready => Some(Status::Ready),
        pb::TranscriptionStatus::Failed => Some(Status::Failed),
    }
}

impl From<Status> for pb::TranscriptionStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Pending => pb::TranscriptionStatus::Pending,
            Status::Running => pb::TranscriptionStatus::Running,
            Status::Ready => pb::TranscriptionStatus::Ready,
            Status::Failed => pb::TranscriptionStatus::Failed,
        }
    }
}

// === requests -> domain ===

impl TryFrom<pb::CreateTranscriptionRequest> for NewTranscription {
    type Error = SpeechError;

    fn try_from(request: pb::CreateTranscriptionRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let filename = violations.check("filename", domain::validate_filename(&request.filename));
        let body = request.body.unwrap_or_default();
        let content_type = violations.check(
            "body.content_type",
            domain::validate_content_type(&body.content_type),
        );
        let language = violations.check("language", domain::validate_language(&request.language));
        let model = violations.check("model", domain::validate_model(&request.model));
        if body.data.is_empty() {
            violations.add("body.data", "must not be empty");
        }
        let (filename, content_type, language, model) =
            finish(violations, (filename, content_type, language, model))?;
        Ok(NewTranscription {
            filename,
            content_type,
            data: Bytes::from(body.data),
            language,
            model,
        })
    }
}

impl TryFrom<&pb::ListTranscriptionsRequest> for ListQuery {
    type Error = SpeechError;

    fn try_from(request: &pb::ListTranscriptionsRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let page_size =
            violations.check("page_size", paging::validate_page_size(request.page_size));
        let status = violations.check(
            "status",
            pb::TranscriptionStatus::try_from(request.status)
                .map(status_filter)
                .map_err(|_| "is not a known status"),
        );
        let (page_size, status) = finish(violations, (page_size, status))?;
        let mut query = ListQuery {
            page_size,
            after: None,
            status,
        };
        let mut violations = Violations::new();
        let after = violations.check(
            "page_token",
            paging::decode_uuid(&request.page_token, &query.filter_key()),
        );
        query.after = finish(violations, after)?;
        Ok(query)
    }
}

/// A validated ExportTranscription.
#[derive(Debug, Clone, Copy)]
pub struct Export {
    /// The transcription.
    pub id: Uuid,
    /// The format.
    pub format: ExportFormat,
}

impl TryFrom<&pb::ExportTranscriptionRequest> for Export {
    type Error = SpeechError;

    fn try_from(request: &pb::ExportTranscriptionRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let id = violations.check("id", parse_uuid(&request.id));
        let format = violations.check("format", ExportFormat::parse(&request.format));
        let (id, format) = finish(violations, (id, format))?;
        Ok(Export { id, format })
    }
}

impl TryFrom<pb::SynthesizeAudioRequest> for NewAudio {
    type Error = SpeechError;

    fn try_from(request: pb::SynthesizeAudioRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let chars = request.text.chars().count();
        if request.text.trim().is_empty() {
            violations.add("text", "must not be empty");
        } else if chars > MAX_TEXT_CHARS {
            violations.add(
                "text",
                format!("{chars} characters, at most {MAX_TEXT_CHARS}"),
            );
        }
        if request.voice.len() > 100 || request.voice.chars().any(char::is_control) {
            violations.add(
                "voice",
                "must be at most 100 bytes, without control characters",
            );
        }
        let format = violations.check(
            "format",
            match pb::AudioFormat::try_from(request.format) {
                Ok(pb::AudioFormat::Unspecified | pb::AudioFormat::Wav) => Ok(AudioFormat::Wav),
                Ok(pb::AudioFormat::Mp3) => Ok(AudioFormat::Mp3),
                Ok(pb::AudioFormat::OggOpus) => Ok(AudioFormat::OggOpus),
                Err(_) => Err(
                    "is not a known format (AUDIO_FORMAT_WAV, AUDIO_FORMAT_MP3, \
                     AUDIO_FORMAT_OGG_OPUS)",
                ),
            },
        );
        let sample_rate = violations.check(
            "sample_rate_hertz",
            match u32::try_from(request.sample_rate_hertz) {
                Ok(rate) if rate == 0 || SAMPLE_RATES.contains(&rate) => Ok(rate),
                _ => Err(format!(
                    "{} is not one of {} (0: the engine's own)",
                    request.sample_rate_hertz,
                    SAMPLE_RATES.map(|r| r.to_string()).join(", ")
                )),
            },
        );
        let rate = violations.check(
            "words_per_minute",
            match request.words_per_minute {
                0 => Ok(0),
                wpm if wpm > 0 && WORDS_PER_MINUTE.contains(&(wpm as u32)) => Ok(wpm as u32),
                wpm => Err(format!(
                    "{wpm} is outside {}..={} (0: the default)",
                    WORDS_PER_MINUTE.start(),
                    WORDS_PER_MINUTE.end()
                )),
            },
        );
        let (format, words_per_minute, sample_rate) =
            finish(violations, (format, rate, sample_rate))?;
        Ok(NewAudio {
            text: request.text,
            voice: request.voice.trim().to_owned(),
            format,
            words_per_minute,
            sample_rate,
        })
    }
}

/// A validated ListAudio: page size and where the page starts.
pub fn audio_page(request: &pb::ListAudioRequest) -> Result<(u32, Option<Uuid>), SpeechError> {
    let mut violations = Violations::new();
    let page_size = violations.check("page_size", paging::validate_page_size(request.page_size));
    let after = violations.check(
        "page_token",
        paging::decode_uuid(&request.page_token, "audio"),
    );
    finish(violations, (page_size, after))
}

// === domain -> responses ===

impl From<&Segment> for pb::Segment {
    fn from(segment: &Segment) -> Self {
        pb::Segment {
            start_seconds: segment.start,
            end_seconds: segment.end,
            text: segment.text.clone(),
        }
    }
}

impl From<&Transcription> for pb::Transcription {
    fn from(t: &Transcription) -> Self {
        pb::Transcription {
            id: t.id.to_string(),
            filename: t.filename.clone(),
            content_type: t.content_type.clone(),
            size_bytes: t.size_bytes,
            status: pb::TranscriptionStatus::from(t.status).into(),
            failure_reason: t.failure_reason.clone().unwrap_or_default(),
            language: t.language.clone(),
            language_probability: t.language_probability.unwrap_or_default(),
            engine: t.engine.clone().unwrap_or_default(),
            duration_seconds: t.duration_seconds,
            text: t.text.clone().unwrap_or_default(),
            segments: t.segments.iter().map(Into::into).collect(),
            audio_stored: t.blob.is_some(),
            job_id: t.job_id.map(|id| id.to_string()).unwrap_or_default(),
            create_time: Some(timestamp(t.created_at)),
            update_time: Some(timestamp(t.updated_at)),
        }
    }
}

impl From<&Audio> for pb::Audio {
    fn from(audio: &Audio) -> Self {
        pb::Audio {
            id: audio.id.to_string(),
            text: audio.text.clone(),
            voice: audio.voice.clone(),
            format: match audio.format {
                AudioFormat::Wav => pb::AudioFormat::Wav,
                AudioFormat::Mp3 => pb::AudioFormat::Mp3,
                AudioFormat::OggOpus => pb::AudioFormat::OggOpus,
            }
            .into(),
            words_per_minute: i32::try_from(audio.words_per_minute).unwrap_or(i32::MAX),
            content_type: audio.format.content_type().to_owned(),
            size_bytes: audio.size_bytes,
            duration_seconds: audio.duration_seconds,
            engine: audio.engine.clone(),
            create_time: Some(timestamp(audio.created_at)),
            sample_rate_hertz: i32::try_from(audio.sample_rate).unwrap_or(i32::MAX),
            last_used_time: Some(timestamp(audio.last_used_at)),
        }
    }
}

/// A voice as the API shows it.
pub fn voice_to_proto(voice: &Voice) -> pb::Voice {
    pb::Voice {
        id: voice.identifier.clone(),
        name: voice.name.clone(),
        language: voice.language.clone(),
        gender: voice.gender.clone(),
    }
}
