//! Processing documents as jobs: the `processing.document` job handler. It extracts the text on
//! a blocking thread, chunks it, embeds every chunk, and stores the chunks with their vectors
//! and the document READY in one transaction (a repeated attempt replaces them). When the
//! document asks for them (`generate_notes`), study notes are written first (stage `notes`)
//! and stored in the same transaction. A document the extractor refuses ends FAILED with the
//! extractor's reason.

use aimesh_ai::{
    analysis::{Analyzer, MAX_TEXT_BYTES},
    engine::EngineError,
};
use aimesh_jobs::{JobContext, JobError, JobHandler, JobOutput};
use aimesh_proto::processing::v1 as pb;
use futures::future::BoxFuture;

use crate::{
    chunk::{ChunkOptions, chunk},
    domain::{NewChunk, ProcessJob, Processed, Status, now},
    error::ProcessingError,
    service::Processing,
};

/// The job kind of document processing.
pub const KIND: &str = "processing.document";

/// Chunks embedded per engine call.
const EMBED_BATCH: usize = 32;

/// Runs `processing.document` jobs; their payload is a [`ProcessJob`] (JSON).
pub struct ProcessHandler {
    processing: Processing,
}

impl ProcessHandler {
    /// Creates the handler.
    pub fn new(processing: Processing) -> Self {
        Self { processing }
    }
}

impl JobHandler for ProcessHandler {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let processing = self.processing.clone();
        Box::pin(async move {
            let last_attempt = ctx.job.attempts >= ctx.job.max_attempts;
            let owner = ctx.job.owner_id.clone();
            let payload = ctx.job.payload.clone();
            let outcome = process(processing.clone(), ctx).await;
            if let (Err(JobError::Retryable(reason)), true) = (&outcome, last_attempt) {
                // No attempt is left: the document must not stay PROCESSING.
                if let Ok(request) = serde_json::from_slice::<ProcessJob>(&payload)
                    && processing.get(&owner, request.document_id).await.is_ok()
                {
                    let _ = processing
                        .store()
                        .set_status(request.document_id, Status::Failed, Some(reason), now())
                        .await;
                }
            }
            outcome
        })
    }
}

fn retryable(error: ProcessingError) -> JobError {
    match error {
        ProcessingError::DocumentNotFound(_) => {
            JobError::Permanent("the document no longer exists".into())
        }
        other => JobError::Retryable(other.to_string()),
    }
}

/// The longest prefix of `text` the analyses take, cut at a character boundary.
fn bounded(text: &str) -> &str {
    if text.len() <= MAX_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

async fn process(processing: Processing, ctx: JobContext) -> Result<JobOutput, JobError> {
    let request: ProcessJob = serde_json::from_slice(&ctx.job.payload)
        .map_err(|e| JobError::Permanent(format!("unreadable job payload: {e}")))?;
    let id = request.document_id;
    let owner = ctx.job.owner_id.clone();
    let document = processing.get(&owner, id).await.map_err(retryable)?;
    let embedder = processing
        .embedder()
        .map_err(|e| JobError::Retryable(e.to_string()))?
        .clone();
    let store = processing.store().clone();
    store
        .set_status(id, Status::Processing, None, now())
        .await
        .map_err(retryable)?;

    ctx.progress(5, "extracting text", "").await;
    let bytes = processing
        .blobs()
        .get(&owner, &document.sha256)
        .await
        .map_err(|e| JobError::Retryable(format!("failed to read the document: {e}")))?;
    let extractor = processing.extractor().clone();
    let extracted = tokio::select! {
        _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        extracted = tokio::task::spawn_blocking(move || extractor.extract(&bytes)) => extracted,
    };
    let extracted = match extracted {
        Ok(Ok(extracted)) => extracted,
        Ok(Err(error)) => {
            let reason = error.to_string();
            store
                .set_status(id, Status::Failed, Some(&reason), now())
                .await
                .map_err(retryable)?;
            return Err(JobError::Permanent(reason));
        }
        Err(error) => {
            let reason = format!("extraction failed: {error}");
            store
                .set_status(id, Status::Failed, Some(&reason), now())
                .await
                .map_err(retryable)?;
            return Err(JobError::Permanent(reason));
        }
    };

    ctx.progress(30, "chunking", "").await;
    let chunks = chunk(&extracted, &ChunkOptions::default());
    let total = chunks.len();
    let mut stored: Vec<NewChunk> = Vec::with_capacity(total);
    ctx.progress(40, &format!("embedding {total} chunks"), "")
        .await;
    for batch in chunks.chunks(EMBED_BATCH) {
        let texts: Vec<String> = batch.iter().map(|c| c.text.clone()).collect();
        let vectors = tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
            vectors = embedder.embed(texts) => {
                vectors.map_err(|e| JobError::Retryable(e.to_string()))?
            }
        };
        for (piece, embedding) in batch.iter().zip(vectors) {
            stored.push(NewChunk {
                seq: piece.index as i32,
                page: piece.page as i32,
                char_start: piece.char_start as i32,
                char_end: piece.char_end as i32,
                text: piece.text.clone(),
                embedding,
            });
        }
        let percent = 40 + (stored.len() * 55 / total.max(1)) as i32;
        ctx.progress(
            percent.min(95),
            &format!("embedded {} of {total} chunks", stored.len()),
            "",
        )
        .await;
    }
    if ctx.cancel.is_cancelled() {
        return Err(JobError::Cancelled);
    }
    let text = extracted.text();
    let notes = if document.generate_notes {
        ctx.progress(96, "notes: writing study notes", "").await;
        let analyzer = Analyzer::new(embedder.clone());
        let written = tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
            written = analyzer.study_notes(bounded(&text)) => written,
        };
        match written {
            Ok(notes) => Some(notes),
            // A text without sentences (a scan of figures, a list of numbers) has nothing to
            // note; the document is READY all the same.
            Err(EngineError::InvalidInput { .. }) => None,
            Err(error) => return Err(JobError::Retryable(error.to_string())),
        }
    } else {
        None
    };
    let processed = Processed {
        format: extracted.format.as_str().to_owned(),
        content_type: extracted.format.mime_type().to_owned(),
        page_count: extracted.page_count as i32,
        text,
    };
    if !store
        .store_processed(id, &processed, &stored, notes.as_ref(), now())
        .await
        .map_err(retryable)?
    {
        return Err(JobError::Permanent("the document no longer exists".into()));
    }
    Ok(JobOutput::message(&pb::ProcessDocumentResult {
        document_id: id.to_string(),
        format: processed.format,
        page_count: processed.page_count,
        chunk_count: stored.len() as i32,
    }))
}

/// The job kind of the stale uploads' sweep.
pub const EXPIRE_UPLOADS_KIND: &str = "processing.expire_uploads";

/// Runs `processing.expire_uploads` jobs (scheduled, payload `{}`): deletes the uploads left
/// unfinished past the expiry, with their stored bytes.
pub struct ExpireUploadsHandler {
    processing: Processing,
}

impl ExpireUploadsHandler {
    /// Creates the handler.
    pub fn new(processing: Processing) -> Self {
        Self { processing }
    }
}

impl JobHandler for ExpireUploadsHandler {
    fn kind(&self) -> &'static str {
        EXPIRE_UPLOADS_KIND
    }

    fn run(&self, _ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let processing = self.processing.clone();
        Box::pin(async move {
            let deleted = processing
                .expire_uploads()
                .await
                .map_err(|e| JobError::Retryable(e.to_string()))?;
            if deleted > 0 {
                tracing::info!(deleted, "stale uploads deleted");
            }
            Ok(JobOutput::message(&pb::ExpireUploadsResult {
                uploads_deleted: i32::try_from(deleted).unwrap_or(i32::MAX),
            }))
        })
    }
}
