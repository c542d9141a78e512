//! The identity service: accounts with argon2id-hashed passwords, EdDSA-signed access tokens
//! (JWT) with published keys (JWKS), rotating refresh tokens with replay detection, login
//! throttling, per-account API call counts, administrators and disabled accounts, and
//! personal API tokens (scoped, revocable, stored hashed).
//!
//! Layers: [`api`] (tonic) -> [`service`] (domain) -> [`store`] (SQL); [`keys`] holds the
//! signing keys, [`accounts`] lets the mesh's auth layer check accounts and count calls.

pub mod accounts;
pub mod admin;
pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod keys;
pub mod service;
pub mod store;

pub use admin::AccountAdmin;
pub use api::{AccountExports, IdentityApi};
pub use config::IdentityConfig;
pub use error::{IdentityError, IdentityResult};
pub use service::Identity;
pub use store::{IdentityStore, MIGRATIONS};
