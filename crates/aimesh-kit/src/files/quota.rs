//! One storage quota per user across every service that stores files.
//!
//! Each file-owning service registers a [`StoredBytes`] (what the owner stores in it, read from
//! its own tables) in the process's one [`StorageQuota`]; every service checks new files
//! against the sum over all of them, so documents, images, audio and reports share one limit.
//!
//! The guarantee: [`StorageQuota::admit`] holds a per-owner lock from the check until the
//! returned [`QuotaPermit`] is dropped, which the service does after its row is committed. So
//! within one process, concurrent uploads of one owner (in any service) are admitted one at a
//! time and the sum never exceeds the quota. Across processes of a split deployment the locks
//! are not shared: each process may admit one file of an owner at the same time as another
//! process, so the quota is exceeded by at most one in-flight file per other process storing
//! files for that owner (one file, with two services).

use std::{
    hash::{Hash, Hasher},
    sync::{Arc, RwLock},
};

use futures::future::BoxFuture;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// How many locks owners are spread over (owners sharing one wait for each other's checks).
const STRIPES: usize = 256;

/// A service's stored bytes, by owner.
pub trait StoredBytes: Send + Sync + 'static {
    /// The service's name, for logs and errors (`gallery`).
    fn name(&self) -> &'static str;

    /// Returns the bytes `owner` stores in the service (counted as the quota counts them).
    fn stored_bytes<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<i64, String>>;
}

/// A quota check that did not pass.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The file does not fit.
    #[error(
        "storage quota exceeded: {used} of {quota} bytes used across documents, images, audio \
         and reports (AIMESH_STORAGE_QUOTA_BYTES)"
    )]
    Exceeded {
        /// Bytes the owner stores.
        used: u64,
        /// The quota.
        quota: u64,
    },
    /// A service's usage could not be read.
    #[error("storage usage of {service} could not be read: {reason}")]
    Usage {
        /// The service.
        service: &'static str,
        /// Why.
        reason: String,
    },
}

/// Holds an owner's quota lock: other files of the owner are not admitted (in this process)
/// until it is dropped. Drop it once the admitted file is stored and counted.
#[derive(Debug)]
pub struct QuotaPermit {
    _guard: OwnedMutexGuard<()>,
}

/// The per-user storage quota over every registered service.
#[derive(Clone)]
pub struct StorageQuota {
    inner: Arc<Inner>,
}

struct Inner {
    limit: u64,
    services: RwLock<Vec<Arc<dyn StoredBytes>>>,
    stripes: Vec<Arc<Mutex<()>>>,
}

impl std::fmt::Debug for StorageQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageQuota")
            .field("limit", &self.inner.limit)
            .field("services", &self.names())
            .finish()
    }
}

impl StorageQuota {
    /// A quota of `limit` bytes per owner, over no service yet.
    pub fn new(limit: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit,
                services: RwLock::new(Vec::new()),
                stripes: (0..STRIPES).map(|_| Arc::new(Mutex::new(()))).collect(),
            }),
        }
    }

    /// Counts a service's files too.
    pub fn register(&self, service: Arc<dyn StoredBytes>) -> &Self {
        self.inner
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(service);
        self
    }

    /// Returns the names of the counted services.
    pub fn names(&self) -> Vec<&'static str> {
        self.services().iter().map(|s| s.name()).collect()
    }

    /// Returns the quota in bytes.
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    fn services(&self) -> Vec<Arc<dyn StoredBytes>> {
        self.inner
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Returns the bytes `owner` stores in every counted service (the services are asked at
    /// once: a check costs one round trip, not one per service).
    pub async fn used(&self, owner: &str) -> Result<i64, QuotaError> {
        let services = self.services();
        let counts = futures::future::join_all(services.iter().map(|service| async move {
            service
                .stored_bytes(owner)
                .await
                .map_err(|reason| QuotaError::Usage {
                    service: service.name(),
                    reason,
                })
        }))
        .await;
        counts
            .into_iter()
            .try_fold(0i64, |used, bytes| Ok(used.saturating_add(bytes?.max(0))))
    }

    /// Admits `wanted` more bytes for `owner` (negative when the service already counts some
    /// of them, e.g. an upload's declared size), or refuses when the owner's stored bytes plus
    /// `wanted` would exceed the quota. Holds the owner's lock until the permit is dropped.
    pub async fn admit(&self, owner: &str, wanted: i64) -> Result<QuotaPermit, QuotaError> {
        let guard = self.stripe(owner).lock_owned().await;
        let used = self.used(owner).await?;
        if used.saturating_add(wanted).max(0) as u64 > self.inner.limit {
            return Err(QuotaError::Exceeded {
                used: used as u64,
                quota: self.inner.limit,
            });
        }
        Ok(QuotaPermit { _guard: guard })
    }

    /// Refuses when `owner` has already used the whole quota (before starting work whose
    /// size is not known yet, such as rendering a report).
    pub async fn check_room(&self, owner: &str) -> Result<(), QuotaError> {
        let used = self.used(owner).await?;
        if used as u64 >= self.inner.limit {
            return Err(QuotaError::Exceeded {
                used: used as u64,
                quota: self.inner.limit,
            });
        }
        Ok(())
    }

    fn stripe(&self, owner: &str) -> Arc<Mutex<()>> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        owner.hash(&mut hasher);
        self.inner.stripes[(hasher.finish() as usize) % STRIPES].clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::{collections::HashMap, sync::Mutex as StdMutex, time::Duration};

    use super::*;

    /// A service whose usage is a table in memory.
    #[derive(Default)]
    struct Table(StdMutex<HashMap<String, i64>>);

    impl Table {
        fn add(&self, owner: &str, bytes: i64) {
            *self.0.lock().unwrap().entry(owner.into()).or_default() += bytes;
        }
    }

    impl StoredBytes for Table {
        fn name(&self) -> &'static str {
            "table"
        }
        fn stored_bytes<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<i64, String>> {
            let bytes = self.0.lock().unwrap().get(owner).copied().unwrap_or(0);
            Box::pin(async move { Ok(bytes) })
        }
    }

    #[tokio::test]
    async fn the_quota_sums_every_service() {
        let quota = StorageQuota::new(100);
        let (a, b) = (Arc::new(Table::default()), Arc::new(Table::default()));
        quota.register(a.clone()).register(b.clone());
        a.add("u", 60);
        drop(quota.admit("u", 40).await.unwrap());
        b.add("u", 40);
        let refused = quota.admit("u", 1).await.unwrap_err();
        assert!(matches!(
            refused,
            QuotaError::Exceeded {
                used: 100,
                quota: 100
            }
        ));
        assert!(refused.to_string().contains("AIMESH_STORAGE_QUOTA_BYTES"));
        assert!(quota.check_room("u").await.is_err());
        // Another owner is not affected; a service that already counts bytes passes.
        drop(quota.admit("v", 100).await.unwrap());
        drop(quota.admit("u", -10).await.unwrap());
    }

    #[tokio::test]
    async fn concurrent_admissions_of_one_owner_do_not_overshoot() {
        let quota = StorageQuota::new(100);
        let table = Arc::new(Table::default());
        quota.register(table.clone());
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (quota, table) = (quota.clone(), table.clone());
            tasks.push(tokio::spawn(async move {
                let Ok(permit) = quota.admit("u", 30).await else {
                    return false;
                };
                // Storing the file takes a while; the permit is held until it is counted.
                tokio::time::sleep(Duration::from_millis(5)).await;
                table.add("u", 30);
                drop(permit);
                true
            }));
        }
        let mut admitted = 0;
        for task in tasks {
            admitted += usize::from(task.await.unwrap());
        }
        assert_eq!(admitted, 3);
        assert_eq!(quota.used("u").await.unwrap(), 90);
    }
}
