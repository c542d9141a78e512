//! Reports domain logic: creating reports (at once or as drafts filled page by page),
//! submitting their rendering as jobs, ownership, the stored files under the owner's storage
//! quota, and the retention sweep. No tonic, no SQL.

use std::{sync::Arc, time::Duration};

use aimesh_jobs::{Job, Jobs, SubmitOptions};
use aimesh_kit::{
    blob::{BlobStore, sha256_hex},
    files::{FileRef, QuotaError, QuotaPermit, SharedFiles, SignedUrl, StorageQuota, UrlSigner},
};
use bytes::Bytes;
use uuid::Uuid;

use crate::{
    Renderer,
    domain::MAX_EVENTS,
    error::{ReportsServiceError, ServiceResult},
    report::{
        EventPage, ListQuery, NewReport, RenderJob, RenderedFile, Report, ReportPage, Status, now,
    },
    store::{Appended, ReportStore},
};

/// Attempts a rendering job gets before it fails for good.
const RENDER_ATTEMPTS: i32 = 3;

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct ReportsConfig {
    /// Largest request the gRPC service accepts, in bytes (a report's events sent in one
    /// CreateReport: 100,000 events take about 10 MB).
    pub max_request_bytes: usize,
    /// Most bytes of report files one owner may keep.
    pub storage_quota_bytes: u64,
    /// Reports older than this are deleted by the retention sweep; `None` keeps them.
    pub retention: Option<Duration>,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 32 << 20,
            storage_quota_bytes: 1 << 30,
            retention: None,
        }
    }
}

/// The reports service.
#[derive(Clone)]
pub struct Reports {
    store: ReportStore,
    files: ReportFiles,
    jobs: Jobs,
    renderer: Arc<Renderer>,
    config: ReportsConfig,
    shared: SharedFiles,
}

impl Reports {
    /// Creates the service; fails only when the renderer's embedded template or fonts do not
    /// load (a broken build).
    pub fn new(
        store: ReportStore,
        blobs: BlobStore,
        jobs: Jobs,
        config: ReportsConfig,
    ) -> ServiceResult<Self> {
        // On its own, the quota counts the service's report files; a mesh shares one over
        // every service (`with_files`).
        let quota = StorageQuota::new(config.storage_quota_bytes);
        quota.register(Arc::new(store.clone()));
        Ok(Self {
            store,
            files: ReportFiles { blobs },
            jobs,
            renderer: Arc::new(Renderer::new()?),
            config,
            shared: SharedFiles {
                quota,
                signer: UrlSigner::ephemeral(),
            },
        })
    }

    /// Uses the mesh's shared storage quota and URL signer.
    pub fn with_files(mut self, files: SharedFiles) -> Self {
        self.shared = files;
        self
    }

    /// Returns a signed URL to `owner`'s DONE report's file, living `ttl_seconds` (0: the
    /// default).
    pub async fn report_url(
        &self,
        owner: &str,
        id: Uuid,
        ttl_seconds: u64,
    ) -> ServiceResult<SignedUrl> {
        let ttl = self
            .shared
            .signer
            .ttl(ttl_seconds)
            .map_err(|e| ReportsServiceError::invalid("ttl_seconds", e.to_string()))?;
        let report = self.get(owner, id).await?;
        if report.status != Status::Done || report.sha256.is_none() {
            return Err(ReportsServiceError::NotReady {
                id,
                status: report.status,
            });
        }
        let file = FileRef::new(
            crate::files::KIND,
            owner,
            id.to_string(),
            crate::files::RENDERED,
        );
        self.shared
            .signer
            .sign(&file, ttl)
            .map_err(|e| ReportsServiceError::Internal(e.to_string()))
    }

    /// Deletes every report of `owner` (with their events) and their files; returns how many
    /// rows and files went.
    pub async fn delete_owner(&self, owner: &str) -> ServiceResult<u64> {
        let rows = self.store.delete_owner(owner).await?;
        let files = self.files.blobs.delete_owner(owner).await?;
        Ok(rows + files)
    }

    /// Returns the settings.
    pub fn config(&self) -> &ReportsConfig {
        &self.config
    }

    /// Returns the store.
    pub fn store(&self) -> &ReportStore {
        &self.store
    }

    /// Returns the renderer.
    pub fn renderer(&self) -> &Arc<Renderer> {
        &self.renderer
    }

    /// Creates `owner`'s report and, unless it is a draft, submits its rendering.
    pub async fn create(
        &self,
        owner: &str,
        new: NewReport,
    ) -> ServiceResult<(Report, Option<Job>)> {
        if !new.draft {
            self.check_room(owner).await?;
        }
        let at = now();
        let mut report = Report {
            id: Uuid::now_v7(),
            owner_id: owner.to_owned(),
            student_id: new.student_id,
            namespace: new.namespace,
            format: new.format,
            status: Status::Draft,
            failure_reason: None,
            job_id: None,
            event_count: new.events.len() as i64,
            unit_count: 0,
            first_event_at: None,
            last_event_at: None,
            size_bytes: 0,
            sha256: None,
            created_at: at,
            updated_at: at,
        };
        self.store.insert(&report, &new.events).await?;
        if new.draft {
            return Ok((report, None));
        }
        match self.submit(owner, &mut report).await {
            Ok(job) => Ok((report, Some(job))),
            Err(error) => {
                // Not left behind as a draft the caller never asked for.
                let _ = self.store.delete(owner, report.id).await;
                Err(error)
            }
        }
    }

    /// Adds a page of events to `owner`'s DRAFT report.
    pub async fn append(&self, owner: &str, page: EventPage) -> ServiceResult<Report> {
        let report = self.get(owner, page.report_id).await?;
        let appended = self
            .store
            .append(
                owner,
                report.id,
                page.offset,
                &page.events,
                MAX_EVENTS as i64,
                now(),
            )
            .await?;
        if let Appended::Stored(count) = appended {
            return Ok(Report {
                event_count: count,
                updated_at: now(),
                ..report
            });
        }
        // Refused: the report as it is now says why.
        let report = self.get(owner, page.report_id).await?;
        if report.status != Status::Draft {
            return Err(ReportsServiceError::NotDraft {
                id: report.id,
                status: report.status,
            });
        }
        if report.event_count != page.offset {
            return Err(ReportsServiceError::WrongOffset {
                id: report.id,
                sent: page.offset,
                stored: report.event_count,
            });
        }
        Err(ReportsServiceError::invalid(
            "events",
            format!(
                "the report holds {} events and may hold at most {MAX_EVENTS}: {} more do not fit",
                report.event_count,
                page.events.len()
            ),
        ))
    }

    /// Submits the rendering of `owner`'s DRAFT report.
    pub async fn generate(&self, owner: &str, id: Uuid) -> ServiceResult<(Report, Job)> {
        let mut report = self.get(owner, id).await?;
        if report.status != Status::Draft {
            return Err(ReportsServiceError::NotDraft {
                id,
                status: report.status,
            });
        }
        if report.event_count == 0 {
            return Err(ReportsServiceError::NoEvents(id));
        }
        self.check_room(owner).await?;
        let job = self.submit(owner, &mut report).await?;
        Ok((report, job))
    }

    /// Moves a DRAFT report to PENDING and submits its rendering — in this order, so a worker
    /// that claims the job at once finds the report waiting. The job's idempotency key is the
    /// report, so a report is rendered by one job however often this runs.
    async fn submit(&self, owner: &str, report: &mut Report) -> ServiceResult<Job> {
        let at = now();
        if !self.store.set_pending(owner, report.id, at).await? {
            // Another call generated it first, or it was deleted.
            let current = self.get(owner, report.id).await?;
            return Err(ReportsServiceError::NotDraft {
                id: report.id,
                status: current.status,
            });
        }
        let payload = serde_json::to_vec(&RenderJob {
            report_id: report.id,
        })
        .map_err(|error| {
            ReportsServiceError::Internal(format!("failed to encode the job payload: {error}"))
        });
        let submitted = match payload {
            Ok(payload) => self
                .jobs
                .submit(
                    owner,
                    crate::job::RENDER_KIND,
                    payload,
                    SubmitOptions {
                        idempotency_key: Some(format!("{}:{}", crate::job::RENDER_KIND, report.id)),
                        max_attempts: RENDER_ATTEMPTS,
                        ..SubmitOptions::default()
                    },
                )
                .await
                .map_err(ReportsServiceError::from),
            Err(error) => Err(error),
        };
        let job = match submitted {
            Ok(job) => job,
            Err(error) => {
                let _ = self.store.set_draft(report.id, now()).await;
                return Err(error);
            }
        };
        self.store.set_job(report.id, job.id).await?;
        report.status = Status::Pending;
        report.job_id = Some(job.id);
        report.updated_at = at;
        Ok(job)
    }

    /// Whether the owner asked to cancel this job (as opposed to its worker stopping).
    pub async fn cancel_requested(&self, owner: &str, job_id: Uuid) -> bool {
        self.jobs
            .get(owner, job_id)
            .await
            .is_ok_and(|job| job.cancel_requested || job.state == aimesh_jobs::JobState::Cancelled)
    }

    /// Returns `owner`'s report.
    pub async fn get(&self, owner: &str, id: Uuid) -> ServiceResult<Report> {
        self.store
            .get(owner, id)
            .await?
            .ok_or(ReportsServiceError::NotFound(id))
    }

    /// Lists `owner`'s reports.
    pub async fn list(&self, owner: &str, query: &ListQuery) -> ServiceResult<ReportPage> {
        self.store.list(owner, query).await
    }

    /// Deletes `owner`'s report, its events and its file.
    pub async fn delete(&self, owner: &str, id: Uuid) -> ServiceResult<()> {
        let sha256 = self
            .store
            .delete(owner, id)
            .await?
            .ok_or(ReportsServiceError::NotFound(id))?;
        if let Some(sha256) = sha256 {
            self.release(owner, &sha256).await?;
        }
        Ok(())
    }

    /// Returns `owner`'s DONE report and its file.
    pub async fn download(&self, owner: &str, id: Uuid) -> ServiceResult<(Report, Bytes)> {
        let report = self.get(owner, id).await?;
        let sha256 = match (&report.status, &report.sha256) {
            (Status::Done, Some(sha256)) => sha256.clone(),
            _ => {
                return Err(ReportsServiceError::NotReady {
                    id,
                    status: report.status,
                });
            }
        };
        let bytes = self.files.read(owner, &sha256).await?;
        Ok((report, bytes))
    }

    /// Stores a rendered file for `owner` within their quota, and records it on the report.
    /// Returns false when the report was not RUNNING any more (deleted meanwhile); the file
    /// is then released again.
    pub async fn store_rendered(
        &self,
        owner: &str,
        id: Uuid,
        bytes: Bytes,
        mut file: RenderedFile,
    ) -> ServiceResult<bool> {
        // Held until the report's row counts the file.
        let permit = self.check_quota(owner, bytes.len() as i64).await?;
        file.sha256 = self.files.store(owner, bytes).await?;
        let finished = self.store.finish(id, &file, now()).await?;
        drop(permit);
        if finished {
            return Ok(true);
        }
        self.release(owner, &file.sha256).await?;
        Ok(false)
    }

    /// Deletes the reports created longer ago than the retention period, with their files;
    /// returns how many. Does nothing without a retention period.
    pub async fn purge_expired(&self) -> ServiceResult<i64> {
        let Some(retention) = self.config.retention else {
            return Ok(0);
        };
        let age = chrono::Duration::from_std(retention)
            .map_err(|_| ReportsServiceError::Internal("retention period out of range".into()))?;
        let expired = self.store.delete_created_before(now() - age).await?;
        for report in &expired {
            if let Some(sha256) = &report.sha256 {
                self.release(&report.owner_id, sha256).await?;
            }
        }
        if !expired.is_empty() {
            tracing::info!(deleted = expired.len(), "expired reports purged");
        }
        Ok(expired.len() as i64)
    }

    /// Releases `owner`'s file unless another of their reports has the same bytes.
    async fn release(&self, owner: &str, sha256: &str) -> ServiceResult<()> {
        if self.store.references(owner, sha256).await? == 0 {
            self.files.release(owner, sha256).await?;
        }
        Ok(())
    }

    /// Admits a file of `wanted` bytes under the storage quota shared by every service.
    async fn check_quota(&self, owner: &str, wanted: i64) -> ServiceResult<QuotaPermit> {
        self.shared
            .quota
            .admit(owner, wanted)
            .await
            .map_err(|error| quota_error(error, wanted))
    }

    /// Before rendering (the file's size is not known yet), some room must be left.
    async fn check_room(&self, owner: &str) -> ServiceResult<()> {
        self.shared
            .quota
            .check_room(owner)
            .await
            .map_err(|error| quota_error(error, 0))
    }
}

/// The service's error for a quota check that did not pass.
fn quota_error(error: QuotaError, wanted: i64) -> ReportsServiceError {
    match error {
        QuotaError::Exceeded { used, quota } => ReportsServiceError::QuotaExceeded {
            used: used as i64,
            quota,
            wanted,
        },
        other => ReportsServiceError::Internal(other.to_string()),
    }
}

/// Where report files live: content-addressed blobs in the owner's blob space.
#[derive(Debug, Clone)]
struct ReportFiles {
    blobs: BlobStore,
}

impl ReportFiles {
    /// Stores a file for `owner`; returns its name (its SHA-256).
    async fn store(&self, owner: &str, bytes: Bytes) -> ServiceResult<String> {
        let sha256 = sha256_hex(&bytes);
        self.blobs.put_named(owner, &sha256, bytes).await?;
        Ok(sha256)
    }

    /// Returns `owner`'s file.
    async fn read(&self, owner: &str, name: &str) -> ServiceResult<Bytes> {
        Ok(self.blobs.get(owner, name).await?)
    }

    /// Deletes `owner`'s file.
    async fn release(&self, owner: &str, name: &str) -> ServiceResult<()> {
        Ok(self.blobs.delete(owner, name).await?)
    }
}
