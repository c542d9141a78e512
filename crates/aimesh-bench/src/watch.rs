//! `aimesh-bench watch`: opens many WatchJob streams from one client against an `aimesh serve`
//! child process, measures the server's resident memory per open stream, then cancels the
//! watched jobs and measures how long each stream takes to deliver the change.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use aimesh_proto::{
    jobs::v1::{CancelJobRequest, WatchJobRequest, jobs_service_client::JobsServiceClient},
    notes::v1::{self as pb, notes_service_client::NotesServiceClient},
};
use anyhow::Context;
use hdrhistogram::Histogram;
use tonic::transport::Endpoint;

/// Options of the watch benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// Streams to open.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// HTTP/2 connections to spread them over.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Jobs watched (each by streams / jobs streams).
    #[arg(long, default_value_t = 100)]
    jobs: usize,
    /// The aimesh binary (default: next to this one).
    #[arg(long)]
    aimesh: Option<PathBuf>,
}

/// A process's resident memory, from `/proc/<pid>/status`.
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let aimesh = match options.aimesh.clone() {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("no binary directory")?
            .join("aimesh"),
    };
    let data = tempfile::tempdir()?;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?.port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut server = std::process::Command::new(&aimesh)
        .args(["serve", "--grpc-addr", &addr])
        .arg("--data-dir")
        .arg(data.path())
        .env("AIMESH_WORKER", "off")
        .env("AIMESH_WATCH_STREAMS_PER_USER", "100000")
        .env("AIMESH_WATCH_STREAMS", "100000")
        .env("AIMESH_RATE_LIMIT_PER_SEC", "0")
        .env("AIMESH_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("failed to start {}", aimesh.display()))?;
    let result = drive(&options, &addr, server.id()).await;
    let _ = server.kill();
    let _ = server.wait();
    result
}

async fn drive(options: &Options, addr: &str, pid: u32) -> anyhow::Result<()> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true);
    let mut first = None;
    for _ in 0..100 {
        if let Ok(channel) = endpoint.connect().await {
            first = Some(channel);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = first.context("the server did not start")?;
    let bearer = crate::notes::login(first.clone()).await?;
    let with_auth = || {
        let bearer = bearer.clone();
        move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            Ok(request)
        }
    };
    let mut notes = NotesServiceClient::with_interceptor(first.clone(), with_auth());
    let note = notes
        .create_note(pb::CreateNoteRequest {
            note: Some(pb::Note {
                title: "watched".into(),
                original_text: "The weather is nice today.".into(),
                original_language: "en".into(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .note
        .context("note")?;
    let mut job_ids = Vec::with_capacity(options.jobs);
    for _ in 0..options.jobs {
        let job = notes
            .translate_note(pb::TranslateNoteRequest {
                id: note.id.clone(),
                target_language: "es".into(),
                ..Default::default()
            })
            .await
            .context("TranslateNote failed: is Apertium with eng-spa installed?")?
            .into_inner()
            .job
            .context("job")?;
        job_ids.push(job.id);
    }

    let mut channels = Vec::with_capacity(options.connections);
    for _ in 0..options.connections.max(1) {
        channels.push(endpoint.connect().await?);
    }
    let rss_before = rss_kib(pid)?;
    let opened = Instant::now();
    let mut streams = Vec::with_capacity(options.streams);
    for chunk in (0..options.streams).collect::<Vec<_>>().chunks(500) {
        let opening = chunk.iter().map(|&i| {
            let channel = channels[i % channels.len()].clone();
            let mut jobs = JobsServiceClient::with_interceptor(channel, with_auth());
            let job = i % job_ids.len();
            let id = job_ids[job].clone();
            async move {
                let mut stream = jobs.watch_job(WatchJobRequest { id }).await?.into_inner();
                stream.message().await?.context("snapshot")?;
                anyhow::Ok((job, stream))
            }
        });
        for opened in futures::future::join_all(opening).await {
            streams.push(opened?);
        }
    }
    let open_time = opened.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_open = rss_kib(pid)?;

    // Each stream waits for its job's next state; the jobs are then cancelled.
    let cancel_times: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; job_ids.len()]));
    let waiters: Vec<_> = streams
        .into_iter()
        .map(|(job, mut stream)| {
            tokio::spawn(async move {
                let got = stream.message().await;
                (
                    job,
                    Instant::now(),
                    got.map(|m| m.is_some()).unwrap_or(false),
                )
            })
        })
        .collect();
    let mut jobs = JobsServiceClient::with_interceptor(first.clone(), with_auth());
    for (index, id) in job_ids.iter().enumerate() {
        cancel_times.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(Instant::now());
        jobs.cancel_job(CancelJobRequest { id: id.clone() }).await?;
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut delivered = 0usize;
    for waiter in waiters {
        let (job, received, ok) = waiter.await?;
        if !ok {
            continue;
        }
        delivered += 1;
        let sent = cancel_times.lock().unwrap_or_else(|e| e.into_inner())[job];
        if let Some(sent) = sent {
            let micros = received.saturating_duration_since(sent).as_micros().max(1) as u64;
            latency.record(micros.min(600_000_000))?;
        }
    }

    println!(
        "aimesh watch: {} WatchJob streams on {} connections, {} jobs",
        options.streams, options.connections, options.jobs
    );
    println!("  opened in {:.2}s", open_time.as_secs_f64());
    println!(
        "  server RSS {} KiB before, {} KiB with the streams open: {:.1} KiB per stream",
        rss_before,
        rss_open,
        (rss_open.saturating_sub(rss_before)) as f64 / options.streams as f64
    );
    println!(
        "  delivery of a change (cancel -> stream message): {} delivered, p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        delivered,
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0
    );
    Ok(())
}
