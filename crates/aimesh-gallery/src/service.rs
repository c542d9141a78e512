//! Gallery domain logic: uploads decoded and stored with thumbnails under a per-owner quota,
//! ownership, the trash and its purge, and operations submitted as jobs to the capability
//! they need. No tonic, no SQL.

use std::{sync::Arc, time::Duration};

use aimesh_jobs::{Cadence, Job, Jobs, SubmitOptions};
use aimesh_kit::{
    blob::{BlobStore, sha256_hex},
    files::{FileRef, QuotaError, QuotaPermit, SharedFiles, SignedUrl, StorageQuota, UrlSigner},
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    domain::{
        Image, ImagePage, ListQuery, Metadata, NewUpload, Operation, OperationJob, Origin,
        StoredFile, Update, Variant, now,
    },
    engine::{Capability, ImageEngines},
    error::{GalleryError, GalleryResult},
    imaging::{self, DecodeError, DecodeLimits, Encoded, Format, Prepared},
    store::ImageStore,
};

/// Attempts an operation job gets before it fails for good.
const OPERATION_ATTEMPTS: i32 = 3;
/// Images deleted per statement when emptying a trash or purging.
const PURGE_BATCH: i64 = 200;

/// Limits and settings of the service.
#[derive(Debug, Clone)]
pub struct GalleryConfig {
    /// Decoding limits: bytes of an upload, pixels of any image.
    pub limits: DecodeLimits,
    /// Most bytes one owner's images may take (originals and thumbnails, trash included).
    pub storage_quota_bytes: u64,
    /// How long an image stays in the trash before the purge deletes it.
    pub trash_retention: Duration,
    /// How often the purge runs.
    pub purge_interval: Duration,
}

impl Default for GalleryConfig {
    fn default() -> Self {
        Self {
            limits: DecodeLimits::default(),
            storage_quota_bytes: 1 << 30,
            trash_retention: Duration::from_secs(30 * 24 * 3600),
            purge_interval: Duration::from_secs(3600),
        }
    }
}

/// What a new image is, besides its pixels.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// How it came to be.
    pub origin: Origin,
    /// The image it was made from.
    pub source_id: Option<Uuid>,
    /// What made it.
    pub operation: String,
    /// The job that made it.
    pub job_id: Option<Uuid>,
}

/// The gallery service.
#[derive(Clone)]
pub struct Gallery {
    store: ImageStore,
    blobs: BlobStore,
    jobs: Jobs,
    engines: Arc<ImageEngines>,
    config: GalleryConfig,
    files: SharedFiles,
}

impl Gallery {
    /// Creates the service over its store, blob store, job engine and image engines.
    pub fn new(
        store: ImageStore,
        blobs: BlobStore,
        jobs: Jobs,
        engines: ImageEngines,
        config: GalleryConfig,
    ) -> Self {
        // On its own, the quota counts the gallery's images; a mesh shares one over every
        // service (`with_files`).
        let quota = StorageQuota::new(config.storage_quota_bytes);
        quota.register(Arc::new(store.clone()));
        Self {
            store,
            blobs,
            jobs,
            engines: Arc::new(engines),
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

    /// Returns a signed URL to one of `owner`'s image files, living `ttl_seconds` (0: the
    /// default).
    pub async fn image_url(
        &self,
        owner: &str,
        id: Uuid,
        variant: Variant,
        ttl_seconds: u64,
    ) -> GalleryResult<SignedUrl> {
        let ttl = self
            .files
            .signer
            .ttl(ttl_seconds)
            .map_err(|e| GalleryError::invalid("ttl_seconds", e.to_string()))?;
        let image = self.get(owner, id).await?;
        let file = FileRef::new(
            crate::files::KIND,
            owner,
            image.id.to_string(),
            variant.token_name(),
        );
        self.files
            .signer
            .sign(&file, ttl)
            .map_err(|e| GalleryError::Internal(e.to_string()))
    }

    /// Deletes every image of `owner` and their files; returns how many rows and files went.
    pub async fn delete_owner(&self, owner: &str) -> GalleryResult<u64> {
        let rows = self.store.delete_owner(owner).await?;
        let files = self.blobs.delete_owner(owner).await?;
        Ok(rows + files)
    }

    /// Returns the settings.
    pub fn config(&self) -> &GalleryConfig {
        &self.config
    }

    /// Returns the store.
    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    /// Returns the image engines.
    pub fn engines(&self) -> &ImageEngines {
        &self.engines
    }

    /// Decodes, checks and stores an upload for `owner`.
    pub async fn upload(&self, owner: &str, upload: NewUpload) -> GalleryResult<Image> {
        let limits = self.config.limits;
        let data = upload.data.clone();
        let keep = upload.keep_metadata;
        let prepared = blocking(move || {
            let decoded = imaging::decode(&data, &limits)?;
            let original = keep.then(|| Encoded {
                bytes: data.to_vec(),
                format: decoded.format,
            });
            imaging::prepare(&decoded.image, decoded.format, original)
                .map_err(DecodeError::Malformed)
        })
        .await?
        .map_err(|error| GalleryError::invalid("body.data", error.to_string()))?;
        self.store_new(
            owner,
            prepared,
            upload.metadata,
            keep,
            Provenance {
                origin: Origin::Uploaded,
                source_id: None,
                operation: String::new(),
                job_id: None,
            },
        )
        .await
    }

    /// Stores a prepared image's files and record for `owner`, within the quota. For an image
    /// made by a job, an image the job already stored (an earlier attempt) is returned as is.
    pub async fn store_new(
        &self,
        owner: &str,
        prepared: Prepared,
        metadata: Metadata,
        metadata_kept: bool,
        provenance: Provenance,
    ) -> GalleryResult<Image> {
        if let Some(job_id) = provenance.job_id
            && let Some(existing) = self.store.by_job(job_id).await?
        {
            return Ok(existing);
        }
        let files = [
            prepared.original,
            prepared.thumbnail_256,
            prepared.thumbnail_1024,
        ];
        let wanted: i64 = files.iter().map(|f| f.bytes.len() as i64).sum();
        // Held until the image's row counts its bytes.
        let _permit = self.check_quota(owner, wanted).await?;
        let mut stored = Vec::with_capacity(3);
        for file in files {
            let sha256 = sha256_hex(&file.bytes);
            let size_bytes = file.bytes.len() as i64;
            self.blobs
                .put_named(owner, &sha256, Bytes::from(file.bytes))
                .await?;
            stored.push(StoredFile {
                sha256,
                content_type: file.format.mime_type().to_owned(),
                size_bytes,
            });
        }
        let [original, thumbnail_256, thumbnail_1024]: [StoredFile; 3] = stored
            .try_into()
            .map_err(|_| GalleryError::Internal("three files were stored".into()))?;
        let format = match original.content_type.as_str() {
            "image/jpeg" => Format::Jpeg,
            "image/webp" => Format::Webp,
            "image/gif" => Format::Gif,
            _ => Format::Png,
        };
        let at = now();
        let image = Image {
            id: Uuid::now_v7(),
            owner_id: owner.to_owned(),
            title: metadata.title,
            prompt: metadata.prompt,
            tags: metadata.tags,
            origin: provenance.origin,
            source_id: provenance.source_id,
            operation: provenance.operation,
            format: format.as_str().to_owned(),
            width: prepared.width as i32,
            height: prepared.height as i32,
            original,
            thumbnail_256,
            thumbnail_1024,
            perceptual_hash: prepared.perceptual_hash,
            metadata_kept,
            job_id: provenance.job_id,
            created_at: at,
            updated_at: at,
            deleted_at: None,
        };
        if !self.store.insert(&image).await? {
            // A concurrent attempt of the same job stored it first.
            if let Some(job_id) = image.job_id
                && let Some(existing) = self.store.by_job(job_id).await?
            {
                return Ok(existing);
            }
            return Err(GalleryError::Internal("the image was not stored".into()));
        }
        Ok(image)
    }

    /// Returns `owner`'s image (in the trash too).
    pub async fn get(&self, owner: &str, id: Uuid) -> GalleryResult<Image> {
        self.store
            .get(owner, id)
            .await?
            .ok_or(GalleryError::NotFound(id))
    }

    /// Returns `owner`'s image outside the trash.
    pub async fn get_live(&self, owner: &str, id: Uuid) -> GalleryResult<Image> {
        let image = self.get(owner, id).await?;
        if image.deleted_at.is_some() {
            return Err(GalleryError::FailedPrecondition(format!(
                "image {id} is in the trash: restore it first (RestoreImage)"
            )));
        }
        Ok(image)
    }

    /// Lists `owner`'s images outside the trash.
    pub async fn list(&self, owner: &str, query: &ListQuery) -> GalleryResult<ImagePage> {
        self.store.list(owner, query).await
    }

    /// Lists `owner`'s images in the trash.
    pub async fn list_deleted(
        &self,
        owner: &str,
        page_size: u32,
        after: Option<Uuid>,
    ) -> GalleryResult<ImagePage> {
        self.store.list_deleted(owner, page_size, after).await
    }

    /// Changes `owner`'s image's metadata.
    pub async fn update(&self, owner: &str, id: Uuid, update: &Update) -> GalleryResult<Image> {
        if !self.store.update(owner, id, update, now()).await? {
            return Err(GalleryError::NotFound(id));
        }
        self.get(owner, id).await
    }

    /// Returns one stored file of `owner`'s image, with its bytes.
    pub async fn download(
        &self,
        owner: &str,
        id: Uuid,
        variant: Variant,
    ) -> GalleryResult<(StoredFile, Bytes)> {
        let image = self.get(owner, id).await?;
        let file = image.file(variant).clone();
        let bytes = self.file_bytes(owner, &file).await?;
        Ok((file, bytes))
    }

    /// Returns the bytes of a file of an image of `owner` already read.
    pub async fn file_bytes(&self, owner: &str, file: &StoredFile) -> GalleryResult<Bytes> {
        Ok(self.blobs.get(owner, &file.sha256).await?)
    }

    /// Moves `owner`'s image to the trash.
    pub async fn trash(&self, owner: &str, id: Uuid) -> GalleryResult<Image> {
        let at = now();
        if !self.store.set_deleted(owner, id, Some(at), at).await? {
            let image = self.get(owner, id).await?;
            return Err(GalleryError::FailedPrecondition(format!(
                "image {} is already in the trash",
                image.id
            )));
        }
        self.get(owner, id).await
    }

    /// Takes `owner`'s image out of the trash.
    pub async fn restore(&self, owner: &str, id: Uuid) -> GalleryResult<Image> {
        if !self.store.set_deleted(owner, id, None, now()).await? {
            let image = self.get(owner, id).await?;
            return Err(GalleryError::FailedPrecondition(format!(
                "image {} is not in the trash",
                image.id
            )));
        }
        self.get(owner, id).await
    }

    /// Deletes `owner`'s image for good, and each of its files no other image of the owner
    /// uses.
    pub async fn delete_permanently(&self, owner: &str, id: Uuid) -> GalleryResult<()> {
        let image = self
            .store
            .delete(owner, id)
            .await?
            .ok_or(GalleryError::NotFound(id))?;
        let mut digests = image.digests().to_vec();
        digests.sort_unstable();
        digests.dedup();
        for digest in digests {
            if self.store.references(owner, digest).await? == 0 {
                self.blobs.delete(owner, digest).await?;
            }
        }
        Ok(())
    }

    /// Deletes every image in `owner`'s trash for good; returns how many.
    pub async fn empty_trash(&self, owner: &str) -> GalleryResult<i32> {
        let mut count = 0;
        loop {
            let ids = self.store.trash(owner, PURGE_BATCH).await?;
            if ids.is_empty() {
                return Ok(count);
            }
            for id in ids {
                match self.delete_permanently(owner, id).await {
                    Ok(()) => count += 1,
                    // Deleted meanwhile by another call.
                    Err(GalleryError::NotFound(_)) => {}
                    Err(error) => return Err(error),
                }
            }
        }
    }

    /// Deletes for good every image (of any owner) in the trash longer than the retention
    /// period; returns how many.
    pub async fn purge_expired(&self) -> GalleryResult<i32> {
        let retention = chrono::Duration::from_std(self.config.trash_retention)
            .unwrap_or(chrono::Duration::MAX);
        let cutoff = now()
            .checked_sub_signed(retention)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut count = 0;
        loop {
            let expired = self.store.expired(cutoff, PURGE_BATCH).await?;
            if expired.is_empty() {
                return Ok(count);
            }
            for (owner, id) in expired {
                match self.delete_permanently(&owner, id).await {
                    Ok(()) => count += 1,
                    Err(GalleryError::NotFound(_)) => {}
                    Err(error) => return Err(error),
                }
            }
        }
    }

    /// Submits an operation on `owner`'s image (or a generation, without a source) as a job
    /// of the kind its capability maps to. Refused at once when the capability has no engine
    /// here, or the source is missing or in the trash (checked first).
    pub async fn submit(
        &self,
        owner: &str,
        source_id: Option<Uuid>,
        operation: Operation,
    ) -> GalleryResult<Job> {
        // The source first: another user's image is NOT_FOUND whatever serves here.
        if let Some(id) = source_id {
            let source = self.get_live(owner, id).await?;
            if let Operation::Upscale { factor } = &operation {
                let pixels = u64::from(source.width.unsigned_abs())
                    * u64::from(source.height.unsigned_abs())
                    * u64::from(factor * factor);
                if pixels > self.config.limits.max_pixels {
                    return Err(GalleryError::invalid(
                        "factor",
                        format!(
                            "would make {pixels} pixels, more than the limit of {} \
                             (AIMESH_GALLERY_MAX_PIXELS)",
                            self.config.limits.max_pixels
                        ),
                    ));
                }
            }
        }
        let capability = Capability::of(&operation);
        if !self.engines.serves(capability) {
            let reason = self
                .engines
                .get(capability)
                .err()
                .unwrap_or_else(|| format!("capability not serving: {capability}"));
            return Err(GalleryError::CapabilityNotServing(reason));
        }
        let payload = serde_json::to_vec(&OperationJob {
            source_id,
            operation,
        })
        .map_err(|e| GalleryError::Internal(format!("failed to encode the job payload: {e}")))?;
        Ok(self
            .jobs
            .submit(
                owner,
                capability.job_kind(),
                payload,
                SubmitOptions {
                    max_attempts: OPERATION_ATTEMPTS,
                    ..SubmitOptions::default()
                },
            )
            .await?)
    }

    /// Registers the recurring trash purge (every `purge_interval`, once per tick across
    /// replicas).
    pub async fn schedule_purge(&self) -> GalleryResult<()> {
        let cadence = Cadence::every(self.config.purge_interval)?;
        self.jobs
            .schedule(
                "gallery.purge_trash",
                cadence,
                crate::job::PURGE_KIND,
                b"{}".to_vec(),
            )
            .await?;
        Ok(())
    }

    /// Reads and decodes an image's stored original (within the decoding limits).
    pub async fn load_pixels(&self, image: &Image) -> GalleryResult<image::DynamicImage> {
        let bytes = self
            .blobs
            .get(&image.owner_id, &image.original.sha256)
            .await?;
        let limits = self.config.limits;
        blocking(move || imaging::decode(&bytes, &limits))
            .await?
            .map(|decoded| decoded.image)
            .map_err(|e| GalleryError::Internal(format!("a stored image does not decode: {e}")))
    }

    async fn check_quota(&self, owner: &str, wanted: i64) -> GalleryResult<QuotaPermit> {
        self.files
            .quota
            .admit(owner, wanted)
            .await
            .map_err(|error| match error {
                QuotaError::Exceeded { used, quota } => GalleryError::QuotaExceeded {
                    used: used as i64,
                    quota,
                    wanted,
                },
                other => GalleryError::Internal(other.to_string()),
            })
    }
}

/// Runs CPU-bound image work on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> GalleryResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| GalleryError::Internal(format!("image work failed: {e}")))
}
