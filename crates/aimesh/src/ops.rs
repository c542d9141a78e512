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

/// The database file of a backup, in its directory.
const BACKUP_DB: &str = "aimesh.db";
/// The blob directory of a backup, in its directory.
const BACKUP_BLOBS: &str = "blobs";

/// Backs the embedded default up into `out` (a new or empty directory): a consistent copy of
/// the SQLite database (`VACUUM INTO`, safe while the mesh runs) and a copy of the stored
/// files. Blobs are written once under their SHA-256 and never changed, so a file copied is
/// whole; one stored while the copy runs may be missing from it. PostgreSQL deployments back
/// up with `pg_dump` and their object store's tools.
pub async fn backup(
    server: &ServerConfig,
    processing: &crate::ProcessingSettings,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        anyhow::bail!("{} is not empty", out.display());
    }
    refuse_object_store(processing)?;
    let db = crate::connect(server).await?;
    let Db::Sqlite(pool) = &db else {
        db.close().await;
        anyhow::bail!(
            "aimesh backup copies the embedded SQLite database; back PostgreSQL up with pg_dump"
        );
    };
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let target = out.join(BACKUP_DB);
    let vacuumed = sqlx::query("VACUUM INTO $1")
        .bind(target.to_string_lossy().into_owned())
        .execute(pool)
        .await;
    db.close().await;
    vacuumed.context("VACUUM INTO failed")?;
    let files = copy_tree(
        &processing.blob_dir(&server.data_dir),
        &out.join(BACKUP_BLOBS),
    )?;
    println!(
        "backed up the database ({:.1} MB) and {files} stored file(s) into {}",
        std::fs::metadata(&target)?.len() as f64 / 1e6,
        out.display()
    );
    Ok(())
}

/// Restores a backup made by [`backup`] into the embedded default's places (the SQLite file
/// of the data directory, the blob directory). The mesh must be stopped; what is there is
/// replaced only with `force`.
pub fn restore(
    server: &ServerConfig,
    processing: &crate::ProcessingSettings,
    from: &std::path::Path,
    force: bool,
) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;

    refuse_object_store(processing)?;
    let source = from.join(BACKUP_DB);
    anyhow::ensure!(
        source.is_file(),
        "{} holds no {BACKUP_DB}: not a backup",
        from.display()
    );
    let url = server.database_url();
    let url = url.expose_secret();
    let path = url
        .strip_prefix("sqlite://")
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|path| !path.is_empty() && *path != ":memory:")
        .context("aimesh restore writes the embedded SQLite database; restore PostgreSQL with pg_restore")?;
    let database = std::path::PathBuf::from(path);
    let blobs = processing.blob_dir(&server.data_dir);
    if !force && (database.exists() || blobs.exists()) {
        anyhow::bail!(
            "{} or {} exists: stop the mesh and pass --force to replace them",
            database.display(),
            blobs.display()
        );
    }
    if let Some(dir) = database.parent() {
        std::fs::create_dir_all(dir)?;
    }
    for suffix in ["-wal", "-shm"] {
        let stale = std::path::PathBuf::from(format!("{}{suffix}", database.display()));
        if stale.exists() {
            std::fs::remove_file(&stale)?;
        }
    }
    std::fs::copy(&source, &database)
        .with_context(|| format!("cannot write {}", database.display()))?;
    if blobs.exists() {
        std::fs::remove_dir_all(&blobs)?;
    }
    let files = copy_tree(&from.join(BACKUP_BLOBS), &blobs)?;
    println!(
        "restored the database into {} and {files} stored file(s) into {}",
        database.display(),
        blobs.display()
    );
    Ok(())
}

/// Refuses to back up or restore stored files kept in an object store (AIMESH_BLOB_URL): that
/// store's own tools copy them.
fn refuse_object_store(processing: &crate::ProcessingSettings) -> anyhow::Result<()> {
    match processing.blob_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => anyhow::bail!(
            "stored files are in {url} (AIMESH_BLOB_URL): back them up with the object \
             store's own tools; aimesh backup and restore copy a local blob directory"
        ),
        _ => Ok(()),
    }
}

/// Copies the files under `from` (missing: nothing) to `to`; returns how many.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<u64> {
    if !from.exists() {
        return Ok(0);
    }
    std::fs::create_dir_all(to)?;
    let mut copied = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copied += copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
            copied += 1;
        }
    }
    Ok(copied)
}
