//! `aimesh-bench soak`: holds a running mesh (`--addr`) under a steady notes load for a long
//! while: it measures the capacity first (calls back to back), then offers a share of it
//! (`--load`, 80% by default) and reports the errors and, given `--server-pid`, the server's
//! resident memory at the start and the end of the soak.
//!
//! One user drives the whole load: run the mesh without the per-user rate limit
//! (`AIMESH_RATE_LIMIT_PER_SEC=0`).

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use aimesh_proto::{
    identity::v1::{LoginRequest, RegisterRequest, identity_service_client::IdentityServiceClient},
    notes::v1::{self as pb, notes_service_client::NotesServiceClient},
};
use anyhow::Context;
use hdrhistogram::Histogram;
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};

/// Options of the soak.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// The mesh's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// The server's process id: its resident memory (VmRSS) is reported.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds the soak runs.
    #[arg(long, default_value_t = 300)]
    duration_secs: u64,
    /// Seconds the capacity is measured for, before the soak.
    #[arg(long, default_value_t = 15)]
    probe_secs: u64,
    /// Share of the measured capacity offered during the soak.
    #[arg(long, default_value_t = 0.8)]
    load: f64,
    /// Calls in flight at once while the capacity is measured; the soak's callers.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// HTTP/2 connections the callers share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 30)]
    report_secs: u64,
}

type Notes = NotesServiceClient<InterceptedService<Channel, Authorization>>;

/// Adds the soak user's token to every call.
#[derive(Clone)]
struct Authorization(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Authorization {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// What a phase counted.
struct Tally {
    ok: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    latency: Mutex<Histogram<u64>>,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            ok: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        })
    }

    fn record(&self, sent: Instant, result: Result<(), tonic::Status>) {
        match result {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                let micros = sent.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                let _ = self
                    .latency
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(micros);
            }
            Err(status) => {
                *self
                    .errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(format!("{:?}", status.code()))
                    .or_default() += 1;
            }
        }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    fn errors(&self) -> u64 {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    fn error_codes(&self) -> String {
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.is_empty() {
            return "none".into();
        }
        errors
            .iter()
            .map(|(code, count)| format!("{code} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn millis(&self, quantile: f64) -> f64 {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .value_at_quantile(quantile) as f64
            / 1000.0
    }
}

/// Runs the soak.
pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.load > 0.0 && options.load <= 1.0,
        "--load must be in (0, 1]"
    );
    let concurrency = options.concurrency.max(1);
    let mut channels = Vec::new();
    for _ in 0..options.connections.max(1) {
        channels.push(
            Endpoint::from_shared(format!("http://{}", options.addr))?
                .tcp_nodelay(true)
                .connect_timeout(Duration::from_secs(10))
                .connect()
                .await
                .with_context(|| format!("failed to connect to {}", options.addr))?,
        );
    }
    let authorization = login(channels[0].clone()).await?;
    let clients: Vec<Notes> = (0..concurrency)
        .map(|i| {
            NotesServiceClient::with_interceptor(
                channels[i % channels.len()].clone(),
                authorization.clone(),
            )
        })
        .collect();
    // One note per caller to read, created up front.
    let mut ids = Vec::with_capacity(concurrency);
    for (i, client) in clients.iter().enumerate() {
        let note = client
            .clone()
            .create_note(note_request(i as u64))
            .await?
            .into_inner()
            .note
            .context("created note")?;
        ids.push(note.id);
    }
    let rss = |pid: Option<u32>| pid.and_then(|pid| crate::watch::rss_kib(pid).ok());
    let baseline = rss(options.server_pid);

    // Capacity: calls back to back.
    let probe = Arc::new(Tally::new()?);
    let probe_time = Duration::from_secs(options.probe_secs.max(1));
    let started = Instant::now();
    let deadline = started + probe_time;
    let mut callers = tokio::task::JoinSet::new();
    for (i, client) in clients.iter().enumerate() {
        let (client, id, probe) = (client.clone(), ids[i].clone(), probe.clone());
        callers.spawn(async move {
            let mut n = i as u64;
            while Instant::now() < deadline {
                n += concurrency as u64;
                let sent = Instant::now();
                probe.record(sent, call(&client, &id, n).await);
            }
        });
    }
    callers.join_all().await;
    let capacity = probe.ok() as f64 / started.elapsed().as_secs_f64();
    println!(
        "soak: capacity {capacity:.0} calls/s ({concurrency} in flight for {}s, errors: {}; \
         GetNote 3 : CreateNote 1)",
        options.probe_secs,
        probe.error_codes()
    );
    anyhow::ensure!(capacity >= 1.0, "no capacity measured");

    // The soak: each caller on a fixed schedule, together `load` of the capacity.
    let target = capacity * options.load;
    let period = Duration::from_secs_f64(concurrency as f64 / target);
    let duration = Duration::from_secs(options.duration_secs);
    println!(
        "soak: offering {:.0}% = {target:.0} calls/s for {}s",
        options.load * 100.0,
        options.duration_secs
    );
    let rss_start = rss(options.server_pid);
    let soak = Arc::new(Tally::new()?);
    let started = Instant::now();
    let deadline = started + duration;
    let mut callers = tokio::task::JoinSet::new();
    for (i, client) in clients.iter().enumerate() {
        let (client, id, soak) = (client.clone(), ids[i].clone(), soak.clone());
        // Spread the callers' ticks over the period.
        let first = tokio::time::Instant::now() + period.mul_f64(i as f64 / concurrency as f64);
        callers.spawn(async move {
            let mut tick = tokio::time::interval_at(first, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = i as u64;
            loop {
                tick.tick().await;
                if Instant::now() >= deadline {
                    break;
                }
                n += concurrency as u64;
                let sent = Instant::now();
                soak.record(sent, call(&client, &id, n).await);
            }
        });
    }
    let report = Duration::from_secs(options.report_secs.max(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(report) => {}
            _ = async { while callers.join_next().await.is_some() {} } => break,
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "soak: {elapsed:>6.0}s {:>10} calls {:>8.0} calls/s {:>6} errors   server RSS {}",
            soak.ok(),
            soak.ok() as f64 / elapsed,
            soak.errors(),
            show_kib(rss(options.server_pid))
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rss_end = rss(options.server_pid);

    println!(
        "soak: {} calls in {elapsed:.0}s ({:.0} calls/s), errors: {}; latency p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms",
        soak.ok() + soak.errors(),
        soak.ok() as f64 / elapsed,
        soak.error_codes(),
        soak.millis(0.5),
        soak.millis(0.99),
        soak.millis(1.0)
    );
    println!(
        "soak: server RSS {} before the probe, {} at the soak's start, {} at its end",
        show_kib(baseline),
        show_kib(rss_start),
        show_kib(rss_end)
    );
    // One line for scripts.
    println!(
        "soak-summary capacity={capacity:.0} rate={:.0} calls={} errors={} rss_start_kib={} \
         rss_end_kib={}",
        soak.ok() as f64 / elapsed,
        soak.ok() + soak.errors(),
        soak.errors(),
        rss_start.map_or("-".into(), |kib| kib.to_string()),
        rss_end.map_or("-".into(), |kib| kib.to_string()),
    );
    Ok(())
}

/// One call of the mix: CreateNote every fourth, GetNote of the caller's note otherwise.
async fn call(client: &Notes, id: &str, n: u64) -> Result<(), tonic::Status> {
    let mut client = client.clone();
    if n.is_multiple_of(4) {
        client.create_note(note_request(n)).await.map(drop)
    } else {
        client
            .get_note(pb::GetNoteRequest { id: id.into() })
            .await
            .map(drop)
    }
}

/// Registers a user of its own and returns its `authorization` header value.
async fn login(channel: Channel) -> anyhow::Result<Authorization> {
    let mut identity = IdentityServiceClient::new(channel);
    let username = format!("soak{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let email = format!("{username}@example.com");
    let password = "Soak-Test-Secret-42";
    identity
        .register(RegisterRequest {
            username,
            email: email.clone(),
            password: password.into(),
            password2: password.into(),
        })
        .await
        .context("failed to register the soak's user")?;
    let access = identity
        .login(LoginRequest {
            email,
            username: String::new(),
            password: password.into(),
        })
        .await?
        .into_inner()
        .access;
    Ok(Authorization(format!("Bearer {access}").parse()?))
}

fn note_request(n: u64) -> pb::CreateNoteRequest {
    pb::CreateNoteRequest {
        note: Some(pb::Note {
            title: format!("soak note {n}"),
            original_text: "The weather is nice today. Machine translation is useful.".into(),
            original_language: "en".into(),
            ..Default::default()
        }),
    }
}

fn show_kib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |kib| {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    })
}
