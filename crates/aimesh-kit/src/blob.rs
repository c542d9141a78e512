//! Content-addressed blob storage on the `object_store` crate: each owner's blobs are kept
//! under `<owner>/<sha256>`, so the same bytes stored twice by one owner take the space once
//! and a blob's name proves its content. Local files by default (a directory, typically in the
//! data directory); any other `object_store` backend plugs in through [`BlobStore::new`].

use std::{path::Path, sync::Arc};

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, local::LocalFileSystem, path};
use sha2::{Digest, Sha256};

/// A blob store failure.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No blob of that owner and digest.
    #[error("blob not found")]
    NotFound,
    /// The owner or digest cannot name a blob.
    #[error("invalid blob name: {0}")]
    InvalidName(String),
    /// The store failed.
    #[error("blob store failure")]
    Store(#[source] object_store::Error),
    /// The local directory could not be created.
    #[error("failed to create the blob directory")]
    CreateDir(#[source] std::io::Error),
}

impl From<object_store::Error> for BlobError {
    fn from(error: object_store::Error) -> Self {
        match error {
            object_store::Error::NotFound { .. } => BlobError::NotFound,
            other => BlobError::Store(other),
        }
    }
}

/// The result of a blob operation.
pub type BlobResult<T> = Result<T, BlobError>;

/// Returns the SHA-256 of `bytes`, lowercase hex: the name of their blob.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Blobs of every owner in one object store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// Stores blobs in `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// Stores blobs as files under `dir`, creating it when missing.
    pub fn local(dir: &Path) -> BlobResult<Self> {
        std::fs::create_dir_all(dir).map_err(BlobError::CreateDir)?;
        let store = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self::new(Arc::new(store)))
    }

    /// Stores blobs in memory (tests, throwaway processes).
    pub fn in_memory() -> Self {
        Self::new(Arc::new(object_store::memory::InMemory::new()))
    }

    /// Stores `bytes` for `owner` under their SHA-256 and returns it. Storing bytes the owner
    /// already has rewrites the same content: idempotent.
    pub async fn put(&self, owner: &str, bytes: Bytes) -> BlobResult<String> {
        let digest = sha256_hex(&bytes);
        self.put_named(owner, &digest, bytes).await?;
        Ok(digest)
    }

    /// Stores `bytes` for `owner` under `digest`, which the caller computed as
    /// [`sha256_hex`] of them.
    pub async fn put_named(&self, owner: &str, digest: &str, bytes: Bytes) -> BlobResult<()> {
        let location = location(owner, digest)?;
        self.store
            .put(&location, PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// Returns `owner`'s blob of this digest.
    pub async fn get(&self, owner: &str, digest: &str) -> BlobResult<Bytes> {
        let location = location(owner, digest)?;
        Ok(self.store.get(&location).await?.bytes().await?)
    }

    /// Deletes `owner`'s blob of this digest; deleting a missing blob succeeds.
    pub async fn delete(&self, owner: &str, digest: &str) -> BlobResult<()> {
        let location = location(owner, digest)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(BlobError::Store(error)),
        }
    }

    /// Deletes every blob of `owner`; returns how many there were.
    pub async fn delete_owner(&self, owner: &str) -> BlobResult<u64> {
        use futures::TryStreamExt;

        // Checks the owner's name as a blob's would be.
        location(owner, &"0".repeat(64))?;
        let prefix = path::Path::from_iter([owner]);
        let blobs: Vec<path::Path> = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        let mut deleted = 0;
        for blob in blobs {
            match self.store.delete(&blob).await {
                Ok(()) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(BlobError::Store(error)),
            }
        }
        Ok(deleted)
    }
}

/// The path of a blob: `<owner>/<digest>`, each a single safe path segment.
fn location(owner: &str, digest: &str) -> BlobResult<path::Path> {
    let safe = |part: &str| {
        !part.is_empty()
            && part.len() <= 128
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !safe(owner) {
        return Err(BlobError::InvalidName(format!("owner {owner:?}")));
    }
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BlobError::InvalidName(format!("digest {digest:?}")));
    }
    Ok(path::Path::from_iter([owner, digest]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn round_trip(store: BlobStore) {
        let digest = store
            .put("owner-1", Bytes::from_static(b"hello"))
            .await
            .unwrap();
        assert_eq!(digest, sha256_hex(b"hello"));
        assert_eq!(
            digest,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(&store.get("owner-1", &digest).await.unwrap()[..], b"hello");
        assert!(matches!(
            store.get("owner-2", &digest).await,
            Err(BlobError::NotFound)
        ));
        store.delete("owner-1", &digest).await.unwrap();
        store.delete("owner-1", &digest).await.unwrap();
        store
            .put("owner-3", Bytes::from_static(b"a"))
            .await
            .unwrap();
        store
            .put("owner-3", Bytes::from_static(b"b"))
            .await
            .unwrap();
        store
            .put("owner-30", Bytes::from_static(b"c"))
            .await
            .unwrap();
        assert_eq!(store.delete_owner("owner-3").await.unwrap(), 2);
        assert_eq!(store.delete_owner("owner-3").await.unwrap(), 0);
        assert_eq!(
            &store.get("owner-30", &sha256_hex(b"c")).await.unwrap()[..],
            b"c"
        );
        assert!(matches!(
            store.get("owner-1", &digest).await,
            Err(BlobError::NotFound)
        ));
    }

    #[tokio::test]
    async fn blobs_round_trip_in_memory_and_on_disk() {
        round_trip(BlobStore::in_memory()).await;
        let dir = tempfile::tempdir().unwrap();
        round_trip(BlobStore::local(&dir.path().join("blobs")).unwrap()).await;
    }

    #[tokio::test]
    async fn names_that_could_escape_are_refused() {
        let store = BlobStore::in_memory();
        let digest = sha256_hex(b"x");
        for owner in ["", "..", "a/b", "a\\b"] {
            assert!(matches!(
                store.put_named(owner, &digest, Bytes::new()).await,
                Err(BlobError::InvalidName(_))
            ));
        }
        assert!(matches!(
            store.get("owner", "../etc").await,
            Err(BlobError::InvalidName(_))
        ));
    }
}
