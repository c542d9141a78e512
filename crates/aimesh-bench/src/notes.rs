//! `aimesh-bench notes`: drives the notes API and, in the same run, the same server's
//! `grpc.health.v1` Check — a no-op behind the same server builder and layers, GetNote's
//! ceiling — with the same client, concurrency and duration, then prints throughput and
//! latency side by side.

use std::{
    future::Future,
    net::SocketAddr,
    time::{Duration, Instant},
};

use aimesh::{Mesh, MeshConfig, ServiceKind};
use aimesh_proto::{
    identity::v1::{LoginRequest, RegisterRequest, identity_service_client::IdentityServiceClient},
    notes::v1::{self as pb, notes_service_client::NotesServiceClient},
};
use anyhow::Context;
use hdrhistogram::Histogram;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Options of the notes benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections the clients share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Database for the notes server (default: SQLite in a temporary directory).
    #[arg(long, env = "AIMESH_BENCH_DATABASE_URL")]
    database_url: Option<String>,
}

/// What one scenario measured.
struct Outcome {
    name: &'static str,
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn micros(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64
    }
}

/// Runs the notes benchmark.
pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let duration = Duration::from_secs(options.duration_secs);

    let data = tempfile::tempdir()?;
    let mut config = MeshConfig::for_tests(data.path().to_path_buf(), options.database_url.clone());
    config.server.db_max_connections = 16;
    // One user drives all the load: the per-user rate limit would measure itself.
    config.auth.rate_limit_per_sec = 0;
    let mesh = Mesh::build(&config, &[ServiceKind::Identity, ServiceKind::Notes]).await?;
    let notes_addr = mesh.local_addr();
    let shutdown = mesh.shutdown_token();
    let server = tokio::spawn(mesh.run_until_stopped());

    let notes_channels = channels(notes_addr, options.connections).await?;

    let bearer = login(notes_channels[0].clone()).await?;
    let authed = |channel: Channel| {
        let bearer = bearer.clone();
        NotesServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            Ok(request)
        })
    };

    // Notes the GetNote workers read: one per worker, created (and cached) up front.
    let mut ids = Vec::with_capacity(options.concurrency);
    let mut client = authed(notes_channels[0].clone());
    for i in 0..options.concurrency {
        let note = client
            .create_note(note_request(i))
            .await?
            .into_inner()
            .note
            .context("created note")?;
        client
            .get_note(pb::GetNoteRequest {
                id: note.id.clone(),
            })
            .await?;
        ids.push(note.id);
    }

    println!(
        "aimesh-bench: {} in flight over {} connections, {}s per scenario, notes on {}",
        options.concurrency,
        options.connections,
        options.duration_secs,
        if options.database_url.is_some() {
            "the given database"
        } else {
            "SQLite"
        }
    );
    let check = scenario("health Check (ceiling)", &options, duration, |worker| {
        let client = HealthClient::new(notes_channels[worker % notes_channels.len()].clone());
        move || {
            let mut client = client.clone();
            async move {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map(drop)
            }
        }
    })
    .await;
    let get = scenario("GetNote (cache hit)", &options, duration, |worker| {
        let client = authed(notes_channels[worker % notes_channels.len()].clone());
        let id = ids[worker].clone();
        move || {
            let mut client = client.clone();
            let id = id.clone();
            async move { client.get_note(pb::GetNoteRequest { id }).await.map(drop) }
        }
    })
    .await;
    let create = scenario("CreateNote", &options, duration, |worker| {
        let client = authed(notes_channels[worker % notes_channels.len()].clone());
        move || {
            let mut client = client.clone();
            async move { client.create_note(note_request(worker)).await.map(drop) }
        }
    })
    .await;

    println!();
    println!(
        "{:<24} {:>10} {:>8} {:>12} {:>10} {:>10}",
        "scenario", "requests", "errors", "req/s", "p50 µs", "p99 µs"
    );
    for outcome in [&check, &get, &create] {
        println!(
            "{:<24} {:>10} {:>8} {:>12.0} {:>10.0} {:>10.0}",
            outcome.name,
            outcome.requests,
            outcome.errors,
            outcome.rate(),
            outcome.micros(0.5),
            outcome.micros(0.99)
        );
    }
    println!();
    println!(
        "GetNote / Check throughput: {:.2}x   CreateNote / Check: {:.2}x",
        get.rate() / check.rate(),
        create.rate() / check.rate()
    );

    shutdown.cancel();
    server.await??;
    Ok(())
}

/// Registers the benchmark's user and returns its `authorization` header value.
pub(crate) async fn login(
    channel: Channel,
) -> anyhow::Result<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> {
    let mut identity = IdentityServiceClient::new(channel);
    identity
        .register(RegisterRequest {
            username: "bench".into(),
            email: "bench@example.com".into(),
            password: "Load-Test-Secret-42".into(),
            password2: String::new(),
        })
        .await?;
    let access = identity
        .login(LoginRequest {
            email: "bench@example.com".into(),
            username: String::new(),
            password: "Load-Test-Secret-42".into(),
        })
        .await?
        .into_inner()
        .access;
    Ok(format!("Bearer {access}").parse()?)
}

fn note_request(i: usize) -> pb::CreateNoteRequest {
    pb::CreateNoteRequest {
        note: Some(pb::Note {
            title: format!("benchmark note {i}"),
            original_text: "The weather is nice today. Machine translation is useful.".into(),
            original_language: "en".into(),
            ..Default::default()
        }),
    }
}

async fn channels(addr: SocketAddr, count: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        channels.push(
            Endpoint::from_shared(format!("http://{addr}"))?
                .tcp_nodelay(true)
                .connect()
                .await?,
        );
    }
    Ok(channels)
}

/// Runs `concurrency` workers, each issuing calls back to back until `duration` has passed.
/// `make_worker(i)` returns worker `i`'s call: a closure producing one request future.
async fn scenario<M, W, Fut>(
    name: &'static str,
    options: &Options,
    duration: Duration,
    make_worker: M,
) -> Outcome
where
    M: Fn(usize) -> W,
    W: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    // Warm connections and caches up, unmeasured.
    let mut warm = make_worker(0);
    let warm_until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < warm_until {
        let _ = warm().await;
    }

    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..options.concurrency)
        .map(|worker| {
            let mut call = make_worker(worker);
            tokio::spawn(async move {
                let mut latency =
                    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
                let (mut requests, mut errors) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    match call().await {
                        Ok(()) => {
                            let micros = sent.elapsed().as_micros().max(1) as u64;
                            let _ = latency.record(micros.min(60_000_000));
                            requests += 1;
                        }
                        Err(_) => errors += 1,
                    }
                }
                (latency, requests, errors)
            })
        })
        .collect();

    let mut outcome = Outcome {
        name,
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
    };
    for task in tasks {
        let (latency, requests, errors) = task.await.expect("benchmark worker panicked");
        outcome.latency.add(&latency).expect("same bounds");
        outcome.requests += requests;
        outcome.errors += errors;
    }
    outcome.elapsed = start.elapsed();
    outcome
}
