//! The aimesh process: assembles the selected services on one gRPC server over one database.
//!
//! [`Mesh::build`] connects and migrates the database, binds the listener and wires the
//! services; [`Mesh::run_until_stopped`] serves until the shutdown token fires. The binary and
//! the integration tests use the same path.

use std::{fmt, time::Duration};

use std::sync::Arc;

use aimesh_identity::{Identity, IdentityApi, IdentityConfig, IdentityStore, keys::SigningKeys};
use aimesh_kit::{
    auth::{AccountHooks, AuthConfig, AuthLayer, Authenticator, jwt::JwtVerifier, remote},
    config::ServerConfig,
    db::{Db, DbOptions},
    invalidation::InvalidationBus,
    server::{ReadinessCheck, Server, ServerBuilder},
};
use aimesh_notes::{Notes, NotesApi, NotesStore, service::CacheConfig};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// A service the process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum ServiceKind {
    /// `aimesh.identity.v1.IdentityService`: accounts and tokens.
    Identity,
    /// `aimesh.notes.v1.NotesService`.
    Notes,
}

impl ServiceKind {
    /// Every service, in start order.
    pub const ALL: &'static [ServiceKind] = &[ServiceKind::Identity, ServiceKind::Notes];
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceKind::Identity => "identity",
            ServiceKind::Notes => "notes",
        })
    }
}

/// Applies every service's migrations.
pub async fn migrate(db: &Db) -> anyhow::Result<()> {
    db.migrate(&aimesh_identity::MIGRATIONS).await?;
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

/// Everything a mesh process is configured with.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Listener, database, data directory.
    pub server: ServerConfig,
    /// Token verification and rate limits.
    pub auth: AuthConfig,
    /// The identity service, when it runs here.
    pub identity: IdentityConfig,
}

impl MeshConfig {
    /// Returns a configuration for tests: port 0, the given data directory and database.
    pub fn for_tests(data_dir: std::path::PathBuf, database_url: Option<String>) -> Self {
        Self {
            server: ServerConfig::for_tests(data_dir, database_url),
            auth: AuthConfig::for_tests(),
            identity: IdentityConfig::for_tests(),
        }
    }
}

/// A running set of services on one bound listener.
pub struct Mesh {
    server: Server,
    db: Db,
    shutdown: CancellationToken,
}

impl Mesh {
    /// Connects the database (migrating it when configured), binds the listener, and wires
    /// `services` onto the server.
    pub async fn build(config: &MeshConfig, services: &[ServiceKind]) -> anyhow::Result<Self> {
        let server_config = &config.server;
        let db = connect(server_config).await?;
        if server_config.auto_migrate {
            migrate(&db).await?;
        }
        let shutdown = CancellationToken::new();
        let bus = InvalidationBus::default();

        let ping_db = db.clone();
        let db_ready: ReadinessCheck = Arc::new(move || {
            let db = ping_db.clone();
            Box::pin(async move { db.ping().await.map_err(|e| e.to_string()) })
        });
        let mut builder = ServerBuilder::new(server_config.grpc_addr)
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

        for service in services {
            builder = match service {
                ServiceKind::Identity => match &identity {
                    Some(identity) => {
                        builder.add_service(IdentityApi::new(identity.clone()).into_server())
                    }
                    None => builder,
                },
                ServiceKind::Notes => {
                    let notes = Notes::new(
                        NotesStore::new(db.clone()),
                        &CacheConfig::default(),
                        bus.clone(),
                    );
                    builder.add_service(NotesApi::new(notes).into_server())
                }
            };
        }
        let server = builder.build().await?;
        tracing::info!(
            addr = %server.local_addr(),
            database = db.backend(),
            services = ?services,
            "mesh ready"
        );
        Ok(Self {
            server,
            db,
            shutdown,
        })
    }

    /// Returns the address the server listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    /// Returns the token that stops the mesh when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until shut down, then closes the database.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.server.run_until_stopped().await;
        self.db.close().await;
        result
    }
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
