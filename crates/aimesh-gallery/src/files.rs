//! The gallery's part in what file-owning services share: its images count against the
//! per-user storage quota, its files open through signed URLs, and an account's images go
//! with it.

use aimesh_kit::{
    export::ExportArchive,
    files::{FileReader, FileRef, StoredBytes, StoredFile},
    owned::OwnedData,
    paging::all_pages,
};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::{
    GalleryError,
    domain::{ListQuery, Variant},
    service::Gallery,
    store::ImageStore,
};

/// The gallery's kind in signed URLs.
pub const KIND: &str = "gallery";

impl Variant {
    /// The variant's name in signed URLs.
    pub fn token_name(self) -> &'static str {
        match self {
            Variant::Original => "original",
            Variant::Thumbnail256 => "thumbnail256",
            Variant::Thumbnail1024 => "thumbnail1024",
        }
    }

    /// The variant of a name in a signed URL.
    pub fn from_token_name(name: &str) -> Option<Self> {
        [
            Variant::Original,
            Variant::Thumbnail256,
            Variant::Thumbnail1024,
        ]
        .into_iter()
        .find(|v| v.token_name() == name)
    }
}

impl StoredBytes for ImageStore {
    fn name(&self) -> &'static str {
        KIND
    }

    fn stored_bytes<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<i64, String>> {
        Box::pin(async move { self.usage(owner).await.map_err(|e| e.to_string()) })
    }
}

impl FileReader for Gallery {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn read<'a>(&'a self, file: &'a FileRef) -> BoxFuture<'a, Result<Option<StoredFile>, String>> {
        Box::pin(async move {
            let (Ok(id), Some(variant)) = (
                Uuid::try_parse(&file.id),
                Variant::from_token_name(&file.variant),
            ) else {
                return Ok(None);
            };
            match self.download(&file.owner, id, variant).await {
                Ok((stored, bytes)) => {
                    let extension = stored
                        .content_type
                        .rsplit('/')
                        .next()
                        .unwrap_or("bin")
                        .to_owned();
                    Ok(Some(StoredFile {
                        bytes,
                        content_type: stored.content_type,
                        file_name: format!("{id}-{}.{extension}", variant.token_name()),
                    }))
                }
                Err(GalleryError::NotFound(_)) => Ok(None),
                Err(GalleryError::Blob(aimesh_kit::blob::BlobError::NotFound)) => Ok(None),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}

impl OwnedData for Gallery {
    fn name(&self) -> &'static str {
        KIND
    }

    fn delete_owner<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            Gallery::delete_owner(self, owner)
                .await
                .map_err(|error| error.to_string())
        })
    }
    /// `gallery/images.json` (`aimesh.gallery.v1.Image`, the trash's too) and each image's
    /// original as `gallery/originals/<id>.<format>`.
    fn export_owner<'a>(
        &'a self,
        owner: &'a str,
        archive: &'a ExportArchive,
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let error = |e: GalleryError| e.to_string();
            let mut images = all_pages(|after| async move {
                let query = ListQuery {
                    page_size: 100,
                    after,
                    tag: None,
                    origin: None,
                    created_after: None,
                    created_before: None,
                };
                let page = self.list(owner, &query).await?;
                Ok::<_, GalleryError>((page.images, page.next_after))
            })
            .await
            .map_err(error)?;
            images.extend(
                all_pages(|after| async move {
                    let page = self.list_deleted(owner, 100, after).await?;
                    Ok::<_, GalleryError>((page.images, page.next_after))
                })
                .await
                .map_err(error)?,
            );
            let retention = self.config().trash_retention;
            let records: Vec<_> = images.iter().map(|i| i.to_proto(retention)).collect();
            archive.records("gallery/images.json", &records).await?;
            for image in &images {
                let file = &image.original;
                let bytes = match self.file_bytes(owner, file).await {
                    Ok(bytes) => bytes,
                    // Deleted since it was listed.
                    Err(GalleryError::Blob(aimesh_kit::blob::BlobError::NotFound)) => continue,
                    Err(e) => return Err(e.to_string()),
                };
                let extension = file.content_type.rsplit('/').next().unwrap_or("bin");
                let name = format!("gallery/originals/{}.{extension}", image.id);
                archive.file(&name, bytes, &file.content_type).await?;
            }
            Ok((images.len() * 2) as u64)
        })
    }
}
