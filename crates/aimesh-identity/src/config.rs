//! Settings of the identity service.

use std::{num::NonZeroU32, path::PathBuf, time::Duration};

/// Identity settings (flags and `AIMESH_*` variables).
#[derive(Debug, Clone, clap::Args)]
pub struct IdentityConfig {
    /// PEM (PKCS#8) Ed25519 private key that signs access tokens; created in the data
    /// directory on first start when unset.
    #[arg(long, env = "AIMESH_JWT_SIGNING_KEY_FILE")]
    pub jwt_signing_key_file: Option<PathBuf>,

    /// PEM Ed25519 public keys (comma-separated files) also accepted and published: the keys
    /// of tokens signed before a key rotation.
    #[arg(long, env = "AIMESH_JWT_EXTRA_PUBLIC_KEYS", value_delimiter = ',')]
    pub jwt_extra_public_keys: Vec<PathBuf>,

    /// Access token lifetime in seconds.
    #[arg(long, env = "AIMESH_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,

    /// Refresh token lifetime in seconds.
    #[arg(
        long,
        env = "AIMESH_REFRESH_TOKEN_TTL_SECS",
        default_value_t = 2_592_000
    )]
    pub refresh_token_ttl_secs: u64,

    /// Login attempts allowed per account per minute.
    #[arg(long, env = "AIMESH_LOGIN_ATTEMPTS_PER_MINUTE", default_value_t = 10)]
    pub login_attempts_per_minute: u32,

    /// Login attempts allowed per client address per minute.
    #[arg(
        long,
        env = "AIMESH_LOGIN_ATTEMPTS_PER_MINUTE_PER_ADDRESS",
        default_value_t = 30
    )]
    pub login_attempts_per_minute_per_address: u32,

    /// Account registrations allowed per client address per minute.
    #[arg(
        long,
        env = "AIMESH_REGISTRATIONS_PER_MINUTE_PER_ADDRESS",
        default_value_t = 10
    )]
    pub registrations_per_minute_per_address: u32,

    /// Emails of the accounts that are administrators (comma-separated): made so at start
    /// if they exist, else when they register. More are made with `aimesh admin grant EMAIL`.
    #[arg(long, env = "AIMESH_ADMIN_EMAILS", value_delimiter = ',')]
    pub admin_emails: Vec<String>,

    /// Passwords hashed or verified at once (each argon2id computation takes about 19 MiB);
    /// 0: one per CPU.
    #[arg(long, env = "AIMESH_PASSWORD_HASHING_CONCURRENCY", default_value_t = 0)]
    pub password_hashing_concurrency: usize,

    /// How long a registration or login waits for a free hashing slot before it is refused
    /// with RESOURCE_EXHAUSTED (and a retry delay), in milliseconds.
    #[arg(long, env = "AIMESH_PASSWORD_HASHING_WAIT_MS", default_value_t = 2000)]
    pub password_hashing_wait_ms: u64,
}

impl IdentityConfig {
    /// Returns the access token lifetime.
    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_secs)
    }

    /// Returns the refresh token lifetime.
    pub fn refresh_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl_secs)
    }

    /// Returns the per-account login quota.
    pub fn per_account_logins(&self) -> NonZeroU32 {
        NonZeroU32::new(self.login_attempts_per_minute).unwrap_or(NonZeroU32::MIN)
    }

    /// Returns the per-address login quota.
    pub fn per_address_logins(&self) -> NonZeroU32 {
        NonZeroU32::new(self.login_attempts_per_minute_per_address).unwrap_or(NonZeroU32::MIN)
    }

    /// Returns the per-address registration quota.
    pub fn per_address_registrations(&self) -> NonZeroU32 {
        NonZeroU32::new(self.registrations_per_minute_per_address).unwrap_or(NonZeroU32::MIN)
    }

    /// Returns how many passwords may be hashed at once.
    pub fn hashing_concurrency(&self) -> usize {
        match self.password_hashing_concurrency {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    /// Returns how long to wait for a hashing slot.
    pub fn hashing_wait(&self) -> Duration {
        Duration::from_millis(self.password_hashing_wait_ms)
    }

    /// Returns the defaults, with the key in the given data directory's default place.
    pub fn for_tests() -> Self {
        Self {
            jwt_signing_key_file: None,
            jwt_extra_public_keys: Vec::new(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 2_592_000,
            login_attempts_per_minute: 10,
            login_attempts_per_minute_per_address: 30,
            registrations_per_minute_per_address: 10,
            password_hashing_concurrency: 0,
            password_hashing_wait_ms: 2000,
            admin_emails: Vec::new(),
        }
    }
}
