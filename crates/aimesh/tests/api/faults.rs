//! Faults injected with real processes, on PostgreSQL: the database taken away under a burst
//! of translation jobs and open watch streams, and `aimesh serve` sent SIGTERM under load.
//!
//! Each test runs `aimesh serve` as a child process and talks to it only as a client. The
//! database is stopped and started again on a PostgreSQL cluster of the test's own (made with
//! `initdb` in a temporary directory, on a free port); where none can be made, every
//! connection to the test's database on the shared server is terminated instead.

use std::{
    collections::HashMap,
    io::BufRead,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use aimesh_kit::testing::{Backend, TestDatabase};
use aimesh_proto::{
    identity::v1::{LoginRequest, identity_service_client::IdentityServiceClient},
    jobs::v1::{self as jpb, jobs_service_client::JobsServiceClient},
    notes::v1::{self as pb, notes_service_client::NotesServiceClient},
};
use tokio_util::sync::CancellationToken;
use tonic::{
    Code, Status,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{Bearer, JobsClient, NotesClient, PASSWORD, TestApp, create_note, get_note};

/// How long a debug build of the mesh may take to start (migrations included) on a loaded
/// machine. A hang guard, not a speed check.
const START_LIMIT: Duration = Duration::from_secs(120);

/// How long the jobs of a test may take to end after the fault. A hang guard.
const JOB_LIMIT: Duration = Duration::from_secs(180);

/// A short note: one translation job of a second or so.
const TEXT: &str = "The weather is nice today. Machine translation is useful.\n\nHello world!";

/// A note whose translation runs long enough to be under way when the database goes away.
fn long_text() -> String {
    "The house is big and the garden is green. "
        .repeat(100)
        .trim_end()
        .to_owned()
}

// === the mesh as a child process ===

/// An `aimesh serve` child process listening on a free port; its log lines (JSON) are kept
/// for failure messages. Dropping it kills the process.
struct Served {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Starts every service on `database_url`, with `env` on top of the test settings, and
    /// waits until its health says SERVING.
    ///
    /// The port is picked here (bound, then freed) rather than read from the log: a log line
    /// is no promise, health is.
    async fn start(database_url: &str, data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_aimesh"));
        // Only the settings below: none of the caller's, but where the tools are.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("AIMESH_") && !key.ends_with("_BIN") {
                command.env_remove(key.as_ref());
            }
        }
        command
            .arg("serve")
            .env("AIMESH_DATABASE_URL", database_url)
            .env("AIMESH_DATA_DIR", data_dir)
            .env("AIMESH_GRPC_ADDR", addr.to_string())
            .env("AIMESH_METRICS_ADDR", "off")
            // No model installed there: the AI engines stay unloaded, as in the other tests.
            .env("AIMESH_MODELS_DIR", data_dir.join("models"))
            .env("AIMESH_RATE_LIMIT_PER_SEC", "0")
            .env("AIMESH_WORKER_NAME", "faults")
            .env("AIMESH_LOG", "info")
            .env("AIMESH_LOG_FORMAT", "json")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("failed to start aimesh serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        std::thread::spawn({
            let log = log.clone();
            move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    log.lock().unwrap().push(line);
                }
            }
        });
        let mut served = Self { child, addr, log };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect_timeout(Duration::from_secs(2));
            if let Ok(channel) = endpoint.connect().await
                && serving_status(&mut HealthClient::new(channel)).await
                    == Some(ServingStatus::Serving)
            {
                return served;
            }
            let exited = served.child.try_wait().expect("the child's state");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "aimesh serve did not start serving on {addr} ({exited:?} within \
                 {START_LIMIT:?}):\n{}",
                served.tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new HTTP/2 connection to the server.
    async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .expect("failed to connect to aimesh serve")
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("failed to run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the process to exit; `None` when it still runs after `limit`.
    async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child's state") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last `lines` lines of the log, for failure messages.
    fn tail(&self, lines: usize) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let errors: Vec<String> = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|line| line.contains(r#""level":"ERROR""#))
                .cloned()
                .collect();
            eprintln!(
                "aimesh serve's errors:\n{}\naimesh serve's last log lines:\n{}",
                errors.join("\n"),
                self.tail(40)
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port of 127.0.0.1 free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|probe| probe.local_addr())
        .expect("a free port")
        .port()
}

// === a PostgreSQL cluster of the test's own ===

/// A PostgreSQL cluster in a temporary directory, on a free port of 127.0.0.1, which the test
/// stops and starts. `initdb` refuses to run as root: as root, the cluster runs as the
/// `postgres` OS user. Dropping it stops the cluster at once.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    run_as: Option<&'static str>,
}

impl Cluster {
    /// Makes and starts a cluster, or says why this machine cannot.
    fn create() -> Result<Self, String> {
        let bin = postgres_bin().ok_or("no PostgreSQL server binaries (initdb, pg_ctl)")?;
        let run_as = if is_root() {
            let postgres_user = Command::new("id")
                .args(["-u", "postgres"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if !postgres_user {
                return Err("running as root, and there is no postgres user to run initdb".into());
            }
            Some("postgres")
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("aimesh-pg-")
            .tempdir()
            .map_err(|e| format!("no temporary directory: {e}"))?;
        if let Some(user) = run_as {
            run(Command::new("chown")
                .arg(format!("{user}:"))
                .arg(dir.path()))?;
        }
        let cluster = Self {
            bin,
            dir,
            port: free_port(),
            run_as,
        };
        cluster.pg(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
        )?;
        cluster.start()?;
        Ok(cluster)
    }

    /// The URL of the cluster's `postgres` database.
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the cluster and waits until it accepts connections.
    fn start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &options,
                "-w",
                "-t",
                "120",
                "start",
            ],
        )
    }

    /// Stops the cluster: `-m fast` ends every session (in-flight queries included).
    fn stop(&self) -> Result<(), String> {
        self.pg(
            "pg_ctl",
            &["-D", &self.data(), "-m", "fast", "-w", "-t", "120", "stop"],
        )
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    /// Runs one of the server's programs, as the cluster's user.
    fn pg(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        run(command.args(args))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

/// Runs a command to its end; its output is the error when it fails.
fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{command:?} did not run: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The directory of the newest installed PostgreSQL server's programs.
fn postgres_bin() -> Option<PathBuf> {
    let usable = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| usable(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    let bin = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    usable(&bin).then_some(bin)
}

/// Whether this process runs as root.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find_map(|line| line.strip_prefix("Uid:"))?;
            Some(uids.split_whitespace().next()? == "0")
        })
        .unwrap_or(false)
}

// === clients ===

/// A logged-in user's token.
struct User(Bearer);

impl User {
    /// Registers `username` and logs in over `channel`.
    async fn login(channel: &Channel, username: &str) -> Self {
        Self(Bearer::token(
            &TestApp::session_on(channel, username).await.access,
        ))
    }

    fn notes(&self, channel: &Channel) -> NotesClient {
        NotesServiceClient::with_interceptor(channel.clone(), self.0.clone())
    }

    fn jobs(&self, channel: &Channel) -> JobsClient {
        JobsServiceClient::with_interceptor(channel.clone(), self.0.clone())
    }
}

fn is_terminal(job: &jpb::Job) -> bool {
    [
        jpb::JobState::Succeeded,
        jpb::JobState::Failed,
        jpb::JobState::Cancelled,
    ]
    .iter()
    .any(|state| job.state == *state as i32)
}

/// The server's overall health, or `None` when the check itself failed.
async fn serving_status(client: &mut HealthClient<Channel>) -> Option<ServingStatus> {
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

/// Polls health until it reports `wanted`; returns how long that took.
async fn await_health(
    client: &mut HealthClient<Channel>,
    wanted: ServingStatus,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let status = serving_status(client).await;
        if status == Some(wanted) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "health still {status:?}, not {wanted:?}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a status is one a client retries: the service could not answer for now.
fn retryable(status: &Status) -> bool {
    status.code() == Code::Unavailable
}

/// How a watch follower's streams went.
#[derive(Default)]
struct WatchLog {
    /// The statuses streams ended with (or were refused with when opened), in order.
    ends: Vec<Status>,
    /// Every job snapshot received, with when.
    seen: Vec<(Instant, jpb::Job)>,
}

/// Follows one job over WatchJob as a client would: when a stream ends before the job's
/// terminal state, or is refused, it watches again, until `stop`.
async fn follow_job(mut jobs: JobsClient, id: String, stop: CancellationToken) -> WatchLog {
    let mut log = WatchLog::default();
    while !stop.is_cancelled() {
        let opened = tokio::select! {
            _ = stop.cancelled() => break,
            opened = jobs.watch_job(jpb::WatchJobRequest { id: id.clone() }) => opened,
        };
        match opened {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    let message = tokio::select! {
                        _ = stop.cancelled() => return log,
                        message = stream.message() => message,
                    };
                    match message {
                        Ok(Some(message)) => {
                            let job = message.job.unwrap();
                            let done = is_terminal(&job);
                            log.seen.push((Instant::now(), job));
                            if done {
                                return log;
                            }
                        }
                        Ok(None) => break,
                        Err(status) => {
                            log.ends.push(status);
                            break;
                        }
                    }
                }
            }
            Err(status) => log.ends.push(status),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    log
}

/// Follows every job of the caller over WatchJobs as a client would: when the stream ends or
/// is refused, it watches again, until `stop`.
async fn follow_all(mut jobs: JobsClient, stop: CancellationToken) -> WatchLog {
    let mut log = WatchLog::default();
    while !stop.is_cancelled() {
        let opened = tokio::select! {
            _ = stop.cancelled() => break,
            opened = jobs.watch_jobs(jpb::WatchJobsRequest {}) => opened,
        };
        match opened {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    let message = tokio::select! {
                        _ = stop.cancelled() => return log,
                        message = stream.message() => message,
                    };
                    match message {
                        Ok(Some(message)) => log.seen.push((Instant::now(), message.job.unwrap())),
                        Ok(None) => break,
                        Err(status) => {
                            log.ends.push(status);
                            break;
                        }
                    }
                }
            }
            Err(status) => log.ends.push(status),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    log
}

/// Asks for a translation into Spanish, retrying (with the same idempotency key) while the
/// service is unavailable; returns the job and every refusal met.
async fn submit(notes: &NotesClient, note_id: &str, key: &str) -> (jpb::Job, Vec<Status>) {
    let mut refusals = Vec::new();
    let deadline = Instant::now() + JOB_LIMIT;
    loop {
        let answer = notes
            .clone()
            .translate_note(pb::TranslateNoteRequest {
                id: note_id.into(),
                target_language: "es".into(),
                idempotency_key: key.into(),
                ..Default::default()
            })
            .await;
        match answer {
            Ok(response) => return (response.into_inner().job.unwrap(), refusals),
            Err(status) => {
                assert!(
                    Instant::now() < deadline,
                    "translation {key} still refused after {JOB_LIMIT:?}: {status:?}; \
                     refused before with {refusals:?}"
                );
                refusals.push(status);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

/// Reads a job until it is in a terminal state, retrying reads the service refuses for now.
async fn finished(jobs: &JobsClient, id: &str, deadline: Instant) -> jpb::Job {
    let mut last = None;
    loop {
        match jobs
            .clone()
            .get_job(jpb::GetJobRequest { id: id.into() })
            .await
        {
            Ok(response) => {
                let job = response.into_inner().job.unwrap();
                if is_terminal(&job) {
                    return job;
                }
                last = Some(job);
            }
            Err(status) => assert!(retryable(&status), "GetJob {id}: {status:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "job {id} not finished in time: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// === the database taken away ===

/// How the test takes the database away.
enum Outage {
    /// A cluster of the test's own, stopped and started again.
    Restart(Cluster),
    /// The test's database on the shared server, whose connections are all terminated.
    Sever { db: TestDatabase, name: String },
}

impl Outage {
    async fn prepare() -> Self {
        match tokio::task::spawn_blocking(Cluster::create).await.unwrap() {
            Ok(cluster) => Outage::Restart(cluster),
            Err(reason) => {
                eprintln!(
                    "fault suite: no PostgreSQL cluster of the test's own ({reason}): \
                     terminating the test database's connections instead of a restart"
                );
                let db = TestDatabase::create(Backend::Postgres).await;
                let name = db
                    .url
                    .rsplit('/')
                    .next()
                    .and_then(|tail| tail.split('?').next())
                    .unwrap()
                    .to_owned();
                Outage::Sever { db, name }
            }
        }
    }

    fn url(&self) -> String {
        match self {
            Outage::Restart(cluster) => cluster.url(),
            Outage::Sever { db, .. } => db.url.clone(),
        }
    }

    /// Takes the database away and brings it back; returns when it is back, with a line
    /// saying what health reported meanwhile.
    async fn strike(&self, health: &mut HealthClient<Channel>) -> (Instant, String) {
        match self {
            Outage::Restart(cluster) => {
                let stop = Instant::now();
                run_blocking(cluster, Cluster::stop);
                let stopped = stop.elapsed();
                await_health(health, ServingStatus::NotServing, Duration::from_secs(60)).await;
                let not_serving = stop.elapsed();
                // Down a little longer, for the burst to meet the outage.
                tokio::time::sleep(Duration::from_secs(2)).await;
                run_blocking(cluster, Cluster::start);
                let back = Instant::now();
                let down = stop.elapsed();
                let serving =
                    await_health(health, ServingStatus::Serving, Duration::from_secs(90)).await;
                let report = format!(
                    "database stopped (pg_ctl stop -m fast: {:.1}s), health NOT_SERVING {:.1}s \
                     after the stop began, started again after {:.1}s down, health SERVING \
                     {:.1}s after the restart",
                    stopped.as_secs_f64(),
                    not_serving.as_secs_f64(),
                    down.as_secs_f64(),
                    serving.as_secs_f64()
                );
                (back, report)
            }
            Outage::Sever { name, .. } => {
                let admin = std::env::var("AIMESH_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| aimesh_kit::testing::DEFAULT_TEST_POSTGRES_URL.into());
                let mut terminated = 0;
                for _ in 0..4 {
                    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                        .await
                        .expect("an administrator's connection");
                    let (count,): (i64,) = sqlx::query_as(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE datname = $1 AND pid <> pg_backend_pid()",
                    )
                    .bind(name)
                    .fetch_one(&mut connection)
                    .await
                    .expect("terminating the connections");
                    terminated += count;
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
                let status = serving_status(health).await;
                (
                    Instant::now(),
                    format!(
                        "{terminated} connections terminated in 4 rounds; health after: {status:?}"
                    ),
                )
            }
        }
    }
}

/// Runs a step of the cluster's on this worker thread (the runtime moves its other tasks
/// away meanwhile).
fn run_blocking(cluster: &Cluster, step: fn(&Cluster) -> Result<(), String>) {
    tokio::task::block_in_place(|| step(cluster)).unwrap_or_else(|e| panic!("{e}"));
}

/// Short notes translated in the burst.
const BURST: usize = 24;

/// Tasks submitting the burst at once.
const SUBMITTERS: usize = 3;

/// The database goes away (stopped and started again) while a burst of translation jobs is
/// being submitted and run, with WatchJob and WatchJobs streams open. Health says NOT_SERVING
/// while it is down and SERVING after; refused calls are UNAVAILABLE (and retried with their
/// idempotency keys); every job ends SUCCEEDED, one job per submission, one translation per
/// note; the streams end only with statuses a client retries, and watching again works.
async fn a_database_outage_loses_no_job() {
    let outage = Outage::prepare().await;
    let data = tempfile::tempdir().unwrap();
    let served = Served::start(
        &outage.url(),
        data.path(),
        &[
            ("AIMESH_JOB_LEASE_SECS", "3"),
            ("AIMESH_SHUTDOWN_GRACE_SECS", "5"),
        ],
    )
    .await;
    let channel = served.channel().await;
    let alice = User::login(&channel, "alice").await;
    let notes = alice.notes(&channel);
    let jobs = alice.jobs(&channel);
    let mut health_client = HealthClient::new(channel.clone());
    assert_eq!(
        serving_status(&mut health_client).await,
        Some(ServingStatus::Serving)
    );

    let long = create_note(&notes, "long", &long_text(), "en").await;
    let mut short = Vec::new();
    for i in 0..BURST {
        short.push(create_note(&notes, &format!("short {i}"), TEXT, "en").await);
    }

    // A long job, watched by itself, and every job over WatchJobs.
    let stop = CancellationToken::new();
    let (long_job, _) = submit(&notes, &long.id, "long").await;
    let long_watch = tokio::spawn(follow_job(jobs.clone(), long_job.id.clone(), stop.clone()));
    let all_watch = tokio::spawn(follow_all(jobs.clone(), stop.clone()));

    // The burst: several submitters at once (so that statements are in flight when the
    // database goes), each paced so that the burst spans the outage.
    let accepted = Arc::new(AtomicUsize::new(0));
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|submitter| {
            let notes = notes.clone();
            let ids: Vec<(usize, String)> = short
                .iter()
                .enumerate()
                .filter(|(i, _)| i % SUBMITTERS == submitter)
                .map(|(i, note)| (i, note.id.clone()))
                .collect();
            let accepted = accepted.clone();
            tokio::spawn(async move {
                let mut submitted = Vec::new();
                let mut refusals = Vec::new();
                for (i, id) in ids {
                    let (job, refused) = submit(&notes, &id, &format!("burst-{i}")).await;
                    submitted.push((id, job.id));
                    refusals.extend(refused);
                    accepted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                (submitted, refusals)
            })
        })
        .collect();
    aimesh_kit::testing::eventually(START_LIMIT, "half the burst accepted", || async {
        (accepted.load(Ordering::SeqCst) >= BURST / 2).then_some(())
    })
    .await;

    let struck = Instant::now();
    let (back, report) = outage.strike(&mut health_client).await;
    // Recovered: a call that needs the database answers again.
    let answered = aimesh_kit::testing::eventually(
        Duration::from_secs(90),
        "a call that reads the database answers again",
        || {
            let mut jobs = jobs.clone();
            async move {
                jobs.list_jobs(jpb::ListJobsRequest::default())
                    .await
                    .ok()
                    .map(|_| back.elapsed())
            }
        },
    )
    .await;

    let mut submitted = Vec::new();
    let mut refusals = Vec::new();
    for submitter in submitters {
        let (jobs, refused) = submitter.await.unwrap();
        submitted.extend(jobs);
        refusals.extend(refused);
    }
    let deadline = Instant::now() + JOB_LIMIT;
    let mut ended = vec![finished(&jobs, &long_job.id, deadline).await];
    for (_, id) in &submitted {
        ended.push(finished(&jobs, id, deadline).await);
    }
    let recovered = struck.elapsed();
    // The watchers get a moment to see the last changes, then stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let long_log = long_watch.await.unwrap();
    let all_log = all_watch.await.unwrap();

    eprintln!(
        "fault suite: {report}; a database read answered {:.1}s after it was back; \
         {} submissions refused meanwhile ({:?}); all {} jobs ended {:.1}s after the fault, \
         {} of them after more than one attempt",
        answered.as_secs_f64(),
        refusals.len(),
        refusals.iter().map(Status::code).collect::<Vec<_>>(),
        ended.len(),
        recovered.as_secs_f64(),
        ended.iter().filter(|job| job.attempts > 1).count()
    );
    eprintln!(
        "fault suite figure: recovery {:.1}s, {} refusals, {} jobs ended ({} re-run)",
        answered.as_secs_f64(),
        refusals.len(),
        ended.len(),
        ended.iter().filter(|job| job.attempts > 1).count()
    );
    eprintln!(
        "fault suite: WatchJob ended {:?}; WatchJobs ended {:?}",
        long_log.ends.iter().map(Status::code).collect::<Vec<_>>(),
        all_log.ends.iter().map(Status::code).collect::<Vec<_>>(),
    );

    // Refused calls said UNAVAILABLE, and leaked nothing.
    for status in &refusals {
        crate::helpers::assert_code(status, Code::Unavailable);
    }
    // No job lost, none doubled.
    for job in &ended {
        assert_eq!(
            job.state,
            jpb::JobState::Succeeded as i32,
            "a job did not succeed: {job:?}\n{}",
            served.tail(40)
        );
        assert!(job.attempts <= job.max_attempts, "{job:?}");
    }
    let listed = jobs
        .clone()
        .list_jobs(jpb::ListJobsRequest {
            page_size: 100,
            kind: "notes.translate".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(listed.len(), BURST + 1, "one job per submission");
    for note in short.iter().chain([&long]) {
        let note = aimesh_kit::testing::eventually(
            Duration::from_secs(10),
            "the translation is visible",
            || async {
                let note = get_note(&notes, &note.id).await;
                (!note.translations.is_empty()).then_some(note)
            },
        )
        .await;
        assert_eq!(note.translations.len(), 1, "one translation: {note:?}");
        assert_eq!(note.translations[0].target_language, "es");
        assert!(!note.translations[0].text.is_empty());
    }

    // The streams ended only with statuses a client retries. WatchJobs also ends with ABORTED
    // when its server's listener reconnected: it may have missed changes, and says to watch
    // again and list the jobs.
    for status in &long_log.ends {
        assert!(retryable(status), "WatchJob ended with {status:?}");
    }
    for status in &all_log.ends {
        assert!(
            retryable(status) || status.code() == Code::Aborted,
            "WatchJobs ended with {status:?}"
        );
    }
    // Watching again works: the long job's watcher saw it succeed, and WatchJobs reported
    // changes made after the database was back.
    let (_, last) = long_log.seen.last().expect("the long job was seen");
    assert_eq!(last.state, jpb::JobState::Succeeded as i32, "{last:?}");
    assert!(
        all_log.seen.iter().any(|(at, _)| *at > back),
        "WatchJobs reported nothing after the database was back"
    );
    // No job was seen in two different terminal states.
    let mut terminal: HashMap<&str, i32> = HashMap::new();
    for (_, job) in all_log.seen.iter().chain(&long_log.seen) {
        if is_terminal(job) {
            let state = *terminal.entry(&job.id).or_insert(job.state);
            assert_eq!(state, job.state, "job {} ended twice differently", job.id);
        }
    }
}

// === SIGTERM under load ===

/// One unary call of the load: when it started and ended, and how.
struct Call {
    started: Instant,
    ended: Instant,
    method: &'static str,
    result: Result<(), Status>,
}

/// Calls per second the load aims at, spread over [`LOAD_TASKS`] tasks.
const LOAD_RATE: u64 = 200;
const LOAD_TASKS: u64 = 8;

/// Drives CreateNote and GetNote at `LOAD_RATE / LOAD_TASKS` calls per second (each call its
/// own task, so a slow answer does not slow the rate) until `stop`; returns every call.
async fn drive(
    notes: NotesClient,
    ids: Vec<String>,
    task: u64,
    limit: Duration,
    stop: CancellationToken,
) -> Vec<Call> {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 * LOAD_TASKS / LOAD_RATE));
    let mut calls = tokio::task::JoinSet::new();
    let mut n = task;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        n += 1;
        let mut notes = notes.clone();
        let id = ids[n as usize % ids.len()].clone();
        calls.spawn(async move {
            let started = Instant::now();
            let (method, answer) = if n.is_multiple_of(4) {
                let request = pb::CreateNoteRequest {
                    note: Some(pb::Note {
                        title: format!("load {n}"),
                        original_text: TEXT.into(),
                        original_language: "en".into(),
                        ..Default::default()
                    }),
                };
                let answer = tokio::time::timeout(limit, notes.create_note(request)).await;
                ("CreateNote", answer.map(|answer| answer.map(drop)))
            } else {
                let answer =
                    tokio::time::timeout(limit, notes.get_note(pb::GetNoteRequest { id })).await;
                ("GetNote", answer.map(|answer| answer.map(drop)))
            };
            let result =
                answer.unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer in time")));
            Call {
                started,
                ended: Instant::now(),
                method,
                result,
            }
        });
    }
    calls.join_all().await
}

/// Logs in back to back (each login verifies a password hash: a call that takes the server a
/// while, so that some are in flight when the signal comes) until `stop`; returns every call.
async fn log_in_repeatedly(
    channel: Channel,
    limit: Duration,
    stop: CancellationToken,
) -> Vec<Call> {
    let mut identity = IdentityServiceClient::new(channel);
    let mut calls = Vec::new();
    while !stop.is_cancelled() {
        let started = Instant::now();
        let answer = tokio::time::timeout(
            limit,
            identity.login(LoginRequest {
                email: "alice@example.com".into(),
                username: String::new(),
                password: PASSWORD.into(),
            }),
        )
        .await;
        let result = answer
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer in time")))
            .map(drop);
        let refused = result.is_err();
        calls.push(Call {
            started,
            ended: Instant::now(),
            method: "Login",
            result,
        });
        if refused {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    calls
}

/// Whether a call failed in the client because its connection was going away, before the
/// server took it: the request was not sent (the connection closed first: tonic says
/// CANCELLED), or its stream was refused by the server's final GOAWAY (HTTP/2: a stream
/// above the GOAWAY's last stream id was not processed; tonic says INTERNAL where gRPC's
/// HTTP/2 mapping says UNAVAILABLE). Either way the server refused the call without running
/// it, and the call may be made again.
fn not_processed(status: &Status) -> bool {
    let Some(source) = std::error::Error::source(status) else {
        return false;
    };
    if source.downcast_ref::<tonic::transport::Error>().is_none() {
        return false;
    }
    let source = format!("{source:?}");
    match status.code() {
        Code::Cancelled => true,
        Code::Internal => source.contains("GoAway(") && source.contains("Remote"),
        _ => false,
    }
}

/// Holds a WatchJobs stream open until it ends; returns how it ended.
async fn hold_watch(mut jobs: JobsClient, limit: Duration) -> Result<usize, Status> {
    let mut stream = jobs
        .watch_jobs(jpb::WatchJobsRequest {})
        .await?
        .into_inner();
    let mut received = 0;
    loop {
        match tokio::time::timeout(limit, stream.message()).await {
            Err(_) => return Err(Status::deadline_exceeded("the stream did not end in time")),
            Ok(Ok(Some(_))) => received += 1,
            Ok(Ok(None)) => return Ok(received),
            Ok(Err(status)) => return Err(status),
        }
    }
}

/// How long in-flight calls may take after SIGTERM.
const GRACE_SECS: u64 = 15;

/// `aimesh serve` gets SIGTERM while about 200 calls a second arrive (and logins, slower calls),
/// with WatchJobs streams open: every call in flight at the signal is answered, later calls are
/// at most refused with UNAVAILABLE, the streams end with a status (OK or UNAVAILABLE), and the
/// process exits 0 within the grace period.
async fn sigterm_under_load_drains_in_flight_calls() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let mut served = Served::start(
        &db.url,
        &db.data_dir(),
        &[
            ("AIMESH_SHUTDOWN_GRACE_SECS", &GRACE_SECS.to_string()),
            ("AIMESH_LOGIN_ATTEMPTS_PER_MINUTE", "100000"),
            ("AIMESH_LOGIN_ATTEMPTS_PER_MINUTE_PER_ADDRESS", "100000"),
        ],
    )
    .await;
    let channels = [served.channel().await, served.channel().await];
    let alice = User::login(&channels[0], "alice").await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            create_note(&alice.notes(&channels[0]), &format!("read {i}"), TEXT, "en")
                .await
                .id,
        );
    }

    let limit = Duration::from_secs(GRACE_SECS + 30);
    let streams_channel = served.channel().await;
    let streams: Vec<_> = (0..3)
        .map(|_| tokio::spawn(hold_watch(alice.jobs(&streams_channel), limit)))
        .collect();
    // Something for the streams to carry.
    let (_, refusals) = submit(&alice.notes(&channels[0]), &ids[0], "before").await;
    assert!(refusals.is_empty(), "{refusals:?}");

    let stop = CancellationToken::new();
    let load: Vec<_> = (0..LOAD_TASKS)
        .map(|task| {
            let notes = alice.notes(&channels[task as usize % channels.len()]);
            tokio::spawn(drive(notes, ids.clone(), task, limit, stop.clone()))
        })
        .collect();
    let logins: Vec<_> = (0..2)
        .map(|_| tokio::spawn(log_in_repeatedly(channels[1].clone(), limit, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let signalled = Instant::now();
    served.terminate();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let exit = served.wait_exit(limit).await;
    let exited = signalled.elapsed();
    let mut calls = Vec::new();
    for task in load.into_iter().chain(logins) {
        calls.extend(task.await.unwrap());
    }
    let mut ends = Vec::new();
    for stream in streams {
        ends.push(stream.await.unwrap());
    }

    let before: Vec<&Call> = calls.iter().filter(|c| c.started < signalled).collect();
    let in_flight = before.iter().filter(|c| c.ended >= signalled).count();
    let after: Vec<&Call> = calls.iter().filter(|c| c.started >= signalled).collect();
    let refused = after.iter().filter(|c| c.result.is_err()).count();
    let unsent = after
        .iter()
        .filter(|c| c.result.as_ref().is_err_and(not_processed))
        .count();
    eprintln!(
        "fault suite: SIGTERM under load: {} calls before the signal ({in_flight} in flight at \
         it), {} after ({refused} refused: {:?}); streams ended {:?}; exit {:?} {:.1}s after \
         the signal (grace {GRACE_SECS}s)",
        before.len(),
        after.len(),
        after
            .iter()
            .filter_map(|c| c.result.as_ref().err().map(|e| format!("{:?}", e.code())))
            .collect::<std::collections::BTreeSet<_>>(),
        ends.iter()
            .map(|end| end.as_ref().map_err(Status::code))
            .collect::<Vec<_>>(),
        exit,
        exited.as_secs_f64()
    );

    let failed: Vec<_> = before
        .iter()
        .filter_map(|c| c.result.as_ref().err().map(|e| (c.method, e)))
        .collect();
    eprintln!(
        "fault suite figure: {} calls before SIGTERM ({in_flight} in flight at it), {} \
         failed; {refused} refused after ({unsent} of them in the client, going away); \
         streams ended {:?}; exit {} after {:.1}s",
        before.len(),
        failed.len(),
        ends.iter()
            .map(|end| end.as_ref().map_or_else(|e| e.code(), |_| Code::Ok))
            .collect::<Vec<_>>(),
        exit.and_then(|exit| exit.code())
            .map_or("none".into(), |code| code.to_string()),
        exited.as_secs_f64()
    );
    assert!(
        before.len() as u64 > LOAD_RATE,
        "the load ran: {} calls",
        before.len()
    );
    assert!(
        failed.is_empty(),
        "{} of the calls made before SIGTERM failed, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    for call in &after {
        if let Err(status) = &call.result {
            assert!(
                status.code() == Code::Unavailable || not_processed(status),
                "{} after the signal: {status:?}",
                call.method
            );
        }
    }
    // Streams end when the drain starts, with the server's UNAVAILABLE (retry elsewhere), not
    // cut by the transport at the end of the grace period.
    for end in &ends {
        match end {
            Err(status) => assert!(
                status.code() == Code::Unavailable && status.message().contains("shutting down"),
                "a WatchJobs stream ended with {status:?}, not the server's UNAVAILABLE"
            ),
            Ok(received) => panic!("a WatchJobs stream ended OK after {received} messages"),
        }
    }
    let exit = exit.unwrap_or_else(|| panic!("still running {limit:?} after SIGTERM"));
    assert!(exit.success(), "exit {exit}:\n{}", served.tail(30));
    // The shutdown is told in the log (at info, on PostgreSQL), and nothing uses the database
    // after it is closed.
    let log = served.log.lock().unwrap().join("\n");
    for said in [
        "grpc server listening",
        "received SIGTERM",
        "ending open streams",
        "grpc server stopped",
    ] {
        assert!(
            log.contains(said),
            "the log does not say {said:?}:\n{}",
            served.tail(30)
        );
    }
    assert!(
        !log.contains("closed pool"),
        "the database was used after it was closed:\n{}",
        served.tail(30)
    );
    // Within the grace period: the drain did not have to cut calls or streams off.
    assert!(
        exited < Duration::from_secs(GRACE_SECS),
        "exited {exited:?} after SIGTERM, not within the grace period of {GRACE_SECS}s"
    );
}

// Both run with the rest of the suite (about 10 s and 25 s), and in `scripts/chaos`.
mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_outage_loses_no_job() {
        super::a_database_outage_loses_no_job().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_under_load_drains_in_flight_calls() {
        super::sigterm_under_load_drains_in_flight_calls().await
    }
}
