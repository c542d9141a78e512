//! `aimesh-bench jobs`: no-op jobs through the real engine on PostgreSQL — submitted from
//! several concurrent clients, claimed by several workers — measuring throughput from the first
//! submission to the last completion, and the latency from submission to a handler starting.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use aimesh_jobs::{
    JobContext, JobError, JobHandler, JobOutput, JobState, Jobs, SubmitOptions, WorkerCommits,
    WorkerConfig,
};
use aimesh_kit::db::{Db, DbOptions};
use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

/// Options of the jobs benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// Jobs to run.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Worker instances (each with its own claim loop and lease).
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Jobs each worker runs at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Jobs submitted afterwards at 200 jobs/s to measure unsaturated start latency.
    #[arg(long, default_value_t = 1000)]
    paced_jobs: usize,
    /// Concurrent submitters.
    #[arg(long, default_value_t = 16)]
    submitters: usize,
    /// Workers' writes commit without waiting for their WAL flush (`AIMESH_JOB_WORKER_COMMITS=
    /// async`); submissions stay durable.
    #[arg(long)]
    async_worker_commits: bool,
    /// An empty PostgreSQL database to use (its jobs table is created and emptied). By default
    /// the local server over plain TCP, as the peer reaches its Redis: a local server that offers
    /// TLS would otherwise encrypt every statement on aimesh's side alone.
    #[arg(
        long,
        env = "AIMESH_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/aimesh_bench?sslmode=disable"
    )]
    database_url: String,
}

/// Does nothing but record when it started.
struct Noop {
    started: Arc<Mutex<Histogram<u64>>>,
    done: Arc<AtomicUsize>,
}

impl JobHandler for Noop {
    fn kind(&self) -> &'static str {
        "bench.noop"
    }

    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let waited = (chrono::Utc::now() - ctx.job.created_at)
            .num_microseconds()
            .unwrap_or(0)
            .max(1) as u64;
        let _ = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(waited.min(600_000_000));
        self.done.fetch_add(1, Ordering::Relaxed);
        Box::pin(async {
            Ok(JobOutput {
                type_name: "google.protobuf.Empty".into(),
                value: Vec::new(),
            })
        })
    }
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    ensure_database(&options.database_url).await?;
    let db = Db::connect(
        &SecretString::from(options.database_url.clone()),
        &DbOptions {
            max_connections: (options.workers * 4 + options.submitters).max(8) as u32,
            ..DbOptions::default()
        },
    )
    .await?;
    db.migrate(&aimesh_jobs::MIGRATIONS).await?;
    if let Db::Postgres(pool) = &db {
        sqlx::query("TRUNCATE jobs").execute(pool).await?;
    }
    let shutdown = CancellationToken::new();
    let worker_commits = if options.async_worker_commits {
        WorkerCommits::Asynchronous
    } else {
        WorkerCommits::Durable
    };
    let jobs = Jobs::start(db.clone(), worker_commits, shutdown.clone()).await?;
    let started = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        600_000_000,
        3,
    )?));
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..options.workers)
        .map(|_| {
            let handler: Arc<dyn JobHandler> = Arc::new(Noop {
                started: started.clone(),
                done: done.clone(),
            });
            let worker = jobs.worker(
                vec![handler],
                WorkerConfig {
                    concurrency: options.concurrency,
                    ..WorkerConfig::default()
                },
            );
            tokio::spawn(worker.run(shutdown.clone()))
        })
        .collect();

    let begin = Instant::now();
    let per = options.jobs.div_ceil(options.submitters);
    let submitters: Vec<_> = (0..options.submitters)
        .map(|s| {
            let jobs = jobs.clone();
            let count = per.min(options.jobs.saturating_sub(s * per));
            tokio::spawn(async move {
                for _ in 0..count {
                    jobs.submit("bench", "bench.noop", Vec::new(), SubmitOptions::default())
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for submitter in submitters {
        submitter.await??;
    }
    let submitted = begin.elapsed();
    while done.load(Ordering::Relaxed) < options.jobs {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Wait for the last outcomes to be recorded, not just for the handlers to have run.
    loop {
        let (queued, running) = (
            count(&db, JobState::Queued).await?,
            count(&db, JobState::Running).await?,
        );
        if queued + running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = begin.elapsed();
    let saturated = started.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // Unsaturated: jobs submitted at a steady rate far below capacity, so the latency is the
    // engine's wake-up and claim, not time spent queued behind other jobs.
    let paced = options.paced_jobs;
    started.lock().unwrap_or_else(|e| e.into_inner()).reset();
    let target = done.load(Ordering::Relaxed) + paced;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    for _ in 0..paced {
        tick.tick().await;
        jobs.submit("bench", "bench.noop", Vec::new(), SubmitOptions::default())
            .await?;
    }
    while done.load(Ordering::Relaxed) < target {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let paced_latency = started.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let saturated_latency = saturated;

    shutdown.cancel();
    for worker in workers {
        let _ = worker.await;
    }
    println!(
        "aimesh jobs (PostgreSQL, {} workers x {} slots, {} submitters, {:?} worker commits): \
         {} no-op jobs",
        options.workers, options.concurrency, options.submitters, worker_commits, options.jobs
    );
    println!(
        "  submitted in {:.2}s, all completed in {:.2}s",
        submitted.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  throughput {:.0} jobs/s   enqueue-to-start while saturated p50 {:.2} ms  p99 {:.2} ms",
        options.jobs as f64 / elapsed.as_secs_f64(),
        saturated_latency.value_at_quantile(0.5) as f64 / 1000.0,
        saturated_latency.value_at_quantile(0.99) as f64 / 1000.0
    );
    println!(
        "  enqueue-to-start at 200 jobs/s ({paced} jobs): p50 {:.2} ms  p99 {:.2} ms",
        paced_latency.value_at_quantile(0.5) as f64 / 1000.0,
        paced_latency.value_at_quantile(0.99) as f64 / 1000.0
    );
    jobs.close().await;
    db.close().await;
    Ok(())
}

/// Counts the jobs in `state`.
async fn count(db: &Db, state: JobState) -> anyhow::Result<i64> {
    let Db::Postgres(pool) = db else {
        anyhow::bail!("the jobs benchmark runs on PostgreSQL");
    };
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE state = $1")
        .bind(state.as_str())
        .fetch_one(pool)
        .await?;
    Ok(count)
}

/// Creates the benchmark database if the server lacks it.
pub(crate) async fn ensure_database(url: &str) -> anyhow::Result<()> {
    use sqlx::{ConnectOptions, Connection, postgres::PgConnectOptions};
    let options: PgConnectOptions = url.parse()?;
    let name = options.get_database().unwrap_or("aimesh_bench").to_owned();
    let mut admin = options.database("postgres").connect().await?;
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await?;
    if exists.is_none() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{}\"",
            name.replace('"', "")
        )))
        .execute(&mut admin)
        .await?;
    }
    admin.close().await?;
    Ok(())
}
