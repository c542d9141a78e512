//! Rendering reports as jobs (`reports.render`) and the retention sweep (`reports.purge`).
//!
//! A render job reads the report's events, validates and analyses them and renders the file on
//! a blocking thread, stores the file within the owner's quota and marks the report DONE,
//! dropping its events — one transaction, so a repeated attempt finds the report DONE and
//! answers the same result. Progress goes out at each stage. A report whose events cannot be
//! rendered, or whose file does not fit the quota, ends FAILED with the reason; so does one
//! whose last attempt fails.

use aimesh_jobs::{JobContext, JobError, JobHandler, JobOutput};
use aimesh_proto::reports::v1 as pb;
use bytes::Bytes;
use futures::future::BoxFuture;

use crate::{
    Analysis, ReportRequest,
    error::ReportsServiceError,
    report::{RenderJob, RenderedFile, Report, Status, now},
    service::Reports,
};

/// The job kind of report rendering.
pub const RENDER_KIND: &str = "reports.render";
/// The job kind of the retention sweep.
pub const PURGE_KIND: &str = "reports.purge";

/// Runs `reports.render` jobs; their payload is a [`RenderJob`] (JSON).
pub struct RenderHandler {
    reports: Reports,
}

impl RenderHandler {
    /// Creates the handler.
    pub fn new(reports: Reports) -> Self {
        Self { reports }
    }
}

impl JobHandler for RenderHandler {
    fn kind(&self) -> &'static str {
        RENDER_KIND
    }

    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let reports = self.reports.clone();
        Box::pin(async move {
            let last_attempt = ctx.job.attempts >= ctx.job.max_attempts;
            let payload: RenderJob = serde_json::from_slice(&ctx.job.payload)
                .map_err(|e| JobError::Permanent(format!("unreadable job payload: {e}")))?;
            let outcome = render(&reports, &ctx, payload.report_id).await;
            // The report must not stay PENDING or RUNNING once its job has ended. A handler
            // is also stopped when its worker shuts down: then the job runs again elsewhere.
            let reason = match &outcome {
                Err(JobError::Permanent(reason)) => Some(reason.clone()),
                Err(JobError::Retryable(reason)) if last_attempt => Some(reason.clone()),
                Err(JobError::Cancelled)
                    if reports
                        .cancel_requested(&ctx.job.owner_id, ctx.job.id)
                        .await =>
                {
                    Some("the rendering job was cancelled".to_owned())
                }
                _ => None,
            };
            if let Some(reason) = reason {
                let _ = reports
                    .store()
                    .fail(payload.report_id, &reason, now())
                    .await;
            }
            outcome
        })
    }
}

fn retryable(error: ReportsServiceError) -> JobError {
    match error {
        ReportsServiceError::NotFound(_) => {
            JobError::Permanent("the report no longer exists".into())
        }
        error @ ReportsServiceError::QuotaExceeded { .. } => JobError::Permanent(error.to_string()),
        other => JobError::Retryable(other.to_string()),
    }
}

fn result(report: &Report) -> JobOutput {
    JobOutput::message(&pb::RenderReportResult {
        report_id: report.id.to_string(),
        content_type: report.content_type().to_owned(),
        size_bytes: report.size_bytes,
        event_count: report.event_count,
        unit_count: report.unit_count,
    })
}

async fn render(
    reports: &Reports,
    ctx: &JobContext,
    id: uuid::Uuid,
) -> Result<JobOutput, JobError> {
    let owner = ctx.job.owner_id.clone();
    let report = reports.get(&owner, id).await.map_err(retryable)?;
    match report.status {
        // An earlier attempt finished it.
        Status::Done => return Ok(result(&report)),
        // A failed report renders again when its job is retried.
        Status::Pending | Status::Running | Status::Failed => {}
        Status::Draft => {
            return Err(JobError::Permanent(
                "the report is a draft, not generated".into(),
            ));
        }
    }
    if !reports
        .store()
        .set_running(id, now())
        .await
        .map_err(retryable)?
    {
        return Err(JobError::Permanent(
            "the report is no longer waiting to be rendered".into(),
        ));
    }

    ctx.progress(5, &format!("reading {} events", report.event_count), "")
        .await;
    let events = reports.store().events(id).await.map_err(retryable)?;
    if ctx.cancel.is_cancelled() {
        return Err(JobError::Cancelled);
    }

    ctx.progress(
        20,
        &format!(
            "analysing {} events and rendering {}",
            events.len(),
            report.format.as_str()
        ),
        "",
    )
    .await;
    let request = ReportRequest {
        student_id: report.student_id.clone(),
        namespace: report.namespace.clone().unwrap_or_default(),
        events,
        format: report.format,
    };
    let renderer = reports.renderer().clone();
    let rendering = tokio::task::spawn_blocking(move || {
        let valid = request.validate()?;
        let analysis = Analysis::new(&valid, renderer.options());
        let file = RenderedFile {
            sha256: String::new(),
            size_bytes: 0,
            unit_count: analysis.units.len() as i64,
            first_event_at: analysis.first,
            last_event_at: analysis.last,
        };
        let bytes = renderer.render_analysis(&analysis, valid.format)?;
        Ok::<_, crate::ReportsError>((bytes, file))
    });
    let rendered = tokio::select! {
        _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        rendered = rendering => rendered,
    };
    let (bytes, mut file) = match rendered {
        Ok(Ok(rendered)) => rendered,
        // Stored events that do not validate, or a renderer failure: rendering again cannot
        // help.
        Ok(Err(error)) => return Err(JobError::Permanent(error.to_string())),
        Err(error) => return Err(JobError::Permanent(format!("rendering failed: {error}"))),
    };

    ctx.progress(90, &format!("storing the {} byte file", bytes.len()), "")
        .await;
    file.size_bytes = bytes.len() as i64;
    let stored = reports
        .store_rendered(&owner, id, Bytes::from(bytes), file.clone())
        .await
        .map_err(retryable)?;
    if !stored {
        return Err(JobError::Permanent("the report no longer exists".into()));
    }
    let done = reports.get(&owner, id).await.map_err(retryable)?;
    Ok(result(&done))
}

/// Runs `reports.purge` jobs: deletes the reports older than the retention period.
pub struct PurgeHandler {
    reports: Reports,
}

impl PurgeHandler {
    /// Creates the handler.
    pub fn new(reports: Reports) -> Self {
        Self { reports }
    }
}

impl JobHandler for PurgeHandler {
    fn kind(&self) -> &'static str {
        PURGE_KIND
    }

    fn run(&self, _ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let reports = self.reports.clone();
        Box::pin(async move {
            let deleted = reports
                .purge_expired()
                .await
                .map_err(|error| JobError::Retryable(error.to_string()))?;
            Ok(JobOutput::message(&pb::PurgeReportsResult { deleted }))
        })
    }
}
