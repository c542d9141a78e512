//! Composition: which services, engines and workers one process runs, wired over one database
//! and one gRPC server. [`Mesh::build`] assembles a serving process, [`run_worker`] a process
//! that only runs jobs; both start from the same [`Core`].

use std::{sync::Arc, time::Duration};

use aimesh_admin::{Admin, AdminApi, AuditStore, StorageUsage};
use aimesh_ai::translate::{Apertium, Marian, Translator, Translators};
use aimesh_conversation::{
    Conversation, ConversationApi, ConversationStore, DocumentSearch, ImageMaker, Passage,
    Pipeline, PortError, ReplyHandler,
};
use aimesh_events::{Events, EventsApi, Relay};
use aimesh_gallery::{
    Gallery, GalleryApi, ImageStore,
    job::{OperationHandler, PurgeHandler as TrashPurgeHandler},
};
use aimesh_identity::{
    AccountAdmin, Identity, IdentityApi, IdentityStore, accounts::AccountDirectory,
    keys::SigningKeys,
};
use aimesh_jobs::{Cadence, JobHandler, Jobs, JobsApi, PurgeHandler as JobsPurgeHandler, Worker};
use aimesh_kit::files::{FileReaders, FilesApi, SharedFiles, SigningKey, StorageQuota, UrlSigner};
use aimesh_kit::{
    auth::{AccountHooks, AuthLayer, Authenticator, jwt::JwtVerifier, remote},
    config::ServerConfig,
    db::{Db, DbOptions},
    invalidation::InvalidationBus,
    owned::OwnedDataRegistry,
    server::{ReadinessCheck, Server, ServerBuilder},
};
use aimesh_models::{EngineKind, Engines, ModelsApi, ModelsConfig};
use aimesh_notes::{
    Notes, NotesApi, NotesStore, service::CacheConfig, translate::TranslateHandler,
};
use aimesh_processing::{
    DocumentStore, NoteSource, NoteText, Processing, ProcessingApi, QuizApi, QuizStore, Quizzes,
    TaskApi, TaskStore, Tasks, TranscriptionSource, TranscriptionText,
    job::{ExpireUploadsHandler, ProcessHandler},
    quizzes::job::QuizHandler,
    tasks::job::TaskHandler,
};
use aimesh_reports::{
    ReportStore, Reports, ReportsApi,
    job::{PURGE_KIND, PurgeHandler, RenderHandler},
};
use aimesh_speech::{
    Speech, SpeechApi, SpeechStore,
    transcribe::{RETENTION_KIND, RetentionHandler, TranscribeHandler},
};
use anyhow::Context;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::{
    ConversationSettings, EventsSettings, FilesSettings, GallerySettings, MeshConfig,
    ProcessingSettings, ReportsSettings, ServiceKind, SpeechSettings, WorkerSettings,
};
use crate::export::{ExportHandler, Exports};

/// The name of the recordings' retention schedule.
const RETENTION_SCHEDULE: &str = "speech.retention";

/// Applies every service's migrations.
pub async fn migrate(db: &Db) -> anyhow::Result<()> {
    // The outbox every service records its events in.
    db.migrate(&aimesh_events::MIGRATIONS).await?;
    db.migrate(&aimesh_identity::MIGRATIONS).await?;
    db.migrate(&aimesh_jobs::MIGRATIONS).await?;
    db.migrate(&aimesh_notes::MIGRATIONS).await?;
    db.migrate(&aimesh_processing::MIGRATIONS).await?;
    db.migrate(&aimesh_reports::MIGRATIONS).await?;
    db.migrate(&aimesh_gallery::MIGRATIONS).await?;
    db.migrate(&aimesh_speech::MIGRATIONS).await?;
    db.migrate(&aimesh_conversation::MIGRATIONS).await?;
    db.migrate(&aimesh_admin::MIGRATIONS).await?;
    db.migrate(&aimesh_kit::files::MIGRATIONS).await?;
    Ok(())
}

/// Opens the configured database.
pub async fn connect(config: &ServerConfig) -> anyhow::Result<Db> {
    let options = DbOptions {
        max_connections: config.db_max_connections,
        statement_timeout: Duration::from_secs(config.db_statement_timeout_secs),
        idle_in_transaction_timeout: Duration::from_secs(
            config.db_idle_in_transaction_timeout_secs,
        ),
        ..DbOptions::default()
    };
    Ok(Db::connect(&config.database_url(), &options).await?)
}

/// Finds the translation engines installed here.
pub async fn discover_translators(settings: &WorkerSettings) -> Translators {
    let mut engines: Vec<Arc<dyn Translator>> = Vec::new();
    if let Some(apertium) = Apertium::discover(&settings.apertium_bin).await {
        engines.push(Arc::new(apertium));
    }
    if let Some(dir) = settings.marian_models_dir.clone() {
        // Loading reads whole weight files: off the async runtime.
        match tokio::task::spawn_blocking(move || Marian::discover(dir)).await {
            Ok(Some(marian)) => engines.push(Arc::new(marian)),
            Ok(None) => tracing::warn!("no usable Marian model found"),
            Err(error) => tracing::error!(%error, "loading Marian models failed"),
        }
    }
    Translators::new(engines)
}

/// What the services of one process share: the database, the invalidation bus, the job
/// engine, the inference engines, and the notes, processing, reports and gallery services.
#[derive(Clone)]
pub struct Core {
    /// The database.
    pub db: Db,
    /// Cache invalidations (bridged across processes on PostgreSQL).
    pub bus: InvalidationBus,
    /// The job engine.
    pub jobs: Jobs,
    /// The notes service.
    pub notes: Notes,
    /// The inference engines loaded by this process (shared by the models and processing
    /// services and the worker).
    pub engines: Arc<Engines>,
    /// The processing service.
    pub processing: Processing,
    /// AI tasks on documents and notes.
    pub tasks: Tasks,
    /// Quizzes on documents.
    pub quizzes: Quizzes,
    /// The reports service.
    pub reports: Reports,
    /// The gallery service.
    pub gallery: Gallery,
    /// The speech service.
    pub speech: Speech,
    /// The conversation service.
    pub conversation: Conversation,
    /// Every service's data by owner, deleted with an account.
    pub owned: OwnedDataRegistry,
    /// The storage quota over every service's files, and the signer of their URLs.
    pub files: SharedFiles,
    /// Every file-owning service's reader, for signed URLs.
    pub file_readers: FileReaders,
    /// Account exports.
    pub exports: Exports,
    /// Domain events (recorded by every service).
    pub events: Events,
    /// The events relay's settings (see [`Core::start_relay`]).
    relay: aimesh_events::RelayConfig,
}

/// The notes service as the source of tasks: a caller's note, read through the service (and
/// its cache), never through its tables.
struct NotesPort(Notes);

impl NoteSource for NotesPort {
    fn note<'a>(
        &'a self,
        owner: &'a str,
        id: Uuid,
    ) -> BoxFuture<'a, Result<Option<NoteText>, String>> {
        Box::pin(async move {
            match self.0.get(owner, id).await {
                Ok(note) => Ok(Some(NoteText {
                    id: note.id,
                    title: note.title.clone(),
                    text: note.original_text.clone(),
                    language: note.original_language.clone(),
                })),
                Err(aimesh_notes::NotesError::NotFound(_)) => Ok(None),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}

/// The speech service as the source of tasks: a caller's transcription and its transcript,
/// read through the service, never through its tables.
struct TranscriptionsPort(Speech);

impl TranscriptionSource for TranscriptionsPort {
    fn transcription<'a>(
        &'a self,
        owner: &'a str,
        id: Uuid,
    ) -> BoxFuture<'a, Result<Option<TranscriptionText>, String>> {
        Box::pin(async move {
            match self.0.get_transcription(owner, id).await {
                Ok(t) => Ok(Some(TranscriptionText {
                    id: t.id,
                    ready: t.status == aimesh_speech::domain::Status::Ready,
                    status: t.status.to_string(),
                    job_id: t.job_id,
                    text: t.text.unwrap_or_default(),
                    language: t.language,
                })),
                Err(aimesh_speech::SpeechError::TranscriptionNotFound(_)) => Ok(None),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}

/// The settings of the product services a process starts (every process starts them all:
/// which of them it serves is decided when the server is built).
#[derive(Debug, Clone, Copy)]
pub struct ServiceSettings<'a> {
    /// Documents, uploads and the storage quota.
    pub processing: &'a ProcessingSettings,
    /// Learning reports.
    pub reports: &'a ReportsSettings,
    /// Images.
    pub gallery: &'a GallerySettings,
    /// Transcriptions and synthesised audio.
    pub speech: &'a SpeechSettings,
    /// Signed file URLs.
    pub files: &'a FilesSettings,
    /// Chat sessions.
    pub conversation: &'a ConversationSettings,
    /// Domain events.
    pub events: &'a EventsSettings,
}

impl<'a> ServiceSettings<'a> {
    /// Returns the product services' settings of a mesh configuration.
    pub fn of(config: &'a MeshConfig) -> Self {
        Self {
            processing: &config.processing,
            reports: &config.reports,
            gallery: &config.gallery,
            speech: &config.speech,
            files: &config.files,
            conversation: &config.conversation,
            events: &config.events,
        }
    }
}

impl Core {
    /// Connects (and migrates, when configured) the database and starts the shared parts.
    /// Translation engines are looked for only when `translation` is set (a process that
    /// serves notes or runs jobs); `engines` are the inference engines already loaded.
    pub async fn start(
        server: &ServerConfig,
        worker: &WorkerSettings,
        translation: bool,
        engines: Arc<Engines>,
        settings: ServiceSettings<'_>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let ServiceSettings {
            processing,
            reports,
            gallery,
            speech: speech_settings,
            files: files_settings,
            conversation: conversation_settings,
            events: events_settings,
        } = settings;
        let db = connect(server).await?;
        if server.auto_migrate {
            migrate(&db).await?;
        }
        let bus = match &db {
            Db::Postgres(pool) => InvalidationBus::default()
                .bridge_postgres(pool.clone(), shutdown.clone())
                .await
                .context("failed to listen for cache invalidations")?,
            Db::Sqlite(_) => InvalidationBus::default(),
        };
        let jobs = Jobs::start(db.clone(), worker.worker_commits(), shutdown.clone())
            .await
            .context("failed to start the job engine")?;
        let translators = if translation {
            discover_translators(worker).await
        } else {
            Translators::new(Vec::new())
        };
        let notes = Notes::new(
            NotesStore::new(db.clone()),
            &CacheConfig::default(),
            bus.clone(),
            jobs.clone(),
            Arc::new(translators),
        );
        // One quota over every service's files (each service registers its usage below), and
        // one URL signer whose key every process of the deployment shares.
        let files = SharedFiles {
            quota: StorageQuota::new(processing.storage_quota_bytes),
            signer: UrlSigner::new(
                signing_key(&db, files_settings).await?,
                files_settings.public_url.clone(),
                files_settings.ttl(),
            ),
        };
        let blobs = processing
            .blob_store(&server.data_dir)
            .context("failed to open the blob store")?;
        tracing::info!(blobs = blobs.location(), "blob store opened");
        let export_blobs = blobs.part("exports")?;
        // Report files apart from documents: each service counts the references to its own
        // blobs before deleting one.
        let report_blobs = blobs.part("reports")?;
        let reports = Reports::new(
            ReportStore::new(db.clone()),
            report_blobs,
            jobs.clone(),
            reports.config(processing.storage_quota_bytes),
        )
        .context("failed to start the reports service")?
        .with_files(files.clone());
        if reports.config().retention.is_some() {
            jobs.schedule(
                PURGE_KIND,
                Cadence::every(Duration::from_secs(3600))?,
                PURGE_KIND,
                b"{}".to_vec(),
            )
            .await
            .context("failed to schedule the reports retention sweep")?;
        }
        // Its own part of the blob directory: each service releases only the blobs it stored.
        let gallery_blobs = blobs.part("gallery")?;
        let gallery = Gallery::new(
            ImageStore::new(db.clone()),
            gallery_blobs,
            jobs.clone(),
            crate::images::image_engines(&engines),
            gallery.config(processing),
        )
        .with_files(files.clone());
        gallery
            .schedule_purge()
            .await
            .context("failed to schedule the gallery's trash purge")?;
        let speech = Speech::new(
            SpeechStore::new(db.clone()),
            blobs.clone(),
            jobs.clone(),
            engines
                .transcriber
                .clone()
                .map_err(|unavailable| unavailable.detail().to_owned()),
            engines
                .synthesizer
                .clone()
                .map_err(|unavailable| unavailable.detail().to_owned()),
            speech_settings.config(processing.storage_quota_bytes),
        )
        .with_files(files.clone());
        if speech.config().audio_retention.is_some() {
            let payload = b"{}".to_vec();
            jobs.schedule(
                RETENTION_SCHEDULE,
                Cadence::every(speech_settings.sweep_interval())?,
                RETENTION_KIND,
                payload,
            )
            .await
            .context("failed to schedule the recordings' retention sweep")?;
        }
        let processing = Processing::new(
            DocumentStore::new(db.clone()),
            blobs,
            jobs.clone(),
            engines
                .embedder
                .clone()
                .map_err(|unavailable| unavailable.detail().to_owned()),
            processing.config(),
        )
        .with_files(files.clone());
        processing
            .schedule_upload_sweep()
            .await
            .context("failed to schedule the sweep of stale uploads")?;
        files
            .quota
            .register(Arc::new(processing.store().clone()))
            .register(Arc::new(gallery.store().clone()))
            .register(Arc::new(speech.store().clone()))
            .register(Arc::new(reports.store().clone()));
        let mut file_readers = FileReaders::new();
        file_readers
            .register(Arc::new(processing.clone()))
            .register(Arc::new(gallery.clone()))
            .register(Arc::new(speech.clone()))
            .register(Arc::new(reports.clone()));
        let tasks = Tasks::new(
            TaskStore::new(db.clone()),
            processing.clone(),
            jobs.clone(),
            Some(Arc::new(NotesPort(notes.clone())) as Arc<dyn NoteSource>),
            notes.translators().clone(),
        )
        .with_transcriptions(Arc::new(TranscriptionsPort(speech.clone())));
        let quizzes = Quizzes::new(QuizStore::new(db.clone()), processing.clone(), jobs.clone());
        let conversation = Conversation::new(
            ConversationStore::new(db.clone()),
            jobs.clone(),
            conversation_settings.config(),
            Pipeline {
                chat: engines
                    .chat
                    .clone()
                    .map_err(|unavailable| unavailable.detail().to_owned()),
                embedder: engines
                    .embedder
                    .clone()
                    .map_err(|unavailable| unavailable.detail().to_owned()),
                documents: Some(Arc::new(SearchPort(processing.clone())) as Arc<dyn DocumentSearch>),
                images: Some(Arc::new(GalleryPort {
                    gallery: gallery.clone(),
                    jobs: jobs.clone(),
                }) as Arc<dyn ImageMaker>),
            },
        );
        if let Some(retention) = worker.retention() {
            jobs.schedule_retention(&retention)
                .await
                .context("failed to schedule the job retention")?;
        }
        // An account's data goes with it: its jobs first (so no handler is left working for
        // it), then what the services keep.
        let mut owned = OwnedDataRegistry::new();
        owned
            .register(Arc::new(jobs.clone()))
            .register(Arc::new(notes.clone()))
            .register(Arc::new(tasks.clone()))
            .register(Arc::new(quizzes.clone()))
            .register(Arc::new(processing.clone()))
            .register(Arc::new(gallery.clone()))
            .register(Arc::new(speech.clone()))
            .register(Arc::new(reports.clone()))
            .register(Arc::new(conversation.clone()));
        // An account's export holds what every service above keeps; the archive itself is kept
        // apart and goes with the account too.
        let exports = Exports::new(
            owned.clone(),
            export_blobs,
            files.signer.clone(),
            jobs.clone(),
        );
        owned.register(Arc::new(exports.clone()));
        file_readers.register(Arc::new(exports.clone()));
        // Events last: the deletions above record none (the account's deletion is one event).
        let events = Events::new(db.clone());
        owned.register(Arc::new(events.store().clone()));
        Ok(Self {
            db,
            bus,
            jobs,
            notes,
            engines,
            processing,
            tasks,
            quizzes,
            reports,
            gallery,
            speech,
            conversation,
            owned,
            files,
            file_readers,
            exports,
            events,
            relay: events_settings.relay_config(),
        })
    }

    /// Starts this process's events relay (numbering, publishing, pruning) until `shutdown`.
    /// Processes that run a worker or serve WatchEvents run one: those of the single-process
    /// default, the worker and the events service of a split deployment.
    /// The returned task ends after `shutdown`, once its current step is done: await it (see
    /// [`Core::close`]) before closing the database, which it may still be using.
    pub async fn start_relay(
        &self,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let relay = Relay::new(self.events.clone(), self.relay.clone())
            .await
            .context("failed to start the events relay")?;
        Ok(tokio::spawn(relay.run(shutdown.clone())))
    }

    /// Closes the job engine and the database after shutdown, first letting the events relay
    /// (if this process runs one) finish its step, for at most 5 s.
    pub async fn close(&self, relay: Option<tokio::task::JoinHandle<()>>) {
        if let Some(relay) = relay
            && tokio::time::timeout(Duration::from_secs(5), relay)
                .await
                .is_err()
        {
            tracing::warn!("the events relay did not stop within 5 s; closing the database");
        }
        self.jobs.close().await;
        self.db.close().await;
    }

    /// Returns a worker for the job kinds this process has the engines for: a kind whose
    /// engines are missing here is never claimed by it, and waits for a worker that has them.
    pub fn worker(&self, settings: &WorkerSettings, grace: Duration) -> Worker {
        let mut handlers: Vec<Arc<dyn JobHandler>> =
            vec![Arc::new(JobsPurgeHandler::new(self.jobs.clone()))];
        if !self.notes.translators().engines().is_empty() {
            handlers.push(Arc::new(TranslateHandler::new(
                self.notes.clone(),
                self.notes.translators().clone(),
            )));
            handlers.push(Arc::new(TaskHandler::translation(self.tasks.clone())));
        }
        if self.processing.can_process() {
            handlers.push(Arc::new(ProcessHandler::new(self.processing.clone())));
            handlers.push(Arc::new(TaskHandler::analysis(self.tasks.clone())));
            handlers.push(Arc::new(QuizHandler::new(self.quizzes.clone())));
        }
        // Sweeping stale uploads and rendering reports need no engine: every worker runs them.
        handlers.push(Arc::new(ExpireUploadsHandler::new(self.processing.clone())));
        handlers.push(Arc::new(RenderHandler::new(self.reports.clone())));
        handlers.push(Arc::new(PurgeHandler::new(self.reports.clone())));
        for handler in OperationHandler::serving(&self.gallery) {
            handlers.push(Arc::new(handler));
        }
        handlers.push(Arc::new(TrashPurgeHandler::new(self.gallery.clone())));
        handlers.push(Arc::new(ExportHandler(self.exports.clone())));
        if self.speech.can_transcribe() {
            handlers.push(Arc::new(TranscribeHandler::new(self.speech.clone())));
        }
        handlers.push(Arc::new(RetentionHandler::new(self.speech.clone())));
        if self.conversation.can_reply() {
            handlers.push(Arc::new(ReplyHandler::new(self.conversation.clone())));
        }
        self.jobs.worker(handlers, settings.worker_config(grace))
    }
}

/// Runs a job worker without serving RPCs, until `shutdown`.
pub async fn run_worker(
    server: &ServerConfig,
    settings: &WorkerSettings,
    models: &ModelsConfig,
    services: ServiceSettings<'_>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let engines = Arc::new(Engines::load(models).await);
    let core = Core::start(server, settings, true, engines, services, &shutdown).await?;
    let relay = core.start_relay(&shutdown).await?;
    core.worker(settings, server.shutdown_grace())
        .run(shutdown)
        .await;
    core.close(Some(relay)).await;
    Ok(())
}

/// A running set of services on one bound listener.
pub struct Mesh {
    server: Server,
    core: Core,
    worker: Option<Worker>,
    relay: Option<tokio::task::JoinHandle<()>>,
    shutdown: CancellationToken,
}

impl Mesh {
    /// Connects the database (migrating it when configured), binds the listener, and wires
    /// `services` onto the server, with a worker when the configuration asks for one.
    pub async fn build(config: &MeshConfig, services: &[ServiceKind]) -> anyhow::Result<Self> {
        let shutdown = CancellationToken::new();
        let runs_worker = config.worker.runs_worker(services);
        let translation = runs_worker || services.contains(&ServiceKind::Notes);
        // One set of engines for the models service, processing and the worker; a process
        // that needs none loads none.
        let needs_engines = runs_worker
            || services.contains(&ServiceKind::Models)
            || services.contains(&ServiceKind::Processing)
            || services.contains(&ServiceKind::Gallery)
            || services.contains(&ServiceKind::Speech)
            || services.contains(&ServiceKind::Conversation);
        let engines = Arc::new(if needs_engines {
            Engines::load(&config.models).await
        } else {
            Engines::load(&ModelsConfig::disabled()).await
        });
        let core = Core::start(
            &config.server,
            &config.worker,
            translation,
            engines.clone(),
            ServiceSettings::of(config),
            &shutdown,
        )
        .await?;
        core.jobs.set_watch_limits(config.jobs.watch_limits());
        let serves_events = services.contains(&ServiceKind::Events);
        let relay = if runs_worker || serves_events {
            Some(core.start_relay(&shutdown).await?)
        } else {
            None
        };
        if serves_events {
            core.events
                .listen(shutdown.clone())
                .await
                .context("failed to listen for events")?;
        }

        let mut builder = server_builder(&config.server, &core.db, &shutdown)?;
        let identity = services
            .contains(&ServiceKind::Identity)
            .then(|| start_identity(config, &core))
            .transpose()?;
        if let Some(identity) = &identity {
            let granted = identity.grant_configured_admins().await?;
            if granted > 0 {
                tracing::info!(granted, "configured administrators granted");
            }
        }
        let (authenticator, keys_ready, directory) =
            authenticator(config, &core, identity.as_ref(), &shutdown).await?;
        builder = builder.auth(AuthLayer::new(authenticator));
        if let Some(check) = keys_ready {
            builder = builder.readiness_check("token keys", check);
        }
        let engines = if services.contains(&ServiceKind::Models) {
            for (name, check) in engine_capabilities(&engines) {
                builder = builder.capability(name, check);
            }
            Some(engines)
        } else {
            None
        };

        for service in services {
            builder = match (service, &identity, &engines) {
                (ServiceKind::Identity, Some(identity), _) => builder.add_service(
                    IdentityApi::new(identity.clone())
                        .with_exports(Arc::new(core.exports.clone()))
                        .into_server(),
                ),
                (ServiceKind::Jobs, _, _) => {
                    builder.add_service(JobsApi::new(core.jobs.clone()).into_server())
                }
                (ServiceKind::Notes, _, _) => {
                    builder.add_service(NotesApi::new(core.notes.clone()).into_server())
                }
                (ServiceKind::Models, _, Some(engines)) => {
                    builder.add_service(ModelsApi::new(engines.clone()).into_server())
                }
                (ServiceKind::Processing, _, _) => builder
                    .add_service(ProcessingApi::new(core.processing.clone()).into_server())
                    .add_service(TaskApi::new(core.tasks.clone()).into_server())
                    .add_service(QuizApi::new(core.quizzes.clone()).into_server()),
                (ServiceKind::Reports, _, _) => {
                    builder.add_service(ReportsApi::new(core.reports.clone()).into_server())
                }
                (ServiceKind::Gallery, _, _) => {
                    builder.add_service(GalleryApi::new(core.gallery.clone()).into_server())
                }
                (ServiceKind::Speech, _, _) => {
                    builder.add_service(SpeechApi::new(core.speech.clone()).into_server())
                }
                (ServiceKind::Files, _, _) => builder.add_service(
                    FilesApi::new(core.files.signer.clone(), core.file_readers.clone())
                        .into_server(),
                ),
                (ServiceKind::Conversation, _, _) => builder
                    .add_service(ConversationApi::new(core.conversation.clone()).into_server()),
                (ServiceKind::Events, _, _) => {
                    builder.add_service(EventsApi::new(core.events.clone()).into_server())
                }
                (ServiceKind::Admin, _, _) => builder
                    .add_service(admin_api(&core, identity.as_ref(), &directory).into_server()),
                _ => builder,
            };
        }
        let server = builder.build().await?;
        tracing::info!(
            addr = %server.local_addr(),
            database = core.db.backend(),
            services = ?services,
            worker = runs_worker,
            "mesh ready"
        );
        let worker =
            runs_worker.then(|| core.worker(&config.worker, config.server.shutdown_grace()));
        Ok(Self {
            server,
            core,
            worker,
            relay,
            shutdown,
        })
    }

    /// Returns the address the server listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    /// Returns the address of the metrics listener, if metrics are on.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.metrics_addr()
    }

    /// Returns the token that stops the mesh when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Returns the shared core (database, jobs, notes).
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Serves (and runs the worker) until shut down, then closes the database.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let worker = self
            .worker
            .map(|worker| tokio::spawn(worker.run(self.shutdown.clone())));
        let result = self.server.run_until_stopped().await;
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        self.core.close(self.relay).await;
        result
    }
}

/// The server with its metrics listener, shutdown, and the database readiness check.
fn server_builder(
    config: &ServerConfig,
    db: &Db,
    shutdown: &CancellationToken,
) -> anyhow::Result<ServerBuilder> {
    let db = db.clone();
    let db_ready: ReadinessCheck = Arc::new(move || {
        let db = db.clone();
        Box::pin(async move { db.ping().await.map_err(|e| e.to_string()) })
    });
    ServerBuilder::new(config.grpc_addr)
        .metrics(
            config
                .metrics_addr()
                .context("AIMESH_METRICS_ADDR is not an address (or `off`)")?,
        )
        .shutdown_token(shutdown.clone())
        .grace_period(config.shutdown_grace())
        .check_interval(Duration::from_secs(5))
        .readiness_check("database", db_ready)
        .tls(&config.tls)
}

/// The identity service, with its signing key (created in the data directory on first start)
/// and its call-count flusher.
fn start_identity(config: &MeshConfig, core: &Core) -> anyhow::Result<Identity> {
    let key_file = config
        .identity
        .jwt_signing_key_file
        .clone()
        .unwrap_or_else(|| config.server.data_dir.join("jwt-signing-key.pem"));
    let keys = SigningKeys::load_or_create(&key_file, &config.identity.jwt_extra_public_keys)
        .context("failed to load the token signing key")?;
    let identity = Identity::new(
        IdentityStore::new(core.db.clone()),
        keys,
        &config.auth.jwt_issuer,
        &config.identity,
        core.bus.clone(),
        core.owned.clone(),
    )?;
    identity.spawn_pruner(Duration::from_secs(60));
    Ok(identity)
}

/// Decides how tokens are verified: with the in-process identity service's keys, or with the
/// keys an identity service elsewhere publishes (fetched now and refreshed every minute; the
/// readiness check returned with it fails until some are known). Either way accounts (active,
/// disabled, roles) and API tokens are read from the identity tables of the shared database,
/// cached, and evicted through the invalidation bus when they change in any process.
async fn authenticator(
    config: &MeshConfig,
    core: &Core,
    identity: Option<&Identity>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Arc<Authenticator>, Option<ReadinessCheck>, AccountDirectory)> {
    let directory = match identity {
        Some(identity) => identity.accounts(),
        None => AccountDirectory::new(IdentityStore::new(core.db.clone())),
    };
    directory.follow(&core.bus, shutdown.clone());
    directory.spawn_flusher(aimesh_identity::service::CALL_COUNT_FLUSH_INTERVAL);
    let accounts: Option<Arc<dyn AccountHooks>> = Some(Arc::new(directory.clone()));
    let (verifier, keys_ready): (Arc<JwtVerifier>, Option<ReadinessCheck>) =
        match (identity, &config.auth.identity_url) {
            (Some(identity), _) => (identity.verifier(), None),
            (None, Some(url)) => {
                let verifier = Arc::new(JwtVerifier::new(config.auth.jwt_issuer.clone()));
                let published = config
                    .server
                    .tls
                    .endpoint(url)
                    .context("AIMESH_IDENTITY_URL")?;
                if let Err(error) = remote::fetch_keys(&published, &verifier).await {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "token keys not available yet; retrying in the background"
                    );
                }
                remote::spawn_refresh(
                    published,
                    verifier.clone(),
                    Duration::from_secs(60),
                    shutdown.clone(),
                );
                let keys_ready = verifier.clone();
                let check: ReadinessCheck = Arc::new(move || {
                    let ready = !keys_ready.kids().is_empty();
                    Box::pin(async move {
                        if ready {
                            Ok(())
                        } else {
                            Err("no token keys fetched yet".into())
                        }
                    })
                });
                (verifier, Some(check))
            }
            (None, None) => anyhow::bail!(
                "tokens cannot be verified: run the identity service in this process \
                 (--services identity,...) or set AIMESH_IDENTITY_URL"
            ),
        };
    let authenticator = Arc::new(Authenticator::new(
        verifier,
        accounts,
        config.auth.rate_limit(),
        config.auth.trusted_proxies.clone(),
    ));
    tokio::spawn({
        let authenticator = authenticator.clone();
        let shutdown = shutdown.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => authenticator.shrink(),
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    });
    Ok((authenticator, keys_ready, directory))
}

/// The admin service, over the identity service's account administration (this process's
/// identity service, or the identity tables of the shared database) and the job engine.
fn admin_api(core: &Core, identity: Option<&Identity>, directory: &AccountDirectory) -> AdminApi {
    let accounts = match identity {
        Some(identity) => identity.admin().clone(),
        None => AccountAdmin::new(
            IdentityStore::new(core.db.clone()),
            directory.clone(),
            core.bus.clone(),
            core.owned.clone(),
        ),
    };
    AdminApi::new(Admin::new(
        accounts,
        core.jobs.clone(),
        Arc::new(QuotaStorage(core.files.quota.clone())),
        AuditStore::new(core.db.clone()),
    ))
}

/// An account's storage use, as the shared quota counts it (documents and uploads, images,
/// recordings and audio, reports).
struct QuotaStorage(StorageQuota);

impl StorageUsage for QuotaStorage {
    fn usage<'a>(&'a self, owner: &'a str) -> futures::future::BoxFuture<'a, Result<i64, String>> {
        Box::pin(async move { self.0.used(owner).await.map_err(|e| e.to_string()) })
    }
}

/// The key of signed file URLs: `AIMESH_SIGNING_KEY`, else the deployment's key in the shared
/// database (created by the first process to start), so every process of a split deployment
/// verifies what any other signed.
async fn signing_key(db: &Db, settings: &FilesSettings) -> anyhow::Result<SigningKey> {
    use secrecy::ExposeSecret;
    match settings
        .signing_key
        .as_ref()
        .filter(|text| !text.expose_secret().trim().is_empty())
    {
        Some(text) => SigningKey::parse(text.expose_secret())
            .map_err(|reason| anyhow::anyhow!("AIMESH_SIGNING_KEY: {reason}")),
        None => aimesh_kit::files::database_key(db)
            .await
            .map_err(|reason| anyhow::anyhow!("{reason}"))
            .context("failed to load the signed URLs' key (run `aimesh migrate`?)"),
    }
}

/// The processing service's semantic search as the conversation's document search: the
/// caller's documents, read through the service, never through its tables.
struct SearchPort(Processing);

impl DocumentSearch for SearchPort {
    fn search<'a>(
        &'a self,
        owner: &'a str,
        query: &'a str,
        k: u32,
        document_ids: Vec<Uuid>,
    ) -> BoxFuture<'a, Result<Vec<Passage>, PortError>> {
        Box::pin(async move {
            let query = aimesh_processing::domain::SearchQuery {
                query: query.to_owned(),
                k,
                document_ids,
            };
            match self.0.search(owner, query).await {
                Ok((hits, _)) => Ok(hits
                    .into_iter()
                    .map(|hit| Passage {
                        document_id: hit.chunk.document_id,
                        filename: hit.chunk.filename,
                        page: hit.chunk.page,
                        text: hit.chunk.text,
                        score: hit.score,
                    })
                    .collect()),
                Err(aimesh_processing::ProcessingError::DocumentNotFound(id)) => {
                    Err(PortError::NotFound(format!("document {id}")))
                }
                Err(aimesh_processing::ProcessingError::EngineUnavailable(reason)) => {
                    Err(PortError::NotServing {
                        reason: format!("document search is not available: {reason}"),
                        fix: "load the embeddings engine (aimesh models fetch)".into(),
                    })
                }
                Err(error) => Err(PortError::Failed(error.to_string())),
            }
        })
    }
}

/// The gallery as the conversation's image maker: an operation submitted as the gallery's
/// job, followed to its end.
struct GalleryPort {
    gallery: Gallery,
    jobs: Jobs,
}

impl GalleryPort {
    async fn run(
        &self,
        owner: &str,
        source: Option<Uuid>,
        operation: aimesh_gallery::domain::Operation,
    ) -> Result<Uuid, PortError> {
        let generating = matches!(
            operation,
            aimesh_gallery::domain::Operation::Generate { .. }
        );
        let job = match self.gallery.submit(owner, source, operation).await {
            Ok(job) => job,
            Err(aimesh_gallery::GalleryError::CapabilityNotServing(reason)) if generating => {
                return Err(PortError::NotServing {
                    reason: format!("no image model is configured: {reason}"),
                    fix: "configure an image generation engine for the gallery (Stable \
                          Diffusion weights, AIMESH_IMAGE_MODEL_DIR) and ask again"
                        .into(),
                });
            }
            Err(aimesh_gallery::GalleryError::CapabilityNotServing(reason)) => {
                return Err(PortError::NotServing {
                    reason: format!("this edit is not available: {reason}"),
                    fix: "ask for another edit (enhance, a style, upscale)".into(),
                });
            }
            Err(aimesh_gallery::GalleryError::NotFound(id)) => {
                return Err(PortError::NotFound(format!("image {id}")));
            }
            Err(error) => return Err(PortError::Failed(error.to_string())),
        };
        let mut changes = self
            .jobs
            .watch(owner, job.id)
            .await
            .map_err(|error| PortError::Failed(error.to_string()))?;
        let mut last = job;
        while let Some(change) = futures::StreamExt::next(&mut changes).await {
            last = change.map_err(|error| PortError::Failed(error.to_string()))?;
        }
        if last.state != aimesh_jobs::JobState::Succeeded {
            return Err(PortError::Failed(format!(
                "the gallery's job ended {}: {}",
                last.state,
                last.error.unwrap_or_default()
            )));
        }
        let result = last.result.unwrap_or_default();
        let made = <aimesh_proto::gallery::v1::ImageOperationResult as prost::Message>::decode(
            result.as_slice(),
        )
        .map_err(|error| PortError::Failed(format!("unreadable gallery result: {error}")))?;
        made.image_id
            .parse()
            .map_err(|_| PortError::Failed("the gallery named no image".into()))
    }
}

impl ImageMaker for GalleryPort {
    fn generate<'a>(
        &'a self,
        owner: &'a str,
        prompt: &'a str,
    ) -> BoxFuture<'a, Result<Uuid, PortError>> {
        Box::pin(self.run(
            owner,
            None,
            aimesh_gallery::domain::Operation::Generate {
                prompt: prompt.to_owned(),
                width: 512,
                height: 512,
                seed: 0,
                title: aimesh_conversation::prompt::title_from(prompt),
                tags: vec!["chat".into()],
            },
        ))
    }

    fn edit<'a>(
        &'a self,
        owner: &'a str,
        source: Uuid,
        instruction: &'a str,
    ) -> BoxFuture<'a, Result<Uuid, PortError>> {
        Box::pin(self.run(
            owner,
            Some(source),
            aimesh_gallery::domain::Operation::from_instruction(instruction),
        ))
    }
}

/// The health entries of the models service's engines, one per engine.
fn engine_capabilities(engines: &Arc<Engines>) -> Vec<(String, ReadinessCheck)> {
    EngineKind::ALL
        .iter()
        .map(|&kind| {
            let engines = engines.clone();
            let check: ReadinessCheck = Arc::new(move || {
                let status = engines
                    .status(kind)
                    .map_err(|unavailable| unavailable.detail().to_owned());
                Box::pin(async move { status })
            });
            (kind.health_name(), check)
        })
        .collect()
}
