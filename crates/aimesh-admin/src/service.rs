//! Admin domain logic: account administration through the identity service, every user's
//! jobs through the job engine, storage use through the services that store bytes, and an
//! audit entry for every change an administrator makes. No tonic, no SQL.

use std::{sync::Arc, time::Duration};

use aimesh_identity::{AccountAdmin, domain::UserQuery};
use aimesh_jobs::{Job, JobPage, JobQuery, JobStream, Jobs, KindStats};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::{
    domain::{Actor, AuditEntry, AuditPage, UserSummary, now},
    error::{AdminError, AdminResult},
    store::AuditStore,
};

/// The window of the queue statistics' finished counts and run times.
pub const STATS_WINDOW: Duration = Duration::from_secs(3600);

/// Bytes an owner stores, as the services that store bytes count them.
pub trait StorageUsage: Send + Sync + 'static {
    /// Returns the bytes `owner` (a user id) stores.
    fn usage<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<i64, String>>;
}

/// The admin service.
#[derive(Clone)]
pub struct Admin {
    accounts: AccountAdmin,
    jobs: Jobs,
    storage: Arc<dyn StorageUsage>,
    audit: AuditStore,
}

impl Admin {
    /// Creates the service.
    pub fn new(
        accounts: AccountAdmin,
        jobs: Jobs,
        storage: Arc<dyn StorageUsage>,
        audit: AuditStore,
    ) -> Self {
        Self {
            accounts,
            jobs,
            storage,
            audit,
        }
    }

    /// Lists accounts with their storage use.
    pub async fn list_users(
        &self,
        query: &UserQuery,
    ) -> AdminResult<(Vec<UserSummary>, Option<Uuid>)> {
        let page = self.accounts.list_users(query).await?;
        let mut users = Vec::with_capacity(page.users.len());
        for user in page.users {
            users.push(self.summary(user).await?);
        }
        Ok((users, page.next))
    }

    /// Disables an account (not the caller's own).
    pub async fn disable(&self, actor: &Actor, id: Uuid, reason: &str) -> AdminResult<UserSummary> {
        self.not_self(actor, id, "disable")?;
        let user = self.accounts.disable(id).await?;
        self.record(actor, "user.disable", &id.to_string(), reason)
            .await?;
        self.summary(user).await
    }

    /// Enables a disabled account.
    pub async fn enable(&self, actor: &Actor, id: Uuid, reason: &str) -> AdminResult<UserSummary> {
        let user = self.accounts.enable(id).await?;
        self.record(actor, "user.enable", &id.to_string(), reason)
            .await?;
        self.summary(user).await
    }

    /// Deletes an account (not the caller's own) and everything it owns.
    pub async fn delete_user(
        &self,
        actor: &Actor,
        id: Uuid,
        reason: &str,
    ) -> AdminResult<Vec<(&'static str, u64)>> {
        self.not_self(actor, id, "delete")?;
        let user = self.accounts.get_user(id).await?;
        let deleted = self.accounts.delete_user(id).await?;
        let detail = format!(
            "{} ({}){}{}",
            user.username,
            user.email,
            if reason.is_empty() { "" } else { ": " },
            reason
        );
        self.record(actor, "user.delete", &id.to_string(), &detail)
            .await?;
        Ok(deleted)
    }

    /// Lists the audit log, newest first.
    pub async fn audit_log(&self, page_size: u32, before: Option<Uuid>) -> AdminResult<AuditPage> {
        let mut entries = self.audit.list(before, i64::from(page_size) + 1).await?;
        let next = aimesh_kit::paging::take_page(&mut entries, page_size, |entry| entry.id);
        Ok(AuditPage { entries, next })
    }

    /// Lists every user's jobs (or `owner`'s).
    pub async fn list_jobs(&self, owner: Option<&str>, query: &JobQuery) -> AdminResult<JobPage> {
        Ok(self.jobs.list_any(owner, query).await?)
    }

    /// Returns each kind's queue statistics over the last hour.
    pub async fn queue_stats(&self) -> AdminResult<Vec<KindStats>> {
        Ok(self.jobs.stats(STATS_WINDOW).await?)
    }

    /// Retries any user's failed or cancelled job.
    pub async fn retry_job(&self, actor: &Actor, id: Uuid) -> AdminResult<Job> {
        let job = self.jobs.retry_any(id).await?;
        self.record(actor, "job.retry", &id.to_string(), &job.kind)
            .await?;
        Ok(job)
    }

    /// Cancels any user's queued or running job.
    pub async fn cancel_job(&self, actor: &Actor, id: Uuid) -> AdminResult<Job> {
        let job = self.jobs.cancel_any(id).await?;
        self.record(actor, "job.cancel", &id.to_string(), &job.kind)
            .await?;
        Ok(job)
    }

    /// Streams every change to every job.
    pub fn watch_jobs(&self, actor: &Actor) -> AdminResult<JobStream> {
        Ok(self.jobs.watch_every_job(&actor.id)?)
    }

    async fn summary(&self, user: aimesh_identity::domain::User) -> AdminResult<UserSummary> {
        let storage_bytes = self
            .storage
            .usage(&user.id.to_string())
            .await
            .map_err(|error| {
                tracing::error!(%error, user_id = %user.id, "storage use unavailable");
                AdminError::Storage(error)
            })?;
        Ok(UserSummary {
            user,
            storage_bytes,
        })
    }

    fn not_self(&self, actor: &Actor, id: Uuid, what: &str) -> AdminResult<()> {
        if actor.id == id.to_string() {
            return Err(AdminError::FailedPrecondition(format!(
                "administrators cannot {what} their own account here"
            )));
        }
        Ok(())
    }

    async fn record(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        detail: &str,
    ) -> AdminResult<()> {
        let entry = AuditEntry {
            id: Uuid::now_v7(),
            created_at: now(),
            actor: actor.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_owned(),
        };
        tracing::info!(actor = %actor.id, action, target, "administrative action");
        self.audit.record(&entry).await
    }
}
