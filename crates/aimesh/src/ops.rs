//! Operator commands that work on the database directly (no running mesh needed): making an
//! account an administrator or not (`aimesh admin grant|revoke EMAIL`).

use aimesh_admin::{
    AuditStore,
    domain::{Actor, AuditEntry},
};
use aimesh_identity::{AccountAdmin, IdentityStore, accounts::AccountDirectory};
use aimesh_kit::{
    config::ServerConfig, db::Db, invalidation::InvalidationBus, owned::OwnedDataRegistry,
};
use anyhow::Context;

/// Makes the account with `email` an administrator (`admin`) or not, and tells the running
/// processes (on PostgreSQL, through the invalidation channel).
pub async fn set_admin(server: &ServerConfig, email: &str, admin: bool) -> anyhow::Result<()> {
    let db = crate::connect(server).await?;
    if server.auto_migrate {
        crate::migrate(&db).await?;
    }
    let store = IdentityStore::new(db.clone());
    let bus = match &db {
        Db::Postgres(pool) => InvalidationBus::default().publishing_to(pool.clone()),
        Db::Sqlite(_) => InvalidationBus::default(),
    };
    let accounts = AccountAdmin::new(
        store.clone(),
        AccountDirectory::new(store),
        bus,
        OwnedDataRegistry::new(),
    );
    let result = accounts.set_admin(email, admin).await;
    if result.is_ok() {
        let actor = Actor::cli();
        AuditStore::new(db.clone())
            .record(&AuditEntry {
                id: uuid::Uuid::now_v7(),
                created_at: aimesh_kit::db::now(),
                actor,
                action: if admin { "role.grant" } else { "role.revoke" }.into(),
                target: email.to_lowercase(),
                detail: "admin".into(),
            })
            .await
            .context("failed to record the change in the audit log")?;
    }
    db.close().await;
    let user = result.with_context(|| format!("no account with the email {email:?}"))?;
    println!(
        "{} ({}) is {}",
        user.username,
        user.email,
        if admin {
            "an administrator"
        } else {
            "no longer an administrator"
        }
    );
    Ok(())
}
