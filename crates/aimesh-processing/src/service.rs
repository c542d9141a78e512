//! Documents domain logic: uploads (one call or resumable) into content-addressed blobs under a
//! per-owner quota, processing submitted as jobs, ownership, and semantic search. No tonic, no
//! SQL.

use std::{sync::Arc, time::Duration};

use aimesh_ai::{analysis::study::StudyNotes, embed::Embedder};
use aimesh_jobs::{Cadence, Job, Jobs, SubmitOptions};
use aimesh_kit::{
    blob::{Assembled, BlobStore, sha256_hex},
    files::{FileRef, QuotaError, QuotaPermit, SharedFiles, SignedUrl, StorageQuota, UrlSigner},
};
use bytes::Bytes;
use uuid::Uuid;

use crate::{
    domain::{
        Append, Document, DocumentPage, Hit, ListQuery, NewDocument, NewUpload, ProcessJob,
        SearchQuery, Status, Upload, Uploaded, dot_encoded, now,
    },
    error::{ProcessingError, ProcessingResult},
    extract::Extractor,
    store::{Appended, DocumentStore},
};

/// Attempts a processing job gets before it fails for good.
const PROCESSING_ATTEMPTS: i32 = 3;

/// The name of the stale uploads' sweep schedule.
const UPLOAD_SWEEP_SCHEDULE: &str = "processing.expire_uploads";

/// Stale uploads the sweep deletes per statement.
const UPLOAD_SWEEP_BATCH: i64 = 500;

/// Limits of the service.
#[derive(Debug, Clone)]
pub struct ProcessingConfig {
    /// Largest document accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Most bytes one owner may store (documents and uploads in progress).
    pub storage_quota_bytes: u64,
    /// How long a resumable upload may stay unfinished before the sweep deletes it with its
    /// stored bytes; `None` keeps it until finished.
    pub upload_expiry: Option<Duration>,
    /// Time between two sweeps of stale uploads.
    pub upload_sweep: Duration,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 50 << 20,
            storage_quota_bytes: 1 << 30,
            upload_expiry: Some(Duration::from_secs(24 * 3600)),
            upload_sweep: Duration::from_secs(3600),
        }
    }
}

/// A document's file, stored as the owner's blob and not yet recorded.
struct StoredFile {
    filename: String,
    content_type: String,
    sha256: String,
    size: i64,
    generate_notes: bool,
}

/// The name of an upload's staging in the blob store.
fn staging_name(upload: Uuid) -> String {
    upload.simple().to_string()
}

/// The processing service.
#[derive(Clone)]
pub struct Processing {
    store: DocumentStore,
    blobs: BlobStore,
    jobs: Jobs,
    embedder: Result<Arc<dyn Embedder>, String>,
    extractor: Arc<Extractor>,
    config: ProcessingConfig,
    files: SharedFiles,
}

impl Processing {
    /// Creates the service. `embedder` is the embeddings engine, or why this process has none
    /// (search then answers FAILED_PRECONDITION with the reason).
    pub fn new(
        store: DocumentStore,
        blobs: BlobStore,
        jobs: Jobs,
        embedder: Result<Arc<dyn Embedder>, String>,
        config: ProcessingConfig,
    ) -> Self {
        let mut extractor = Extractor::default();
        extractor.limits.max_input_bytes = usize::try_from(config.max_upload_bytes)
            .unwrap_or(usize::MAX)
            .max(extractor.limits.max_input_bytes);
        // On its own, the quota counts the service's documents and uploads; a mesh shares
        // one over every service (`with_files`).
        let quota = StorageQuota::new(config.storage_quota_bytes);
        quota.register(Arc::new(store.clone()));
        Self {
            store,
            blobs,
            jobs,
            embedder,
            extractor: Arc::new(extractor),
            config,
            files: SharedFiles {
                quota,
                signer: UrlSigner::ephemeral(),
            },
        }
    }

    /// Uses the mesh's shared storage quota and URL signer.
    pub fn with_files(mut self, files: SharedFiles) -> Self {
        self.files = files;
        self
    }

    /// Returns a signed URL to `owner`'s document's original file, living `ttl_seconds` (0:
    /// the default).
    pub async fn document_url(
        &self,
        owner: &str,
        id: Uuid,
        ttl_seconds: u64,
    ) -> ProcessingResult<SignedUrl> {
        let ttl = self
            .files
            .signer
            .ttl(ttl_seconds)
            .map_err(|e| ProcessingError::invalid("ttl_seconds", e.to_string()))?;
        let document = self.get(owner, id).await?;
        let file = FileRef::new(
            crate::files::KIND,
            owner,
            document.id.to_string(),
            crate::files::ORIGINAL,
        );
        self.files
            .signer
            .sign(&file, ttl)
            .map_err(|e| ProcessingError::Internal(e.to_string()))
    }

    /// Returns the limits.
    pub fn config(&self) -> &ProcessingConfig {
        &self.config
    }

    /// Returns the store.
    pub fn store(&self) -> &DocumentStore {
        &self.store
    }

    /// Returns the blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Returns the extractor.
    pub fn extractor(&self) -> &Arc<Extractor> {
        &self.extractor
    }

    /// Returns the embeddings engine, or why there is none.
    pub fn embedder(&self) -> ProcessingResult<&Arc<dyn Embedder>> {
        self.embedder
            .as_ref()
            .map_err(|reason| ProcessingError::EngineUnavailable(reason.clone()))
    }

    /// Whether this process has an embeddings engine (and so can run processing jobs).
    pub fn can_process(&self) -> bool {
        self.embedder.is_ok()
    }

    /// Stores a whole document for `owner` and starts processing it.
    pub async fn upload(&self, owner: &str, new: NewDocument) -> ProcessingResult<Uploaded> {
        self.check_size("body.data", new.data.len() as i64)?;
        self.create_document(
            owner,
            new.filename,
            new.content_type,
            new.data,
            new.generate_notes,
            0,
        )
        .await
    }

    /// Starts a resumable upload for `owner`.
    pub async fn create_upload(&self, owner: &str, new: NewUpload) -> ProcessingResult<Upload> {
        self.check_size("size_bytes", new.size_bytes)?;
        // Held until the upload's row counts its declared size.
        let _permit = self.check_quota(owner, new.size_bytes, 0).await?;
        let upload = Upload {
            id: Uuid::now_v7(),
            owner_id: owner.to_owned(),
            filename: new.filename,
            content_type: new.content_type,
            size_bytes: new.size_bytes,
            received_bytes: 0,
            generate_notes: new.generate_notes,
            created_at: now(),
        };
        self.store.create_upload(&upload).await?;
        Ok(upload)
    }

    /// Returns `owner`'s upload.
    pub async fn get_upload(&self, owner: &str, id: Uuid) -> ProcessingResult<Upload> {
        self.store
            .get_upload(owner, id)
            .await?
            .ok_or(ProcessingError::UploadNotFound(id))
    }

    /// Appends bytes to `owner`'s upload at exactly its stored offset.
    pub async fn append(&self, owner: &str, append: Append) -> ProcessingResult<Upload> {
        let upload = self.get_upload(owner, append.upload_id).await?;
        let end = append.offset.saturating_add(append.data.len() as i64);
        if append.offset == upload.received_bytes && end > upload.size_bytes {
            return Err(ProcessingError::invalid(
                "data",
                format!(
                    "ends at byte {end}, past the declared size of {} bytes",
                    upload.size_bytes
                ),
            ));
        }
        // The bytes go to the blob store first, under a name of their own: the database then
        // records the part only if the offset is still the stored one, and a refused part is
        // deleted (or swept with stale uploads, should this process stop first).
        let len = append.data.len() as i64;
        let key = format!("{:020}-{}", append.offset, Uuid::now_v7().simple());
        let staging = staging_name(upload.id);
        self.blobs
            .put_part(owner, &staging, &key, append.data)
            .await?;
        let appended = self
            .store
            .append(owner, upload.id, append.offset, len, &key)
            .await;
        if !matches!(appended, Ok(Appended::Stored(_)))
            && let Err(error) = self.blobs.delete_part(owner, &staging, &key).await
        {
            tracing::warn!(%error, upload = %upload.id, "failed to delete a refused part");
        }
        match appended? {
            Appended::Stored(received) => Ok(Upload {
                received_bytes: received,
                ..upload
            }),
            Appended::WrongOffset(stored) => Err(ProcessingError::WrongOffset {
                id: upload.id,
                sent: append.offset,
                stored,
            }),
            Appended::NotFound => Err(ProcessingError::UploadNotFound(upload.id)),
        }
    }

    /// Registers the recurring sweep of stale uploads, unless uploads never expire.
    pub async fn schedule_upload_sweep(&self) -> ProcessingResult<()> {
        if self.config.upload_expiry.is_none() {
            return Ok(());
        }
        let cadence = Cadence::every(self.config.upload_sweep)?;
        self.jobs
            .schedule(
                UPLOAD_SWEEP_SCHEDULE,
                cadence,
                crate::job::EXPIRE_UPLOADS_KIND,
                b"{}".to_vec(),
            )
            .await?;
        Ok(())
    }

    /// Deletes every upload left unfinished for longer than the expiry, with its stored
    /// bytes (and so its share of the owner's quota); returns how many went.
    pub async fn expire_uploads(&self) -> ProcessingResult<u64> {
        let Some(expiry) = self.config.upload_expiry else {
            return Ok(0);
        };
        let expiry = chrono::Duration::from_std(expiry)
            .map_err(|e| ProcessingError::Internal(format!("upload expiry: {e}")))?;
        let before = now() - expiry;
        let mut deleted = 0;
        loop {
            let batch = self
                .store
                .delete_uploads_before(before, UPLOAD_SWEEP_BATCH)
                .await?;
            deleted += batch;
            if batch < UPLOAD_SWEEP_BATCH as u64 {
                break;
            }
        }
        // Every part of an upload is written after the upload was created: the staged objects
        // older than `before` belong to the uploads just deleted, or to none (a part refused
        // or an upload finished while this process stopped).
        let parts = self.blobs.delete_staged_before(before).await?;
        if parts > 0 {
            tracing::info!(uploads = deleted, parts, "stale uploads expired");
        }
        Ok(deleted)
    }

    /// Completes `owner`'s upload: assembles its staged parts into the document's blob (one
    /// part in memory at a time) and starts processing.
    pub async fn finish_upload(&self, owner: &str, id: Uuid) -> ProcessingResult<Uploaded> {
        let upload = self.get_upload(owner, id).await?;
        if upload.received_bytes != upload.size_bytes {
            return Err(ProcessingError::Incomplete {
                id,
                stored: upload.received_bytes,
                size: upload.size_bytes,
            });
        }
        let parts = self.store.upload_parts(id).await?;
        let mut end = 0;
        for part in &parts {
            if part.offset != end {
                return Err(ProcessingError::Internal(format!(
                    "upload {id} has no part at byte {end}"
                )));
            }
            end += part.size;
        }
        if end != upload.size_bytes {
            return Err(ProcessingError::Internal(format!(
                "upload {id} holds {end} bytes, not {}",
                upload.size_bytes
            )));
        }
        let staging = staging_name(id);
        let keys: Vec<String> = parts.into_iter().map(|part| part.key).collect();
        let assembled = self.blobs.assemble(owner, &staging, &keys).await?;
        // The owner's identical document, or the assembled file kept as a new blob under the
        // quota; a failure discards the assembled file and leaves the upload to finish again.
        let kept = async {
            if let Some(existing) = self.store.find_by_sha256(owner, &assembled.digest).await? {
                return Ok(Err(existing));
            }
            // The upload's declared size is already counted in the owner's usage.
            let permit = self
                .check_quota(owner, assembled.size as i64, upload.size_bytes)
                .await?;
            self.blobs
                .keep_assembled(owner, &staging, &assembled)
                .await?;
            Ok::<_, ProcessingError>(Ok(permit))
        };
        let uploaded = match kept.await {
            Ok(Ok(permit)) => {
                let stored = StoredFile {
                    filename: upload.filename,
                    content_type: upload.content_type,
                    sha256: assembled.digest,
                    size: assembled.size as i64,
                    generate_notes: upload.generate_notes,
                };
                self.record_document(owner, stored, permit).await?
            }
            Ok(Err(existing)) => self.duplicate(owner, existing).await?,
            Err(error) => {
                self.discard(owner, &staging, &assembled).await;
                return Err(error);
            }
        };
        self.store.delete_upload(id).await?;
        if let Err(error) = self.blobs.delete_upload(owner, &staging).await {
            // The sweep of stale uploads deletes what is left.
            tracing::warn!(%error, upload = %id, "failed to delete a finished upload's parts");
        }
        Ok(uploaded)
    }

    /// Deletes an assembled upload a failed finish leaves staged: the upload stays, and a
    /// later finish assembles it again.
    async fn discard(&self, owner: &str, staging: &str, assembled: &Assembled) {
        if let Err(error) = self
            .blobs
            .discard_assembled(owner, staging, assembled)
            .await
        {
            tracing::warn!(%error, upload = staging, "failed to delete an assembled upload");
        }
    }

    /// Stores `data` as a document (or recognises the owner's identical one) and submits its
    /// processing. `reserved` bytes of the owner's usage already stand for this document.
    async fn create_document(
        &self,
        owner: &str,
        filename: String,
        content_type: String,
        data: Bytes,
        generate_notes: bool,
        reserved: i64,
    ) -> ProcessingResult<Uploaded> {
        let sha256 = sha256_hex(&data);
        if let Some(existing) = self.store.find_by_sha256(owner, &sha256).await? {
            return self.duplicate(owner, existing).await;
        }
        let size = data.len() as i64;
        // Held until the document's row counts its bytes.
        let permit = self.check_quota(owner, size, reserved).await?;
        self.blobs.put_named(owner, &sha256, data).await?;
        let stored = StoredFile {
            filename,
            content_type,
            sha256,
            size,
            generate_notes,
        };
        self.record_document(owner, stored, permit).await
    }

    /// Records the document of a blob just stored and submits its processing; `permit`
    /// admitted its bytes under the quota and is released once the row counts them.
    async fn record_document(
        &self,
        owner: &str,
        stored: StoredFile,
        permit: QuotaPermit,
    ) -> ProcessingResult<Uploaded> {
        let at = now();
        let mut document = Document {
            id: Uuid::now_v7(),
            owner_id: owner.to_owned(),
            filename: stored.filename,
            content_type: stored.content_type,
            size_bytes: stored.size,
            sha256: stored.sha256,
            status: Status::Pending,
            failure_reason: None,
            format: None,
            page_count: 0,
            chunk_count: 0,
            text: None,
            generate_notes: stored.generate_notes,
            job_id: None,
            created_at: at,
            updated_at: at,
        };
        let inserted = self.store.insert(&document).await?;
        drop(permit);
        if !inserted {
            // The same bytes arrived concurrently: theirs won.
            let existing = self
                .store
                .find_by_sha256(owner, &document.sha256)
                .await?
                .ok_or_else(|| {
                    ProcessingError::Internal("a concurrent duplicate vanished".into())
                })?;
            return self.duplicate(owner, existing).await;
        }
        let job = self.submit(owner, document.id).await?;
        document.job_id = Some(job.id);
        Ok(Uploaded {
            document,
            job: Some(job),
            duplicate: false,
        })
    }

    async fn duplicate(&self, owner: &str, document: Document) -> ProcessingResult<Uploaded> {
        let job = match document.job_id {
            Some(id) => self.jobs.get(owner, id).await.ok(),
            None => None,
        };
        Ok(Uploaded {
            document,
            job,
            duplicate: true,
        })
    }

    /// Submits the processing of a document and records the job on it. The document is
    /// PENDING before the job exists: a worker that takes the job at once moves it on to
    /// PROCESSING and READY, and recording the job id afterwards leaves that status alone.
    async fn submit(&self, owner: &str, id: Uuid) -> ProcessingResult<Job> {
        let payload = serde_json::to_vec(&ProcessJob { document_id: id }).map_err(|error| {
            ProcessingError::Internal(format!("failed to encode the job payload: {error}"))
        })?;
        if !self.store.set_pending(owner, id, now()).await? {
            return Err(ProcessingError::DocumentNotFound(id));
        }
        let job = self
            .jobs
            .submit(
                owner,
                crate::job::KIND,
                payload,
                SubmitOptions {
                    max_attempts: PROCESSING_ATTEMPTS,
                    ..SubmitOptions::default()
                },
            )
            .await?;
        self.store.set_job(id, job.id).await?;
        Ok(job)
    }

    /// Returns the study notes of `owner`'s document, if it has any.
    pub async fn notes(&self, owner: &str, id: Uuid) -> ProcessingResult<Option<StudyNotes>> {
        self.get(owner, id).await?;
        self.store.notes(id).await
    }

    /// Returns `owner`'s document, with its text.
    pub async fn get(&self, owner: &str, id: Uuid) -> ProcessingResult<Document> {
        match self.store.get(id).await? {
            Some(document) if document.owner_id == owner => Ok(document),
            _ => Err(ProcessingError::DocumentNotFound(id)),
        }
    }

    /// Lists `owner`'s documents.
    pub async fn list(&self, owner: &str, query: &ListQuery) -> ProcessingResult<DocumentPage> {
        self.store.list(owner, query).await
    }

    /// Deletes `owner`'s document and its chunks, and its blob unless another of the owner's
    /// documents has the same bytes.
    pub async fn delete(&self, owner: &str, id: Uuid) -> ProcessingResult<()> {
        let sha256 = self
            .store
            .delete(owner, id)
            .await?
            .ok_or(ProcessingError::DocumentNotFound(id))?;
        if self.store.references(owner, &sha256).await? == 0 {
            self.blobs.delete(owner, &sha256).await?;
        }
        Ok(())
    }

    /// Returns the bytes `owner` stores: documents, and uploads in progress at their declared
    /// size (what the quota counts).
    pub async fn usage(&self, owner: &str) -> ProcessingResult<i64> {
        self.store.usage(owner).await
    }

    /// Deletes every document, upload and stored file of `owner` (the account is being
    /// deleted); returns how many rows and files went.
    pub async fn delete_owner(&self, owner: &str) -> ProcessingResult<u64> {
        let rows = self.store.delete_owner(owner).await?;
        let files = self.blobs.delete_owner(owner).await?;
        Ok(rows + files)
    }

    /// Processes `owner`'s document again.
    pub async fn reprocess(&self, owner: &str, id: Uuid) -> ProcessingResult<(Document, Job)> {
        let mut document = self.get(owner, id).await?;
        let job = self.submit(owner, id).await?;
        // The document as this call left it: reading it again would race the worker, which may
        // already have started the job.
        document.status = Status::Pending;
        document.failure_reason = None;
        document.job_id = Some(job.id);
        Ok((document, job))
    }

    /// Returns `owner`'s document and its original bytes.
    pub async fn download(&self, owner: &str, id: Uuid) -> ProcessingResult<(Document, Bytes)> {
        let document = self.get(owner, id).await?;
        let bytes = self.original(owner, &document).await?;
        Ok((document, bytes))
    }

    /// Returns the original bytes of a document of `owner` already read.
    pub async fn original(&self, owner: &str, document: &Document) -> ProcessingResult<Bytes> {
        Ok(self.blobs.get(owner, &document.sha256).await?)
    }

    /// Ranks the chunks of `owner`'s READY documents by cosine similarity to the query.
    pub async fn search(
        &self,
        owner: &str,
        query: SearchQuery,
    ) -> ProcessingResult<(Vec<Hit>, &'static str)> {
        let embedder = self.embedder()?.clone();
        for id in &query.document_ids {
            self.get(owner, *id).await?;
        }
        let mut vectors = embedder
            .embed(vec![query.query.clone()])
            .await
            .map_err(|error| ProcessingError::EngineUnavailable(error.to_string()))?;
        let vector = vectors
            .pop()
            .ok_or_else(|| ProcessingError::Internal("the engine returned no vector".into()))?;
        let hits = self
            .store
            .top_chunks(owner, &query.document_ids, query.k as usize, |stored| {
                dot_encoded(&vector, stored)
            })
            .await?
            .into_iter()
            .map(|(chunk, score)| Hit { chunk, score })
            .collect();
        Ok((hits, embedder.name()))
    }

    fn check_size(&self, field: &str, size: i64) -> ProcessingResult<()> {
        crate::domain::validate_size(size, self.config.max_upload_bytes)
            .map(drop)
            .map_err(|description| ProcessingError::invalid(field, description))
    }

    /// Admits `wanted` bytes of which `reserved` are already counted (an upload's declared
    /// size) under the storage quota shared by every service.
    async fn check_quota(
        &self,
        owner: &str,
        wanted: i64,
        reserved: i64,
    ) -> ProcessingResult<QuotaPermit> {
        self.files
            .quota
            .admit(owner, wanted - reserved)
            .await
            .map_err(|error| match error {
                QuotaError::Exceeded { used, quota } => ProcessingError::QuotaExceeded {
                    used: used as i64 - reserved,
                    quota,
                    wanted,
                },
                other => ProcessingError::Internal(other.to_string()),
            })
    }
}

impl aimesh_kit::owned::OwnedData for Processing {
    fn name(&self) -> &'static str {
        "processing"
    }

    fn delete_owner<'a>(
        &'a self,
        owner: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            Processing::delete_owner(self, owner)
                .await
                .map_err(|error| error.to_string())
        })
    }
    fn export_owner<'a>(
        &'a self,
        owner: &'a str,
        archive: &'a aimesh_kit::export::ExportArchive,
    ) -> futures::future::BoxFuture<'a, Result<u64, String>> {
        Box::pin(crate::export::documents(self, owner, archive))
    }
}
