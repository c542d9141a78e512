//! The tonic adapter of `aimesh.processing.v1.QuizService`: takes the caller, converts the
//! request ([`super::convert`]), calls [`Quizzes`] and maps the result back.

use aimesh_jobs::api::job_to_proto;
use aimesh_kit::{auth::principal, paging};
use aimesh_proto::processing::v1::{self as pb, quiz_service_server::QuizService};
use tonic::{Request, Response, Status};

use super::{
    convert::quiz_to_proto,
    domain::{Answers, HistoryQuery, NewQuiz},
    service::Quizzes,
};
use crate::convert::parse_id;

/// The gRPC face of the quizzes service.
#[derive(Clone)]
pub struct QuizApi {
    quizzes: Quizzes,
}

impl QuizApi {
    /// Wraps the service.
    pub fn new(quizzes: Quizzes) -> Self {
        Self { quizzes }
    }

    /// Returns the tonic server for this API.
    pub fn into_server(self) -> pb::quiz_service_server::QuizServiceServer<Self> {
        pb::quiz_service_server::QuizServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl QuizService for QuizApi {
    async fn generate_quiz(
        &self,
        request: Request<pb::GenerateQuizRequest>,
    ) -> Result<Response<pb::GenerateQuizResponse>, Status> {
        let caller = principal(&request)?;
        let new = NewQuiz::try_from(request.into_inner())?;
        let (quiz, job) = self.quizzes.generate(&caller.user_id, new).await?;
        Ok(Response::new(pb::GenerateQuizResponse {
            quiz: Some(quiz_to_proto(&quiz, false)),
            job: Some(job_to_proto(&job)),
        }))
    }

    async fn get_quiz(
        &self,
        request: Request<pb::GetQuizRequest>,
    ) -> Result<Response<pb::GetQuizResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let quiz = self.quizzes.get(&caller.user_id, id).await?;
        Ok(Response::new(pb::GetQuizResponse {
            quiz: Some(quiz_to_proto(&quiz, false)),
        }))
    }

    async fn submit_quiz(
        &self,
        request: Request<pb::SubmitQuizRequest>,
    ) -> Result<Response<pb::SubmitQuizResponse>, Status> {
        let caller = principal(&request)?;
        let answers = Answers::try_from(request.into_inner())?;
        let submission = self.quizzes.submit(&caller.user_id, answers).await?;
        Ok(Response::new(pb::SubmitQuizResponse {
            submission: Some((&submission).into()),
        }))
    }

    async fn list_quiz_history(
        &self,
        request: Request<pb::ListQuizHistoryRequest>,
    ) -> Result<Response<pb::ListQuizHistoryResponse>, Status> {
        let caller = principal(&request)?;
        let query = HistoryQuery::try_from(request.get_ref())?;
        let history = self.quizzes.history(&caller.user_id, &query).await?;
        Ok(Response::new(pb::ListQuizHistoryResponse {
            submissions: history.submissions.iter().map(Into::into).collect(),
            next_page_token: history
                .next_after
                .map(|after| paging::encode(after.as_bytes(), &query.filter_key()))
                .unwrap_or_default(),
            stats: Some((&history.stats).into()),
        }))
    }
}
