//! Job retention: finished jobs (succeeded, failed, cancelled) older than a configured age are
//! deleted by a scheduled job of kind [`PURGE_KIND`], in batches of its own statements so no
//! lock is held long and the queue's work goes on meanwhile, and an account's jobs are
//! deleted with the account ([`OwnedData`]).

use std::time::Duration;

use aimesh_kit::{export::ExportArchive, owned::OwnedData};
use aimesh_proto::jobs::v1::PurgeJobsResult;
use futures::future::BoxFuture;

use crate::{
    engine::Jobs,
    error::JobsResult,
    model::{JobOutput, JobQuery, now},
    schedule::Cadence,
    worker::{JobContext, JobError, JobHandler},
};

/// The kind of the retention job.
pub const PURGE_KIND: &str = "jobs.purge";

/// The name of the retention schedule.
pub const RETENTION_SCHEDULE: &str = "jobs.retention";

/// How long finished jobs are kept and how they are purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Finished jobs older than this are deleted.
    pub max_age: Duration,
    /// Jobs deleted per statement.
    pub batch: u32,
    /// How often the purge runs.
    pub every: Duration,
}

impl Retention {
    /// The retention job's payload: the age in seconds and the batch size, big-endian.
    fn payload(&self) -> Vec<u8> {
        let mut payload = self.max_age.as_secs().to_be_bytes().to_vec();
        payload.extend_from_slice(&self.batch.to_be_bytes());
        payload
    }

    fn from_payload(payload: &[u8]) -> Option<(Duration, u32)> {
        let age = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
        let batch = u32::from_be_bytes(payload.get(8..12)?.try_into().ok()?);
        Some((Duration::from_secs(age), batch.max(1)))
    }
}

impl Jobs {
    /// Registers the retention schedule (once across replicas, see [`Jobs::schedule`]); run
    /// by workers with a [`PurgeHandler`].
    pub async fn schedule_retention(&self, retention: &Retention) -> JobsResult<()> {
        self.schedule(
            RETENTION_SCHEDULE,
            Cadence::every(retention.every)?,
            PURGE_KIND,
            retention.payload(),
        )
        .await
    }
}

/// Runs retention jobs: deletes batches of old finished jobs until a batch comes back short.
#[derive(Debug, Clone)]
pub struct PurgeHandler {
    jobs: Jobs,
}

impl PurgeHandler {
    /// Creates the handler.
    pub fn new(jobs: Jobs) -> Self {
        Self { jobs }
    }
}

impl JobHandler for PurgeHandler {
    fn kind(&self) -> &'static str {
        PURGE_KIND
    }

    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let jobs = self.jobs.clone();
        Box::pin(async move {
            let (age, batch) = Retention::from_payload(&ctx.job.payload)
                .ok_or_else(|| JobError::Permanent("malformed retention payload".into()))?;
            let cutoff = chrono::Duration::from_std(age)
                .ok()
                .and_then(|age| now().checked_sub_signed(age))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
            let mut deleted: u64 = 0;
            loop {
                if ctx.cancel.is_cancelled() {
                    return Err(JobError::Cancelled);
                }
                let removed = jobs
                    .purge_finished(cutoff, batch)
                    .await
                    .map_err(|error| JobError::Retryable(error.to_string()))?;
                deleted += removed;
                if removed < u64::from(batch) {
                    break;
                }
                ctx.progress(50, &format!("{deleted} finished jobs deleted"), "")
                    .await;
            }
            tracing::info!(deleted, %cutoff, "finished jobs purged");
            Ok(JobOutput::message(&PurgeJobsResult {
                deleted: i64::try_from(deleted).unwrap_or(i64::MAX),
                cutoff_time: Some(aimesh_kit::proto::timestamp(cutoff)),
            }))
        })
    }
}

impl OwnedData for Jobs {
    fn name(&self) -> &'static str {
        "jobs"
    }

    fn delete_owner<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            Jobs::delete_owner(self, owner)
                .await
                .map_err(|error| error.to_string())
        })
    }
    /// The account's jobs as `jobs/jobs.json` (`aimesh.jobs.v1.Job`: state, progress,
    /// results, errors), newest first.
    fn export_owner<'a>(
        &'a self,
        owner: &'a str,
        archive: &'a ExportArchive,
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let all: Vec<_> = aimesh_kit::paging::all_pages(|after| async move {
                let query = JobQuery {
                    page_size: 100,
                    after,
                    state: None,
                    kind: None,
                };
                let page = self.list(owner, &query).await?;
                Ok::<_, crate::error::JobsError>((
                    page.jobs.iter().map(crate::api::job_to_proto).collect(),
                    page.next,
                ))
            })
            .await
            .map_err(|e| e.to_string())?;
            archive.records("jobs/jobs.json", &all).await?;
            Ok(all.len() as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let retention = Retention {
            max_age: Duration::from_secs(30 * 86_400),
            batch: 500,
            every: Duration::from_secs(3600),
        };
        assert_eq!(
            Retention::from_payload(&retention.payload()),
            Some((retention.max_age, 500))
        );
        assert_eq!(Retention::from_payload(b"short"), None);
    }
}
