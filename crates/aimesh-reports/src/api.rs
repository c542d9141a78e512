//! The tonic adapter of `aimesh.reports.v1.ReportsService`: takes the caller from the request,
//! converts the message into domain values ([`crate::convert`]), calls [`Reports`] and maps
//! the result back. No rules live here.

use aimesh_jobs::api::job_to_proto;
use aimesh_kit::{auth::principal, paging};
use aimesh_proto::{
    google::api::HttpBody,
    reports::v1::{self as pb, reports_service_server::ReportsService},
};
use tonic::{Request, Response, Status, metadata::MetadataValue};

use crate::{
    convert::parse_id,
    report::{EventPage, ListQuery, NewReport},
    service::Reports,
};

/// The gRPC face of the reports service.
#[derive(Clone)]
pub struct ReportsApi {
    reports: Reports,
}

impl ReportsApi {
    /// Wraps the service.
    pub fn new(reports: Reports) -> Self {
        Self { reports }
    }

    /// Returns the tonic server for this API; it accepts messages up to the configured request
    /// limit (a whole report's events in one CreateReport) and sends files of any size.
    pub fn into_server(self) -> pb::reports_service_server::ReportsServiceServer<Self> {
        let limit = self.reports.config().max_request_bytes;
        pb::reports_service_server::ReportsServiceServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX)
    }
}

#[tonic::async_trait]
impl ReportsService for ReportsApi {
    async fn create_report(
        &self,
        request: Request<pb::CreateReportRequest>,
    ) -> Result<Response<pb::CreateReportResponse>, Status> {
        let caller = principal(&request)?;
        let new = NewReport::try_from(request.into_inner())?;
        let (report, job) = self.reports.create(&caller.user_id, new).await?;
        Ok(Response::new(pb::CreateReportResponse {
            report: Some((&report).into()),
            job: job.as_ref().map(job_to_proto),
        }))
    }

    async fn append_report_events(
        &self,
        request: Request<pb::AppendReportEventsRequest>,
    ) -> Result<Response<pb::AppendReportEventsResponse>, Status> {
        let caller = principal(&request)?;
        let page = EventPage::try_from(request.into_inner())?;
        let report = self.reports.append(&caller.user_id, page).await?;
        Ok(Response::new(pb::AppendReportEventsResponse {
            report: Some((&report).into()),
        }))
    }

    async fn generate_report(
        &self,
        request: Request<pb::GenerateReportRequest>,
    ) -> Result<Response<pb::GenerateReportResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let (report, job) = self.reports.generate(&caller.user_id, id).await?;
        Ok(Response::new(pb::GenerateReportResponse {
            report: Some((&report).into()),
            job: Some(job_to_proto(&job)),
        }))
    }

    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let report = self.reports.get(&caller.user_id, id).await?;
        Ok(Response::new(pb::GetReportResponse {
            report: Some((&report).into()),
        }))
    }

    async fn list_reports(
        &self,
        request: Request<pb::ListReportsRequest>,
    ) -> Result<Response<pb::ListReportsResponse>, Status> {
        let caller = principal(&request)?;
        let query = ListQuery::try_from(request.get_ref())?;
        let page = self.reports.list(&caller.user_id, &query).await?;
        Ok(Response::new(pb::ListReportsResponse {
            reports: page.reports.iter().map(Into::into).collect(),
            next_page_token: page
                .next_after
                .map(|after| paging::encode(after.as_bytes(), &query.filter_key()))
                .unwrap_or_default(),
        }))
    }

    async fn delete_report(
        &self,
        request: Request<pb::DeleteReportRequest>,
    ) -> Result<Response<pb::DeleteReportResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.reports.delete(&caller.user_id, id).await?;
        Ok(Response::new(pb::DeleteReportResponse {}))
    }

    async fn download_report(
        &self,
        request: Request<pb::DownloadReportRequest>,
    ) -> Result<Response<HttpBody>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let (report, bytes) = self.reports.download(&caller.user_id, id).await?;
        let mut response = Response::new(HttpBody {
            content_type: report.content_type().to_owned(),
            data: bytes.to_vec(),
            extensions: Vec::new(),
        });
        // The name is reduced to header-safe characters, so this always parses.
        if let Ok(value) =
            MetadataValue::try_from(format!("attachment; filename=\"{}\"", report.filename()))
        {
            response.metadata_mut().insert("content-disposition", value);
        }
        Ok(response)
    }

    async fn get_report_url(
        &self,
        request: Request<pb::GetReportUrlRequest>,
    ) -> Result<Response<pb::GetReportUrlResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let ttl = u64::from(request.get_ref().ttl_seconds);
        let signed = self.reports.report_url(&caller.user_id, id, ttl).await?;
        Ok(Response::new(pb::GetReportUrlResponse {
            url: signed.url,
            expire_time: Some(aimesh_kit::proto::timestamp(signed.expires_at)),
        }))
    }
}
