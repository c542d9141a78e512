//! The aimesh process: assembles the selected services on one gRPC server over one database.
//!
//! [`Mesh::build`] connects and migrates the database, binds the listener and wires the
//! services; [`Mesh::run_until_stopped`] serves until the shutdown token fires. The binary and
//! the integration tests use the same path.

use std::{fmt, time::Duration};

use aimesh_kit::{
    config::ServerConfig,
    db::{Db, DbOptions},
    invalidation::InvalidationBus,
    server::{ReadinessCheck, Server, ServerBuilder},
};
use aimesh_notes::{Notes, NotesApi, NotesStore, service::CacheConfig};
use tokio_util::sync::CancellationToken;

/// A service the process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum ServiceKind {
    /// `aimesh.notes.v1.NotesService`.
    Notes,
}

impl ServiceKind {
    /// Every service, in start order.
    pub const ALL: &'static [ServiceKind] = &[ServiceKind::Notes];
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceKind::Notes => "notes",
        })
    }
}

/// Applies every service's migrations.
pub async fn migrate(db: &Db) -> anyhow::Result<()> {
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

/// A running set of services on one bound listener.
pub struct Mesh {
    server: Server,
    db: Db,
    shutdown: CancellationToken,
}

impl Mesh {
    /// Connects the database (migrating it when configured), binds the listener, and wires
    /// `services` onto the server.
    pub async fn build(config: &ServerConfig, services: &[ServiceKind]) -> anyhow::Result<Self> {
        let db = connect(config).await?;
        if config.auto_migrate {
            migrate(&db).await?;
        }
        let shutdown = CancellationToken::new();
        let bus = InvalidationBus::default();

        let ping_db = db.clone();
        let db_ready: ReadinessCheck = std::sync::Arc::new(move || {
            let db = ping_db.clone();
            Box::pin(async move { db.ping().await.map_err(|e| e.to_string()) })
        });
        let mut builder = ServerBuilder::new(config.grpc_addr)
            .shutdown_token(shutdown.clone())
            .grace_period(config.shutdown_grace())
            .check_interval(Duration::from_secs(5))
            .readiness_check("database", db_ready);
        for service in services {
            builder = match service {
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
