//! Account exports: everything a user stores in every service as one ZIP archive, made by a job
//! of kind [`KIND`] that asks each service of the mesh's [`OwnedDataRegistry`] to write its
//! part, kept in the blob store (one archive per account: a new export replaces the last) and
//! fetched through a signed URL. The identity service starts exports ([`AccountExports`]); an
//! account's archive goes with the account.

use aimesh_identity::AccountExports;
use aimesh_jobs::{
    JobContext, JobError, JobHandler, JobOutput, Jobs, SubmitOptions, api::job_to_proto,
};
use aimesh_kit::{
    blob::{BlobError, BlobStore},
    export::ExportArchive,
    files::{FileReader, FileRef, StoredFile, UrlSigner},
    owned::{OwnedData, OwnedDataRegistry},
    proto::timestamp,
};
use aimesh_proto::{identity::v1 as pb, jobs::v1 as jobs_pb};
use futures::future::BoxFuture;
use tonic::Status;

/// The job kind of account exports.
pub const KIND: &str = "identity.export";

/// The archives' kind in signed URLs.
const FILE_KIND: &str = "exports";
/// The one variant of an archive in signed URLs.
const ARCHIVE: &str = "archive";

/// Attempts of an export job.
const ATTEMPTS: i32 = 3;

/// Account exports: the job that makes them, the signed URLs that fetch them, their deletion
/// with the account.
#[derive(Clone)]
pub struct Exports {
    /// The services whose data an export holds (every one the mesh deletes with an account).
    services: OwnedDataRegistry,
    /// Where archives are kept: `<owner>/<sha256>`.
    blobs: BlobStore,
    signer: UrlSigner,
    jobs: Jobs,
}

impl std::fmt::Debug for Exports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exports")
            .field("services", &self.services)
            .field("blobs", &self.blobs.location())
            .finish()
    }
}

impl Exports {
    /// Exports of what `services` hold, archives kept in `blobs`.
    pub fn new(
        services: OwnedDataRegistry,
        blobs: BlobStore,
        signer: UrlSigner,
        jobs: Jobs,
    ) -> Self {
        Self {
            services,
            blobs,
            signer,
            jobs,
        }
    }

    /// Runs one export for `ctx`'s owner.
    async fn run(&self, ctx: &JobContext) -> Result<JobOutput, JobError> {
        let owner = ctx.job.owner_id.as_str();
        let dir = tempfile::tempdir()
            .map_err(|e| JobError::Retryable(format!("no temporary directory: {e}")))?;
        let archive =
            ExportArchive::create(&dir.path().join("export.zip")).map_err(JobError::Retryable)?;
        ctx.progress(1, "collecting", "").await;
        let exported = self
            .services
            .export_owner(owner, &archive, |done, total, service| {
                let percent = (90 * done / total.max(1)) as i32;
                let message = format!("{service} written");
                async move { ctx.progress(percent, &message, "").await }
            })
            .await
            .map_err(JobError::Retryable)?;
        if ctx.cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        let path = archive.finish().await.map_err(JobError::Retryable)?;
        ctx.progress(92, "storing the archive", "").await;
        // One archive per account: the last one goes first.
        self.blobs
            .delete_owner(owner)
            .await
            .map_err(|e| JobError::Retryable(format!("removing the last export: {e}")))?;
        let (sha256, size) = self
            .blobs
            .put_file(owner, &path)
            .await
            .map_err(|e| JobError::Retryable(format!("storing the archive: {e}")))?;
        // The longest a URL may live (AIMESH_SIGNED_URL_TTL_SECS).
        let signed = self
            .signer
            .sign(
                &FileRef::new(FILE_KIND, owner, &sha256, ARCHIVE),
                self.signer.default_ttl(),
            )
            .map_err(|e| JobError::Permanent(e.to_string()))?;
        tracing::info!(owner, size, "account exported");
        Ok(JobOutput::message(&pb::ExportAccountResult {
            url: signed.url,
            expire_time: Some(timestamp(signed.expires_at)),
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
            sha256,
            exported: exported
                .into_iter()
                .map(|(service, count)| pb::ExportedData {
                    service: service.to_owned(),
                    count: i64::try_from(count).unwrap_or(i64::MAX),
                })
                .collect(),
        }))
    }
}

/// Runs `identity.export` jobs.
pub struct ExportHandler(pub Exports);

impl JobHandler for ExportHandler {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let exports = self.0.clone();
        Box::pin(async move { exports.run(&ctx).await })
    }
}

impl AccountExports for Exports {
    fn start<'a>(
        &'a self,
        owner: &'a str,
        idempotency_key: Option<&'a str>,
    ) -> BoxFuture<'a, Result<jobs_pb::Job, Status>> {
        Box::pin(async move {
            let job = self
                .jobs
                .submit(
                    owner,
                    KIND,
                    Vec::new(),
                    SubmitOptions {
                        idempotency_key: idempotency_key.map(|key| format!("{KIND}:{key}")),
                        max_attempts: ATTEMPTS,
                        ..SubmitOptions::default()
                    },
                )
                .await
                .map_err(aimesh_kit::error::into_status)?;
            Ok(job_to_proto(&job))
        })
    }
}

impl FileReader for Exports {
    fn kind(&self) -> &'static str {
        FILE_KIND
    }

    fn read<'a>(&'a self, file: &'a FileRef) -> BoxFuture<'a, Result<Option<StoredFile>, String>> {
        Box::pin(async move {
            if file.variant != ARCHIVE {
                return Ok(None);
            }
            match self.blobs.get(&file.owner, &file.id).await {
                Ok(bytes) => Ok(Some(StoredFile {
                    bytes,
                    content_type: "application/zip".into(),
                    file_name: "aimesh-export.zip".into(),
                })),
                Err(BlobError::NotFound | BlobError::InvalidName(_)) => Ok(None),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}

impl OwnedData for Exports {
    fn name(&self) -> &'static str {
        "exports"
    }

    fn delete_owner<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            self.blobs
                .delete_owner(owner)
                .await
                .map_err(|e| e.to_string())
        })
    }

    /// An export holds no earlier export.
    fn export_owner<'a>(
        &'a self,
        _owner: &'a str,
        _archive: &'a ExportArchive,
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async { Ok(0) })
    }
}
