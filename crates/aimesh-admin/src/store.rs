//! Persistence of the audit log, for SQLite and PostgreSQL alike.

use aimesh_kit::{
    db::{Db, Migrations},
    with_db,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    domain::{Actor, AuditEntry},
    error::AdminResult,
};

/// The admin service's migrations.
pub const MIGRATIONS: Migrations = aimesh_kit::migrations!("admin");

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: Uuid,
    created_at: DateTime<Utc>,
    actor_id: String,
    actor_username: String,
    action: String,
    target: String,
    detail: String,
}

impl From<EntryRow> for AuditEntry {
    fn from(row: EntryRow) -> Self {
        AuditEntry {
            id: row.id,
            created_at: row.created_at,
            actor: Actor {
                id: row.actor_id,
                username: row.actor_username,
            },
            action: row.action,
            target: row.target,
            detail: row.detail,
        }
    }
}

/// The audit log in a database.
#[derive(Debug, Clone)]
pub struct AuditStore {
    db: Db,
}

impl AuditStore {
    /// Creates a store on a migrated database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Appends an entry.
    pub async fn record(&self, entry: &AuditEntry) -> AdminResult<()> {
        with_db!(&self.db, INSERT "admin_audit_log", |pool| {
            sqlx::query(
                "INSERT INTO admin_audit_log (id, created_at, actor_id, actor_username, action, \
                 target, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(entry.id)
            .bind(entry.created_at)
            .bind(&entry.actor.id)
            .bind(&entry.actor.username)
            .bind(&entry.action)
            .bind(&entry.target)
            .bind(&entry.detail)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Lists entries newest first, older than `before` when given; one more than `limit`
    /// is asked for by the caller to detect a next page.
    pub async fn list(&self, before: Option<Uuid>, limit: i64) -> AdminResult<Vec<AuditEntry>> {
        let rows: Vec<EntryRow> = with_db!(&self.db, SELECT "admin_audit_log", |pool| {
            sqlx::query_as(
                "SELECT id, created_at, actor_id, actor_username, action, target, detail \
                 FROM admin_audit_log WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
            )
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }
}
