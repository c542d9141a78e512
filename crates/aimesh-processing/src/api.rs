//! The tonic adapter of `aimesh.processing.v1.ProcessingService`: takes the caller from the
//! request, converts the message into domain values ([`crate::convert`]), calls
//! [`Processing`] and maps the result back. No rules live here.

use aimesh_jobs::api::job_to_proto;
use aimesh_kit::{auth::principal, paging};
use aimesh_proto::{
    google::api::HttpBody,
    processing::v1::{self as pb, processing_service_server::ProcessingService},
};
use tonic::{Request, Response, Status};

use crate::{
    convert::{notes_to_proto, parse_id},
    domain::{Append, ListQuery, NewDocument, NewUpload, SearchQuery},
    service::Processing,
};

/// Room for the rest of an upload request beyond the file's bytes.
const ENVELOPE_BYTES: usize = 64 << 10;

/// The gRPC face of the processing service.
#[derive(Clone)]
pub struct ProcessingApi {
    processing: Processing,
}

impl ProcessingApi {
    /// Wraps the service.
    pub fn new(processing: Processing) -> Self {
        Self { processing }
    }

    /// Returns the tonic server for this API; it accepts messages as large as the upload
    /// limit (plus room for the other fields) and sends documents of any stored size.
    pub fn into_server(self) -> pb::processing_service_server::ProcessingServiceServer<Self> {
        let limit = usize::try_from(self.processing.config().max_upload_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(ENVELOPE_BYTES);
        pb::processing_service_server::ProcessingServiceServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX)
    }
}

#[tonic::async_trait]
impl ProcessingService for ProcessingApi {
    async fn upload_document(
        &self,
        request: Request<pb::UploadDocumentRequest>,
    ) -> Result<Response<pb::UploadDocumentResponse>, Status> {
        let caller = principal(&request)?;
        let new = NewDocument::try_from(request.into_inner())?;
        let uploaded = self.processing.upload(&caller.user_id, new).await?;
        Ok(Response::new((&uploaded).into()))
    }

    async fn create_upload(
        &self,
        request: Request<pb::CreateUploadRequest>,
    ) -> Result<Response<pb::CreateUploadResponse>, Status> {
        let caller = principal(&request)?;
        let new = NewUpload::try_from(request.into_inner())?;
        let upload = self.processing.create_upload(&caller.user_id, new).await?;
        Ok(Response::new(pb::CreateUploadResponse {
            upload: Some((&upload).into()),
        }))
    }

    async fn append_upload(
        &self,
        request: Request<pb::AppendUploadRequest>,
    ) -> Result<Response<pb::AppendUploadResponse>, Status> {
        let caller = principal(&request)?;
        let append = Append::try_from(request.into_inner())?;
        let upload = self.processing.append(&caller.user_id, append).await?;
        Ok(Response::new(pb::AppendUploadResponse {
            upload: Some((&upload).into()),
        }))
    }

    async fn append_upload_content(
        &self,
        request: Request<pb::AppendUploadContentRequest>,
    ) -> Result<Response<pb::AppendUploadContentResponse>, Status> {
        let caller = principal(&request)?;
        let append = Append::try_from(request.into_inner())?;
        let upload = self.processing.append(&caller.user_id, append).await?;
        Ok(Response::new(pb::AppendUploadContentResponse {
            upload: Some((&upload).into()),
        }))
    }

    async fn get_upload(
        &self,
        request: Request<pb::GetUploadRequest>,
    ) -> Result<Response<pb::GetUploadResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("upload_id", &request.get_ref().upload_id)?;
        let upload = self.processing.get_upload(&caller.user_id, id).await?;
        Ok(Response::new(pb::GetUploadResponse {
            upload: Some((&upload).into()),
        }))
    }

    async fn finish_upload(
        &self,
        request: Request<pb::FinishUploadRequest>,
    ) -> Result<Response<pb::FinishUploadResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("upload_id", &request.get_ref().upload_id)?;
        let uploaded = self.processing.finish_upload(&caller.user_id, id).await?;
        Ok(Response::new((&uploaded).into()))
    }

    async fn get_document(
        &self,
        request: Request<pb::GetDocumentRequest>,
    ) -> Result<Response<pb::GetDocumentResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let document = self.processing.get(&caller.user_id, id).await?;
        let notes = self.processing.notes(&caller.user_id, id).await?;
        let mut document = pb::Document::from(&document);
        document.notes = notes.as_ref().map(notes_to_proto);
        Ok(Response::new(pb::GetDocumentResponse {
            document: Some(document),
        }))
    }

    async fn list_documents(
        &self,
        request: Request<pb::ListDocumentsRequest>,
    ) -> Result<Response<pb::ListDocumentsResponse>, Status> {
        let caller = principal(&request)?;
        let query = ListQuery::try_from(request.get_ref())?;
        let page = self.processing.list(&caller.user_id, &query).await?;
        Ok(Response::new(pb::ListDocumentsResponse {
            documents: page.documents.iter().map(Into::into).collect(),
            next_page_token: page
                .next_after
                .map(|after| paging::encode(after.as_bytes(), &query.filter_key()))
                .unwrap_or_default(),
        }))
    }

    async fn delete_document(
        &self,
        request: Request<pb::DeleteDocumentRequest>,
    ) -> Result<Response<pb::DeleteDocumentResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.processing.delete(&caller.user_id, id).await?;
        Ok(Response::new(pb::DeleteDocumentResponse {}))
    }

    async fn reprocess_document(
        &self,
        request: Request<pb::ReprocessDocumentRequest>,
    ) -> Result<Response<pb::ReprocessDocumentResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let (document, job) = self.processing.reprocess(&caller.user_id, id).await?;
        Ok(Response::new(pb::ReprocessDocumentResponse {
            document: Some((&document).into()),
            job: Some(job_to_proto(&job)),
        }))
    }

    async fn download_document(
        &self,
        request: Request<pb::DownloadDocumentRequest>,
    ) -> Result<Response<HttpBody>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let (document, bytes) = self.processing.download(&caller.user_id, id).await?;
        let content_type = if document.content_type.is_empty() {
            "application/octet-stream".to_owned()
        } else {
            document.content_type
        };
        Ok(Response::new(HttpBody {
            content_type,
            data: bytes.to_vec(),
            extensions: Vec::new(),
        }))
    }

    async fn get_document_url(
        &self,
        request: Request<pb::GetDocumentUrlRequest>,
    ) -> Result<Response<pb::GetDocumentUrlResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let ttl = u64::from(request.get_ref().ttl_seconds);
        let signed = self
            .processing
            .document_url(&caller.user_id, id, ttl)
            .await?;
        Ok(Response::new(pb::GetDocumentUrlResponse {
            url: signed.url,
            expire_time: Some(aimesh_kit::proto::timestamp(signed.expires_at)),
        }))
    }

    async fn search_documents(
        &self,
        request: Request<pb::SearchDocumentsRequest>,
    ) -> Result<Response<pb::SearchDocumentsResponse>, Status> {
        let caller = principal(&request)?;
        let query = SearchQuery::try_from(request.into_inner())?;
        let (hits, engine) = self.processing.search(&caller.user_id, query).await?;
        Ok(Response::new(pb::SearchDocumentsResponse {
            hits: hits.iter().map(Into::into).collect(),
            engine: engine.to_owned(),
        }))
    }
}
