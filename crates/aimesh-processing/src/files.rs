//! The processing service's part in what file-owning services share: documents and uploads in
//! progress count against the per-user storage quota, and originals open through signed URLs.

use aimesh_kit::files::{FileReader, FileRef, StoredBytes, StoredFile};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::{ProcessingError, service::Processing, store::DocumentStore};

/// The service's kind in signed URLs.
pub const KIND: &str = "processing";

/// The one file of a document: the original.
pub const ORIGINAL: &str = "original";

impl StoredBytes for DocumentStore {
    fn name(&self) -> &'static str {
        KIND
    }

    fn stored_bytes<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<i64, String>> {
        Box::pin(async move { self.usage(owner).await.map_err(|e| e.to_string()) })
    }
}

impl FileReader for Processing {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn read<'a>(&'a self, file: &'a FileRef) -> BoxFuture<'a, Result<Option<StoredFile>, String>> {
        Box::pin(async move {
            let Ok(id) = Uuid::try_parse(&file.id) else {
                return Ok(None);
            };
            if file.variant != ORIGINAL {
                return Ok(None);
            }
            match self.download(&file.owner, id).await {
                Ok((document, bytes)) => Ok(Some(StoredFile {
                    bytes,
                    content_type: document.content_type,
                    file_name: document.filename,
                })),
                Err(
                    ProcessingError::DocumentNotFound(_)
                    | ProcessingError::Blob(aimesh_kit::blob::BlobError::NotFound),
                ) => Ok(None),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}
