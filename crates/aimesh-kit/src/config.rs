//! Typed configuration shared by every service process, read once at start from flags and
//! `AIMESH_*` environment variables (clap does both; tests build the structs directly).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::{ExposeSecret, SecretString};

/// Where and how a process serves gRPC and keeps its data.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerConfig {
    /// Address the gRPC (and grpc-web) listener binds; port 0 picks a free port.
    #[arg(long, env = "AIMESH_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// Directory for the embedded database and local files.
    #[arg(long, env = "AIMESH_DATA_DIR", default_value = ".data")]
    pub data_dir: PathBuf,

    /// Database URL (`sqlite:` or `postgres:`); defaults to a SQLite file in the data directory.
    #[arg(long, env = "AIMESH_DATABASE_URL", value_parser = parse_secret)]
    pub database_url: Option<SecretString>,

    /// Largest number of pooled database connections (on PostgreSQL the job engine has a pool
    /// of its own of this size).
    #[arg(long, env = "AIMESH_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// PostgreSQL: longest a statement may run, in seconds, before the server cancels it
    /// (DEADLINE_EXCEEDED); 0: no limit.
    #[arg(long, env = "AIMESH_DB_STATEMENT_TIMEOUT_SECS", default_value_t = 30)]
    pub db_statement_timeout_secs: u64,

    /// PostgreSQL: longest a session may sit idle inside a transaction, in seconds, before the
    /// server ends it and releases its locks; 0: no limit.
    #[arg(
        long,
        env = "AIMESH_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub db_idle_in_transaction_timeout_secs: u64,

    /// Whether `serve` applies pending migrations at start.
    #[arg(long, env = "AIMESH_AUTO_MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_migrate: bool,

    /// Address of the admin listener serving Prometheus metrics at `/metrics` (e.g.
    /// `127.0.0.1:9090`); `off` disables it.
    #[arg(long, env = "AIMESH_METRICS_ADDR", default_value = "off")]
    pub metrics_addr: String,

    /// How long in-flight requests may take to finish after SIGTERM, in seconds.
    #[arg(long, env = "AIMESH_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// TLS on the gRPC listener (and mutual TLS), and for calls to other services.
    #[command(flatten)]
    pub tls: crate::tls::TlsConfig,
}

impl ServerConfig {
    /// Returns the database URL to connect to: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> SecretString {
        match &self.database_url {
            Some(url) => url.clone(),
            None => {
                let path = self.data_dir.join("aimesh.db");
                SecretString::from(format!("sqlite://{}?mode=rwc", path.display()))
            }
        }
    }

    /// Returns the metrics address, or `None` when metrics are off.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, std::net::AddrParseError> {
        match self.metrics_addr.trim() {
            "" | "off" | "none" => Ok(None),
            addr => addr.parse().map(Some),
        }
    }

    /// Returns the shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// Returns a configuration for tests: port 0, a given data directory, no grace period.
    pub fn for_tests(data_dir: PathBuf, database_url: Option<String>) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            database_url: database_url.map(SecretString::from),
            db_max_connections: 8,
            db_statement_timeout_secs: 30,
            db_idle_in_transaction_timeout_secs: 60,
            auto_migrate: true,
            metrics_addr: "127.0.0.1:0".into(),
            shutdown_grace_secs: 1,
            tls: crate::tls::TlsConfig::default(),
        }
    }

    /// Returns whether the database is SQLite, for logs (never the URL itself).
    pub fn database_kind(&self) -> &'static str {
        if self.database_url().expose_secret().starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Logging and tracing settings.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryConfig {
    /// Log filter in `tracing` EnvFilter syntax.
    #[arg(long, env = "AIMESH_LOG", default_value = "info")]
    pub log: String,

    /// Log format.
    #[arg(long, env = "AIMESH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,

    /// OTLP/gRPC endpoint for traces; tracing export is off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Service name reported on spans.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "aimesh")]
    pub service_name: String,
}

fn parse_secret(value: &str) -> Result<SecretString, String> {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(SecretString::from(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_database_is_sqlite_in_data_dir() {
        let cfg = ServerConfig::for_tests(PathBuf::from("/srv/aimesh"), None);
        assert_eq!(
            cfg.database_url().expose_secret(),
            "sqlite:///srv/aimesh/aimesh.db?mode=rwc"
        );
        assert_eq!(cfg.database_kind(), "sqlite");
    }

    #[test]
    fn database_url_is_redacted_in_debug() {
        let cfg = ServerConfig::for_tests(
            PathBuf::from("d"),
            Some("postgres://u:hunter2@db/aimesh".into()),
        );
        assert!(!format!("{cfg:?}").contains("hunter2"));
        assert_eq!(cfg.database_kind(), "postgres");
    }
}
