//! The aimesh process: assembles the selected services on one gRPC server over one database.
//!
//! [`Mesh::build`] connects and migrates the database, binds the listener and wires the
//! services; [`Mesh::run_until_stopped`] serves until the shutdown token fires. The binary and
//! the integration tests use the same path.

use std::{fmt, time::Duration};

use std::sync::Arc;

use aimesh_ai::translate::{Apertium, Marian, Translator, Translators};
use aimesh_identity::{Identity, IdentityApi, IdentityConfig, IdentityStore, keys::SigningKeys};
use aimesh_jobs::{Jobs, JobsApi, Worker, WorkerConfig, worker::JobHandler};
use aimesh_kit::{
    auth::{AccountHooks, AuthConfig, AuthLayer, Authenticator, jwt::JwtVerifier, remote},
    config::ServerConfig,
    db::{Db, DbOptions},
    invalidation::InvalidationBus,
    server::{ReadinessCheck, Server, ServerBuilder},
};
use aimesh_models::{EngineKind, Engines, ModelsApi, ModelsConfig};
use aimesh_notes::{
    Notes, NotesApi, NotesStore, service::CacheConfig, translate::TranslateHandler,
};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

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
}

impl ServiceKind {
    /// Every service, in start order.
    pub const ALL: &'static [ServiceKind] = &[
        ServiceKind::Identity,
        ServiceKind::Jobs,
        ServiceKind::Notes,
        ServiceKind::Models,
    ];
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceKind::Identity => "identity",
            ServiceKind::Jobs => "jobs",
            ServiceKind::Notes => "notes",
            ServiceKind::Models => "models",
        })
    }
}

/// Applies every service's migrations.
pub async fn migrate(db: &Db) -> anyhow::Result<()> {
    db.migrate(&aimesh_identity::MIGRATIONS).await?;
    db.migrate(&aimesh_jobs::MIGRATIONS).await?;
    db.migrate(&aimesh_notes::MIGRATIONS).await?;
    Ok(())
}

/// Opens the configured database.
pub async fn connect(config: &ServerConfig) -> anyhow::Result<Db> {
    let options = DbOptions {
        max_connections: config.db_max_connections,
        ..DbOptions::default()
    };
    Ok(Db::connect(&config.database_url(), &options).await?)
}

/// Job worker settings.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerSettings {
    /// Whether `serve` also runs a job worker in the same process.
    #[arg(long = "worker", env = "AIMESH_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// Jobs of one kind a worker runs at once.
    #[arg(long, env = "AIMESH_WORKER_CONCURRENCY", default_value_t = 4)]
    pub worker_concurrency: usize,

    /// Seconds a worker's lease on a job lasts without a heartbeat; a crashed worker's jobs
    /// are picked up again after this.
    #[arg(long, env = "AIMESH_JOB_LEASE_SECS", default_value_t = 30)]
    pub job_lease_secs: u64,

    /// The Apertium executable (rule-based translation); translation pairs come from its
    /// installed modes.
    #[arg(long, env = "AIMESH_APERTIUM_BIN", default_value = "apertium")]
    pub apertium_bin: String,

    /// Directory of Marian (opus-mt) translation models, one sub-directory per language pair
    /// (`config.json`, `model.safetensors`, `tokenizer.json` or `source.spm` + `vocab.json`).
    #[arg(long, env = "AIMESH_MARIAN_MODELS_DIR")]
    pub marian_models_dir: Option<std::path::PathBuf>,
}

impl WorkerSettings {
    /// Returns the worker configuration.
    pub fn worker_config(&self, grace: Duration) -> WorkerConfig {
        WorkerConfig {
            lease: Duration::from_secs(self.job_lease_secs.max(1)),
            concurrency: self.worker_concurrency.max(1),
            grace,
            worker_name: std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()),
            ..WorkerConfig::default()
        }
    }

    /// Returns defaults for tests: a worker with a short lease.
    pub fn for_tests() -> Self {
        Self {
            enabled: true,
            worker_concurrency: 4,
            job_lease_secs: 5,
            apertium_bin: "apertium".into(),
            marian_models_dir: None,
        }
    }
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
/// engine, the notes service and the translation engines.
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
    /// Translation engines.
    pub translators: Arc<Translators>,
}

impl Core {
    /// Connects (and migrates, when configured) the database and starts the shared parts.
    pub async fn start(
        server: &ServerConfig,
        worker: &WorkerSettings,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
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
        let jobs = Jobs::start(db.clone(), shutdown.clone())
            .await
            .context("failed to start the job engine")?;
        let notes = Notes::new(
            NotesStore::new(db.clone()),
            &CacheConfig::default(),
            bus.clone(),
        );
        let translators = Arc::new(discover_translators(worker).await);
        Ok(Self {
            db,
            bus,
            jobs,
            notes,
            translators,
        })
    }

    /// Returns a worker for every job kind this process can run.
    pub fn worker(&self, settings: &WorkerSettings, grace: Duration) -> Worker {
        let handlers: Vec<Arc<dyn JobHandler>> = vec![Arc::new(TranslateHandler::new(
            self.notes.clone(),
            self.translators.clone(),
        ))];
        self.jobs.worker(handlers, settings.worker_config(grace))
    }
}

/// Runs a job worker without serving RPCs, until `shutdown`.
pub async fn run_worker(
    server: &ServerConfig,
    settings: &WorkerSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let core = Core::start(server, settings, &shutdown).await?;
    core.worker(settings, server.shutdown_grace())
        .run(shutdown)
        .await;
    core.db.close().await;
    Ok(())
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
    /// The inference engines of the models service.
    pub models: ModelsConfig,
}

impl MeshConfig {
    /// Returns a configuration for tests: port 0, the given data directory and database.
    pub fn for_tests(data_dir: std::path::PathBuf, database_url: Option<String>) -> Self {
        Self {
            server: ServerConfig::for_tests(data_dir, database_url),
            auth: AuthConfig::for_tests(),
            identity: IdentityConfig::for_tests(),
            worker: WorkerSettings::for_tests(),
            models: ModelsConfig::disabled(),
        }
    }
}

/// A running set of services on one bound listener.
pub struct Mesh {
    server: Server,
    core: Core,
    worker: Option<Worker>,
    shutdown: CancellationToken,
}

impl Mesh {
    /// Connects the database (migrating it when configured), binds the listener, and wires
    /// `services` onto the server.
    pub async fn build(config: &MeshConfig, services: &[ServiceKind]) -> anyhow::Result<Self> {
        let server_config = &config.server;
        let shutdown = CancellationToken::new();
        let core = Core::start(server_config, &config.worker, &shutdown).await?;
        let db = core.db.clone();

        let ping_db = db.clone();
        let db_ready: ReadinessCheck = Arc::new(move || {
            let db = ping_db.clone();
            Box::pin(async move { db.ping().await.map_err(|e| e.to_string()) })
        });
        let mut builder = ServerBuilder::new(server_config.grpc_addr)
            .metrics(
                server_config
                    .metrics_addr()
                    .context("AIMESH_METRICS_ADDR is not an address (or `off`)")?,
            )
            .shutdown_token(shutdown.clone())
            .grace_period(server_config.shutdown_grace())
            .check_interval(Duration::from_secs(5))
            .readiness_check("database", db_ready);

        // Tokens are verified with the in-process identity service's keys, or with the keys
        // an identity service elsewhere publishes.
        let identity = if services.contains(&ServiceKind::Identity) {
            let key_file = config
                .identity
                .jwt_signing_key_file
                .clone()
                .unwrap_or_else(|| server_config.data_dir.join("jwt-signing-key.pem"));
            let keys =
                SigningKeys::load_or_create(&key_file, &config.identity.jwt_extra_public_keys)
                    .context("failed to load the token signing key")?;
            let identity = Identity::new(
                IdentityStore::new(db.clone()),
                keys,
                &config.auth.jwt_issuer,
                &config.identity,
            )?;
            identity
                .accounts()
                .spawn_flusher(aimesh_identity::service::CALL_COUNT_FLUSH_INTERVAL);
            Some(identity)
        } else {
            None
        };
        let (verifier, accounts): (Arc<JwtVerifier>, Option<Arc<dyn AccountHooks>>) =
            match (&identity, &config.auth.identity_url) {
                (Some(identity), _) => (identity.verifier(), Some(Arc::new(identity.accounts()))),
                (None, Some(url)) => {
                    let verifier = Arc::new(JwtVerifier::new(config.auth.jwt_issuer.clone()));
                    if let Err(error) = remote::fetch_keys(url, &verifier).await {
                        tracing::warn!(
                            error = format!("{error:#}"),
                            "token keys not available yet; retrying in the background"
                        );
                    }
                    remote::spawn_refresh(
                        url.clone(),
                        verifier.clone(),
                        Duration::from_secs(60),
                        shutdown.clone(),
                    );
                    let keys_ready = verifier.clone();
                    builder = builder.readiness_check(
                        "token keys",
                        Arc::new(move || {
                            let ready = !keys_ready.kids().is_empty();
                            Box::pin(async move {
                                if ready {
                                    Ok(())
                                } else {
                                    Err("no token keys fetched yet".into())
                                }
                            })
                        }),
                    );
                    (verifier, None)
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
        ));
        tokio::spawn({
            let authenticator = authenticator.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    authenticator.shrink();
                }
            }
        });
        builder = builder.auth(AuthLayer::new(authenticator));

        // The models service loads its engines once, before serving; each engine's readiness
        // is a health entry of its own.
        let engines = if services.contains(&ServiceKind::Models) {
            let engines = Arc::new(Engines::load(&config.models).await);
            for &kind in EngineKind::ALL {
                let engines = engines.clone();
                builder = builder.capability(
                    kind.health_name(),
                    Arc::new(move || {
                        let status = engines
                            .status(kind)
                            .map_err(|unavailable| unavailable.detail().to_owned());
                        Box::pin(async move { status })
                    }),
                );
            }
            Some(engines)
        } else {
            None
        };

        for service in services {
            builder = match service {
                ServiceKind::Identity => match &identity {
                    Some(identity) => {
                        builder.add_service(IdentityApi::new(identity.clone()).into_server())
                    }
                    None => builder,
                },
                ServiceKind::Jobs => {
                    builder.add_service(JobsApi::new(core.jobs.clone()).into_server())
                }
                ServiceKind::Notes => builder.add_service(
                    NotesApi::new(
                        core.notes.clone(),
                        core.jobs.clone(),
                        core.translators.clone(),
                    )
                    .into_server(),
                ),
                ServiceKind::Models => match &engines {
                    Some(engines) => {
                        builder.add_service(ModelsApi::new(engines.clone()).into_server())
                    }
                    None => builder,
                },
            };
        }
        let server = builder.build().await?;
        tracing::info!(
            addr = %server.local_addr(),
            database = db.backend(),
            services = ?services,
            "mesh ready"
        );
        let worker = config
            .worker
            .enabled
            .then(|| core.worker(&config.worker, server_config.shutdown_grace()));
        Ok(Self {
            server,
            core,
            worker,
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
        self.core.db.close().await;
        result
    }
}

/// Installs every pinned model missing from `models_dir` (or failing verification) and
/// prepares the derived files (the Whisper conversion), printing what it did. Blocking.
pub fn fetch_models(models_dir: &std::path::Path, python: &str) -> anyhow::Result<()> {
    use aimesh_ai::models::{self, Fetched};

    for spec in models::CATALOG {
        let started = std::time::Instant::now();
        let fetched = models::fetch(models_dir, spec, python)
            .with_context(|| format!("failed to install {}", spec.id))?;
        let what = match fetched {
            Fetched::Present => "present, verified",
            Fetched::Installed => "installed, verified",
        };
        println!(
            "{:<24} {what} ({:.1} s)",
            spec.id,
            started.elapsed().as_secs_f64()
        );
    }
    let started = std::time::Instant::now();
    aimesh_ai::speech::prepare(models_dir).context("failed to convert the Whisper weights")?;
    println!(
        "{:<24} converted weights verified ({:.1} s)",
        "whisper-tiny.en",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Prints each pinned model, its size and whether it is installed and intact. Fails when
/// any is not, so scripts can test it.
pub fn list_models(models_dir: &std::path::Path) -> anyhow::Result<()> {
    use aimesh_ai::models::{self, ModelError};

    println!(
        "{:<24} {:<14} {:>9}  {:<10} source",
        "model", "capability", "MB", "state"
    );
    let mut broken = 0;
    for spec in models::CATALOG {
        let bytes: u64 = spec.files.iter().map(|file| file.bytes).sum();
        let state = match spec.verify(models_dir) {
            Ok(_) => "ok".to_owned(),
            Err(ModelError::Missing { .. }) => {
                broken += 1;
                "missing".to_owned()
            }
            Err(error) => {
                broken += 1;
                format!("INVALID: {error}")
            }
        };
        println!(
            "{:<24} {:<14} {:>9.1}  {:<10} PyPI {}=={}",
            spec.id,
            spec.capability.as_str(),
            bytes as f64 / 1e6,
            state,
            spec.package,
            spec.version
        );
    }
    anyhow::ensure!(
        broken == 0,
        "{broken} model(s) missing or invalid in {}: {}",
        models_dir.display(),
        aimesh_ai::models::FETCH_HINT
    );
    Ok(())
}

/// Asks the server at `addr` for the health of `service` (empty: the whole server), failing
/// unless it is SERVING.
pub async fn health_check(addr: &str, service: &str) -> anyhow::Result<()> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };

    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(3));
    let mut client = HealthClient::new(endpoint.connect().await?);
    let status = client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?
        .into_inner()
        .status();
    anyhow::ensure!(
        status == ServingStatus::Serving,
        "{addr} reports {}",
        status.as_str_name()
    );
    println!("SERVING");
    Ok(())
}
