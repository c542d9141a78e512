//! Persistence of accounts and refresh tokens, for SQLite and PostgreSQL alike.

use aimesh_kit::{
    db::{Db, Migrations},
    with_db,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    domain::User,
    error::{IdentityError, IdentityResult},
};

/// The identity service's migrations.
pub const MIGRATIONS: Migrations = aimesh_kit::migrations!("identity");

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    username: String,
    email: String,
    created_at: DateTime<Utc>,
    api_calls: i64,
    password_hash: String,
}

impl UserRow {
    /// Splits the row into the account and its password hash.
    fn into_parts(self) -> (User, String) {
        (
            User {
                id: self.id,
                username: self.username,
                email: self.email,
                created_at: self.created_at,
                api_calls: self.api_calls,
            },
            self.password_hash,
        )
    }
}

/// A stored refresh token's state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshRecord {
    /// Owner.
    pub user_id: Uuid,
    /// The login it descends from.
    pub family_id: Uuid,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// When it was rotated, if it was.
    pub used_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Accounts and tokens in a database.
#[derive(Debug, Clone)]
pub struct IdentityStore {
    db: Db,
}

impl IdentityStore {
    /// Creates a store on a migrated database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Inserts an account; `AlreadyExists` names the field that is taken.
    pub async fn create_user(&self, user: &User, password_hash: &str) -> IdentityResult<()> {
        let taken: Option<(String, String)> = with_db!(&self.db, SELECT "users", |pool| {
            sqlx::query_as(
                "SELECT email, username_key FROM users WHERE email = $1 OR username_key = $2",
            )
            .bind(&user.email)
            .bind(user.username.to_lowercase())
            .fetch_optional(pool)
            .await
        })?;
        if let Some((email, _)) = taken {
            return Err(IdentityError::AlreadyExists(if email == user.email {
                "email"
            } else {
                "username"
            }));
        }
        let inserted = with_db!(&self.db, INSERT "users", |pool| {
            sqlx::query(
                "INSERT INTO users (id, username, username_key, email, password_hash, \
                 api_calls, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6)",
            )
            .bind(user.id)
            .bind(&user.username)
            .bind(user.username.to_lowercase())
            .bind(&user.email)
            .bind(password_hash)
            .bind(user.created_at)
            .execute(pool)
            .await
            .map(drop)
        });
        match inserted {
            Err(error) if aimesh_kit::db::error_code(&error) == aimesh_kit::Code::AlreadyExists => {
                Err(IdentityError::AlreadyExists("email or username"))
            }
            other => Ok(other?),
        }
    }

    /// Returns which of `username` and `email` an existing account already has, if either.
    pub async fn taken(&self, username: &str, email: &str) -> IdentityResult<Option<&'static str>> {
        let row: Option<(bool,)> = with_db!(&self.db, SELECT "users", |pool| {
            sqlx::query_as(
                "SELECT email = $2 FROM users WHERE username_key = $1 OR email = $2 LIMIT 1",
            )
            .bind(username.to_lowercase())
            .bind(email)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(email_taken,)| if email_taken { "email" } else { "username" }))
    }

    /// Finds an account and its password hash by lowercased email or username.
    pub async fn find_login(&self, login: &str) -> IdentityResult<Option<(User, String)>> {
        let row: Option<UserRow> = with_db!(&self.db, SELECT "users", |pool| {
            sqlx::query_as(
                "SELECT id, username, email, created_at, api_calls, password_hash FROM users \
                 WHERE email = $1 OR username_key = $1",
            )
            .bind(login)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(UserRow::into_parts))
    }

    /// Returns an account with its password hash.
    pub async fn get_user(&self, id: Uuid) -> IdentityResult<Option<(User, String)>> {
        let row: Option<UserRow> = with_db!(&self.db, SELECT "users", |pool| {
            sqlx::query_as(
                "SELECT id, username, email, created_at, api_calls, password_hash FROM users \
                 WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(UserRow::into_parts))
    }

    /// Returns whether an account exists.
    pub async fn user_exists(&self, id: Uuid) -> IdentityResult<bool> {
        let found: Option<(Uuid,)> = with_db!(&self.db, SELECT "users", |pool| {
            sqlx::query_as("SELECT id FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(found.is_some())
    }

    /// Deletes an account and (by cascade) its refresh tokens.
    pub async fn delete_user(&self, id: Uuid) -> IdentityResult<bool> {
        let deleted = with_db!(&self.db, DELETE "users", |pool| {
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(deleted > 0)
    }

    /// Adds counted calls to accounts, in one transaction.
    pub async fn add_api_calls(&self, counts: &[(Uuid, i64)]) -> IdentityResult<()> {
        if counts.is_empty() {
            return Ok(());
        }
        with_db!(&self.db, UPDATE "users", |pool| {
            let mut tx = pool.begin().await?;
            for (id, count) in counts {
                sqlx::query("UPDATE users SET api_calls = api_calls + $1 WHERE id = $2")
                    .bind(count)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    /// Stores a new refresh token (by hash).
    pub async fn insert_refresh(
        &self,
        hash: &[u8],
        user_id: Uuid,
        family_id: Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> IdentityResult<()> {
        with_db!(&self.db, INSERT "refresh_tokens", |pool| {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, user_id, family_id, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(hash)
            .bind(user_id)
            .bind(family_id)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Returns a refresh token's state.
    pub async fn get_refresh(&self, hash: &[u8]) -> IdentityResult<Option<RefreshRecord>> {
        let record = with_db!(&self.db, SELECT "refresh_tokens", |pool| {
            sqlx::query_as(
                "SELECT user_id, family_id, expires_at, used_at, revoked_at FROM refresh_tokens \
                 WHERE token_hash = $1",
            )
            .bind(hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(record)
    }

    /// Marks a refresh token used, if nobody did first; returns whether this call did.
    pub async fn spend_refresh(&self, hash: &[u8], now: DateTime<Utc>) -> IdentityResult<bool> {
        let updated = with_db!(&self.db, UPDATE "refresh_tokens", |pool| {
            sqlx::query(
                "UPDATE refresh_tokens SET used_at = $1 \
                 WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(hash)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(updated == 1)
    }

    /// Revokes every token of a family.
    pub async fn revoke_family(&self, family_id: Uuid, now: DateTime<Utc>) -> IdentityResult<()> {
        with_db!(&self.db, UPDATE "refresh_tokens", |pool| {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 \
                 WHERE family_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(family_id)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }
}
