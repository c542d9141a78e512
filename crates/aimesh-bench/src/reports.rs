//! End-to-end report generation through the API: 100,000 events (about 10 MB) sent to a
//! real mesh — in one CreateReport over gRPC, and as a draft filled with AppendReportEvents
//! pages the size the edge admits — rendered by the job worker as HTML and PDF, followed over
//! WatchJob and downloaded. Prints the time of each stage; `aimesh-reports`'s `bench_render`
//! example measures the rendering alone.

use std::time::{Duration, Instant};

use aimesh::{Mesh, MeshConfig, ServiceKind};
use aimesh_proto::{
    jobs::v1::{self as jpb, jobs_service_client::JobsServiceClient},
    reports::v1::{self as pb, reports_service_client::ReportsServiceClient},
};
use anyhow::Context;
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::{Channel, Endpoint},
};

use crate::notes::login;

/// Options of the reports benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// Events in each report.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Events per AppendReportEvents page in the paged run (about 3.5 MB at the default:
    /// within the edge's default 4 MiB body limit as JSON).
    #[arg(long, default_value_t = 25_000)]
    page_events: usize,
    /// Database of the mesh (default: SQLite in a temporary directory).
    #[arg(long, env = "AIMESH_BENCH_DATABASE_URL")]
    database_url: Option<String>,
}

/// Runs the reports benchmark.
pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut config = MeshConfig::for_tests(data.path().to_path_buf(), options.database_url.clone());
    config.auth.rate_limit_per_sec = 0;
    let mesh = Mesh::build(
        &config,
        &[
            ServiceKind::Identity,
            ServiceKind::Jobs,
            ServiceKind::Reports,
        ],
    )
    .await?;
    let addr = mesh.local_addr();
    let shutdown = mesh.shutdown_token();
    let server = tokio::spawn(mesh.run_until_stopped());
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let bearer = login(channel.clone()).await?;

    let events = walk(options.events);
    let size = prost::Message::encoded_len(&pb::ReportInput {
        events: events.clone(),
        ..Default::default()
    });
    println!(
        "aimesh-bench: {} events ({:.1} MB as protobuf) per report, database {}",
        events.len(),
        size as f64 / 1e6,
        if options.database_url.is_some() {
            "given"
        } else {
            "SQLite"
        }
    );
    println!("run                 format   create    render+store   download   total      file");
    for format in [pb::ReportFormat::Html, pb::ReportFormat::Pdf] {
        one_call(&channel, &bearer, &events, format).await?;
    }
    for format in [pb::ReportFormat::Html, pb::ReportFormat::Pdf] {
        paged(&channel, &bearer, &events, options.page_events, format).await?;
    }
    shutdown.cancel();
    server.await??;
    Ok(())
}

type Client =
    ReportsServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
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

fn client(channel: &Channel, bearer: &MetadataValue<Ascii>) -> Client {
    ReportsServiceClient::with_interceptor(channel.clone(), Bearer(bearer.clone()))
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX)
}

fn input(events: Vec<pb::ReportEvent>, format: pb::ReportFormat) -> pb::ReportInput {
    pb::ReportInput {
        student_id: "student-0042".into(),
        namespace: "algebra-1".into(),
        events,
        format: format.into(),
    }
}

/// The whole report in one CreateReport.
async fn one_call(
    channel: &Channel,
    bearer: &MetadataValue<Ascii>,
    events: &[pb::ReportEvent],
    format: pb::ReportFormat,
) -> anyhow::Result<()> {
    let mut reports = client(channel, bearer);
    let request = pb::CreateReportRequest {
        report: Some(input(events.to_vec(), format)),
        ..Default::default()
    };
    let began = Instant::now();
    let created = reports.create_report(request).await?.into_inner();
    let create = began.elapsed();
    let id = created.report.context("a report")?.id;
    let job = created.job.context("a job")?.id;
    finish(
        "one call", channel, bearer, &id, &job, format, began, create,
    )
    .await
}

/// A draft filled page by page, then generated.
async fn paged(
    channel: &Channel,
    bearer: &MetadataValue<Ascii>,
    events: &[pb::ReportEvent],
    page_events: usize,
    format: pb::ReportFormat,
) -> anyhow::Result<()> {
    let mut reports = client(channel, bearer);
    let began = Instant::now();
    let draft = reports
        .create_report(pb::CreateReportRequest {
            report: Some(input(Vec::new(), format)),
            format_name: String::new(),
            draft: true,
        })
        .await?
        .into_inner()
        .report
        .context("a report")?;
    let mut offset = 0;
    for page in events.chunks(page_events.max(1)) {
        reports
            .append_report_events(pb::AppendReportEventsRequest {
                id: draft.id.clone(),
                offset,
                events: page.to_vec(),
            })
            .await?;
        offset += page.len() as i64;
    }
    let job = reports
        .generate_report(pb::GenerateReportRequest {
            id: draft.id.clone(),
        })
        .await?
        .into_inner()
        .job
        .context("a job")?
        .id;
    let create = began.elapsed();
    let label = format!("{} pages", events.len().div_ceil(page_events.max(1)));
    finish(
        &label, channel, bearer, &draft.id, &job, format, began, create,
    )
    .await
}

/// Follows the job to its end, downloads the file and prints the row.
#[allow(clippy::too_many_arguments)]
async fn finish(
    label: &str,
    channel: &Channel,
    bearer: &MetadataValue<Ascii>,
    id: &str,
    job: &str,
    format: pb::ReportFormat,
    began: Instant,
    create: Duration,
) -> anyhow::Result<()> {
    let bearer_value = bearer.clone();
    let mut jobs = JobsServiceClient::with_interceptor(channel.clone(), Bearer(bearer_value));
    let mut stream = jobs
        .watch_job(jpb::WatchJobRequest { id: job.into() })
        .await?
        .into_inner();
    let mut last = None;
    while let Some(message) = stream.message().await? {
        last = message.job;
    }
    let last = last.context("a job snapshot")?;
    anyhow::ensure!(
        last.state() == jpb::JobState::Succeeded,
        "the job ended {:?}: {}",
        last.state(),
        last.error
    );
    let rendered = began.elapsed();
    let file = client(channel, bearer)
        .download_report(pb::DownloadReportRequest { id: id.into() })
        .await?
        .into_inner();
    let total = began.elapsed();
    println!(
        "{label:<19} {:<8} {:>6.0} ms  {:>9.0} ms   {:>6.0} ms  {:>6.0} ms  {:>7.1} KiB",
        if format == pb::ReportFormat::Pdf {
            "pdf"
        } else {
            "html"
        },
        create.as_secs_f64() * 1e3,
        (rendered - create).as_secs_f64() * 1e3,
        (total - rendered).as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        file.data.len() as f64 / 1024.0
    );
    Ok(())
}

/// A deterministic walk through 400 units, as `bench_render` sends: runs of events in one
/// unit, pauses of seconds to minutes and now and then of days.
fn walk(events: usize) -> Vec<pb::ReportEvent> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let types = [
        "viewed",
        "started",
        "completed",
        "quiz_submitted",
        "video_played",
    ];
    let mut time = chrono::DateTime::parse_from_rfc3339("2024-09-01T08:00:00Z").unwrap_or_default();
    let mut unit = 0;
    (0..events)
        .map(|_| {
            let roll = next();
            if roll % 4 == 0 {
                unit = (roll >> 8) as usize % 400;
            }
            let pause = if roll % 997 == 0 {
                3 * 86_400
            } else {
                (roll >> 20) as i64 % 600
            };
            time += chrono::TimeDelta::seconds(pause);
            pb::ReportEvent {
                unit: format!("Module {} · lesson {}", unit / 10 + 1, unit % 10 + 1),
                r#type: types[(roll >> 32) as usize % types.len()].to_owned(),
                created_time: time.to_rfc3339(),
            }
        })
        .collect()
}
