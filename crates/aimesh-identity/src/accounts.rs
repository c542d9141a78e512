//! The account hooks of the mesh's auth layer when the identity service runs in-process:
//! whether a token's account still exists (cached briefly, evicted on deletion), and counting
//! authenticated calls (in memory, written to the database in batches).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use aimesh_kit::auth::AccountHooks;
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::store::IdentityStore;

/// Account checks and call counting backed by the identity store.
#[derive(Clone)]
pub struct AccountDirectory {
    store: IdentityStore,
    exists: moka::future::Cache<Uuid, bool>,
    pending: Arc<Mutex<HashMap<Uuid, i64>>>,
}

impl AccountDirectory {
    /// Creates the directory; call [`spawn_flusher`](Self::spawn_flusher) to persist counts.
    pub fn new(store: IdentityStore) -> Self {
        Self {
            store,
            exists: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            pending: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Forgets what is known of an account (after it is deleted).
    pub async fn forget(&self, id: Uuid) {
        self.exists.invalidate(&id).await;
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Writes the counted calls to the database.
    pub async fn flush(&self) {
        let batch: Vec<(Uuid, i64)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Err(error) = self.store.add_api_calls(&batch).await {
            tracing::warn!(error = %error, "failed to store api call counts; keeping them");
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (id, count) in batch {
                *pending.entry(id).or_default() += count;
            }
        }
    }

    /// Flushes counts every `interval` until the runtime shuts down.
    pub fn spawn_flusher(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let directory = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                directory.flush().await;
            }
        })
    }
}

impl AccountHooks for AccountDirectory {
    fn exists<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let Ok(id) = Uuid::try_parse(user_id) else {
                return Ok(false);
            };
            if let Some(known) = self.exists.get(&id).await {
                return Ok(known);
            }
            let exists = self
                .store
                .user_exists(id)
                .await
                .map_err(|e| e.to_string())?;
            self.exists.insert(id, exists).await;
            Ok(exists)
        })
    }

    fn record_call(&self, user_id: &str) {
        if let Ok(id) = Uuid::try_parse(user_id) {
            *self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(id)
                .or_default() += 1;
        }
    }
}
