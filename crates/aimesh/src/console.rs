//! Operator commands over a running mesh's gRPC API: `aimesh jobs top` (every kind's queue,
//! live, with throughput from the admin service's job stream), `aimesh jobs watch ID` (a job's
//! progress as a bar), `aimesh admin users` (accounts as a table). Tables are comfy-table's,
//! bars indicatif's, screen handling console's.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aimesh_proto::{
    admin::v1::{self as apb, admin_service_client::AdminServiceClient},
    jobs::v1::{self as jpb, jobs_service_client::JobsServiceClient},
};
use anyhow::Context;
use comfy_table::{CellAlignment, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

/// Where the mesh is and who calls it.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The mesh's gRPC address.
    #[arg(long, env = "AIMESH_URL", default_value = "http://127.0.0.1:50051")]
    pub url: String,

    /// An access token (from Login) to call with; the admin commands need an administrator's.
    #[arg(long, env = "AIMESH_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// Adds the bearer token to every call.
#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
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

type Authed = InterceptedService<Channel, Bearer>;

async fn connect(args: &ClientArgs) -> anyhow::Result<(Channel, Bearer)> {
    let channel = Endpoint::from_shared(args.url.clone())
        .context("AIMESH_URL is not a URL")?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("cannot reach {}", args.url))?;
    let bearer = Bearer(
        format!("Bearer {}", args.token.trim())
            .parse()
            .context("the token is not a header value")?,
    );
    Ok((channel, bearer))
}

fn admin_client(channel: Channel, bearer: Bearer) -> AdminServiceClient<Authed> {
    AdminServiceClient::with_interceptor(channel, bearer)
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    // Fitted to a terminal; piped, each cell whole on one line.
    let term = console::Term::stdout();
    if term.is_term() {
        let (_, columns) = term.size();
        table
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(columns.max(40));
    } else {
        table.set_content_arrangement(ContentArrangement::Disabled);
    }
    table
}

fn right_align(table: &mut Table, columns: std::ops::Range<usize>) {
    for index in columns {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
}

fn seconds(duration: Option<&prost_types::Duration>) -> String {
    match duration {
        Some(d) => {
            let secs = d.seconds as f64 + f64::from(d.nanos) / 1e9;
            if secs < 1.0 {
                format!("{:.0} ms", secs * 1000.0)
            } else if secs < 120.0 {
                format!("{secs:.1} s")
            } else {
                format!("{:.1} min", secs / 60.0)
            }
        }
        None => "-".into(),
    }
}

fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Finished jobs per kind seen on the stream, for throughput over the last `WINDOW`.
#[derive(Default)]
struct Throughput {
    finished: HashMap<String, VecDeque<Instant>>,
}

/// The window throughput is measured over.
const WINDOW: Duration = Duration::from_secs(10);

impl Throughput {
    fn record(&mut self, kind: &str) {
        self.finished
            .entry(kind.to_owned())
            .or_default()
            .push_back(Instant::now());
    }

    fn per_second(&mut self, kind: &str) -> f64 {
        let Some(times) = self.finished.get_mut(kind) else {
            return 0.0;
        };
        while times.front().is_some_and(|at| at.elapsed() > WINDOW) {
            times.pop_front();
        }
        times.len() as f64 / WINDOW.as_secs_f64()
    }
}

/// `aimesh jobs top`: every kind's queue depth, running jobs, the last hour's outcomes and run
/// times, and the jobs finishing per second (from the live job stream), redrawn every
/// `interval` until Ctrl-C.
pub async fn jobs_top(args: &ClientArgs, interval: Duration) -> anyhow::Result<()> {
    let (channel, bearer) = connect(args).await?;
    let mut client = admin_client(channel, bearer);
    let throughput = Arc::new(Mutex::new(Throughput::default()));
    let mut stream = client
        .watch_jobs(apb::WatchJobsRequest {})
        .await
        .context("the admin service refused the job stream")?
        .into_inner();
    let counter = throughput.clone();
    let follower = tokio::spawn(async move {
        while let Ok(Some(message)) = stream.message().await {
            if let Some(job) = message.job
                && matches!(
                    jpb::JobState::try_from(job.state),
                    Ok(jpb::JobState::Succeeded | jpb::JobState::Failed | jpb::JobState::Cancelled)
                )
            {
                counter
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(&job.kind);
            }
        }
    });
    let term = console::Term::stdout();
    let result = loop {
        let stats = match client.get_queue_stats(apb::GetQueueStatsRequest {}).await {
            Ok(stats) => stats.into_inner(),
            Err(status) => break Err(anyhow::anyhow!("queue statistics: {}", status.message())),
        };
        let mut table = table(&[
            "kind",
            "queued",
            "running",
            "done/s",
            "ok (1h)",
            "failed (1h)",
            "p50",
            "p95",
            "oldest queued",
        ]);
        {
            let mut throughput = throughput.lock().unwrap_or_else(|e| e.into_inner());
            for queue in &stats.queues {
                table.add_row(vec![
                    queue.kind.clone(),
                    queue.queued.to_string(),
                    queue.running.to_string(),
                    format!("{:.1}", throughput.per_second(&queue.kind)),
                    queue.succeeded_last_hour.to_string(),
                    queue.failed_last_hour.to_string(),
                    seconds(queue.p50_run_time.as_ref()),
                    seconds(queue.p95_run_time.as_ref()),
                    seconds(queue.oldest_queued_age.as_ref()),
                ]);
            }
        }
        right_align(&mut table, 1..9);
        term.clear_screen()?;
        term.write_line(&format!(
            "aimesh jobs top — {}  (every {:.1} s, Ctrl-C to quit)",
            args.url,
            interval.as_secs_f64()
        ))?;
        if stats.queues.is_empty() {
            term.write_line("no jobs queued, running or finished in the last hour")?;
        } else {
            term.write_line(&table.to_string())?;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => break Ok(()),
        }
    };
    follower.abort();
    result
}

/// `aimesh jobs watch ID`: one of the caller's jobs as a progress bar with its message, until
/// it ends; fails unless it succeeded.
pub async fn jobs_watch(args: &ClientArgs, id: &str) -> anyhow::Result<()> {
    let (channel, bearer) = connect(args).await?;
    let mut client = JobsServiceClient::with_interceptor(channel, bearer);
    let mut stream = client
        .watch_job(jpb::WatchJobRequest { id: id.to_owned() })
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:40}] {pos:>3}% {elapsed} {wide_msg}",
        )?
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut last = None;
    while let Some(message) = stream
        .message()
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
    {
        let Some(job) = message.job else { continue };
        let state = jpb::JobState::try_from(job.state).unwrap_or(jpb::JobState::Unspecified);
        bar.set_prefix(format!("{} {}", job.kind, state_name(state)));
        let progress = job.progress.clone().unwrap_or_default();
        bar.set_position(u64::try_from(progress.percent.clamp(0, 100)).unwrap_or(0));
        bar.set_message(progress.message);
        last = Some((state, job));
    }
    let Some((state, job)) = last else {
        bar.abandon_with_message("the stream ended without the job");
        anyhow::bail!("the stream ended without the job");
    };
    match state {
        jpb::JobState::Succeeded => {
            bar.set_position(100);
            bar.finish_with_message("succeeded");
            Ok(())
        }
        _ => {
            let error = job.error.clone();
            bar.abandon_with_message(format!("{}: {error}", state_name(state)));
            anyhow::bail!("job {} ended {}: {error}", job.id, state_name(state))
        }
    }
}

fn state_name(state: jpb::JobState) -> &'static str {
    match state {
        jpb::JobState::Unspecified => "?",
        jpb::JobState::Queued => "queued",
        jpb::JobState::Running => "running",
        jpb::JobState::Succeeded => "succeeded",
        jpb::JobState::Failed => "failed",
        jpb::JobState::Cancelled => "cancelled",
    }
}

/// `aimesh admin users`: accounts as a table (every page, or the first `limit`).
pub async fn admin_users(args: &ClientArgs, search: &str, limit: usize) -> anyhow::Result<()> {
    let (channel, bearer) = connect(args).await?;
    let mut client = admin_client(channel, bearer);
    let mut table = table(&[
        "id", "username", "email", "created", "calls", "storage", "roles", "disabled",
    ]);
    let mut page_token = String::new();
    let mut shown = 0;
    loop {
        let page = client
            .list_users(apb::ListUsersRequest {
                page_size: 100,
                page_token,
                search: search.to_owned(),
            })
            .await
            .map_err(|status| anyhow::anyhow!("{}", status.message()))?
            .into_inner();
        for user in page.users {
            if shown == limit {
                break;
            }
            table.add_row(vec![
                user.id,
                user.username,
                user.email,
                user.create_time.map(time).unwrap_or_default(),
                user.api_call_count.to_string(),
                bytes(user.storage_bytes),
                user.roles.join(","),
                user.disable_time.map(time).unwrap_or_default(),
            ]);
            shown += 1;
        }
        if page.next_page_token.is_empty() || shown == limit {
            break;
        }
        page_token = page.next_page_token;
    }
    right_align(&mut table, 4..6);
    println!("{table}");
    println!("{shown} account(s)");
    Ok(())
}

fn time(timestamp: prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(timestamp.seconds, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}
