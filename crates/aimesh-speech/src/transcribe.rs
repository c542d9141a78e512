//! Transcribing recordings as jobs (`speech.transcribe`) and deleting recordings past their
//! retention period (`speech.retention`, a scheduled job).
//!
//! A transcription job decodes the recording window by window (see [`crate::audio`]): each
//! 30-second window is transcribed on its own, its segments shifted to their place in the
//! recording, and the job's progress reports the window with the transcript so far. A
//! language to detect is detected on the first window, and the later windows are transcribed
//! in it by the same model. Only the
//! compressed recording and one window are held at a time. Cancelling stops between windows.
//! The transcript is stored READY in one statement, so a repeated attempt replaces it.

use aimesh_ai::{engine::EngineError, speech::TranscribeOptions};
use aimesh_jobs::{JobContext, JobError, JobHandler, JobOutput};
use aimesh_proto::speech::v1 as pb;
use futures::future::BoxFuture;

use crate::{
    audio::{self, AudioError, WINDOW_SECONDS, Windows},
    domain::{Segment, Status, TranscribeJob, Transcribed, now},
    error::SpeechError,
    service::Speech,
};

/// The job kind of transcriptions.
pub const KIND: &str = "speech.transcribe";

/// The job kind of the recordings' retention sweep.
pub const RETENTION_KIND: &str = "speech.retention";

/// Runs `speech.transcribe` jobs; their payload is a [`TranscribeJob`] (JSON).
pub struct TranscribeHandler {
    speech: Speech,
}

impl TranscribeHandler {
    /// Creates the handler.
    pub fn new(speech: Speech) -> Self {
        Self { speech }
    }
}

impl JobHandler for TranscribeHandler {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let speech = self.speech.clone();
        Box::pin(async move {
            let last_attempt = ctx.job.attempts >= ctx.job.max_attempts;
            let payload = ctx.job.payload.clone();
            let outcome = transcribe(speech.clone(), ctx).await;
            let reason = match &outcome {
                Err(JobError::Permanent(reason)) => Some(reason.clone()),
                Err(JobError::Retryable(reason)) if last_attempt => Some(reason.clone()),
                _ => None,
            };
            if let Some(reason) = reason
                && let Ok(request) = serde_json::from_slice::<TranscribeJob>(&payload)
            {
                // No attempt is left: the transcription must not stay RUNNING.
                let _ = speech
                    .store()
                    .set_status(
                        request.transcription_id,
                        Status::Failed,
                        Some(reason),
                        now(),
                    )
                    .await;
            }
            outcome
        })
    }
}

fn retryable(error: SpeechError) -> JobError {
    match error {
        SpeechError::TranscriptionNotFound(_) => {
            JobError::Permanent("the transcription no longer exists".into())
        }
        other => JobError::Retryable(other.to_string()),
    }
}

fn undecodable(error: AudioError) -> JobError {
    JobError::Permanent(format!("the recording {error}"))
}

async fn transcribe(speech: Speech, ctx: JobContext) -> Result<JobOutput, JobError> {
    let request: TranscribeJob = serde_json::from_slice(&ctx.job.payload)
        .map_err(|e| JobError::Permanent(format!("unreadable job payload: {e}")))?;
    let id = request.transcription_id;
    let owner = ctx.job.owner_id.clone();
    let transcription = speech
        .get_transcription(&owner, id)
        .await
        .map_err(retryable)?;
    let blob = transcription
        .blob
        .clone()
        .ok_or_else(|| JobError::Permanent("the recording is no longer stored".into()))?;
    let engine = speech
        .transcriber()
        .map_err(|e| JobError::Retryable(e.to_string()))?
        .clone();
    speech
        .store()
        .set_status(id, Status::Running, None, now())
        .await
        .map_err(retryable)?;
    let bytes = speech
        .blobs()
        .get(&owner, &blob)
        .await
        .map_err(|e| JobError::Retryable(format!("reading the recording: {e}")))?;
    let max_seconds = speech.config().max_duration.as_secs_f64();
    let mut windows = tokio::task::spawn_blocking(move || Windows::open(bytes, max_seconds))
        .await
        .map_err(|e| JobError::Retryable(e.to_string()))?
        .map_err(undecodable)?;
    let total_windows = windows
        .declared_seconds()
        .map(|seconds| (seconds / f64::from(WINDOW_SECONDS)).ceil().max(1.0) as usize);
    ctx.progress(0, "decoding the recording", "").await;

    let mut segments: Vec<Segment> = Vec::new();
    let mut duration = 0.0;
    let mut done = 0usize;
    // What the first window resolves (the model, the language and, when detected, its
    // probability) holds for the others.
    let mut options = TranscribeOptions {
        model: request.model.clone(),
        language: Some(transcription.language.clone()).filter(|l| !l.is_empty()),
    };
    let mut language_probability = None;
    let mut model = None;
    loop {
        if ctx.cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        // Decode the next window off the runtime, handing the decoder back and forth.
        let (back, window) = tokio::task::spawn_blocking(move || {
            let window = windows.next_window();
            (windows, window)
        })
        .await
        .map_err(|e| JobError::Retryable(e.to_string()))?;
        windows = back;
        let Some(window) = window.map_err(undecodable)? else {
            break;
        };
        let offset = done as f64 * f64::from(WINDOW_SECONDS);
        let seconds = window.len() as f64 / f64::from(audio::SAMPLE_RATE);
        let wav = audio::wav_16k(&window).map_err(|e| JobError::Retryable(e.to_string()))?;
        drop(window);
        let started = std::time::Instant::now();
        let transcript = tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
            transcript = engine.transcribe_with(wav, options.clone()) => transcript.map_err(|error| match error {
                EngineError::InvalidInput { .. } => {
                    JobError::Permanent(format!("the recording {error}"))
                }
                other => JobError::Retryable(other.to_string()),
            })?,
        };
        tracing::debug!(
            window = done,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "window transcribed"
        );
        if model.is_none() {
            options = TranscribeOptions {
                model: Some(transcript.model.clone()),
                language: Some(transcript.language.clone()),
            };
            language_probability = transcript.language_probability;
            model = Some(transcript.model.clone());
        }
        segments.extend(transcript.segments.into_iter().map(|segment| Segment {
            start: offset + segment.start.min(seconds),
            end: offset + segment.end.min(seconds),
            text: segment.text,
        }));
        duration = offset + seconds;
        done += 1;
        let text = join(&segments);
        let (percent, message) = match total_windows {
            Some(total) => (
                (done * 100 / total.max(done)).min(99) as i32,
                format!("transcribed window {done} of {total} ({duration:.0} s)"),
            ),
            None => (0, format!("transcribed window {done} ({duration:.0} s)")),
        };
        ctx.progress(percent, &message, &text).await;
    }
    let transcribed = Transcribed {
        engine: model.unwrap_or_else(|| engine.name().to_owned()),
        language: options
            .language
            .unwrap_or_else(|| crate::domain::DEFAULT_LANGUAGE.to_owned()),
        language_probability,
        duration_seconds: duration,
        text: join(&segments),
        segments,
    };
    if !speech
        .store()
        .store_transcript(id, &transcribed, now())
        .await
        .map_err(retryable)?
    {
        return Err(JobError::Permanent(
            "the transcription no longer exists".into(),
        ));
    }
    let stored = speech
        .get_transcription(&owner, id)
        .await
        .map_err(retryable)?;
    Ok(JobOutput::message(&pb::Transcription::from(&stored)))
}

fn join(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|segment| segment.text.trim())
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `speech.retention` jobs: deletes the recordings past the retention period.
pub struct RetentionHandler {
    speech: Speech,
}

impl RetentionHandler {
    /// Creates the handler.
    pub fn new(speech: Speech) -> Self {
        Self { speech }
    }
}

impl JobHandler for RetentionHandler {
    fn kind(&self) -> &'static str {
        RETENTION_KIND
    }

    fn run(&self, _ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let speech = self.speech.clone();
        Box::pin(async move {
            let deleted = speech
                .expire_recordings()
                .await
                .map_err(|e| JobError::Retryable(e.to_string()))?;
            if deleted > 0 {
                tracing::info!(deleted, "recordings past their retention period deleted");
            }
            Ok(JobOutput::message(&pb::RetentionSweepResult {
                recordings_deleted: i32::try_from(deleted).unwrap_or(i32::MAX),
            }))
        })
    }
}
