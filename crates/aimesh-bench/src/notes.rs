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

use crate::documents::median;

/// Options of the notes benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Rounds of the read scenarios (the Checks and GetNote, each in turn, the order reversed
    /// every other round); ratios are taken round by round and summed up by their median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
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

/// Ratios as "median (lowest–highest)" (the upper median of an even count).
fn spread(ratios: Vec<f64>) -> String {
    let (low, high) = ratios.iter().fold((f64::MAX, f64::MIN), |(low, high), &r| {
        (low.min(r), high.max(r))
    });
    format!("{:.2}x ({low:.2}–{high:.2}x)", median(ratios))
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
    // An interceptor stamping the bearer token on each call (or on none: the bare Check).
    let stamp = |with_token: bool| {
        let bearer = bearer.clone();
        move |mut request: tonic::Request<()>| {
            if with_token {
                request
                    .metadata_mut()
                    .insert("authorization", bearer.clone());
            }
            Ok(request)
        }
    };
    let authed = |channel: Channel| NotesServiceClient::with_interceptor(channel, stamp(true));
    // The workers of a health Check scenario.
    let checks = |with_token: bool| {
        let (channels, stamp) = (&notes_channels, &stamp);
        move |worker: usize| {
            let client = HealthClient::with_interceptor(
                channels[worker % channels.len()].clone(),
                stamp(with_token),
            );
            move || {
                let mut client = client.clone();
                async move { client.check(HealthCheckRequest::default()).await.map(drop) }
            }
        }
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
    let (bare, with_token) = (checks(false), checks(true));
    let get_note = |worker: usize| {
        let client = authed(notes_channels[worker % notes_channels.len()].clone());
        let id = ids[worker].clone();
        move || {
            let mut client = client.clone();
            let id = id.clone();
            async move { client.get_note(pb::GetNoteRequest { id }).await.map(drop) }
        }
    };
    // Per round: the bare Check, the Check with the token, GetNote. The Check with the token
    // carries GetNote's headers: health is public, so the token is only received (HPACK-decoded
    // by h2), never checked, and GetNote against it is what aimesh adds to a call:
    // authentication, the handler and its larger response.
    let mut reads: [Vec<Outcome>; 3] = Default::default();
    for round in 0..options.rounds {
        let mut order = [0, 1, 2];
        if round % 2 == 1 {
            order.reverse();
        }
        for which in order {
            let outcome = match which {
                0 => scenario("health Check (ceiling)", &options, duration, &bare).await,
                1 => scenario("Check with the token", &options, duration, &with_token).await,
                _ => scenario("GetNote (cache hit)", &options, duration, &get_note).await,
            };
            reads[which].push(outcome);
        }
    }
    let create = scenario("CreateNote", &options, duration, &|worker| {
        let client = authed(notes_channels[worker % notes_channels.len()].clone());
        move || {
            let mut client = client.clone();
            async move { client.create_note(note_request(worker)).await.map(drop) }
        }
    })
    .await;

    println!();
    println!(
        "{:<24} {:>6} {:>10} {:>8} {:>12} {:>10} {:>10}",
        "scenario", "round", "requests", "errors", "req/s", "p50 µs", "p99 µs"
    );
    let rounds = reads
        .iter()
        .flat_map(|outcomes| outcomes.iter().enumerate());
    for (round, outcome) in rounds.chain([(0, &create)]) {
        println!(
            "{:<24} {:>6} {:>10} {:>8} {:>12.0} {:>10.0} {:>10.0}",
            outcome.name,
            round + 1,
            outcome.requests,
            outcome.errors,
            outcome.rate(),
            outcome.micros(0.5),
            outcome.micros(0.99)
        );
    }
    let [check, check_token, get] = &reads;
    let ratios = |over: &[Outcome]| {
        spread(
            get.iter()
                .zip(over)
                .map(|(get, check)| get.rate() / check.rate())
                .collect(),
        )
    };
    println!();
    println!(
        "GetNote / Check throughput, round by round: {} (/ Check with the token: {})",
        ratios(check),
        ratios(check_token)
    );
    let checks: Vec<f64> = check.iter().map(Outcome::rate).collect();
    println!(
        "CreateNote / Check (the median round's): {:.2}x",
        create.rate() / median(checks)
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
    make_worker: &M,
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
