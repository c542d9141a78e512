//! What a mesh process is configured with: which services it serves, its worker, and the
//! settings of each part. Read once at start, from flags and `AIMESH_*` variables (clap does
//! both); tests build the structs directly.

use std::{fmt, time::Duration};

use aimesh_identity::IdentityConfig;
use aimesh_jobs::WorkerConfig;
use aimesh_kit::{
    auth::AuthConfig,
    blob::{BlobError, BlobStore, S3Settings},
    config::ServerConfig,
};
use aimesh_models::ModelsConfig;

/// A service the process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum ServiceKind {
    /// `aimesh.identity.v1.IdentityService`: accounts and tokens.
    Identity,
    /// `aimesh.jobs.v1.JobsService`: job status, progress streams, cancel and retry.
    Jobs,
    /// `aimesh.notes.v1.NotesService`.
    Notes,
    /// `aimesh.models.v1.ModelsService`: the inference engines and direct calls to them.
    Models,
    /// `aimesh.processing.v1.ProcessingService`: document uploads, processing and search.
    Processing,
    /// `aimesh.reports.v1.ReportsService`: learning reports rendered as HTML or PDF.
    Reports,
    /// `aimesh.gallery.v1.GalleryService`: images, thumbnails, the trash and image edits.
    Gallery,
    /// `aimesh.speech.v1.SpeechService`: stored transcriptions and synthesised audio.
    Speech,
    /// `aimesh.conversation.v1.ConversationService`: chat sessions whose messages run an AI
    /// pipeline, with replies streamed live.
    Conversation,
    /// `aimesh.events.v1.EventsService`: a user's domain events, live and resumable.
    Events,
    /// `aimesh.admin.v1.AdminService`: accounts, audit log, every user's jobs (administrators
    /// only).
    Admin,
    /// `aimesh.files.v1.FilesService`: stored files of every service behind signed URLs (no
    /// access token). Any process can serve it: every process opens every service's store.
    Files,
}

impl ServiceKind {
    /// Every service, in start order.
    pub const ALL: &'static [ServiceKind] = &[
        ServiceKind::Identity,
        ServiceKind::Jobs,
        ServiceKind::Notes,
        ServiceKind::Models,
        ServiceKind::Processing,
        ServiceKind::Reports,
        ServiceKind::Gallery,
        ServiceKind::Speech,
        ServiceKind::Conversation,
        ServiceKind::Events,
        ServiceKind::Admin,
        ServiceKind::Files,
    ];
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceKind::Identity => "identity",
            ServiceKind::Jobs => "jobs",
            ServiceKind::Notes => "notes",
            ServiceKind::Models => "models",
            ServiceKind::Processing => "processing",
            ServiceKind::Reports => "reports",
            ServiceKind::Gallery => "gallery",
            ServiceKind::Speech => "speech",
            ServiceKind::Conversation => "conversation",
            ServiceKind::Events => "events",
            ServiceKind::Admin => "admin",
            ServiceKind::Files => "files",
        })
    }
}

/// Whether `serve` runs a job worker in the same process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkerMode {
    /// Only when the process serves every service (the single-process default); split
    /// deployments run workers of their own (`aimesh worker`).
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

/// How workers' writes commit on PostgreSQL (see [`aimesh_jobs::WorkerCommits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JobCommits {
    /// Each waits for its WAL flush.
    Durable,
    /// None waits for its WAL flush: a crash of the database server can undo the last of
    /// them, and those jobs run again.
    Async,
}

/// Job worker settings.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerSettings {
    /// Whether `serve` also runs a job worker: `auto` (only when it serves every service),
    /// `on` or `off`. A worker claims only the job kinds whose engines it has loaded.
    #[arg(
        long = "worker",
        env = "AIMESH_WORKER",
        value_enum,
        default_value_t = WorkerMode::Auto
    )]
    pub mode: WorkerMode,

    /// Jobs of one kind a worker runs at once.
    #[arg(long, env = "AIMESH_WORKER_CONCURRENCY", default_value_t = 4)]
    pub worker_concurrency: usize,

    /// Seconds a worker's lease on a job lasts without a heartbeat; a crashed worker's jobs
    /// are picked up again after this.
    #[arg(long, env = "AIMESH_JOB_LEASE_SECS", default_value_t = 30)]
    pub job_lease_secs: u64,

    /// Name of this worker in job leases (with the process id); defaults to the host name.
    #[arg(long, env = "AIMESH_WORKER_NAME")]
    pub worker_name: Option<String>,

    /// How workers' writes (claims, heartbeats, progress, outcomes) commit on PostgreSQL:
    /// `durable`, each waiting for its WAL flush, or `async`, none waiting (more jobs per
    /// second; a crash of the database server can undo the last 0.6 s of them, and those
    /// jobs run again). Submissions, cancellations and retries always commit durably.
    #[arg(
        long,
        env = "AIMESH_JOB_WORKER_COMMITS",
        value_enum,
        default_value_t = JobCommits::Durable
    )]
    pub job_worker_commits: JobCommits,

    /// The Apertium executable (rule-based translation); translation pairs come from its
    /// installed modes.
    #[arg(long, env = "AIMESH_APERTIUM_BIN", default_value = "apertium")]
    pub apertium_bin: String,

    /// Directory of Marian (opus-mt) translation models, one sub-directory per language pair
    /// (`config.json`, `model.safetensors`, `tokenizer.json` or `source.spm` + `vocab.json`).
    #[arg(long, env = "AIMESH_MARIAN_MODELS_DIR")]
    pub marian_models_dir: Option<std::path::PathBuf>,

    /// Days finished jobs (succeeded, failed, cancelled) are kept, with their results; older
    /// ones are deleted by a scheduled job. 0: kept forever.
    #[arg(long, env = "AIMESH_JOB_RETENTION_DAYS", default_value_t = 30)]
    pub job_retention_days: u64,

    /// Seconds between two runs of the retention job.
    #[arg(long, env = "AIMESH_JOB_PURGE_INTERVAL_SECS", default_value_t = 3600)]
    pub job_purge_interval_secs: u64,

    /// Finished jobs the retention job deletes per statement.
    #[arg(long, env = "AIMESH_JOB_PURGE_BATCH", default_value_t = 1000)]
    pub job_purge_batch: u32,
}

impl WorkerSettings {
    /// Returns the worker configuration.
    pub fn worker_config(&self, grace: Duration) -> WorkerConfig {
        WorkerConfig {
            lease: Duration::from_secs(self.job_lease_secs.max(1)),
            concurrency: self.worker_concurrency.max(1),
            grace,
            worker_name: self.worker_name.clone().unwrap_or_else(|| "worker".into()),
            ..WorkerConfig::default()
        }
    }

    /// Returns how the job engine commits workers' writes.
    pub fn worker_commits(&self) -> aimesh_jobs::WorkerCommits {
        match self.job_worker_commits {
            JobCommits::Durable => aimesh_jobs::WorkerCommits::Durable,
            JobCommits::Async => aimesh_jobs::WorkerCommits::Asynchronous,
        }
    }

    /// Returns the job retention, unless finished jobs are kept forever.
    pub fn retention(&self) -> Option<aimesh_jobs::Retention> {
        (self.job_retention_days > 0).then(|| aimesh_jobs::Retention {
            max_age: Duration::from_secs(self.job_retention_days.saturating_mul(86_400)),
            batch: self.job_purge_batch.clamp(1, 100_000),
            every: Duration::from_secs(self.job_purge_interval_secs.max(1)),
        })
    }

    /// Returns whether a process serving `services` runs a worker.
    pub fn runs_worker(&self, services: &[ServiceKind]) -> bool {
        match self.mode {
            WorkerMode::On => true,
            WorkerMode::Off => false,
            WorkerMode::Auto => ServiceKind::ALL.iter().all(|s| services.contains(s)),
        }
    }

    /// Returns defaults for tests: a worker with a short lease.
    pub fn for_tests() -> Self {
        Self {
            mode: WorkerMode::On,
            worker_concurrency: 4,
            job_lease_secs: 5,
            worker_name: Some("test".into()),
            job_worker_commits: JobCommits::Durable,
            apertium_bin: "apertium".into(),
            marian_models_dir: None,
            job_retention_days: 30,
            job_purge_interval_secs: 3600,
            job_purge_batch: 1000,
        }
    }
}

/// Settings of the job engine's watch streams.
#[derive(Debug, Clone, clap::Args)]
pub struct JobsSettings {
    /// Job watch streams (WatchJob, WatchJobs) one user may have open at once; more are
    /// refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "AIMESH_WATCH_STREAMS_PER_USER", default_value_t = 32)]
    pub watch_streams_per_user: usize,

    /// Job watch streams this process serves at once.
    #[arg(long, env = "AIMESH_WATCH_STREAMS", default_value_t = 20_000)]
    pub watch_streams: usize,
}

impl JobsSettings {
    /// Returns the engine's watch limits.
    pub fn watch_limits(&self) -> aimesh_jobs::WatchLimits {
        aimesh_jobs::WatchLimits {
            per_user: self.watch_streams_per_user.max(1),
            total: self.watch_streams.max(1),
        }
    }
}

impl Default for JobsSettings {
    fn default() -> Self {
        Self {
            watch_streams_per_user: 32,
            watch_streams: 20_000,
        }
    }
}

/// Settings of the processing service: upload limits, the storage quota, where blobs live.
#[derive(Debug, Clone, clap::Args)]
pub struct ProcessingSettings {
    /// Largest document accepted, in bytes (one-call and resumable uploads alike).
    #[arg(long, env = "AIMESH_MAX_UPLOAD_BYTES", default_value_t = 50 << 20)]
    pub max_upload_bytes: u64,

    /// Most bytes one user may store (documents, and uploads in progress at their declared
    /// size); more is refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "AIMESH_STORAGE_QUOTA_BYTES", default_value_t = 1 << 30)]
    pub storage_quota_bytes: u64,

    /// Directory of stored files (blobs); defaults to `blobs` in the data directory.
    #[arg(long, env = "AIMESH_BLOB_DIR")]
    pub blob_dir: Option<std::path::PathBuf>,

    /// Where stored files live instead of AIMESH_BLOB_DIR: `s3://bucket` or
    /// `s3://bucket/prefix`, an S3-compatible store reached and signed for as the standard
    /// AWS_* variables say (AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP=true for a plain-HTTP MinIO). Empty: local files.
    #[arg(long, env = "AIMESH_BLOB_URL")]
    pub blob_url: Option<String>,

    /// The process's AWS_* variables, read with the other settings (names only in Debug).
    #[arg(skip = S3Settings::from_vars(std::env::vars()))]
    pub s3: S3Settings,

    /// Seconds a resumable upload may stay unfinished; a scheduled sweep then deletes it with
    /// its stored bytes. 0: kept until finished.
    #[arg(long, env = "AIMESH_UPLOAD_EXPIRY_SECS", default_value_t = 24 * 3600)]
    pub upload_expiry_secs: u64,

    /// Seconds between two sweeps of stale uploads (a scheduled job).
    #[arg(long, env = "AIMESH_UPLOAD_SWEEP_SECS", default_value_t = 3600)]
    pub upload_sweep_secs: u64,
}

impl ProcessingSettings {
    /// Returns the service's limits.
    pub fn config(&self) -> aimesh_processing::ProcessingConfig {
        aimesh_processing::ProcessingConfig {
            max_upload_bytes: self.max_upload_bytes,
            storage_quota_bytes: self.storage_quota_bytes,
            upload_expiry: (self.upload_expiry_secs > 0)
                .then(|| Duration::from_secs(self.upload_expiry_secs)),
            upload_sweep: Duration::from_secs(self.upload_sweep_secs.max(1)),
        }
    }

    /// Opens the blob store: AIMESH_BLOB_URL when set, else the blob directory of a data
    /// directory.
    pub fn blob_store(&self, data_dir: &std::path::Path) -> Result<BlobStore, BlobError> {
        match self.blob_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => BlobStore::open(url, &self.s3),
            _ => BlobStore::local(&self.blob_dir(data_dir)),
        }
    }

    /// Returns the blob directory for a data directory.
    pub fn blob_dir(&self, data_dir: &std::path::Path) -> std::path::PathBuf {
        self.blob_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("blobs"))
    }

    /// Returns the defaults.
    pub fn for_tests() -> Self {
        Self {
            max_upload_bytes: 50 << 20,
            storage_quota_bytes: 1 << 30,
            blob_dir: None,
            blob_url: None,
            s3: S3Settings::default(),
            upload_expiry_secs: 24 * 3600,
            upload_sweep_secs: 3600,
        }
    }
}

/// Settings of the reports service: its request limit and how long reports are kept. Report
/// files count against the same per-user storage quota (AIMESH_STORAGE_QUOTA_BYTES) and live
/// in the blob directory, under `reports/`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportsSettings {
    /// Largest CreateReport or AppendReportEvents message accepted over gRPC, in bytes
    /// (100,000 events take about 10 MB). Through the edge, AIMESH_EDGE_MAX_REQUEST_BYTES
    /// bounds REST bodies: send large reports in pages (AppendReportEvents).
    #[arg(long, env = "AIMESH_REPORTS_MAX_REQUEST_BYTES", default_value_t = 32 << 20)]
    pub reports_max_request_bytes: usize,

    /// Hours a report (and its file) is kept; older ones are deleted by an hourly job
    /// (`reports.purge`). 0 keeps reports until they are deleted.
    #[arg(long, env = "AIMESH_REPORT_RETENTION_HOURS", default_value_t = 720)]
    pub report_retention_hours: u64,
}

impl ReportsSettings {
    /// Returns the service's settings, with the per-user storage quota.
    pub fn config(&self, storage_quota_bytes: u64) -> aimesh_reports::ReportsConfig {
        aimesh_reports::ReportsConfig {
            max_request_bytes: self.reports_max_request_bytes.max(4 << 20),
            storage_quota_bytes,
            retention: (self.report_retention_hours > 0).then(|| {
                std::time::Duration::from_secs(self.report_retention_hours.saturating_mul(3600))
            }),
        }
    }

    /// Returns the defaults, without retention.
    pub fn for_tests() -> Self {
        Self {
            reports_max_request_bytes: 32 << 20,
            report_retention_hours: 0,
        }
    }
}

/// Settings of the gallery service: decoding limits and the trash. Its images count against
/// the storage quota (AIMESH_STORAGE_QUOTA_BYTES) and live in the blob directory's `gallery`
/// part.
#[derive(Debug, Clone, clap::Args)]
pub struct GallerySettings {
    /// Largest image file accepted, in bytes.
    #[arg(long, env = "AIMESH_GALLERY_MAX_UPLOAD_BYTES", default_value_t = 30 << 20)]
    pub gallery_max_upload_bytes: u64,

    /// Most pixels (width × height) of an image, uploaded or made by an operation; a larger
    /// one is refused from its header, before it is decoded.
    #[arg(long, env = "AIMESH_GALLERY_MAX_PIXELS", default_value_t = 50_000_000)]
    pub gallery_max_pixels: u64,

    /// Days an image stays in the trash before the purge deletes it for good.
    #[arg(
        long,
        env = "AIMESH_GALLERY_TRASH_RETENTION_DAYS",
        default_value_t = 30
    )]
    pub gallery_trash_retention_days: u64,

    /// Seconds between two runs of the trash purge (a scheduled job).
    #[arg(
        long,
        env = "AIMESH_GALLERY_PURGE_INTERVAL_SECS",
        default_value_t = 3600
    )]
    pub gallery_purge_interval_secs: u64,
}

impl GallerySettings {
    /// Returns the service's settings, with the storage quota shared with processing.
    pub fn config(&self, processing: &ProcessingSettings) -> aimesh_gallery::GalleryConfig {
        let defaults = aimesh_gallery::DecodeLimits::default();
        aimesh_gallery::GalleryConfig {
            limits: aimesh_gallery::DecodeLimits {
                max_bytes: usize::try_from(self.gallery_max_upload_bytes).unwrap_or(usize::MAX),
                max_pixels: self.gallery_max_pixels.max(1),
                max_side: defaults.max_side,
            },
            storage_quota_bytes: processing.storage_quota_bytes,
            trash_retention: Duration::from_secs(
                self.gallery_trash_retention_days.saturating_mul(24 * 3600),
            ),
            purge_interval: Duration::from_secs(self.gallery_purge_interval_secs.max(1)),
        }
    }

    /// Returns the defaults.
    pub fn for_tests() -> Self {
        Self {
            gallery_max_upload_bytes: 30 << 20,
            gallery_max_pixels: 50_000_000,
            gallery_trash_retention_days: 30,
            gallery_purge_interval_secs: 3600,
        }
    }
}

/// Settings of the speech service: recording limits and how long recordings are kept. Blobs
/// go where the processing service's do (AIMESH_BLOB_DIR) and count against the same
/// AIMESH_STORAGE_QUOTA_BYTES.
#[derive(Debug, Clone, clap::Args)]
pub struct SpeechSettings {
    /// Largest recording accepted for transcription, in bytes.
    #[arg(long, env = "AIMESH_SPEECH_MAX_UPLOAD_BYTES", default_value_t = 200 << 20)]
    pub speech_max_upload_bytes: u64,

    /// Longest recording accepted for transcription, in seconds.
    #[arg(long, env = "AIMESH_SPEECH_MAX_DURATION_SECS", default_value_t = 3 * 3600)]
    pub speech_max_duration_secs: u64,

    /// Seconds a recording is kept after upload before the retention sweep deletes it (its
    /// transcript is kept); 0 keeps recordings forever.
    #[arg(long, env = "AIMESH_AUDIO_RETENTION_SECS", default_value_t = 30 * 24 * 3600)]
    pub audio_retention_secs: u64,

    /// Seconds between two retention sweeps (a scheduled job).
    #[arg(
        long,
        env = "AIMESH_AUDIO_RETENTION_SWEEP_SECS",
        default_value_t = 3600
    )]
    pub audio_retention_sweep_secs: u64,

    /// Most bytes of synthesised audio one user keeps; beyond it the least recently used
    /// audio (last synthesised, served from the cache or downloaded) is evicted.
    #[arg(long, env = "AIMESH_AUDIO_CACHE_BYTES", default_value_t = 256 << 20)]
    pub audio_cache_bytes: u64,
}

impl SpeechSettings {
    /// Returns the service's limits, with the storage quota shared with processing.
    pub fn config(&self, storage_quota_bytes: u64) -> aimesh_speech::SpeechConfig {
        aimesh_speech::SpeechConfig {
            max_upload_bytes: self.speech_max_upload_bytes,
            max_duration: Duration::from_secs(self.speech_max_duration_secs.max(1)),
            storage_quota_bytes,
            audio_retention: (self.audio_retention_secs > 0)
                .then(|| Duration::from_secs(self.audio_retention_secs)),
            audio_cache_bytes: self.audio_cache_bytes,
        }
    }

    /// Returns the interval of the retention sweep.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs(self.audio_retention_sweep_secs.max(1))
    }

    /// Returns the defaults.
    pub fn for_tests() -> Self {
        Self {
            speech_max_upload_bytes: 200 << 20,
            speech_max_duration_secs: 3 * 3600,
            audio_retention_secs: 30 * 24 * 3600,
            audio_retention_sweep_secs: 3600,
            audio_cache_bytes: 256 << 20,
        }
    }
}

/// Signed URLs to stored files and their key.
#[derive(Clone, clap::Args)]
pub struct FilesSettings {
    /// Key of the HMAC-SHA256 signed file URLs: hex or base64, at least 32 bytes. Every process
    /// of a deployment must have the same (or none). When unset, the key is kept in the shared
    /// database (created by the first process that starts), so a split deployment agrees on
    /// it without this setting; set it to keep the key out of the database or to rotate it.
    #[arg(long, env = "AIMESH_SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<secrecy::SecretString>,

    /// Base URL of the edge as browsers reach it (e.g. `https://aimesh.example.com`): signed
    /// URLs are absolute under it; relative (`/api/v1/files/<token>`) when unset.
    #[arg(long, env = "AIMESH_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Seconds a signed URL lives by default, which is also the longest a request may ask for
    /// (at most 86400).
    #[arg(long, env = "AIMESH_SIGNED_URL_TTL_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub signed_url_ttl_secs: u64,
}

impl fmt::Debug for FilesSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilesSettings")
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|_| "[redacted]"),
            )
            .field("public_url", &self.public_url)
            .field("signed_url_ttl_secs", &self.signed_url_ttl_secs)
            .finish()
    }
}

impl FilesSettings {
    /// Returns the defaults: the key from the database, relative URLs, 15 minutes.
    pub fn for_tests() -> Self {
        Self {
            signing_key: None,
            public_url: None,
            signed_url_ttl_secs: 900,
        }
    }

    /// Returns how long signed URLs live by default.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.signed_url_ttl_secs.clamp(1, 86_400))
    }
}

/// Settings of the conversation service: what a message may hold, how many replies a user
/// may have in progress, and how long a reply may be.
#[derive(Debug, Clone, clap::Args)]
pub struct ConversationSettings {
    /// Longest chat message, in characters.
    #[arg(long, env = "AIMESH_CHAT_MAX_MESSAGE_CHARS", default_value_t = 8000)]
    pub chat_max_message_chars: usize,

    /// Replies one user may have in progress at once; more are refused with
    /// RESOURCE_EXHAUSTED and a retry delay.
    #[arg(long, env = "AIMESH_CHAT_MAX_PIPELINES_PER_USER", default_value_t = 2)]
    pub chat_max_pipelines_per_user: u32,

    /// Most tokens of one reply (up to 2048).
    #[arg(long, env = "AIMESH_CHAT_REPLY_MAX_TOKENS", default_value_t = 256)]
    pub chat_reply_max_tokens: u32,

    /// Seconds a reply may wait for a worker before it fails saying that no process runs
    /// replies (none has the chat and embeddings models).
    #[arg(
        long,
        env = "AIMESH_CHAT_REPLY_QUEUE_TIMEOUT_SECS",
        default_value_t = 300
    )]
    pub chat_reply_queue_timeout_secs: u64,
}

impl ConversationSettings {
    /// Returns the service's limits.
    pub fn config(&self) -> aimesh_conversation::ConversationConfig {
        aimesh_conversation::ConversationConfig {
            max_message_chars: self.chat_max_message_chars.max(1),
            max_pipelines_per_user: self.chat_max_pipelines_per_user.max(1),
            reply_max_tokens: self
                .chat_reply_max_tokens
                .clamp(1, aimesh_ai::chat::MAX_COMPLETION_TOKENS),
            reply_queue_timeout: Duration::from_secs(self.chat_reply_queue_timeout_secs.max(1)),
            ..aimesh_conversation::ConversationConfig::default()
        }
    }

    /// Returns the defaults.
    pub fn for_tests() -> Self {
        Self {
            chat_max_message_chars: 8000,
            chat_max_pipelines_per_user: 2,
            chat_reply_max_tokens: 256,
            chat_reply_queue_timeout_secs: 300,
        }
    }
}

/// Everything a mesh process is configured with.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Listener, database, data directory.
    pub server: ServerConfig,
    /// Token verification and rate limits.
    pub auth: AuthConfig,
    /// The identity service, when it runs here.
    pub identity: IdentityConfig,
    /// The job worker.
    pub worker: WorkerSettings,
    /// The job engine's watch streams.
    pub jobs: JobsSettings,
    /// The inference engines (of the models service, and those processing needs).
    pub models: ModelsConfig,
    /// The processing service.
    pub processing: ProcessingSettings,
    /// The reports service.
    pub reports: ReportsSettings,
    /// The gallery service.
    pub gallery: GallerySettings,
    /// The speech service.
    pub speech: SpeechSettings,
    /// Signed file URLs.
    pub files: FilesSettings,
    /// The conversation service.
    pub conversation: ConversationSettings,
    /// Domain events and their relay.
    pub events: EventsSettings,
}

impl MeshConfig {
    /// Returns a configuration for tests: port 0, the given data directory and database.
    pub fn for_tests(data_dir: std::path::PathBuf, database_url: Option<String>) -> Self {
        Self {
            server: ServerConfig::for_tests(data_dir, database_url),
            auth: AuthConfig::for_tests(),
            identity: IdentityConfig::for_tests(),
            worker: WorkerSettings::for_tests(),
            jobs: JobsSettings::default(),
            models: ModelsConfig::disabled(),
            processing: ProcessingSettings::for_tests(),
            reports: ReportsSettings::for_tests(),
            gallery: GallerySettings::for_tests(),
            speech: SpeechSettings::for_tests(),
            files: FilesSettings::for_tests(),
            conversation: ConversationSettings::for_tests(),
            events: EventsSettings::for_tests(),
        }
    }
}

/// Settings of the domain events: where the relay publishes them, and how long they are kept.
#[derive(Debug, Clone, clap::Args)]
pub struct EventsSettings {
    /// NATS server the relay publishes events to, on JetStream (`nats://host:4222`). Without
    /// one, events stay in the database, on WatchEvents and ListEvents.
    #[arg(long, env = "AIMESH_NATS_URL")]
    pub nats_url: Option<String>,

    /// JetStream stream of the events (created when missing).
    #[arg(long, env = "AIMESH_NATS_STREAM", default_value = "AIMESH_EVENTS")]
    pub nats_stream: String,

    /// Prefix of the events' subjects: `<prefix>.<type>`, e.g.
    /// `aimesh.events.notes.note.created`.
    #[arg(
        long,
        env = "AIMESH_NATS_SUBJECT_PREFIX",
        default_value = "aimesh.events"
    )]
    pub nats_subject_prefix: String,

    /// Seconds within which JetStream drops a re-published event as a duplicate (the stream's
    /// duplicate window, set when the relay creates it).
    #[arg(
        long,
        env = "AIMESH_NATS_DUPLICATE_WINDOW_SECS",
        default_value_t = 1200
    )]
    pub nats_duplicate_window_secs: u64,

    /// Hours events are kept in the database (once published, when publishing) and in the
    /// stream the relay creates.
    #[arg(long, env = "AIMESH_EVENTS_RETENTION_HOURS", default_value_t = 168)]
    pub events_retention_hours: u64,
}

impl EventsSettings {
    /// Returns the relay's settings.
    pub fn relay_config(&self) -> aimesh_events::RelayConfig {
        aimesh_events::RelayConfig {
            nats_url: self.nats_url.clone().filter(|url| !url.trim().is_empty()),
            stream: self.nats_stream.clone(),
            subject_prefix: self.nats_subject_prefix.clone(),
            retention: Duration::from_secs(self.events_retention_hours.max(1) * 3600),
            duplicate_window: Duration::from_secs(self.nats_duplicate_window_secs.max(1)),
        }
    }

    /// Returns the defaults: no NATS.
    pub fn for_tests() -> Self {
        Self {
            nats_url: None,
            nats_stream: "AIMESH_EVENTS".to_owned(),
            nats_subject_prefix: "aimesh.events".to_owned(),
            nats_duplicate_window_secs: 1200,
            events_retention_hours: 168,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auto_worker_runs_only_in_the_single_process_default() {
        let mut settings = WorkerSettings::for_tests();
        settings.mode = WorkerMode::Auto;
        assert!(settings.runs_worker(ServiceKind::ALL));
        assert!(!settings.runs_worker(&[ServiceKind::Notes]));
        settings.mode = WorkerMode::On;
        assert!(settings.runs_worker(&[ServiceKind::Identity]));
        settings.mode = WorkerMode::Off;
        assert!(!settings.runs_worker(ServiceKind::ALL));
    }
}
