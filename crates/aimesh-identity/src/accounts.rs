//! The account hooks of the mesh's auth layer, over the identity tables (every process of a
//! deployment shares the database): where an account stands (active with its roles, disabled,
//! gone) and which personal API token a secret is — both cached briefly and evicted through
//! the invalidation bus the moment an administrator or owner changes them, in every process —
//! and counting authenticated calls and API token uses (in memory, a tally per thread, written
//! in batches).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use aimesh_kit::{
    auth::{AccountHooks, AccountState, ApiTokenGrant},
    invalidation::InvalidationBus,
};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use thread_local::ThreadLocal;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{domain::now, store::IdentityStore};

/// The invalidation topic of account changes (key: the user id).
pub const ACCOUNTS_TOPIC: &str = "accounts";
/// The invalidation topic of API token changes (key: the token id).
pub const API_TOKENS_TOPIC: &str = "api-tokens";

/// Account checks and call counting backed by the identity store.
#[derive(Clone)]
pub struct AccountDirectory {
    store: IdentityStore,
    states: moka::sync::Cache<Uuid, AccountState, foldhash::fast::RandomState>,
    /// API tokens by the hash of their secret, with their expiry (`None`: no live token has
    /// it).
    tokens: moka::sync::Cache<Vec<u8>, Option<CachedToken>, foldhash::fast::RandomState>,
    /// What was counted since the last flush, a tally for each thread that counted: every
    /// authenticated call counts, and one shared lock would be taken by every serving thread
    /// on every call. Each thread locks only its own tally, which the flusher alone shares.
    pending: Arc<ThreadLocal<Mutex<Pending>>>,
}

/// A live API token's grant and expiry.
type CachedToken = (ApiTokenGrant, Option<DateTime<Utc>>);

#[derive(Default)]
struct Pending {
    calls: HashMap<Uuid, i64>,
    token_uses: HashMap<Uuid, DateTime<Utc>>,
}

impl Pending {
    /// Adds `other`'s counts to these, keeping each token's latest use.
    fn absorb(&mut self, other: Pending) {
        for (id, count) in other.calls {
            *self.calls.entry(id).or_default() += count;
        }
        for (token, at) in other.token_uses {
            self.token_uses
                .entry(token)
                .and_modify(|known| *known = (*known).max(at))
                .or_insert(at);
        }
    }
}

/// Returns the hash an API token's secret is stored under.
pub fn api_token_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

impl AccountDirectory {
    /// Creates the directory; call [`spawn_flusher`](Self::spawn_flusher) to persist counts
    /// and [`follow`](Self::follow) to hear of changes made elsewhere.
    pub fn new(store: IdentityStore) -> Self {
        Self {
            store,
            states: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build_with_hasher(foldhash::fast::RandomState::default()),
            tokens: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build_with_hasher(foldhash::fast::RandomState::default()),
            pending: Arc::new(ThreadLocal::new()),
        }
    }

    /// Forgets what is known of an account (after it is deleted, disabled or its roles
    /// changed).
    pub fn forget(&self, id: Uuid) {
        self.states.invalidate(&id);
        // Its tokens' grants name it: let them be read again. Its counted calls stay (a
        // deleted account's are written to no row).
        self.tokens.invalidate_all();
    }

    /// Forgets every API token read (after one is revoked).
    pub fn forget_tokens(&self) {
        self.tokens.invalidate_all();
    }

    /// Evicts what the bus says changed, until `shutdown`: account states by user id, API
    /// tokens all at once (they are cached by secret, not id); everything when events may
    /// have been missed.
    pub fn follow(&self, bus: &InvalidationBus, shutdown: CancellationToken) {
        let mut events = bus.subscribe();
        let directory = self.clone();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    event = events.recv() => event,
                    _ = shutdown.cancelled() => break,
                };
                match event {
                    Ok(event) if event.topic == ACCOUNTS_TOPIC => {
                        if let Ok(id) = Uuid::try_parse(&event.key) {
                            directory.states.invalidate(&id);
                        }
                        directory.tokens.invalidate_all();
                    }
                    Ok(event) if event.topic == API_TOKENS_TOPIC => {
                        directory.tokens.invalidate_all();
                    }
                    Ok(event) if event.topic == "*" => directory.clear(),
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => directory.clear(),
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    fn clear(&self) {
        self.states.invalidate_all();
        self.tokens.invalidate_all();
    }

    /// Writes the counted calls and token uses to the database.
    pub async fn flush(&self) {
        let mut taken = Pending::default();
        for tally in self.pending.iter() {
            taken.absorb(std::mem::take(
                &mut *tally.lock().unwrap_or_else(|e| e.into_inner()),
            ));
        }
        let calls: Vec<(Uuid, i64)> = taken.calls.into_iter().collect();
        let uses: Vec<(Uuid, DateTime<Utc>)> = taken.token_uses.into_iter().collect();
        if !calls.is_empty()
            && let Err(error) = self.store.add_api_calls(&calls).await
        {
            tracing::warn!(error = %error, "failed to store api call counts; keeping them");
            let mut pending = self.tally();
            for (id, count) in calls {
                *pending.calls.entry(id).or_default() += count;
            }
        }
        if !uses.is_empty()
            && let Err(error) = self.store.touch_api_tokens(&uses).await
        {
            tracing::warn!(error = %error, "failed to store api token uses");
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

    /// Locks the calling thread's tally.
    fn tally(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .get_or_default()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    async fn load_state(&self, id: Uuid) -> Result<AccountState, String> {
        if let Some(known) = self.states.get(&id) {
            return Ok(known);
        }
        let state = match self
            .store
            .account_state(id)
            .await
            .map_err(|e| e.to_string())?
        {
            None => AccountState::Missing,
            Some((_, true)) => AccountState::Disabled,
            Some((admin, false)) => AccountState::Active {
                roles: if admin {
                    vec![aimesh_kit::auth::scope::ROLE_ADMIN.to_owned()]
                } else {
                    Vec::new()
                },
            },
        };
        self.states.insert(id, state.clone());
        Ok(state)
    }
}

impl AccountHooks for AccountDirectory {
    fn state<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<AccountState, String>> {
        Box::pin(async move {
            match Uuid::try_parse(user_id) {
                Ok(id) => self.load_state(id).await,
                Err(_) => Ok(AccountState::Missing),
            }
        })
    }

    fn api_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<ApiTokenGrant>, String>> {
        Box::pin(async move {
            if token.len() > 200 {
                return Ok(None);
            }
            let hash = api_token_hash(token);
            let grant = match self.tokens.get(&hash) {
                Some(known) => known,
                None => {
                    let found = self
                        .store
                        .find_api_token(&hash)
                        .await
                        .map_err(|e| e.to_string())?;
                    let grant = found.filter(|(token, _)| token.revoked_at.is_none()).map(
                        |(token, username)| {
                            let grant = ApiTokenGrant {
                                token_id: token.id.to_string(),
                                user_id: token.user_id.to_string(),
                                username,
                                scope: token.scope,
                            };
                            (grant, token.expires_at)
                        },
                    );
                    self.tokens.insert(hash, grant.clone());
                    grant
                }
            };
            // Expiry is checked on every use, cached or not.
            Ok(grant
                .filter(|(_, expires_at)| expires_at.is_none_or(|at| at > now()))
                .map(|(grant, _)| grant))
        })
    }

    fn record_call(&self, user_id: &str, api_token_id: Option<&str>) {
        let Ok(id) = Uuid::try_parse(user_id) else {
            return;
        };
        let mut pending = self.tally();
        *pending.calls.entry(id).or_default() += 1;
        if let Some(token) = api_token_id.and_then(|t| Uuid::try_parse(t).ok()) {
            pending.token_uses.insert(token, now());
        }
    }
}

#[cfg(test)]
mod tests {
    use aimesh_kit::testing::{Backend, TestDatabase};

    use super::*;
    use crate::{MIGRATIONS, domain::User};

    #[tokio::test]
    async fn calls_counted_on_many_threads_are_all_flushed() {
        let database = TestDatabase::create(Backend::Sqlite).await;
        let db = database.connect().await;
        // Creating an account records an event in the events service's table.
        db.migrate(&aimesh_events::MIGRATIONS).await.unwrap();
        db.migrate(&MIGRATIONS).await.unwrap();
        let store = IdentityStore::new(db);
        let user = User {
            id: Uuid::now_v7(),
            username: "counted".into(),
            email: "counted@example.com".into(),
            created_at: now(),
            api_calls: 0,
            admin: false,
            disabled_at: None,
        };
        store.create_user(&user, "not a real hash").await.unwrap();
        let directory = AccountDirectory::new(store.clone());
        let user_id = user.id.to_string();

        // Each thread counts into its own tally; one flush gathers them all.
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..250 {
                        directory.record_call(&user_id, None);
                    }
                });
            }
        });
        directory.record_call("not a uuid", None);
        directory.flush().await;
        let (stored, _) = store.get_user(user.id).await.unwrap().unwrap();
        assert_eq!(stored.api_calls, 1000);

        // What was flushed is not counted again, and later calls add to it.
        directory.record_call(&user_id, None);
        directory.flush().await;
        directory.flush().await;
        let (stored, _) = store.get_user(user.id).await.unwrap().unwrap();
        assert_eq!(stored.api_calls, 1001);
    }

    #[test]
    fn absorbing_sums_calls_and_keeps_the_latest_token_use() {
        let (user, token) = (Uuid::now_v7(), Uuid::now_v7());
        let earlier = now() - chrono::Duration::seconds(5);
        let later = now();
        let mut mine = Pending::default();
        mine.calls.insert(user, 2);
        mine.token_uses.insert(token, later);
        let mut theirs = Pending::default();
        theirs.calls.insert(user, 3);
        theirs.token_uses.insert(token, earlier);
        mine.absorb(theirs);
        assert_eq!(mine.calls[&user], 5);
        assert_eq!(mine.token_uses[&token], later);
    }
}
