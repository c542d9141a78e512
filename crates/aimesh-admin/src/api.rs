//! The tonic adapter of `aimesh.admin.v1.AdminService`: every method first requires an
//! administrator (`require_admin`: PERMISSION_DENIED for anyone else), then converts the
//! request, calls the service and converts the result.

use std::pin::Pin;

use aimesh_identity::domain::UserQuery;
use aimesh_jobs::{JobQuery, KindStats, api::job_to_proto};
use aimesh_kit::{
    auth::{Principal, require_admin},
    error::{Violations, parse_uuid},
    paging,
    proto::timestamp,
};
use aimesh_proto::{
    admin::v1::{self as pb, admin_service_server::AdminService},
    jobs::v1 as jpb,
};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    domain::{self, Actor, AuditEntry, UserSummary},
    error::{AdminError, AdminResult},
    service::Admin,
};

/// The gRPC face of the admin service.
#[derive(Clone)]
pub struct AdminApi {
    admin: Admin,
}

impl AdminApi {
    /// Wraps the service.
    pub fn new(admin: Admin) -> Self {
        Self { admin }
    }

    /// Returns the tonic server for this API.
    pub fn into_server(self) -> pb::admin_service_server::AdminServiceServer<Self> {
        pb::admin_service_server::AdminServiceServer::new(self)
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchJobsResponse, Status>> + Send>>;

fn actor(principal: Principal) -> Actor {
    Actor {
        id: principal.user_id,
        username: principal.username,
    }
}

fn invalid(violations: Vec<aimesh_kit::FieldViolation>) -> AdminError {
    AdminError::InvalidArgument(violations)
}

/// A user id and a reason.
fn user_action(user_id: &str, reason: &str) -> AdminResult<(Uuid, String)> {
    let mut violations = Violations::new();
    let id = violations.check("user_id", parse_uuid(user_id));
    let reason = violations.check("reason", domain::validate_reason(reason));
    violations.finish((id, reason)).map_err(invalid)
}

fn job_id(id: &str) -> AdminResult<Uuid> {
    let mut violations = Violations::new();
    let id = violations.check("id", parse_uuid(id));
    violations.finish(id).map_err(invalid)
}

fn user_query(request: &pb::ListUsersRequest) -> AdminResult<UserQuery> {
    let mut violations = Violations::new();
    let page_size = violations.check("page_size", paging::validate_page_size(request.page_size));
    let search = violations.check("search", domain::validate_search(&request.search));
    let (page_size, search) = violations.finish((page_size, search)).map_err(invalid)?;
    let filters = format!("search={}", search.as_deref().unwrap_or(""));
    let mut violations = Violations::new();
    let after = violations.check(
        "page_token",
        paging::decode_uuid(&request.page_token, &filters),
    );
    let after = violations.finish(after).map_err(invalid)?;
    Ok(UserQuery {
        page_size,
        after,
        search,
    })
}

fn job_query(request: &pb::ListJobsRequest) -> AdminResult<(Option<String>, JobQuery)> {
    let mut violations = Violations::new();
    let page_size = violations.check("page_size", paging::validate_page_size(request.page_size));
    let state = match jpb::JobState::try_from(request.state) {
        Ok(jpb::JobState::Unspecified) => None,
        Ok(state) => Some(aimesh_jobs::api::state_from_proto(state)),
        Err(_) => {
            violations.add("state", "is not a job state");
            None
        }
    };
    for (field, value) in [("kind", &request.kind), ("owner_id", &request.owner_id)] {
        if value.len() > 100 {
            violations.add(field, "must be at most 100 bytes");
        } else if value.chars().any(char::is_control) {
            violations.add(field, "must not contain control characters");
        }
    }
    let page_size = violations.finish(page_size).map_err(invalid)?;
    let owner = (!request.owner_id.is_empty()).then(|| request.owner_id.clone());
    let mut query = JobQuery {
        page_size,
        after: None,
        state,
        kind: (!request.kind.is_empty()).then(|| request.kind.clone()),
    };
    let mut violations = Violations::new();
    let after = violations.check(
        "page_token",
        paging::decode_uuid(&request.page_token, &jobs_filter_key(&owner, &query)),
    );
    query.after = violations.finish(after).map_err(invalid)?;
    Ok((owner, query))
}

fn jobs_filter_key(owner: &Option<String>, query: &JobQuery) -> String {
    format!(
        "owner={}\u{0}{}",
        owner.as_deref().unwrap_or(""),
        query.filter_key()
    )
}

fn next_token(next: Option<Uuid>, filters: &str) -> String {
    next.map(|id| paging::encode(id.as_bytes(), filters))
        .unwrap_or_default()
}

fn duration(value: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(value.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(value.subsec_nanos()).unwrap_or_default(),
    }
}

fn user_to_proto(summary: &UserSummary) -> pb::UserSummary {
    let user = &summary.user;
    pb::UserSummary {
        id: user.id.to_string(),
        username: user.username.clone(),
        email: user.email.clone(),
        create_time: Some(timestamp(user.created_at)),
        api_call_count: user.api_calls,
        storage_bytes: summary.storage_bytes,
        roles: user.roles(),
        disable_time: user.disabled_at.map(timestamp),
    }
}

fn entry_to_proto(entry: &AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        id: entry.id.to_string(),
        create_time: Some(timestamp(entry.created_at)),
        actor_id: entry.actor.id.clone(),
        actor_username: entry.actor.username.clone(),
        action: entry.action.clone(),
        target: entry.target.clone(),
        detail: entry.detail.clone(),
    }
}

fn stats_to_proto(stats: &KindStats) -> pb::QueueStats {
    pb::QueueStats {
        kind: stats.kind.clone(),
        queued: stats.queued,
        running: stats.running,
        succeeded_last_hour: stats.succeeded,
        failed_last_hour: stats.failed,
        p50_run_time: stats.p50_run_time.map(duration),
        p95_run_time: stats.p95_run_time.map(duration),
        oldest_queued_age: stats.oldest_queued_age.map(duration),
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        require_admin(&request)?;
        let query = user_query(request.get_ref())?;
        let (users, next) = self.admin.list_users(&query).await?;
        let filters = format!("search={}", query.search.as_deref().unwrap_or(""));
        Ok(Response::new(pb::ListUsersResponse {
            users: users.iter().map(user_to_proto).collect(),
            next_page_token: next_token(next, &filters),
        }))
    }

    async fn disable_user(
        &self,
        request: Request<pb::DisableUserRequest>,
    ) -> Result<Response<pb::DisableUserResponse>, Status> {
        let caller = require_admin(&request)?;
        let (id, reason) = user_action(&request.get_ref().user_id, &request.get_ref().reason)?;
        let user = self.admin.disable(&actor(caller), id, &reason).await?;
        Ok(Response::new(pb::DisableUserResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn enable_user(
        &self,
        request: Request<pb::EnableUserRequest>,
    ) -> Result<Response<pb::EnableUserResponse>, Status> {
        let caller = require_admin(&request)?;
        let (id, reason) = user_action(&request.get_ref().user_id, &request.get_ref().reason)?;
        let user = self.admin.enable(&actor(caller), id, &reason).await?;
        Ok(Response::new(pb::EnableUserResponse {
            user: Some(user_to_proto(&user)),
        }))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let caller = require_admin(&request)?;
        let (id, reason) = user_action(&request.get_ref().user_id, &request.get_ref().reason)?;
        let deleted = self.admin.delete_user(&actor(caller), id, &reason).await?;
        Ok(Response::new(pb::DeleteUserResponse {
            deleted: deleted
                .into_iter()
                .map(|(service, count)| pb::DeletedData {
                    service: service.to_owned(),
                    count: i64::try_from(count).unwrap_or(i64::MAX),
                })
                .collect(),
        }))
    }

    async fn list_audit_log(
        &self,
        request: Request<pb::ListAuditLogRequest>,
    ) -> Result<Response<pb::ListAuditLogResponse>, Status> {
        require_admin(&request)?;
        let request = request.get_ref();
        let mut violations = Violations::new();
        let page_size =
            violations.check("page_size", paging::validate_page_size(request.page_size));
        let before = violations.check(
            "page_token",
            paging::decode_uuid(&request.page_token, "audit"),
        );
        let (page_size, before) = violations.finish((page_size, before)).map_err(invalid)?;
        let page = self.admin.audit_log(page_size, before).await?;
        Ok(Response::new(pb::ListAuditLogResponse {
            entries: page.entries.iter().map(entry_to_proto).collect(),
            next_page_token: next_token(page.next, "audit"),
        }))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        require_admin(&request)?;
        let (owner, query) = job_query(request.get_ref())?;
        let page = self.admin.list_jobs(owner.as_deref(), &query).await?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: page.jobs.iter().map(job_to_proto).collect(),
            next_page_token: next_token(page.next, &jobs_filter_key(&owner, &query)),
        }))
    }

    async fn get_queue_stats(
        &self,
        request: Request<pb::GetQueueStatsRequest>,
    ) -> Result<Response<pb::GetQueueStatsResponse>, Status> {
        require_admin(&request)?;
        let read_time = domain::now();
        let queues = self.admin.queue_stats().await?;
        Ok(Response::new(pb::GetQueueStatsResponse {
            queues: queues.iter().map(stats_to_proto).collect(),
            read_time: Some(timestamp(read_time)),
        }))
    }

    async fn retry_job(
        &self,
        request: Request<pb::RetryJobRequest>,
    ) -> Result<Response<pb::RetryJobResponse>, Status> {
        let caller = require_admin(&request)?;
        let id = job_id(&request.get_ref().id)?;
        let job = self.admin.retry_job(&actor(caller), id).await?;
        Ok(Response::new(pb::RetryJobResponse {
            job: Some(job_to_proto(&job)),
        }))
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::CancelJobResponse>, Status> {
        let caller = require_admin(&request)?;
        let id = job_id(&request.get_ref().id)?;
        let job = self.admin.cancel_job(&actor(caller), id).await?;
        Ok(Response::new(pb::CancelJobResponse {
            job: Some(job_to_proto(&job)),
        }))
    }

    type WatchJobsStream = WatchStream;

    async fn watch_jobs(
        &self,
        request: Request<pb::WatchJobsRequest>,
    ) -> Result<Response<Self::WatchJobsStream>, Status> {
        let caller = require_admin(&request)?;
        let jobs = self.admin.watch_jobs(&actor(caller))?;
        Ok(Response::new(Box::pin(jobs.map(|job| {
            job.map(|job| pb::WatchJobsResponse {
                job: Some(job_to_proto(&job)),
            })
            .map_err(|error| Status::from(AdminError::from(error)))
        }))))
    }
}
