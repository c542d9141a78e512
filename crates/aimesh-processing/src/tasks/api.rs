//! The tonic adapter of `aimesh.processing.v1.TaskService`: takes the caller, converts the
//! request ([`super::convert`]), calls [`Tasks`] and maps the result back.

use aimesh_jobs::api::job_to_proto;
use aimesh_kit::{auth::principal, paging};
use aimesh_proto::processing::v1::{self as pb, task_service_server::TaskService};
use tonic::{Request, Response, Status};

use super::{
    domain::{NewTask, TaskQuery},
    service::Tasks,
};
use crate::convert::parse_id;

/// The gRPC face of the tasks service.
#[derive(Clone)]
pub struct TaskApi {
    tasks: Tasks,
}

impl TaskApi {
    /// Wraps the service.
    pub fn new(tasks: Tasks) -> Self {
        Self { tasks }
    }

    /// Returns the tonic server for this API.
    pub fn into_server(self) -> pb::task_service_server::TaskServiceServer<Self> {
        pb::task_service_server::TaskServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl TaskService for TaskApi {
    async fn submit_task(
        &self,
        request: Request<pb::SubmitTaskRequest>,
    ) -> Result<Response<pb::SubmitTaskResponse>, Status> {
        let caller = principal(&request)?;
        let new = NewTask::try_from(request.into_inner())?;
        let (task, job) = self.tasks.submit(&caller.user_id, new).await?;
        Ok(Response::new(pb::SubmitTaskResponse {
            task: Some((&task).into()),
            job: Some(job_to_proto(&job)),
        }))
    }

    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::GetTaskResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let task = self.tasks.get(&caller.user_id, id).await?;
        Ok(Response::new(pb::GetTaskResponse {
            task: Some((&task).into()),
        }))
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let caller = principal(&request)?;
        let query = TaskQuery::try_from(request.get_ref())?;
        let page = self.tasks.list(&caller.user_id, &query).await?;
        Ok(Response::new(pb::ListTasksResponse {
            tasks: page.tasks.iter().map(Into::into).collect(),
            next_page_token: page
                .next_after
                .map(|after| paging::encode(after.as_bytes(), &query.filter_key()))
                .unwrap_or_default(),
        }))
    }
}
