//! Administration of accounts: listing them, disabling and re-enabling them, making them
//! administrators, and deleting them with everything they own in every service. Each change
//! is announced on the invalidation bus, so every process's auth layer sees it within a moment
//! (through PostgreSQL NOTIFY across processes). No tonic, no SQL.

use aimesh_kit::{invalidation::InvalidationBus, owned::OwnedDataRegistry};
use uuid::Uuid;

use crate::{
    accounts::{ACCOUNTS_TOPIC, AccountDirectory},
    domain::{User, UserPage, UserQuery, now},
    error::{IdentityError, IdentityResult},
    store::IdentityStore,
};

/// Account administration over the identity store.
#[derive(Clone)]
pub struct AccountAdmin {
    store: IdentityStore,
    directory: AccountDirectory,
    bus: InvalidationBus,
    owned: OwnedDataRegistry,
}

impl std::fmt::Debug for AccountAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountAdmin")
            .field("owned", &self.owned)
            .finish_non_exhaustive()
    }
}

impl AccountAdmin {
    /// Creates the administration of the accounts in `store`; `directory` is this process's
    /// auth cache (evicted at once), `bus` tells the other processes, `owned` deletes an
    /// account's data in every service.
    pub fn new(
        store: IdentityStore,
        directory: AccountDirectory,
        bus: InvalidationBus,
        owned: OwnedDataRegistry,
    ) -> Self {
        Self {
            store,
            directory,
            bus,
            owned,
        }
    }

    /// Lists accounts by id, with their call counts up to date as this process knows them.
    pub async fn list_users(&self, query: &UserQuery) -> IdentityResult<UserPage> {
        self.directory.flush().await;
        let mut users = self.store.list_users(query).await?;
        let next = aimesh_kit::paging::take_page(&mut users, query.page_size, |user| user.id);
        Ok(UserPage { users, next })
    }

    /// Returns an account.
    pub async fn get_user(&self, id: Uuid) -> IdentityResult<User> {
        self.store
            .get_user(id)
            .await?
            .map(|(user, _)| user)
            .ok_or(IdentityError::AccountNotFound)
    }

    /// Disables an account: its tokens (access and API) are refused on every process, its
    /// logins and refreshes too, until it is enabled again.
    pub async fn disable(&self, id: Uuid) -> IdentityResult<User> {
        let user = self
            .store
            .set_disabled(id, Some(now()))
            .await?
            .ok_or(IdentityError::AccountNotFound)?;
        self.changed(id).await;
        tracing::info!(user_id = %id, "account disabled");
        Ok(user)
    }

    /// Enables a disabled account again.
    pub async fn enable(&self, id: Uuid) -> IdentityResult<User> {
        let user = self
            .store
            .set_disabled(id, None)
            .await?
            .ok_or(IdentityError::AccountNotFound)?;
        self.changed(id).await;
        tracing::info!(user_id = %id, "account enabled");
        Ok(user)
    }

    /// Makes the account with `email` an administrator (or not). Its access tokens carry the
    /// role from its next login or refresh; a revoked role is refused at once.
    pub async fn set_admin(&self, email: &str, admin: bool) -> IdentityResult<User> {
        let user = self
            .store
            .set_admin(&email.to_lowercase(), admin)
            .await?
            .ok_or(IdentityError::AccountNotFound)?;
        self.changed(user.id).await;
        tracing::info!(user_id = %user.id, admin, "administrator role changed");
        Ok(user)
    }

    /// Deletes an account and everything it owns in every registered service. The account
    /// is disabled first, so nothing new is created meanwhile; if a service fails, the account
    /// stays (disabled) and deleting it again finishes the job.
    pub async fn delete_user(&self, id: Uuid) -> IdentityResult<Vec<(&'static str, u64)>> {
        self.disable(id).await?;
        let deleted = self
            .owned
            .delete_owner(&id.to_string())
            .await
            .map_err(|error| {
                tracing::error!(user_id = %id, %error, "deleting an account's data failed");
                let service = error.split(':').next().unwrap_or_default().to_owned();
                IdentityError::Cascade(service)
            })?;
        self.store.delete_user(id).await?;
        self.changed(id).await;
        tracing::info!(user_id = %id, "account deleted with its data");
        Ok(deleted)
    }

    /// Makes every process forget what it knew of the account.
    async fn changed(&self, id: Uuid) {
        self.directory.forget(id);
        self.bus.publish(ACCOUNTS_TOPIC, id.to_string()).await;
    }
}
