//! The tonic adapter of `aimesh.jobs.v1.JobsService`: maps requests to the engine's calls
//! (the watch streams to [`Jobs::watch`] and [`Jobs::watch_all`]) and back, and errors to
//! statuses.

use std::pin::Pin;

use aimesh_kit::{
    auth::principal,
    error::{Violations, parse_uuid},
    paging,
    proto::timestamp,
};
use aimesh_proto::jobs::v1::{self as pb, jobs_service_server::JobsService};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    engine::Jobs,
    error::{JobsError, JobsResult},
    model::{Job, JobQuery, JobState},
};

/// The gRPC face of the job engine.
#[derive(Clone)]
pub struct JobsApi {
    jobs: Jobs,
}

impl JobsApi {
    /// Wraps the engine.
    pub fn new(jobs: Jobs) -> Self {
        Self { jobs }
    }

    /// Returns the tonic server for this API.
    pub fn into_server(self) -> pb::jobs_service_server::JobsServiceServer<Self> {
        pb::jobs_service_server::JobsServiceServer::new(self)
    }
}

type WatchStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn parse_id(id: &str) -> Result<Uuid, JobsError> {
    let mut violations = Violations::new();
    let id = violations.check("id", parse_uuid(id));
    violations.finish(id).map_err(JobsError::InvalidArgument)
}

#[tonic::async_trait]
impl JobsService for JobsApi {
    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::GetJobResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id(&request.get_ref().id)?;
        let job = self.jobs.get(&caller.user_id, id).await?;
        Ok(Response::new(pb::GetJobResponse {
            job: Some(job_to_proto(&job)),
        }))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let caller = principal(&request)?;
        let query = list_query(request.get_ref())?;
        let page = self.jobs.list(&caller.user_id, &query).await?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: page.jobs.iter().map(job_to_proto).collect(),
            next_page_token: page
                .next
                .map(|id| paging::encode(id.as_bytes(), &query.filter_key()))
                .unwrap_or_default(),
        }))
    }

    type WatchJobStream = WatchStream<pb::WatchJobResponse>;

    async fn watch_job(
        &self,
        request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let caller = principal(&request)?;
        let id = parse_id(&request.get_ref().id)?;
        let jobs = self.jobs.watch(&caller.user_id, id).await?;
        let open = StreamGauge::open("WatchJob");
        Ok(Response::new(Box::pin(jobs.map(move |job| {
            let _open = &open;
            job.map(|job| pb::WatchJobResponse {
                job: Some(job_to_proto(&job)),
            })
            .map_err(Status::from)
        }))))
    }

    type WatchJobsStream = WatchStream<pb::WatchJobsResponse>;

    async fn watch_jobs(
        &self,
        request: Request<pb::WatchJobsRequest>,
    ) -> Result<Response<Self::WatchJobsStream>, Status> {
        let caller = principal(&request)?;
        let jobs = self.jobs.watch_all(&caller.user_id)?;
        let open = StreamGauge::open("WatchJobs");
        Ok(Response::new(Box::pin(jobs.map(move |job| {
            let _open = &open;
            job.map(|job| pb::WatchJobsResponse {
                job: Some(job_to_proto(&job)),
            })
            .map_err(Status::from)
        }))))
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::CancelJobResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id(&request.get_ref().id)?;
        let job = self.jobs.cancel(&caller.user_id, id).await?;
        Ok(Response::new(pb::CancelJobResponse {
            job: Some(job_to_proto(&job)),
        }))
    }

    async fn retry_job(
        &self,
        request: Request<pb::RetryJobRequest>,
    ) -> Result<Response<pb::RetryJobResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id(&request.get_ref().id)?;
        let job = self.jobs.retry(&caller.user_id, id).await?;
        Ok(Response::new(pb::RetryJobResponse {
            job: Some(job_to_proto(&job)),
        }))
    }
}

/// Counts an open watch stream in `aimesh_watch_streams` while it lives.
struct StreamGauge(&'static str);

impl StreamGauge {
    fn open(method: &'static str) -> Self {
        metrics::gauge!("aimesh_watch_streams", "method" => method).increment(1.0);
        Self(method)
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        metrics::gauge!("aimesh_watch_streams", "method" => self.0).decrement(1.0);
    }
}

fn list_query(request: &pb::ListJobsRequest) -> JobsResult<JobQuery> {
    let mut violations = Violations::new();
    let page_size = violations.check("page_size", paging::validate_page_size(request.page_size));
    let state = match pb::JobState::try_from(request.state) {
        Ok(pb::JobState::Unspecified) => None,
        Ok(state) => Some(state_from_proto(state)),
        Err(_) => {
            violations.add("state", "is not a job state");
            None
        }
    };
    if request.kind.len() > 100 {
        violations.add("kind", "must be at most 100 bytes");
    } else if request.kind.chars().any(char::is_control) {
        violations.add("kind", "must not contain control characters");
    }
    let page_size = violations
        .finish(page_size)
        .map_err(JobsError::InvalidArgument)?;
    let mut query = JobQuery {
        page_size,
        after: None,
        state,
        kind: (!request.kind.is_empty()).then(|| request.kind.clone()),
    };
    let mut violations = Violations::new();
    let after = violations.check(
        "page_token",
        paging::decode_uuid(&request.page_token, &query.filter_key()),
    );
    query.after = violations
        .finish(after)
        .map_err(JobsError::InvalidArgument)?;
    Ok(query)
}

/// Converts a job state from its protobuf form (UNSPECIFIED reads as QUEUED).
pub fn state_from_proto(state: pb::JobState) -> JobState {
    match state {
        pb::JobState::Unspecified | pb::JobState::Queued => JobState::Queued,
        pb::JobState::Running => JobState::Running,
        pb::JobState::Succeeded => JobState::Succeeded,
        pb::JobState::Failed => JobState::Failed,
        pb::JobState::Cancelled => JobState::Cancelled,
    }
}

fn state_to_proto(state: JobState) -> pb::JobState {
    match state {
        JobState::Queued => pb::JobState::Queued,
        JobState::Running => pb::JobState::Running,
        JobState::Succeeded => pb::JobState::Succeeded,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
    }
}

/// Converts a job to its protobuf form.
pub fn job_to_proto(job: &Job) -> pb::Job {
    pb::Job {
        id: job.id.to_string(),
        kind: job.kind.clone(),
        state: state_to_proto(job.state) as i32,
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        progress: Some(pb::Progress {
            percent: job.progress_percent,
            message: job.progress_message.clone(),
            partial_output: job.partial_output.clone(),
        }),
        result: match (&job.result_type, &job.result) {
            (Some(type_name), Some(value)) => Some(prost_types::Any {
                type_url: format!("type.googleapis.com/{type_name}"),
                value: value.clone(),
            }),
            _ => None,
        },
        error: job.error.clone().unwrap_or_default(),
        idempotency_key: job.idempotency_key.clone().unwrap_or_default(),
        create_time: Some(timestamp(job.created_at)),
        update_time: Some(timestamp(job.updated_at)),
        start_time: job.started_at.map(timestamp),
        finish_time: job.finished_at.map(timestamp),
        run_after_time: Some(timestamp(job.run_after)),
    }
}
