//! Identity domain logic: registration, login with throttling, token issue and rotation,
//! profiles and account deletion. No tonic, no SQL.

use std::{net::IpAddr, sync::Arc, time::Duration};

use aimesh_kit::{
    auth::{
        jwt::{Claims, JwtVerifier},
        scope::API_TOKEN_PREFIX,
    },
    invalidation::InvalidationBus,
    owned::OwnedDataRegistry,
};
use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{
    accounts::{API_TOKENS_TOPIC, AccountDirectory, api_token_hash},
    admin::AccountAdmin,
    config::IdentityConfig,
    domain::{ApiToken, MAX_API_TOKENS_PER_USER, NewApiToken, Tokens, User, now},
    error::{IdentityError, IdentityResult},
    keys::SigningKeys,
    store::IdentityStore,
};

/// Bytes of randomness in a refresh token.
const REFRESH_TOKEN_BYTES: usize = 32;
/// Bytes of randomness in a personal API token.
const API_TOKEN_BYTES: usize = 32;

/// A registration, already validated.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Username.
    pub username: String,
    /// Email, lowercased.
    pub email: String,
    /// Password (checked against the policy).
    pub password: String,
}

/// The identity service.
#[derive(Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

struct Inner {
    store: IdentityStore,
    keys: SigningKeys,
    verifier: Arc<JwtVerifier>,
    issuer: String,
    accounts: AccountDirectory,
    admin: AccountAdmin,
    bus: InvalidationBus,
    /// Accounts registering with these emails (lowercased) are administrators.
    admin_emails: Vec<String>,
    access_ttl: chrono::Duration,
    refresh_ttl: chrono::Duration,
    per_account: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    registrations: DefaultKeyedRateLimiter<IpAddr>,
    /// Slots for argon2id work (about 19 MiB each): bounds the memory hashing can take.
    hashing: Arc<Semaphore>,
    /// How long a request waits for a slot.
    hashing_wait: Duration,
    /// A hash verified when the account does not exist, so both cases take as long.
    decoy_hash: String,
}

impl Identity {
    /// Creates the service. `bus` carries account changes to every process; `owned` deletes
    /// a deleted account's data in every service.
    pub fn new(
        store: IdentityStore,
        keys: SigningKeys,
        issuer: &str,
        config: &IdentityConfig,
        bus: InvalidationBus,
        owned: OwnedDataRegistry,
    ) -> IdentityResult<Self> {
        let verifier = keys.verifier(issuer);
        let decoy_hash = hash_password("decoy password for absent accounts")?;
        let per_minute = |n| Quota::per_minute(n);
        let accounts = AccountDirectory::new(store.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                admin: AccountAdmin::new(store.clone(), accounts.clone(), bus.clone(), owned),
                accounts,
                bus,
                admin_emails: config
                    .admin_emails
                    .iter()
                    .map(|email| email.trim().to_lowercase())
                    .filter(|email| !email.is_empty())
                    .collect(),
                store,
                keys,
                verifier,
                issuer: issuer.to_owned(),
                access_ttl: chrono::Duration::from_std(config.access_ttl())
                    .unwrap_or(chrono::Duration::minutes(15)),
                refresh_ttl: chrono::Duration::from_std(config.refresh_ttl())
                    .unwrap_or(chrono::Duration::days(30)),
                per_account: DefaultKeyedRateLimiter::keyed(per_minute(
                    config.per_account_logins(),
                )),
                per_address: DefaultKeyedRateLimiter::keyed(per_minute(
                    config.per_address_logins(),
                )),
                registrations: DefaultKeyedRateLimiter::keyed(per_minute(
                    config.per_address_registrations(),
                )),
                hashing: Arc::new(Semaphore::new(config.hashing_concurrency().max(1))),
                hashing_wait: config.hashing_wait(),
                decoy_hash,
            }),
        })
    }

    /// Returns the verifier that trusts this service's keys.
    pub fn verifier(&self) -> Arc<JwtVerifier> {
        self.inner.verifier.clone()
    }

    /// Returns the account hooks for the auth layer.
    pub fn accounts(&self) -> AccountDirectory {
        self.inner.accounts.clone()
    }

    /// Returns the administration of accounts.
    pub fn admin(&self) -> &AccountAdmin {
        &self.inner.admin
    }

    /// Makes the accounts of the configured administrator emails administrators (those that
    /// exist; the others become administrators when they register). Returns how many were.
    pub async fn grant_configured_admins(&self) -> IdentityResult<usize> {
        let mut granted = 0;
        for email in &self.inner.admin_emails {
            match self.inner.admin.set_admin(email, true).await {
                Ok(_) => granted += 1,
                Err(IdentityError::AccountNotFound) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(granted)
    }

    /// Returns the published keys.
    pub fn keys(&self) -> &SigningKeys {
        &self.inner.keys
    }

    /// Creates an account for a client at `client`. Registrations are limited per address;
    /// a taken email or username is refused before any password is hashed.
    pub async fn register(
        &self,
        registration: Registration,
        client: Option<IpAddr>,
    ) -> IdentityResult<User> {
        if let Some(address) = client
            && let Err(not_until) = self.inner.registrations.check_key(&address)
        {
            let clock = self.inner.registrations.clock();
            return Err(IdentityError::TooManyRegistrations(
                not_until.wait_time_from(clock.now()),
            ));
        }
        if let Some(taken) = self
            .inner
            .store
            .taken(&registration.username, &registration.email)
            .await?
        {
            return Err(IdentityError::AlreadyExists(taken));
        }
        let password = registration.password.clone();
        let hash = self.hashing(move || hash_password(&password)).await??;
        let admin = self.inner.admin_emails.contains(&registration.email);
        let user = User {
            id: Uuid::now_v7(),
            username: registration.username,
            email: registration.email,
            created_at: now(),
            api_calls: 0,
            admin,
            disabled_at: None,
        };
        self.inner.store.create_user(&user, &hash).await?;
        tracing::info!(user_id = %user.id, "account registered");
        Ok(user)
    }

    /// Checks credentials and issues tokens. Unknown accounts and wrong passwords fail the
    /// same way, after the same work.
    pub async fn login(
        &self,
        login: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> IdentityResult<(User, Tokens)> {
        let login = login.to_lowercase();
        self.throttle(&login, client)?;
        let found = self.inner.store.find_login(&login).await?;
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, self.inner.decoy_hash.clone()),
        };
        let password = password.to_owned();
        let matches = self
            .hashing(move || verify_password(&password, &hash))
            .await?;
        let user = match (user, matches) {
            (Some(user), true) => user,
            _ => return Err(IdentityError::InvalidCredentials),
        };
        if user.disabled_at.is_some() {
            return Err(IdentityError::AccountDisabled);
        }
        let tokens = self.issue(&user, Uuid::now_v7()).await?;
        Ok((user, tokens))
    }

    /// Rotates a refresh token. A token presented a second time is a replay: its whole family
    /// is revoked.
    pub async fn refresh(&self, refresh: &str) -> IdentityResult<Tokens> {
        let hash = refresh_hash(refresh);
        let record = self
            .inner
            .store
            .get_refresh(&hash)
            .await?
            .ok_or(IdentityError::InvalidToken)?;
        let now = now();
        if record.revoked_at.is_some() || record.expires_at <= now {
            return Err(IdentityError::InvalidToken);
        }
        // A disabled account is refused before the token is spent: once re-enabled, the
        // same token still works.
        let (user, _) = self
            .inner
            .store
            .get_user(record.user_id)
            .await?
            .ok_or(IdentityError::InvalidToken)?;
        if user.disabled_at.is_some() {
            return Err(IdentityError::AccountDisabled);
        }
        if record.used_at.is_some() || !self.inner.store.spend_refresh(&hash, now).await? {
            tracing::warn!(user_id = %record.user_id, "refresh token replayed: revoking its family");
            self.inner
                .store
                .revoke_family(record.family_id, now)
                .await?;
            return Err(IdentityError::InvalidToken);
        }
        self.issue(&user, record.family_id).await
    }

    /// Revokes the family of a refresh token. Unknown tokens are ignored (logout is idempotent).
    pub async fn logout(&self, refresh: &str) -> IdentityResult<()> {
        if let Some(record) = self.inner.store.get_refresh(&refresh_hash(refresh)).await? {
            self.inner
                .store
                .revoke_family(record.family_id, now())
                .await?;
        }
        Ok(())
    }

    /// Returns an account, with its call count up to date.
    pub async fn profile(&self, user_id: &str) -> IdentityResult<User> {
        let id = Uuid::try_parse(user_id).map_err(|_| IdentityError::AccountNotFound)?;
        self.inner.accounts.flush().await;
        let (user, _) = self
            .inner
            .store
            .get_user(id)
            .await?
            .ok_or(IdentityError::AccountNotFound)?;
        Ok(user)
    }

    /// Deletes an account after checking its password.
    pub async fn delete_account(&self, user_id: &str, password: &str) -> IdentityResult<()> {
        let id = Uuid::try_parse(user_id).map_err(|_| IdentityError::AccountNotFound)?;
        let (_, hash) = self
            .inner
            .store
            .get_user(id)
            .await?
            .ok_or(IdentityError::AccountNotFound)?;
        let password = password.to_owned();
        if !self
            .hashing(move || verify_password(&password, &hash))
            .await?
        {
            return Err(IdentityError::InvalidCredentials);
        }
        self.inner.admin.delete_user(id).await?;
        Ok(())
    }

    /// Verifies an access token, including that its account still exists.
    pub async fn validate(&self, token: &str) -> IdentityResult<Arc<Claims>> {
        let claims = self
            .inner
            .verifier
            .verify(token)
            .map_err(|_| IdentityError::InvalidToken)?;
        let id = Uuid::try_parse(&claims.sub).map_err(|_| IdentityError::InvalidToken)?;
        match self.inner.store.account_state(id).await? {
            Some((_, false)) => Ok(claims),
            _ => Err(IdentityError::InvalidToken),
        }
    }

    /// Creates a personal API token for `user_id`; returns it and its secret, which is
    /// shown this once (only its hash is stored).
    pub async fn create_api_token(
        &self,
        user_id: &str,
        new: NewApiToken,
    ) -> IdentityResult<(ApiToken, String)> {
        let user_id = Uuid::try_parse(user_id).map_err(|_| IdentityError::AccountNotFound)?;
        let mut raw = [0u8; API_TOKEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let secret = format!("{API_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
        let token = ApiToken {
            id: Uuid::now_v7(),
            user_id,
            name: new.name,
            scope: new.scope,
            created_at: now(),
            expires_at: new.expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        if !self
            .inner
            .store
            .insert_api_token(&token, &api_token_hash(&secret), MAX_API_TOKENS_PER_USER)
            .await?
        {
            return Err(IdentityError::TooManyTokens(MAX_API_TOKENS_PER_USER));
        }
        tracing::info!(user_id = %user_id, token_id = %token.id, "api token created");
        Ok((token, secret))
    }

    /// Lists `user_id`'s API tokens, newest first, with their last use as recorded so far.
    pub async fn list_api_tokens(&self, user_id: &str) -> IdentityResult<Vec<ApiToken>> {
        let user_id = Uuid::try_parse(user_id).map_err(|_| IdentityError::AccountNotFound)?;
        self.inner.accounts.flush().await;
        self.inner.store.list_api_tokens(user_id).await
    }

    /// Revokes `user_id`'s API token: it is refused on every process from now on.
    pub async fn revoke_api_token(&self, user_id: &str, id: Uuid) -> IdentityResult<ApiToken> {
        let user_id = Uuid::try_parse(user_id).map_err(|_| IdentityError::AccountNotFound)?;
        let token = self
            .inner
            .store
            .revoke_api_token(user_id, id, now())
            .await?
            .ok_or(IdentityError::TokenNotFound(id))?;
        self.inner.accounts.forget_tokens();
        self.inner
            .bus
            .publish(API_TOKENS_TOPIC, id.to_string())
            .await;
        tracing::info!(user_id = %user_id, token_id = %id, "api token revoked");
        Ok(token)
    }

    /// Checks the login quotas: the client address's first, so that attempts refused there
    /// leave no per-account state behind.
    fn throttle(&self, login: &str, client: Option<IpAddr>) -> IdentityResult<()> {
        let clock = self.inner.per_account.clock();
        if let Some(address) = client
            && let Err(not_until) = self.inner.per_address.check_key(&address)
        {
            return Err(IdentityError::Throttled(
                not_until.wait_time_from(clock.now()),
            ));
        }
        if let Err(not_until) = self.inner.per_account.check_key(&login.to_owned()) {
            return Err(IdentityError::Throttled(
                not_until.wait_time_from(clock.now()),
            ));
        }
        Ok(())
    }

    /// Forgets the quota state of accounts and addresses idle long enough to be back at a
    /// full allowance, so the limiters' memory follows the active clients, not every client
    /// ever seen.
    pub fn prune(&self) {
        for limiter in [&self.inner.per_address, &self.inner.registrations] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.inner.per_account.retain_recent();
        self.inner.per_account.shrink_to_fit();
    }

    /// Prunes the limiters every `interval` (see [`Identity::prune`]).
    pub fn spawn_pruner(&self, interval: Duration) {
        let identity = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                identity.prune();
            }
        });
    }

    /// Runs argon2id work off the async runtime once a hashing slot is free, waiting at most
    /// the configured time for one.
    async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> IdentityResult<T> {
        let wait = self.inner.hashing_wait;
        let permit = tokio::time::timeout(wait, self.inner.hashing.clone().acquire_owned())
            .await
            .map_err(|_| IdentityError::Busy(wait.max(Duration::from_millis(100))))?
            .map_err(|_| IdentityError::Internal("the hashing slots are closed".into()))?;
        blocking(move || {
            let _permit = permit;
            work()
        })
        .await
    }

    async fn issue(&self, user: &User, family_id: Uuid) -> IdentityResult<Tokens> {
        let now = now();
        let access_expires_at = now + self.inner.access_ttl;
        let refresh_expires_at = now + self.inner.refresh_ttl;
        let access = self
            .inner
            .keys
            .sign_with_roles(
                &self.inner.issuer,
                &user.id.to_string(),
                &user.username,
                &user.roles(),
                now,
                access_expires_at,
            )
            .map_err(|e| IdentityError::Internal(format!("signing failed: {e}")))?;
        let mut raw = [0u8; REFRESH_TOKEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let refresh = URL_SAFE_NO_PAD.encode(raw);
        self.inner
            .store
            .insert_refresh(
                &refresh_hash(&refresh),
                user.id,
                family_id,
                now,
                refresh_expires_at,
            )
            .await?;
        Ok(Tokens {
            access,
            access_expires_at,
            refresh,
            refresh_expires_at,
        })
    }

    /// Signs a token with arbitrary times (for tests of expiry handling).
    pub fn sign_for_tests(
        &self,
        user_id: &str,
        issued: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> String {
        self.inner
            .keys
            .sign(&self.inner.issuer, user_id, "test", issued, expires)
            .unwrap_or_default()
    }
}

/// Runs CPU-heavy password work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> IdentityResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| IdentityError::Internal(format!("password task failed: {e}")))
}

fn hash_password(password: &str) -> IdentityResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| IdentityError::Internal(format!("hashing failed: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

fn refresh_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// How long the flusher waits between writes of call counts.
pub const CALL_COUNT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
