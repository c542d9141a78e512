//! Deleting everything an account owns, in every service. Each service that keeps data per
//! owner implements [`OwnedData`] and is registered in the mesh's [`OwnedDataRegistry`]; the
//! identity service runs the registry before it deletes an account, so no service keeps
//! rows, results or files of an account that no longer exists. The same registry exports an
//! account's data as one archive ([`OwnedDataRegistry::export_owner`]).

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::export::ExportArchive;

/// A service's data, by owner.
pub trait OwnedData: Send + Sync + 'static {
    /// The service's name, for logs and errors (`notes`, `jobs`).
    fn name(&self) -> &'static str;

    /// Deletes everything `owner` (a user id) has in the service; returns how many items
    /// (rows, files) went. Idempotent: deleting what is already gone succeeds.
    fn delete_owner<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<u64, String>>;

    /// Writes everything `owner` has in the service into `archive`, under a folder named after
    /// the service: its records as JSON (the API's messages) and its stored files; returns how
    /// many items (records, files) it wrote.
    fn export_owner<'a>(
        &'a self,
        owner: &'a str,
        archive: &'a ExportArchive,
    ) -> BoxFuture<'a, Result<u64, String>>;
}

/// Every service's [`OwnedData`], in the order they are deleted.
#[derive(Clone, Default)]
pub struct OwnedDataRegistry {
    services: Vec<Arc<dyn OwnedData>>,
}

impl std::fmt::Debug for OwnedDataRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.services.iter().map(|s| s.name()))
            .finish()
    }
}

impl OwnedDataRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a service; services are deleted in the order they were added.
    pub fn register(&mut self, service: Arc<dyn OwnedData>) -> &mut Self {
        self.services.push(service);
        self
    }

    /// Returns the names of the registered services.
    pub fn names(&self) -> Vec<&'static str> {
        self.services.iter().map(|s| s.name()).collect()
    }

    /// Deletes `owner`'s data in every service; stops at the first failure, naming the
    /// service (what was deleted stays deleted; calling again finishes the job). Returns the
    /// items deleted per service.
    pub async fn delete_owner(&self, owner: &str) -> Result<Vec<(&'static str, u64)>, String> {
        let mut deleted = Vec::with_capacity(self.services.len());
        for service in &self.services {
            let count = service
                .delete_owner(owner)
                .await
                .map_err(|error| format!("{}: {error}", service.name()))?;
            tracing::info!(
                service = service.name(),
                owner,
                count,
                "owner's data deleted"
            );
            deleted.push((service.name(), count));
        }
        Ok(deleted)
    }

    /// Writes `owner`'s data in every service into `archive`; stops at the first failure,
    /// naming the service. `progress` hears of each service once it is done, with the items it
    /// wrote. Returns the items written per service.
    pub async fn export_owner<F, Fut>(
        &self,
        owner: &str,
        archive: &ExportArchive,
        mut progress: F,
    ) -> Result<Vec<(&'static str, u64)>, String>
    where
        F: FnMut(usize, usize, &'static str) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut exported = Vec::with_capacity(self.services.len());
        for (done, service) in self.services.iter().enumerate() {
            let count = service
                .export_owner(owner, archive)
                .await
                .map_err(|error| format!("{}: {error}", service.name()))?;
            exported.push((service.name(), count));
            progress(done + 1, self.services.len(), service.name()).await;
        }
        Ok(exported)
    }
}
