//! Conversions between the protobuf messages of `aimesh.processing.v1` and the documents
//! domain.
//!
//! Requests become validated domain values through `TryFrom` (every offending field is
//! reported, as an INVALID_ARGUMENT with the fields named); domain values become responses
//! through `From`.

use aimesh_ai::analysis::study::StudyNotes;
use aimesh_jobs::api::job_to_proto;
use aimesh_kit::{
    error::{Violations, parse_uuid},
    paging,
    proto::timestamp,
};
use aimesh_proto::processing::v1 as pb;
use bytes::Bytes;
use uuid::Uuid;

use crate::{
    domain::{
        self, Append, Document, Hit, ListQuery, MAX_APPEND_BYTES, MAX_SEARCH_DOCUMENTS,
        NewDocument, NewUpload, SearchQuery, Status, Upload, Uploaded,
    },
    error::ProcessingError,
};

fn finish<T: aimesh_kit::error::Checked>(
    violations: Violations,
    values: T,
) -> Result<T::Values, ProcessingError> {
    violations
        .finish(values)
        .map_err(ProcessingError::InvalidArgument)
}

/// Parses the id a request names in `field`.
pub fn parse_id(field: &str, id: &str) -> Result<Uuid, ProcessingError> {
    let mut violations = Violations::new();
    let id = violations.check(field, parse_uuid(id));
    finish(violations, id)
}

/// The domain status a proto status names (`None` for unspecified).
pub fn status_filter(status: pb::DocumentStatus) -> Option<Status> {
    match status {
        pb::DocumentStatus::Unspecified => None,
        pb::DocumentStatus::Pending => Some(Status::Pending),
        pb::DocumentStatus::Processing => Some(Status::Processing),
        pb::DocumentStatus::Ready => Some(Status::Ready),
        pb::DocumentStatus::Failed => Some(Status::Failed),
    }
}

impl From<Status> for pb::DocumentStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Pending => pb::DocumentStatus::Pending,
            Status::Processing => pb::DocumentStatus::Processing,
            Status::Ready => pb::DocumentStatus::Ready,
            Status::Failed => pb::DocumentStatus::Failed,
        }
    }
}

// === requests -> domain ===

impl TryFrom<pb::UploadDocumentRequest> for NewDocument {
    type Error = ProcessingError;

    fn try_from(request: pb::UploadDocumentRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let filename = violations.check("filename", domain::validate_filename(&request.filename));
        let body = request.body.unwrap_or_default();
        let content_type = violations.check(
            "body.content_type",
            domain::validate_content_type(&body.content_type),
        );
        if body.data.is_empty() {
            violations.add("body.data", "must not be empty");
        }
        let (filename, content_type) = finish(violations, (filename, content_type))?;
        Ok(NewDocument {
            filename,
            content_type,
            data: Bytes::from(body.data),
            generate_notes: request.generate_notes.unwrap_or(true),
        })
    }
}

impl TryFrom<pb::CreateUploadRequest> for NewUpload {
    type Error = ProcessingError;

    fn try_from(request: pb::CreateUploadRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let filename = violations.check("filename", domain::validate_filename(&request.filename));
        let content_type = violations.check(
            "content_type",
            domain::validate_content_type(&request.content_type),
        );
        if request.size_bytes <= 0 {
            violations.add("size_bytes", "must be at least 1 byte");
        }
        let (filename, content_type) = finish(violations, (filename, content_type))?;
        Ok(NewUpload {
            filename,
            content_type,
            size_bytes: request.size_bytes,
            generate_notes: request.generate_notes.unwrap_or(true),
        })
    }
}

impl TryFrom<pb::AppendUploadRequest> for Append {
    type Error = ProcessingError;

    fn try_from(request: pb::AppendUploadRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let upload_id = violations.check("upload_id", parse_uuid(&request.upload_id));
        if request.offset < 0 {
            violations.add("offset", "must not be negative");
        }
        if request.data.is_empty() {
            violations.add("data", "must not be empty");
        } else if request.data.len() > MAX_APPEND_BYTES {
            violations.add(
                "data",
                format!("must be at most {MAX_APPEND_BYTES} bytes per append"),
            );
        }
        let upload_id = finish(violations, upload_id)?;
        Ok(Append {
            upload_id,
            offset: request.offset,
            data: Bytes::from(request.data),
        })
    }
}

impl TryFrom<pb::AppendUploadContentRequest> for Append {
    type Error = ProcessingError;

    /// The raw-body form of an append: the same rules, the bytes in `body.data`.
    fn try_from(request: pb::AppendUploadContentRequest) -> Result<Self, Self::Error> {
        let data = request.body.map(|body| body.data).unwrap_or_default();
        let mut violations = Violations::new();
        let upload_id = violations.check("upload_id", parse_uuid(&request.upload_id));
        if request.offset < 0 {
            violations.add("offset", "must not be negative");
        }
        if data.is_empty() {
            violations.add("body.data", "must not be empty");
        } else if data.len() > MAX_APPEND_BYTES {
            violations.add(
                "body.data",
                format!("must be at most {MAX_APPEND_BYTES} bytes per append"),
            );
        }
        let upload_id = finish(violations, upload_id)?;
        Ok(Append {
            upload_id,
            offset: request.offset,
            data: Bytes::from(data),
        })
    }
}

impl TryFrom<&pb::ListDocumentsRequest> for ListQuery {
    type Error = ProcessingError;

    fn try_from(request: &pb::ListDocumentsRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let page_size =
            violations.check("page_size", domain::validate_page_size(request.page_size));
        let status = violations.check(
            "status",
            pb::DocumentStatus::try_from(request.status)
                .map(status_filter)
                .map_err(|_| "is not a known status"),
        );
        let (page_size, status) = finish(violations, (page_size, status))?;
        let mut query = ListQuery {
            page_size,
            after: None,
            status,
        };
        let mut violations = Violations::new();
        let after = violations.check(
            "page_token",
            paging::decode_uuid(&request.page_token, &query.filter_key()),
        );
        query.after = finish(violations, after)?;
        Ok(query)
    }
}

impl TryFrom<pb::SearchDocumentsRequest> for SearchQuery {
    type Error = ProcessingError;

    fn try_from(request: pb::SearchDocumentsRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let query = violations.check("query", domain::validate_query(&request.query));
        let k = violations.check("k", domain::validate_k(request.k));
        let mut document_ids = Vec::with_capacity(request.document_ids.len());
        if request.document_ids.len() > MAX_SEARCH_DOCUMENTS {
            violations.add(
                "document_ids",
                format!("must name at most {MAX_SEARCH_DOCUMENTS} documents"),
            );
        } else {
            for id in &request.document_ids {
                if let Some(id) = violations.check("document_ids", parse_uuid(id)) {
                    document_ids.push(id);
                }
            }
        }
        let (query, k) = finish(violations, (query, k))?;
        document_ids.sort();
        document_ids.dedup();
        Ok(SearchQuery {
            query,
            k,
            document_ids,
        })
    }
}

// === domain -> responses ===

impl From<&Document> for pb::Document {
    fn from(document: &Document) -> Self {
        pb::Document {
            id: document.id.to_string(),
            filename: document.filename.clone(),
            content_type: document.content_type.clone(),
            size_bytes: document.size_bytes,
            sha256: document.sha256.clone(),
            status: pb::DocumentStatus::from(document.status).into(),
            failure_reason: document.failure_reason.clone().unwrap_or_default(),
            format: document.format.clone().unwrap_or_default(),
            page_count: document.page_count,
            chunk_count: document.chunk_count,
            text: document.text.clone().unwrap_or_default(),
            generate_notes: document.generate_notes,
            job_id: document.job_id.map(|id| id.to_string()).unwrap_or_default(),
            create_time: Some(timestamp(document.created_at)),
            update_time: Some(timestamp(document.updated_at)),
            notes: None,
        }
    }
}

/// Study notes as the API shows them.
pub fn notes_to_proto(notes: &StudyNotes) -> pb::StudyNotes {
    pb::StudyNotes {
        engine: notes.engine.clone(),
        overview: notes.overview.clone(),
        sections: notes
            .sections
            .iter()
            .map(|section| pb::NotesSection {
                heading: section.heading.clone(),
                key_points: section.key_points.clone(),
                key_terms: section.key_terms.clone(),
            })
            .collect(),
        key_terms: notes.key_terms.clone(),
    }
}

impl From<&Upload> for pb::Upload {
    fn from(upload: &Upload) -> Self {
        pb::Upload {
            id: upload.id.to_string(),
            filename: upload.filename.clone(),
            content_type: upload.content_type.clone(),
            size_bytes: upload.size_bytes,
            offset: upload.received_bytes,
            generate_notes: upload.generate_notes,
            create_time: Some(timestamp(upload.created_at)),
        }
    }
}

impl From<&Uploaded> for pb::UploadDocumentResponse {
    fn from(uploaded: &Uploaded) -> Self {
        pb::UploadDocumentResponse {
            document: Some((&uploaded.document).into()),
            job: uploaded.job.as_ref().map(job_to_proto),
            duplicate: uploaded.duplicate,
        }
    }
}

impl From<&Uploaded> for pb::FinishUploadResponse {
    fn from(uploaded: &Uploaded) -> Self {
        pb::FinishUploadResponse {
            document: Some((&uploaded.document).into()),
            job: uploaded.job.as_ref().map(job_to_proto),
            duplicate: uploaded.duplicate,
        }
    }
}

impl From<&Hit> for pb::SearchHit {
    fn from(hit: &Hit) -> Self {
        pb::SearchHit {
            document_id: hit.chunk.document_id.to_string(),
            filename: hit.chunk.filename.clone(),
            page: hit.chunk.page,
            passage: hit.chunk.text.clone(),
            score: hit.score,
            char_start: hit.chunk.char_start,
            char_end: hit.chunk.char_end,
        }
    }
}
