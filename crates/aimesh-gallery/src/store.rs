//! Persistence of gallery images and their tags, for SQLite and PostgreSQL alike: the SQL is
//! written once, in the subset both understand, and [`with_db!`] runs it on whichever pool is
//! configured.

use aimesh_events::{NewEvent, Outbox, pb};
use aimesh_kit::{
    db::{Db, Migrations},
    traced, with_db,
};
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::{
    domain::{Image, ImagePage, ListQuery, Origin, StoredFile, Update},
    error::{GalleryError, GalleryResult},
};

/// The gallery service's migrations.
pub const MIGRATIONS: Migrations = aimesh_kit::migrations!("gallery");

/// The columns of an image, in [`ImageRow`]'s order.
const COLUMNS: &str = "id, owner_id, title, prompt, tags, origin, source_id, operation, format, \
     width, height, original_sha256, original_type, original_bytes, thumb256_sha256, \
     thumb256_type, thumb256_bytes, thumb1024_sha256, thumb1024_type, thumb1024_bytes, \
     perceptual_hash, metadata_kept, job_id, created_at, updated_at, deleted_at";

#[derive(sqlx::FromRow)]
struct ImageRow {
    id: Uuid,
    owner_id: String,
    title: String,
    prompt: String,
    tags: String,
    origin: String,
    source_id: Option<Uuid>,
    operation: String,
    format: String,
    width: i32,
    height: i32,
    original_sha256: String,
    original_type: String,
    original_bytes: i64,
    thumb256_sha256: String,
    thumb256_type: String,
    thumb256_bytes: i64,
    thumb1024_sha256: String,
    thumb1024_type: String,
    thumb1024_bytes: i64,
    perceptual_hash: String,
    metadata_kept: bool,
    job_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

impl ImageRow {
    fn into_image(self) -> GalleryResult<Image> {
        let origin = Origin::parse(&self.origin).ok_or_else(|| {
            GalleryError::Internal(format!("unknown image origin {:?}", self.origin))
        })?;
        let tags: Vec<String> = serde_json::from_str(&self.tags)
            .map_err(|e| GalleryError::Internal(format!("unreadable tags of an image: {e}")))?;
        Ok(Image {
            id: self.id,
            owner_id: self.owner_id,
            title: self.title,
            prompt: self.prompt,
            tags,
            origin,
            source_id: self.source_id,
            operation: self.operation,
            format: self.format,
            width: self.width,
            height: self.height,
            original: StoredFile {
                sha256: self.original_sha256,
                content_type: self.original_type,
                size_bytes: self.original_bytes,
            },
            thumbnail_256: StoredFile {
                sha256: self.thumb256_sha256,
                content_type: self.thumb256_type,
                size_bytes: self.thumb256_bytes,
            },
            thumbnail_1024: StoredFile {
                sha256: self.thumb1024_sha256,
                content_type: self.thumb1024_type,
                size_bytes: self.thumb1024_bytes,
            },
            perceptual_hash: self.perceptual_hash,
            metadata_kept: self.metadata_kept,
            job_id: self.job_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        })
    }
}

fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

fn rows_into_page(mut rows: Vec<ImageRow>, page_size: u32) -> GalleryResult<ImagePage> {
    let next_after = aimesh_kit::paging::take_page(&mut rows, page_size, |row| row.id);
    let images = rows
        .into_iter()
        .map(ImageRow::into_image)
        .collect::<GalleryResult<_>>()?;
    Ok(ImagePage { images, next_after })
}

/// Images in a database.
#[derive(Debug, Clone)]
pub struct ImageStore {
    db: Db,
}

impl ImageStore {
    /// Creates a store on a migrated database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Inserts an image and its tags in one transaction, recording `gallery.image.created`.
    /// Returns false (inserting nothing) when an image made by the same job exists already.
    pub async fn insert(&self, image: &Image) -> GalleryResult<bool> {
        let source = match image.origin {
            Origin::Uploaded => "upload",
            Origin::Generated => "generated",
            Origin::Derived => "operation",
        };
        let event = NewEvent::new(
            &image.owner_id,
            image.id,
            pb::ImageCreated {
                source: source.to_owned(),
                media_type: image.original.content_type.clone(),
                width: image.width,
                height: image.height,
            },
        )
        .at(image.created_at);
        let inserted = with_db!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let insert = sqlx::query(
                "INSERT INTO images (id, owner_id, title, prompt, tags, origin, source_id, \
                 operation, format, width, height, original_sha256, original_type, \
                 original_bytes, thumb256_sha256, thumb256_type, thumb256_bytes, \
                 thumb1024_sha256, thumb1024_type, thumb1024_bytes, perceptual_hash, \
                 metadata_kept, job_id, created_at, updated_at, deleted_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18, $19, $20, $21, $22, $23, $24, $25, NULL) \
                 ON CONFLICT (job_id) DO NOTHING",
            )
            .bind(image.id)
            .bind(&image.owner_id)
            .bind(&image.title)
            .bind(&image.prompt)
            .bind(tags_json(&image.tags))
            .bind(image.origin.as_str())
            .bind(image.source_id)
            .bind(&image.operation)
            .bind(&image.format)
            .bind(image.width)
            .bind(image.height)
            .bind(&image.original.sha256)
            .bind(&image.original.content_type)
            .bind(image.original.size_bytes)
            .bind(&image.thumbnail_256.sha256)
            .bind(&image.thumbnail_256.content_type)
            .bind(image.thumbnail_256.size_bytes)
            .bind(&image.thumbnail_1024.sha256)
            .bind(&image.thumbnail_1024.content_type)
            .bind(image.thumbnail_1024.size_bytes)
            .bind(&image.perceptual_hash)
            .bind(image.metadata_kept)
            .bind(image.job_id)
            .bind(image.created_at)
            .bind(image.updated_at);
            let inserted = traced!(&self.db, INSERT "images", insert.execute(&mut *tx))
                .await?
                .rows_affected();
            if inserted == 1 {
                for tag in &image.tags {
                    let insert =
                        sqlx::query("INSERT INTO image_tags (image_id, tag) VALUES ($1, $2)")
                            .bind(image.id)
                            .bind(tag);
                    traced!(&self.db, INSERT "image_tags", insert.execute(&mut *tx)).await?;
                }
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(inserted)
        })?;
        Ok(inserted == 1)
    }

    /// Returns the owner's image, in the trash or not.
    pub async fn get(&self, owner_id: &str, id: Uuid) -> GalleryResult<Option<Image>> {
        let row: Option<ImageRow> = with_db!(&self.db, SELECT "images", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(COLUMNS)
                .push(" FROM images WHERE id = ")
                .push_bind(id)
                .push(" AND owner_id = ")
                .push_bind(owner_id);
            sql.build_query_as().fetch_optional(pool).await
        })?;
        row.map(ImageRow::into_image).transpose()
    }

    /// Returns the image a job made, whoever owns it.
    pub async fn by_job(&self, job_id: Uuid) -> GalleryResult<Option<Image>> {
        let row: Option<ImageRow> = with_db!(&self.db, SELECT "images", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(COLUMNS)
                .push(" FROM images WHERE job_id = ")
                .push_bind(job_id);
            sql.build_query_as().fetch_optional(pool).await
        })?;
        row.map(ImageRow::into_image).transpose()
    }

    /// Lists the owner's images outside the trash, newest first, one page at a time.
    pub async fn list(&self, owner_id: &str, query: &ListQuery) -> GalleryResult<ImagePage> {
        let limit = i64::from(query.page_size) + 1;
        let rows: Vec<ImageRow> = with_db!(&self.db, SELECT "images", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(COLUMNS)
                .push(" FROM images WHERE owner_id = ")
                .push_bind(owner_id)
                .push(" AND deleted_at IS NULL");
            if let Some(after) = query.after {
                sql.push(" AND id < ").push_bind(after);
            }
            if let Some(tag) = &query.tag {
                sql.push(" AND EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = images.id AND t.tag = ")
                    .push_bind(tag)
                    .push(")");
            }
            if let Some(origin) = query.origin {
                sql.push(" AND origin = ").push_bind(origin.as_str());
            }
            if let Some(after) = query.created_after {
                sql.push(" AND created_at >= ").push_bind(after);
            }
            if let Some(before) = query.created_before {
                sql.push(" AND created_at < ").push_bind(before);
            }
            sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
            sql.build_query_as().fetch_all(pool).await
        })?;
        rows_into_page(rows, query.page_size)
    }

    /// Lists the owner's images in the trash, most recently deleted first (ties by id).
    pub async fn list_deleted(
        &self,
        owner_id: &str,
        page_size: u32,
        after: Option<Uuid>,
    ) -> GalleryResult<ImagePage> {
        let limit = i64::from(page_size) + 1;
        // Paged by id (newest first) so a token stays valid while images come and go.
        let rows: Vec<ImageRow> = with_db!(&self.db, SELECT "images", |pool| {
            let mut sql = QueryBuilder::new("SELECT ");
            sql.push(COLUMNS)
                .push(" FROM images WHERE owner_id = ")
                .push_bind(owner_id)
                .push(" AND deleted_at IS NOT NULL");
            if let Some(after) = after {
                sql.push(" AND id < ").push_bind(after);
            }
            sql.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
            sql.build_query_as().fetch_all(pool).await
        })?;
        rows_into_page(rows, page_size)
    }

    /// Sets the fields of an update on the owner's image; returns false when the owner has
    /// no such image.
    pub async fn update(
        &self,
        owner_id: &str,
        id: Uuid,
        update: &Update,
        now: DateTime<Utc>,
    ) -> GalleryResult<bool> {
        let updated = with_db!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            let mut sql = QueryBuilder::new("UPDATE images SET updated_at = ");
            sql.push_bind(now);
            if let Some(title) = &update.title {
                sql.push(", title = ").push_bind(title);
            }
            if let Some(prompt) = &update.prompt {
                sql.push(", prompt = ").push_bind(prompt);
            }
            if let Some(tags) = &update.tags {
                sql.push(", tags = ").push_bind(tags_json(tags));
            }
            sql.push(" WHERE id = ")
                .push_bind(id)
                .push(" AND owner_id = ")
                .push_bind(owner_id);
            let updated = traced!(&self.db, UPDATE "images", sql.build().execute(&mut *tx))
                .await?
                .rows_affected();
            if let (1, Some(tags)) = (updated, &update.tags) {
                let delete = sqlx::query("DELETE FROM image_tags WHERE image_id = $1").bind(id);
                traced!(&self.db, DELETE "image_tags", delete.execute(&mut *tx)).await?;
                for tag in tags {
                    let insert =
                        sqlx::query("INSERT INTO image_tags (image_id, tag) VALUES ($1, $2)")
                            .bind(id)
                            .bind(tag);
                    traced!(&self.db, INSERT "image_tags", insert.execute(&mut *tx)).await?;
                }
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(updated)
        })?;
        Ok(updated == 1)
    }

    /// Moves the owner's image into the trash (`Some(time)`) or out of it (`None`), recording
    /// `gallery.image.trashed` or `gallery.image.restored`; returns false when the owner has
    /// no such image in the other state.
    pub async fn set_deleted(
        &self,
        owner_id: &str,
        id: Uuid,
        deleted_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> GalleryResult<bool> {
        let (condition, event) = if deleted_at.is_some() {
            let event = NewEvent::new(owner_id, id, pb::ImageTrashed {});
            ("deleted_at IS NULL", event)
        } else {
            let event = NewEvent::new(owner_id, id, pb::ImageRestored {});
            ("deleted_at IS NOT NULL", event)
        };
        let event = event.at(now);
        let updated = with_db!(&self.db, UPDATE "images", |pool| async {
            let mut tx = pool.begin().await?;
            let mut sql = QueryBuilder::new("UPDATE images SET deleted_at = ");
            sql.push_bind(deleted_at)
                .push(", updated_at = ")
                .push_bind(now)
                .push(" WHERE id = ")
                .push_bind(id)
                .push(" AND owner_id = ")
                .push_bind(owner_id)
                .push(" AND ")
                .push(condition);
            let updated = sql.build().execute(&mut *tx).await?.rows_affected();
            if updated == 1 {
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(updated)
        }
        .await)?;
        Ok(updated == 1)
    }

    /// Deletes the owner's image row (its tags go with it), recording
    /// `gallery.image.deleted`; returns it, or `None` when the owner has no such image.
    pub async fn delete(&self, owner_id: &str, id: Uuid) -> GalleryResult<Option<Image>> {
        let Some(image) = self.get(owner_id, id).await? else {
            return Ok(None);
        };
        let event = NewEvent::new(owner_id, id, pb::ImageDeleted {});
        let deleted = with_db!(&self.db, DELETE "images", |pool| async {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query("DELETE FROM images WHERE id = $1 AND owner_id = $2")
                .bind(id)
                .bind(owner_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted == 1 {
                tx.record(&event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(deleted)
        }
        .await)?;
        Ok((deleted == 1).then_some(image))
    }

    /// The ids of the owner's images in the trash (at most `limit`).
    pub async fn trash(&self, owner_id: &str, limit: i64) -> GalleryResult<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = with_db!(&self.db, SELECT "images", |pool| {
            sqlx::query_as(
                "SELECT id FROM images WHERE owner_id = $1 AND deleted_at IS NOT NULL \
                 ORDER BY id LIMIT $2",
            )
            .bind(owner_id)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Images of any owner in the trash since before `cutoff` (at most `limit`), as (owner,
    /// id).
    pub async fn expired(
        &self,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> GalleryResult<Vec<(String, Uuid)>> {
        let rows: Vec<(String, Uuid)> = with_db!(&self.db, SELECT "images", |pool| {
            sqlx::query_as(
                "SELECT owner_id, id FROM images WHERE deleted_at IS NOT NULL \
                 AND deleted_at < $1 ORDER BY deleted_at LIMIT $2",
            )
            .bind(cutoff)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// Counts the owner's images whose original or thumbnails are the blob `sha256`.
    pub async fn references(&self, owner_id: &str, sha256: &str) -> GalleryResult<i64> {
        let (count,): (i64,) = with_db!(&self.db, SELECT "images", |pool| {
            sqlx::query_as(
                "SELECT COUNT(*) FROM images WHERE owner_id = $1 AND (original_sha256 = $2 \
                 OR thumb256_sha256 = $2 OR thumb1024_sha256 = $2)",
            )
            .bind(owner_id)
            .bind(sha256)
            .fetch_one(pool)
            .await
        })?;
        Ok(count)
    }

    /// Deletes every image of the owner (their tags go with them); returns how many.
    pub async fn delete_owner(&self, owner_id: &str) -> GalleryResult<u64> {
        let deleted = with_db!(&self.db, DELETE "images", |pool| {
            sqlx::query("DELETE FROM images WHERE owner_id = $1")
                .bind(owner_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(deleted)
    }

    /// Bytes the owner's images take (originals and thumbnails, trash included).
    pub async fn usage(&self, owner_id: &str) -> GalleryResult<i64> {
        let (used,): (Option<i64>,) = with_db!(&self.db, SELECT "images", |pool| {
            sqlx::query_as(
                "SELECT CAST(SUM(original_bytes + thumb256_bytes + thumb1024_bytes) AS BIGINT) \
                 FROM images WHERE owner_id = $1",
            )
            .bind(owner_id)
            .fetch_one(pool)
            .await
        })?;
        Ok(used.unwrap_or(0))
    }
}
