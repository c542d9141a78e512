//! Persistence of accounts and refresh tokens, for SQLite and PostgreSQL alike.

use aimesh_events::{NewEvent, Outbox, pb};
use aimesh_kit::{
    db::{Db, Migrations},
    with_db,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use aimesh_kit::auth::scope::{Access, TokenScope};

use crate::{
    domain::{ApiToken, User, UserQuery},
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
    is_admin: bool,
    disabled_at: Option<DateTime<Utc>>,
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
                admin: self.is_admin,
                disabled_at: self.disabled_at,
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

    /// Inserts an account, recording `identity.account.created`; `AlreadyExists` names the
    /// field that is taken.
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
        let owner_id = user.id.to_string();
        let event = NewEvent::new(
            &owner_id,
            user.id,
            pb::AccountCreated {
                username: user.username.clone(),
            },
        )
        .at(user.created_at);
        let inserted = with_db!(&self.db, INSERT "users", |pool| async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO users (id, username, username_key, email, password_hash, \
                 api_calls, created_at, is_admin) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
            )
            .bind(user.id)
            .bind(&user.username)
            .bind(user.username.to_lowercase())
            .bind(&user.email)
            .bind(password_hash)
            .bind(user.created_at)
            .bind(user.admin)
            .execute(&mut *tx)
            .await?;
            tx.record(&event).await?;
            tx.commit().await
        }.await);
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
                "SELECT id, username, email, created_at, api_calls, is_admin, disabled_at, \
                 password_hash FROM users WHERE email = $1 OR username_key = $1",
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
                "SELECT id, username, email, created_at, api_calls, is_admin, disabled_at, \
                 password_hash FROM users WHERE id = $1",
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

    /// Deletes an account and (by cascade) its refresh tokens, recording
    /// `identity.account.deleted` when there was one.
    pub async fn delete_user(&self, id: Uuid) -> IdentityResult<bool> {
        let event = NewEvent::new(&id.to_string(), id, pb::AccountDeleted {});
        let deleted = with_db!(&self.db, DELETE "users", |pool| async {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted > 0 {
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(deleted)
        }.await)?;
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

    /// Returns where an account stands: `(is_admin, disabled)`, or `None` when it is gone.
    pub async fn account_state(&self, id: Uuid) -> IdentityResult<Option<(bool, bool)>> {
        let row: Option<(bool, Option<DateTime<Utc>>)> = with_db!(&self.db, SELECT "users", |pool| {
            sqlx::query_as("SELECT is_admin, disabled_at FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|(admin, disabled_at)| (admin, disabled_at.is_some())))
    }

    /// Makes the account with `email` an administrator or not; returns it, or `None` when
    /// there is no such account.
    pub async fn set_admin(&self, email: &str, admin: bool) -> IdentityResult<Option<User>> {
        let updated: Option<(Uuid,)> = with_db!(&self.db, UPDATE "users", |pool| {
            sqlx::query_as("UPDATE users SET is_admin = $1 WHERE email = $2 RETURNING id")
                .bind(admin)
                .bind(email)
                .fetch_optional(pool)
                .await
        })?;
        match updated {
            Some((id,)) => Ok(self.get_user(id).await?.map(|(user, _)| user)),
            None => Ok(None),
        }
    }

    /// Disables (`Some(time)`) or re-enables (`None`) an account; returns it, or `None` when
    /// there is no such account. Disabling a disabled account keeps its first time.
    pub async fn set_disabled(
        &self,
        id: Uuid,
        disabled_at: Option<DateTime<Utc>>,
    ) -> IdentityResult<Option<User>> {
        let updated = with_db!(&self.db, UPDATE "users", |pool| {
            sqlx::query(
                "UPDATE users SET disabled_at = CASE WHEN $1 IS NULL THEN NULL \
                 ELSE COALESCE(disabled_at, $1) END WHERE id = $2",
            )
            .bind(disabled_at)
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        if updated == 0 {
            return Ok(None);
        }
        Ok(self.get_user(id).await?.map(|(user, _)| user))
    }

    /// Lists accounts by id, one more than the page size (to detect a next page).
    pub async fn list_users(&self, query: &UserQuery) -> IdentityResult<Vec<User>> {
        let pattern = query.search.as_deref().map(|search| {
            let escaped = search
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let rows: Vec<UserRow> = with_db!(&self.db, SELECT "users", |pool| {
            sqlx::query_as(
                "SELECT id, username, email, created_at, api_calls, is_admin, disabled_at, \
                 password_hash FROM users \
                 WHERE ($1 IS NULL OR id > $1) \
                 AND ($2 IS NULL OR username_key LIKE $2 ESCAPE '\\' OR email LIKE $2 ESCAPE '\\') \
                 ORDER BY id LIMIT $3",
            )
            .bind(query.after)
            .bind(pattern.as_deref())
            .bind(i64::from(query.page_size) + 1)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(|row| row.into_parts().0).collect())
    }

    /// Stores a new API token (by the hash of its secret), unless the account already holds
    /// `limit` tokens; returns whether it was stored.
    pub async fn insert_api_token(
        &self,
        token: &ApiToken,
        hash: &[u8],
        limit: i64,
    ) -> IdentityResult<bool> {
        let inserted = with_db!(&self.db, INSERT "api_tokens", |pool| {
            sqlx::query(
                "INSERT INTO api_tokens (id, user_id, name, token_hash, access, services, \
                 created_at, expires_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
                 WHERE (SELECT COUNT(*) FROM api_tokens WHERE user_id = $2) < $9",
            )
            .bind(token.id)
            .bind(token.user_id)
            .bind(&token.name)
            .bind(hash)
            .bind(token.scope.access.as_str())
            .bind(token.scope.services.join(","))
            .bind(token.created_at)
            .bind(token.expires_at)
            .bind(limit)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(inserted == 1)
    }

    /// Lists an account's API tokens, newest first.
    pub async fn list_api_tokens(&self, user_id: Uuid) -> IdentityResult<Vec<ApiToken>> {
        let rows: Vec<ApiTokenRow> = with_db!(&self.db, SELECT "api_tokens", |pool| {
            sqlx::query_as(
                "SELECT id, user_id, name, access, services, created_at, expires_at, \
                 last_used_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY id DESC",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter().map(ApiTokenRow::into_token).collect()
    }

    /// Revokes an account's API token; returns it, or `None` when the account has no such
    /// token. Revoking a revoked token keeps its first time.
    pub async fn revoke_api_token(
        &self,
        user_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> IdentityResult<Option<ApiToken>> {
        let row: Option<ApiTokenRow> = with_db!(&self.db, UPDATE "api_tokens", |pool| {
            sqlx::query_as(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) \
                 WHERE id = $2 AND user_id = $3 \
                 RETURNING id, user_id, name, access, services, created_at, expires_at, \
                 last_used_at, revoked_at",
            )
            .bind(now)
            .bind(id)
            .bind(user_id)
            .fetch_optional(pool)
            .await
        })?;
        row.map(ApiTokenRow::into_token).transpose()
    }

    /// Finds an API token by the hash of its secret, with its owner's username.
    pub async fn find_api_token(&self, hash: &[u8]) -> IdentityResult<Option<(ApiToken, String)>> {
        let row: Option<(ApiTokenRow, String)> = with_db!(&self.db, SELECT "api_tokens", |pool| {
            sqlx::query_as::<_, ApiTokenWithOwner>(
                "SELECT t.id, t.user_id, t.name, t.access, t.services, t.created_at, \
                 t.expires_at, t.last_used_at, t.revoked_at, u.username \
                 FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
            )
            .bind(hash)
            .fetch_optional(pool)
            .await
            .map(|row| row.map(|row| (row.token, row.username)))
        })?;
        match row {
            Some((token, username)) => Ok(Some((token.into_token()?, username))),
            None => Ok(None),
        }
    }

    /// Records when API tokens were last used, in one transaction.
    pub async fn touch_api_tokens(&self, uses: &[(Uuid, DateTime<Utc>)]) -> IdentityResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        with_db!(&self.db, UPDATE "api_tokens", |pool| {
            let mut tx = pool.begin().await?;
            for (id, at) in uses {
                sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct ApiTokenRow {
    id: Uuid,
    user_id: Uuid,
    name: String,
    access: String,
    services: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ApiTokenWithOwner {
    #[sqlx(flatten)]
    token: ApiTokenRow,
    username: String,
}

impl ApiTokenRow {
    fn into_token(self) -> IdentityResult<ApiToken> {
        let access = Access::parse(&self.access).ok_or_else(|| {
            IdentityError::Internal(format!("unknown token access {:?}", self.access))
        })?;
        Ok(ApiToken {
            id: self.id,
            user_id: self.user_id,
            name: self.name,
            scope: TokenScope {
                access,
                services: self
                    .services
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            },
            created_at: self.created_at,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
        })
    }
}
