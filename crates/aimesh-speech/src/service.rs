//! Speech domain logic: recordings stored under the owner's quota and transcribed as jobs,
//! transcripts exported, speech synthesised into stored audio behind a per-owner request
//! cache, and recordings deleted after the retention period. No tonic, no SQL.

use std::{sync::Arc, time::Duration};

use aimesh_ai::speech::{Synthesizer, Transcriber, Voice};
use aimesh_jobs::{Job, Jobs, SubmitOptions};
use aimesh_kit::{
    blob::{BlobStore, sha256_hex},
    files::{FileRef, QuotaError, QuotaPermit, SharedFiles, SignedUrl, StorageQuota, UrlSigner},
};
use bytes::Bytes;
use uuid::Uuid;

use crate::{
    audio::Windows,
    domain::{
        Audio, ExportFormat, ListQuery, NewAudio, NewTranscription, Page, Status, TranscribeJob,
        Transcription, now,
    },
    error::{SpeechError, SpeechResult},
    export,
    store::SpeechStore,
};

/// Attempts a transcription job gets before it fails for good.
const TRANSCRIBE_ATTEMPTS: i32 = 3;
/// Recordings deleted per retention sweep statement.
const RETENTION_BATCH: i64 = 100;

/// Limits and policies of the service.
#[derive(Debug, Clone)]
pub struct SpeechConfig {
    /// Largest recording accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Longest recording accepted.
    pub max_duration: Duration,
    /// Most bytes one owner may store (recordings kept and synthesised audio).
    pub storage_quota_bytes: u64,
    /// How long recordings are kept after upload (transcripts are kept); `None`: forever.
    pub audio_retention: Option<Duration>,
    /// Most bytes of synthesised audio one owner keeps: beyond it the least recently used
    /// audio is evicted (synthesis is deterministic, so an evicted request is made again).
    pub audio_cache_bytes: u64,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 200 << 20,
            max_duration: Duration::from_secs(3 * 3600),
            storage_quota_bytes: 1 << 30,
            audio_retention: Some(Duration::from_secs(30 * 24 * 3600)),
            audio_cache_bytes: 256 << 20,
        }
    }
}

/// An engine, or why this process has none.
pub type EngineSlot<T> = Result<Arc<T>, String>;

/// The speech service.
#[derive(Clone)]
pub struct Speech {
    store: SpeechStore,
    blobs: BlobStore,
    jobs: Jobs,
    transcriber: EngineSlot<dyn Transcriber>,
    synthesizer: EngineSlot<dyn Synthesizer>,
    config: SpeechConfig,
    files: SharedFiles,
}

/// The blob name of a transcription's recording. Names are per resource (not the content's
/// digest), so deleting one resource never removes bytes another one (or another service)
/// stores under the same owner.
fn recording_blob(id: Uuid) -> String {
    sha256_hex(format!("aimesh.speech/transcription/{id}").as_bytes())
}

/// The blob name of synthesised audio.
fn audio_blob(id: Uuid) -> String {
    sha256_hex(format!("aimesh.speech/audio/{id}").as_bytes())
}

/// The cache key of a synthesis request: SHA-256 of its text, voice, format, speaking rate
/// and sample rate.
pub fn request_key(
    text: &str,
    voice: &str,
    format: &str,
    words_per_minute: u32,
    sample_rate: u32,
) -> String {
    let mut material = Vec::with_capacity(text.len() + voice.len() + 40);
    for part in [text.as_bytes(), voice.as_bytes(), format.as_bytes()] {
        material.extend_from_slice(&(part.len() as u64).to_le_bytes());
        material.extend_from_slice(part);
    }
    material.extend_from_slice(&words_per_minute.to_le_bytes());
    material.extend_from_slice(&sample_rate.to_le_bytes());
    sha256_hex(&material)
}

impl Speech {
    /// Creates the service over its engines (or why each is missing here).
    pub fn new(
        store: SpeechStore,
        blobs: BlobStore,
        jobs: Jobs,
        transcriber: EngineSlot<dyn Transcriber>,
        synthesizer: EngineSlot<dyn Synthesizer>,
        config: SpeechConfig,
    ) -> Self {
        // On its own, the quota counts the service's recordings and audio; a mesh shares one
        // over every service (`with_files`).
        let quota = StorageQuota::new(config.storage_quota_bytes);
        quota.register(Arc::new(store.clone()));
        Self {
            store,
            blobs,
            jobs,
            transcriber,
            synthesizer,
            config,
            files: SharedFiles {
                quota,
                signer: UrlSigner::ephemeral(),
            },
        }
    }

    /// Uses the mesh's shared storage quota and URL signer.
    pub fn with_files(mut self, files: SharedFiles) -> Self {
        self.files = files;
        self
    }

    /// Returns a signed URL to `owner`'s synthesised audio (`recording: false`) or a
    /// transcription's kept recording (`recording: true`), living `ttl_seconds` (0: the
    /// default).
    pub async fn file_url(
        &self,
        owner: &str,
        id: Uuid,
        recording: bool,
        ttl_seconds: u64,
    ) -> SpeechResult<SignedUrl> {
        let ttl = self
            .files
            .signer
            .ttl(ttl_seconds)
            .map_err(|e| SpeechError::invalid("ttl_seconds", e.to_string()))?;
        let variant = if recording {
            let transcription = self.get_transcription(owner, id).await?;
            if transcription.blob.is_none() {
                return Err(SpeechError::RecordingGone(id));
            }
            crate::files::RECORDING
        } else {
            self.get_audio(owner, id).await?;
            crate::files::AUDIO
        };
        let file = FileRef::new(crate::files::KIND, owner, id.to_string(), variant);
        self.files
            .signer
            .sign(&file, ttl)
            .map_err(|e| SpeechError::Internal(e.to_string()))
    }

    /// Returns `owner`'s transcription's recording and its bytes, while it is kept.
    pub async fn download_recording(
        &self,
        owner: &str,
        id: Uuid,
    ) -> SpeechResult<(Transcription, Bytes)> {
        let transcription = self.get_transcription(owner, id).await?;
        let bytes = self.recording(owner, &transcription).await?;
        Ok((transcription, bytes))
    }

    /// Returns the bytes of a transcription of `owner` already read, while they are kept.
    pub async fn recording(
        &self,
        owner: &str,
        transcription: &Transcription,
    ) -> SpeechResult<Bytes> {
        let Some(blob) = &transcription.blob else {
            return Err(SpeechError::RecordingGone(transcription.id));
        };
        Ok(self.blobs.get(owner, blob).await?)
    }

    /// Deletes every transcription and audio of `owner` and their files; returns how many
    /// rows and files went.
    pub async fn delete_owner(&self, owner: &str) -> SpeechResult<u64> {
        let (rows, blobs) = self.store.delete_owner(owner).await?;
        let mut deleted = rows;
        for blob in blobs {
            self.blobs.delete(owner, &blob).await?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Returns the limits.
    pub fn config(&self) -> &SpeechConfig {
        &self.config
    }

    /// Returns the store.
    pub fn store(&self) -> &SpeechStore {
        &self.store
    }

    /// Returns the blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Returns the transcriber, or why there is none.
    pub fn transcriber(&self) -> SpeechResult<&Arc<dyn Transcriber>> {
        self.transcriber
            .as_ref()
            .map_err(|reason| SpeechError::EngineUnavailable(reason.clone()))
    }

    /// Whether this process can run transcription jobs.
    pub fn can_transcribe(&self) -> bool {
        self.transcriber.is_ok()
    }

    fn synthesizer(&self) -> SpeechResult<&Arc<dyn Synthesizer>> {
        self.synthesizer
            .as_ref()
            .map_err(|reason| SpeechError::EngineUnavailable(reason.clone()))
    }

    // === transcriptions ===

    /// Stores `owner`'s recording and submits its transcription.
    pub async fn create_transcription(
        &self,
        owner: &str,
        new: NewTranscription,
    ) -> SpeechResult<(Transcription, Job)> {
        let size = new.data.len() as u64;
        if size > self.config.max_upload_bytes {
            return Err(SpeechError::invalid(
                "body.data",
                format!(
                    "{size} bytes, more than the limit of {} bytes (AIMESH_SPEECH_MAX_UPLOAD_BYTES)",
                    self.config.max_upload_bytes
                ),
            ));
        }
        // The default model is the engine's when this process runs it, else the catalog's.
        let engine = self.transcriber.as_ref().ok();
        let default_model = engine.map_or(aimesh_ai::speech::convert::MODEL_ID, |t| t.name());
        let (model, language) = crate::domain::resolve_model(
            new.model.as_deref(),
            new.language.as_deref(),
            default_model,
        )
        .map_err(|(field, message)| SpeechError::invalid(field, message))?;
        if let Some(engine) = engine
            && !engine.models().contains(&model.as_str())
        {
            return Err(SpeechError::EngineUnavailable(format!(
                "{model} is not loaded by this process (AIMESH_WHISPER_MODELS, `aimesh models \
                 fetch`); loaded: {}",
                engine.models().join(", ")
            )));
        }
        // Refuse what cannot be decoded now, not in the job: probing reads the header only.
        let probe = new.data.clone();
        let max_seconds = self.config.max_duration.as_secs_f64();
        tokio::task::spawn_blocking(move || Windows::open(probe, max_seconds).map(drop))
            .await
            .map_err(|error| {
                if error.is_panic() {
                    // A demuxer that panics on bytes it cannot make sense of (random data can
                    // look like a frame header): the recording is malformed, not the server.
                    tracing::warn!(%error, "probing a recording panicked");
                    SpeechError::invalid("body.data", "the recording could not be decoded")
                } else {
                    SpeechError::Internal(format!("probing the recording: {error}"))
                }
            })?
            .map_err(|error| SpeechError::invalid("body.data", format!("the recording {error}")))?;
        // Held until the transcription's row counts the recording.
        let permit = self.check_quota(owner, size as i64).await?;

        let id = Uuid::now_v7();
        let blob = recording_blob(id);
        self.blobs.put_named(owner, &blob, new.data).await?;
        let at = now();
        let mut transcription = Transcription {
            id,
            owner_id: owner.to_owned(),
            filename: new.filename,
            content_type: new.content_type,
            size_bytes: size as i64,
            blob: Some(blob),
            status: Status::Pending,
            failure_reason: None,
            language: language.unwrap_or_default(),
            language_probability: None,
            engine: None,
            duration_seconds: 0.0,
            text: None,
            segments: Vec::new(),
            job_id: None,
            created_at: at,
            updated_at: at,
        };
        self.store.insert_transcription(&transcription).await?;
        drop(permit);
        let payload = serde_json::to_vec(&TranscribeJob {
            transcription_id: id,
            model: Some(model),
        })
        .map_err(|error| SpeechError::Internal(format!("encoding the job payload: {error}")))?;
        let job = self
            .jobs
            .submit(
                owner,
                crate::transcribe::KIND,
                payload,
                SubmitOptions {
                    max_attempts: TRANSCRIBE_ATTEMPTS,
                    ..SubmitOptions::default()
                },
            )
            .await?;
        self.store.set_job(id, job.id).await?;
        transcription.job_id = Some(job.id);
        Ok((transcription, job))
    }

    /// Returns `owner`'s transcription with its transcript.
    pub async fn get_transcription(&self, owner: &str, id: Uuid) -> SpeechResult<Transcription> {
        match self.store.get_transcription(id).await? {
            Some(t) if t.owner_id == owner => Ok(t),
            _ => Err(SpeechError::TranscriptionNotFound(id)),
        }
    }

    /// Lists `owner`'s transcriptions.
    pub async fn list_transcriptions(
        &self,
        owner: &str,
        query: &ListQuery,
    ) -> SpeechResult<Page<Transcription>> {
        self.store.list_transcriptions(owner, query).await
    }

    /// Deletes `owner`'s transcription and its recording.
    pub async fn delete_transcription(&self, owner: &str, id: Uuid) -> SpeechResult<()> {
        let blob = self
            .store
            .delete_transcription(owner, id)
            .await?
            .ok_or(SpeechError::TranscriptionNotFound(id))?;
        if let Some(blob) = blob {
            self.blobs.delete(owner, &blob).await?;
        }
        Ok(())
    }

    /// Renders `owner`'s READY transcript as a file: its content and media type.
    pub async fn export(
        &self,
        owner: &str,
        id: Uuid,
        format: ExportFormat,
    ) -> SpeechResult<(String, &'static str)> {
        let t = self.get_transcription(owner, id).await?;
        if t.status != Status::Ready {
            return Err(SpeechError::NotReady {
                id,
                status: t.status,
            });
        }
        let text = t.text.as_deref().unwrap_or_default();
        Ok((
            export::render(format, text, &t.segments),
            format.content_type(),
        ))
    }

    /// Deletes the recordings of finished transcriptions older than the retention period,
    /// keeping their transcripts; returns how many were deleted.
    pub async fn expire_recordings(&self) -> SpeechResult<usize> {
        let Some(retention) = self.config.audio_retention else {
            return Ok(0);
        };
        let retention = chrono::Duration::from_std(retention)
            .map_err(|error| SpeechError::Internal(format!("retention period: {error}")))?;
        let before = now() - retention;
        let mut deleted = 0;
        loop {
            let expired = self
                .store
                .expired_recordings(before, RETENTION_BATCH)
                .await?;
            if expired.is_empty() {
                return Ok(deleted);
            }
            for recording in &expired {
                self.blobs
                    .delete(&recording.owner_id, &recording.blob)
                    .await?;
                self.store.clear_recording(recording.id, now()).await?;
                deleted += 1;
            }
            if (expired.len() as i64) < RETENTION_BATCH {
                return Ok(deleted);
            }
        }
    }

    // === synthesis ===

    /// The voices, optionally of one language (prefix match), and the engine's name.
    pub fn voices(&self, language: &str) -> SpeechResult<(Vec<Voice>, &'static str)> {
        let synthesizer = self.synthesizer()?;
        let language = language.trim().to_ascii_lowercase();
        let voices = synthesizer
            .voices()
            .iter()
            .filter(|voice| language.is_empty() || voice.language.starts_with(&language))
            .cloned()
            .collect();
        Ok((voices, synthesizer.name()))
    }

    /// Synthesises `new` into stored audio for `owner`, or returns their audio of an
    /// identical earlier request (`true`: cached).
    pub async fn synthesize(&self, owner: &str, new: NewAudio) -> SpeechResult<(Audio, bool)> {
        let synthesizer = self.synthesizer()?.clone();
        // The voice as the engine names it, so that "en-us" and "gmw/en-US" share a key.
        let voice = if new.voice.is_empty() {
            String::new()
        } else {
            synthesizer
                .voices()
                .iter()
                .find(|v| v.identifier.eq_ignore_ascii_case(&new.voice))
                .or_else(|| {
                    synthesizer
                        .voices()
                        .iter()
                        .find(|v| v.language.eq_ignore_ascii_case(&new.voice))
                })
                .or_else(|| {
                    synthesizer
                        .voices()
                        .iter()
                        .find(|v| v.name.eq_ignore_ascii_case(&new.voice))
                })
                .map(|v| v.identifier.clone())
                .ok_or_else(|| {
                    SpeechError::invalid(
                        "voice",
                        format!("{:?} is not an installed voice (see ListVoices)", new.voice),
                    )
                })?
        };
        let key = request_key(
            &new.text,
            &voice,
            new.format.as_str(),
            new.words_per_minute,
            new.sample_rate,
        );
        if let Some(mut audio) = self.store.find_audio(owner, &key).await? {
            audio.last_used_at = now();
            self.store
                .touch_audio(owner, audio.id, audio.last_used_at)
                .await?;
            return Ok((audio, true));
        }
        let speech = synthesizer
            .synthesize(
                new.text.clone(),
                (!voice.is_empty()).then(|| voice.clone()),
                (new.words_per_minute > 0).then_some(new.words_per_minute),
            )
            .await
            .map_err(|error| match error {
                aimesh_ai::engine::EngineError::InvalidInput { field, message } => {
                    SpeechError::invalid(field, message)
                }
                aimesh_ai::engine::EngineError::Busy { .. } => SpeechError::Busy(error.to_string()),
                other => SpeechError::Internal(other.to_string()),
            })?;
        // Encoding minutes of speech is CPU work: off the async threads.
        let (format, sample_rate) = (new.format, new.sample_rate);
        let encoded = tokio::task::spawn_blocking(move || {
            crate::encode::encode(&speech.wav, format, sample_rate)
        })
        .await
        .map_err(|error| SpeechError::Internal(format!("the encoder stopped: {error}")))?
        .map_err(|error| SpeechError::Internal(error.to_string()))?;
        let size = encoded.bytes.len() as i64;
        // Held until the audio's row counts it.
        let _permit = self.check_quota(owner, size).await?;
        let id = Uuid::now_v7();
        let blob = audio_blob(id);
        self.blobs
            .put_named(owner, &blob, Bytes::from(encoded.bytes))
            .await?;
        let created_at = now();
        let audio = Audio {
            id,
            owner_id: owner.to_owned(),
            request_key: key.clone(),
            text: new.text,
            voice,
            format: new.format,
            words_per_minute: new.words_per_minute,
            sample_rate: encoded.sample_rate,
            size_bytes: size,
            duration_seconds: encoded.duration,
            engine: synthesizer.name().to_owned(),
            blob,
            created_at,
            last_used_at: created_at,
        };
        if self.store.insert_audio(&audio).await? {
            self.evict_audio(owner, audio.id).await;
            return Ok((audio, false));
        }
        // An identical request won the race: keep its audio, drop this one's file.
        self.blobs.delete(owner, &audio.blob).await?;
        let existing = self
            .store
            .find_audio(owner, &key)
            .await?
            .ok_or_else(|| SpeechError::Internal("a concurrent synthesis vanished".into()))?;
        Ok((existing, true))
    }

    /// Returns `owner`'s audio.
    pub async fn get_audio(&self, owner: &str, id: Uuid) -> SpeechResult<Audio> {
        self.store
            .get_audio(owner, id)
            .await?
            .ok_or(SpeechError::AudioNotFound(id))
    }

    /// Lists `owner`'s audio.
    pub async fn list_audio(
        &self,
        owner: &str,
        page_size: u32,
        after: Option<Uuid>,
    ) -> SpeechResult<Page<Audio>> {
        self.store.list_audio(owner, page_size, after).await
    }

    /// Deletes `owner`'s audio and its file.
    pub async fn delete_audio(&self, owner: &str, id: Uuid) -> SpeechResult<()> {
        let blob = self
            .store
            .delete_audio(owner, id)
            .await?
            .ok_or(SpeechError::AudioNotFound(id))?;
        self.blobs.delete(owner, &blob).await?;
        Ok(())
    }

    /// Returns `owner`'s audio and its bytes, marking it used (the cache keeps what is
    /// played longest).
    pub async fn download_audio(&self, owner: &str, id: Uuid) -> SpeechResult<(Audio, Bytes)> {
        let mut audio = self.get_audio(owner, id).await?;
        let bytes = self.audio_bytes(owner, &audio).await?;
        audio.last_used_at = now();
        self.store
            .touch_audio(owner, audio.id, audio.last_used_at)
            .await?;
        Ok((audio, bytes))
    }

    /// Returns the bytes of an audio of `owner` already read.
    pub async fn audio_bytes(&self, owner: &str, audio: &Audio) -> SpeechResult<Bytes> {
        Ok(self.blobs.get(owner, &audio.blob).await?)
    }

    /// Evicts `owner`'s least recently used audio beyond the cache's size, never `keep`. A
    /// failure is logged, not returned: the audio just made is stored either way.
    async fn evict_audio(&self, owner: &str, keep: Uuid) {
        let budget = i64::try_from(self.config.audio_cache_bytes).unwrap_or(i64::MAX);
        let evicted = match self.store.evict_audio(owner, budget, keep).await {
            Ok(evicted) => evicted,
            Err(error) => {
                tracing::warn!(%error, "evicting synthesised audio failed");
                return;
            }
        };
        for blob in &evicted {
            if let Err(error) = self.blobs.delete(owner, blob).await {
                tracing::warn!(%error, blob, "deleting an evicted audio's file failed");
            }
        }
        if !evicted.is_empty() {
            tracing::debug!(count = evicted.len(), "evicted synthesised audio");
        }
    }

    /// Admits `wanted` bytes under the storage quota shared by every service.
    async fn check_quota(&self, owner: &str, wanted: i64) -> SpeechResult<QuotaPermit> {
        self.files
            .quota
            .admit(owner, wanted)
            .await
            .map_err(|error| match error {
                QuotaError::Exceeded { used, quota } => SpeechError::QuotaExceeded {
                    used: used as i64,
                    quota,
                    wanted,
                },
                other => SpeechError::Internal(other.to_string()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keys_separate_their_parts() {
        let key = request_key("hello", "gmw/en", "wav", 0, 0);
        assert_eq!(key, request_key("hello", "gmw/en", "wav", 0, 0));
        assert_ne!(key, request_key("hello", "gmw/en", "wav", 150, 0));
        assert_ne!(key, request_key("hello", "gmw/en", "mp3", 0, 0));
        assert_ne!(key, request_key("hello", "gmw/en", "wav", 0, 16_000));
        assert_ne!(
            request_key("ab", "c", "wav", 0, 0),
            request_key("a", "bc", "wav", 0, 0)
        );
    }
}
