//! Content-addressed blob storage on the `object_store` crate: each owner's blobs are kept
//! under `<owner>/<sha256>`, so the same bytes stored twice by one owner take the space once
//! and a blob's name proves its content. Local files by default (a directory, typically in the
//! data directory), or an S3-compatible bucket ([`BlobStore::open`] with `s3://bucket/prefix`,
//! configured by the standard `AWS_*` settings); any other `object_store` backend plugs in
//! through [`BlobStore::new`]. A service keeps its blobs in a part of its own
//! ([`BlobStore::part`]).
//!
//! Resumable uploads stage their parts in the same store, under `.uploads/<owner>/<upload>/`
//! (no owner or part name starts with a dot, so staging never meets a blob): each part is
//! stored as it arrives ([`BlobStore::put_part`]), the finished upload is streamed into one
//! blob ([`BlobStore::assemble`], [`BlobStore::keep_assembled`]) and the parts are deleted
//! ([`BlobStore::delete_upload`]); what a crash leaves behind goes with the sweep of stale
//! uploads ([`BlobStore::delete_staged_before`]).

use std::{fmt, path::Path, sync::Arc};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload,
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    local::LocalFileSystem,
    path,
    prefix::PrefixStore,
};
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
    /// The store's location or settings are not usable.
    #[error("blob store settings: {0}")]
    Config(String),
    /// A local file to store could not be read.
    #[error("failed to read the file to store")]
    ReadFile(#[source] std::io::Error),
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

/// The top-level segment under which uploads stage their parts.
const STAGING: &str = ".uploads";

/// Parts written to a multipart upload ahead of the store's acknowledgement.
const PARTS_IN_FLIGHT: usize = 4;

/// A staged upload assembled into one object, not yet kept as a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// SHA-256 of the bytes, lowercase hex: the blob's name once kept.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// The staged object holding them.
    name: String,
}

/// Returns the SHA-256 of `bytes`, lowercase hex: the name of their blob.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Settings of an S3-compatible store: the standard `AWS_*` variables `object_store` knows
/// (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, ...). Debug
/// prints their names only: values may be secrets.
#[derive(Clone, Default)]
pub struct S3Settings(Vec<(String, String)>);

impl S3Settings {
    /// Keeps the `AWS_*` variables of `vars` (e.g. `std::env::vars()`, read once at start).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(
            vars.into_iter()
                .filter(|(name, _)| name.starts_with("AWS_"))
                .collect(),
        )
    }

    /// Adds or replaces one variable.
    pub fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.to_owned(), value.into()));
        self
    }
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Blobs of every owner in one object store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// Where the blobs are, for logs: a directory or `s3://bucket/prefix`.
    location: String,
}

impl BlobStore {
    /// Stores blobs in `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            location: "custom".into(),
        }
    }

    /// Opens the store `url` names: `s3://bucket` or `s3://bucket/prefix` (an S3-compatible
    /// bucket, reached and signed for as `s3` says), or a local directory given as a path or
    /// a `file://` URL.
    pub fn open(url: &str, s3: &S3Settings) -> BlobResult<Self> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            return Self::s3(bucket, prefix.trim_matches('/'), s3);
        }
        if let Some(dir) = url.strip_prefix("file://") {
            return Self::local(Path::new(dir));
        }
        if url.contains("://") {
            return Err(BlobError::Config(format!(
                "unsupported blob store URL {url:?}: use s3://bucket/prefix or a directory"
            )));
        }
        Self::local(Path::new(url))
    }

    /// Stores blobs in an S3-compatible bucket, under `prefix` when not empty.
    fn s3(bucket: &str, prefix: &str, s3: &S3Settings) -> BlobResult<Self> {
        if bucket.is_empty() {
            return Err(BlobError::Config("the s3:// URL names no bucket".into()));
        }
        // The HTTP client's TLS is rustls on ring (the crate's default would be aws-lc-rs);
        // a provider installed earlier in the process stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::new();
        for (name, value) in &s3.0 {
            match name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                Ok(key) => builder = builder.with_config(key, value),
                Err(_) => tracing::debug!(name, "AWS setting not used by the blob store"),
            }
        }
        let store = builder
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| BlobError::Config(format!("S3 store for bucket {bucket:?}: {e}")))?;
        let location = format!("s3://{bucket}/{prefix}");
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        Ok(Self { store, location })
    }

    /// Returns the part of this store named `name` (e.g. one service's blobs): its own
    /// `<owner>/<sha256>` space under `<name>/`.
    pub fn part(&self, name: &str) -> BlobResult<Self> {
        if !safe_segment(name) {
            return Err(BlobError::InvalidName(format!("part {name:?}")));
        }
        Ok(Self {
            store: Arc::new(PrefixStore::new(self.store.clone(), name)),
            location: format!("{}/{name}", self.location.trim_end_matches('/')),
        })
    }

    /// Returns where the blobs are, for logs: a directory, `s3://bucket/prefix`, `memory`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Stores blobs as files under `dir`, creating it when missing.
    pub fn local(dir: &Path) -> BlobResult<Self> {
        std::fs::create_dir_all(dir).map_err(BlobError::CreateDir)?;
        // Directories a deletion empties (an owner's, an upload's staging) go with it.
        let store = LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            location: dir.display().to_string(),
        })
    }

    /// Stores blobs in memory (tests, throwaway processes).
    pub fn in_memory() -> Self {
        Self {
            store: Arc::new(object_store::memory::InMemory::new()),
            location: "memory".into(),
        }
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

    /// Stores the file at `file` for `owner` under its SHA-256, streamed in parts (never
    /// whole in memory); returns the digest and the size in bytes.
    pub async fn put_file(&self, owner: &str, file: &Path) -> BlobResult<(String, u64)> {
        use tokio::io::AsyncReadExt;

        const CHUNK: usize = 1 << 20;
        let mut buffer = vec![0u8; CHUNK];
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut reader = tokio::fs::File::open(file)
            .await
            .map_err(BlobError::ReadFile)?;
        loop {
            let read = reader
                .read(&mut buffer)
                .await
                .map_err(BlobError::ReadFile)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            size += read as u64;
        }
        let digest = format!("{:x}", hasher.finalize());
        let location = location(owner, &digest)?;
        let mut upload =
            object_store::WriteMultipart::new(self.store.put_multipart(&location).await?);
        let mut reader = tokio::fs::File::open(file)
            .await
            .map_err(BlobError::ReadFile)?;
        loop {
            let read = reader
                .read(&mut buffer)
                .await
                .map_err(BlobError::ReadFile)?;
            if read == 0 {
                break;
            }
            upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            upload.write(&buffer[..read]);
        }
        upload.finish().await?;
        Ok((digest, size))
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

    /// Deletes every blob of `owner`, and what their unfinished uploads staged; returns how
    /// many blobs there were.
    pub async fn delete_owner(&self, owner: &str) -> BlobResult<u64> {
        // Checks the owner's name as a blob's would be.
        location(owner, &"0".repeat(64))?;
        self.delete_under(&path::Path::from_iter([STAGING, owner]), None)
            .await?;
        self.delete_under(&path::Path::from_iter([owner]), None)
            .await
    }

    /// Stages `bytes` as the part named `part` of `owner`'s upload `upload`. Parts are named
    /// by the caller, who records which ones make the upload and in what order.
    pub async fn put_part(
        &self,
        owner: &str,
        upload: &str,
        part: &str,
        bytes: Bytes,
    ) -> BlobResult<()> {
        let location = staged(owner, upload, part)?;
        self.store
            .put(&location, PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// Deletes one staged part; deleting a missing part succeeds.
    pub async fn delete_part(&self, owner: &str, upload: &str, part: &str) -> BlobResult<()> {
        let location = staged(owner, upload, part)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(BlobError::Store(error)),
        }
    }

    /// Streams the staged `parts` of `owner`'s upload, in this order, into one staged object
    /// while hashing them: one part in memory at a time. The parts stay until
    /// [`BlobStore::delete_upload`]; the result becomes `owner`'s blob with
    /// [`BlobStore::keep_assembled`]. A missing part is [`BlobError::NotFound`].
    pub async fn assemble(
        &self,
        owner: &str,
        upload: &str,
        parts: &[String],
    ) -> BlobResult<Assembled> {
        // Unique per call: two finishing calls never write the same object.
        let name = format!("assembled-{}", uuid::Uuid::now_v7().simple());
        let target = staged(owner, upload, &name)?;
        let read = |part: &String| {
            let location = staged(owner, upload, part);
            async move { Ok::<_, BlobError>(self.store.get(&location?).await?.bytes().await?) }
        };
        // The first part is read before anything is written: an upload whose parts are gone
        // leaves nothing behind.
        let Some((first, rest)) = parts.split_first() else {
            self.store.put(&target, PutPayload::default()).await?;
            return Ok(Assembled {
                digest: sha256_hex(&[]),
                size: 0,
                name,
            });
        };
        let mut bytes = read(first).await?;
        let mut writer =
            object_store::WriteMultipart::new(self.store.put_multipart(&target).await?);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        for next in rest.iter().map(Some).chain([None]) {
            hasher.update(&bytes);
            size += bytes.len() as u64;
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            writer.put(bytes);
            let Some(part) = next else { break };
            bytes = match read(part).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    // Leaves no half-written object behind (best effort: the sweep of stale
                    // uploads removes what an abort cannot).
                    let _ = writer.abort().await;
                    return Err(error);
                }
            };
        }
        writer.finish().await?;
        Ok(Assembled {
            digest: format!("{:x}", hasher.finalize()),
            size,
            name,
        })
    }

    /// Makes an assembled upload `owner`'s blob under its digest: a rename where the store
    /// has one (local files), else a copy inside the store.
    pub async fn keep_assembled(
        &self,
        owner: &str,
        upload: &str,
        assembled: &Assembled,
    ) -> BlobResult<()> {
        let from = staged(owner, upload, &assembled.name)?;
        let to = location(owner, &assembled.digest)?;
        self.store.rename(&from, &to).await?;
        Ok(())
    }

    /// Deletes an assembled upload not to be kept; deleting it twice succeeds.
    pub async fn discard_assembled(
        &self,
        owner: &str,
        upload: &str,
        assembled: &Assembled,
    ) -> BlobResult<()> {
        self.delete_part(owner, upload, &assembled.name).await
    }

    /// Deletes everything `owner`'s upload `upload` staged; returns how many objects went.
    pub async fn delete_upload(&self, owner: &str, upload: &str) -> BlobResult<u64> {
        // Checks both names as a part's would be.
        staged(owner, upload, "part")?;
        self.delete_under(&path::Path::from_iter([STAGING, owner, upload]), None)
            .await
    }

    /// Deletes every staged object last written before `before` (parts of uploads that
    /// expired, or that a crash left without a record); returns how many went.
    pub async fn delete_staged_before(&self, before: DateTime<Utc>) -> BlobResult<u64> {
        self.delete_under(&path::Path::from_iter([STAGING]), Some(before))
            .await
    }

    /// Deletes the objects under `prefix` (written before `before`, when given); returns how
    /// many went.
    async fn delete_under(
        &self,
        prefix: &path::Path,
        before: Option<DateTime<Utc>>,
    ) -> BlobResult<u64> {
        let objects: Vec<path::Path> = self
            .store
            .list(Some(prefix))
            .try_filter(|meta| {
                std::future::ready(before.is_none_or(|before| meta.last_modified < before))
            })
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        let mut deleted = 0;
        for object in objects {
            match self.store.delete(&object).await {
                Ok(()) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(BlobError::Store(error)),
            }
        }
        Ok(deleted)
    }
}

/// The path of a staged object: `.uploads/<owner>/<upload>/<name>`, each a single safe path
/// segment.
fn staged(owner: &str, upload: &str, name: &str) -> BlobResult<path::Path> {
    for (what, segment) in [("owner", owner), ("upload", upload), ("part", name)] {
        if !safe_segment(segment) {
            return Err(BlobError::InvalidName(format!("{what} {segment:?}")));
        }
    }
    Ok(path::Path::from_iter([STAGING, owner, upload, name]))
}

/// Whether `part` is a single path segment that cannot escape: 1 to 128 ASCII letters,
/// digits, `-` and `_`.
fn safe_segment(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 128
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The path of a blob: `<owner>/<digest>`, each a single safe path segment.
fn location(owner: &str, digest: &str) -> BlobResult<path::Path> {
    if !safe_segment(owner) {
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

    #[tokio::test]
    async fn a_file_is_stored_in_parts_under_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.bin");
        // Three parts and a bit.
        let content: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &content).unwrap();
        let store = BlobStore::local(&dir.path().join("blobs")).unwrap();
        let (digest, size) = store.put_file("owner-1", &file).await.unwrap();
        assert_eq!(digest, sha256_hex(&content));
        assert_eq!(size, content.len() as u64);
        assert_eq!(store.get("owner-1", &digest).await.unwrap(), content);
    }

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

    /// Parts staged, assembled in the order given into the owner's blob, then deleted; a
    /// missing part fails the assembly; stale staging is swept by age.
    async fn staging(store: BlobStore) {
        // Parts of several store requests each, staged out of order.
        let first: Vec<u8> = (0..(6 << 20) + 5).map(|i| (i % 251) as u8).collect();
        let second = b"and the rest".to_vec();
        store
            .put_part("owner-1", "upload-1", "b", Bytes::from(second.clone()))
            .await
            .unwrap();
        store
            .put_part("owner-1", "upload-1", "a", Bytes::from(first.clone()))
            .await
            .unwrap();
        let whole = [first, second].concat();
        let parts = ["a".to_owned(), "b".to_owned()];
        let assembled = store.assemble("owner-1", "upload-1", &parts).await.unwrap();
        assert_eq!(assembled.digest, sha256_hex(&whole));
        assert_eq!(assembled.size, whole.len() as u64);
        assert!(matches!(
            store.get("owner-1", &assembled.digest).await,
            Err(BlobError::NotFound)
        ));
        store
            .keep_assembled("owner-1", "upload-1", &assembled)
            .await
            .unwrap();
        assert_eq!(
            store.get("owner-1", &assembled.digest).await.unwrap(),
            whole
        );
        let missing = ["a".to_owned(), "gone".to_owned()];
        assert!(matches!(
            store.assemble("owner-1", "upload-1", &missing).await,
            Err(BlobError::NotFound)
        ));
        // The two parts (the assembled object was renamed away).
        assert_eq!(store.delete_upload("owner-1", "upload-1").await.unwrap(), 2);
        assert!(matches!(
            store.assemble("owner-1", "upload-1", &parts).await,
            Err(BlobError::NotFound)
        ));
        assert_eq!(
            store.get("owner-1", &assembled.digest).await.unwrap(),
            whole
        );

        // The sweep deletes what was written before its limit, nothing newer.
        store
            .put_part("owner-1", "upload-2", "a", Bytes::from_static(b"x"))
            .await
            .unwrap();
        let past = Utc::now() - chrono::Duration::hours(1);
        assert_eq!(store.delete_staged_before(past).await.unwrap(), 0);
        let future = Utc::now() + chrono::Duration::hours(1);
        assert_eq!(store.delete_staged_before(future).await.unwrap(), 1);
        // Deleting an owner deletes its staged parts too, and the blob count says blobs.
        store
            .put_part("owner-1", "upload-3", "a", Bytes::from_static(b"y"))
            .await
            .unwrap();
        assert_eq!(store.delete_owner("owner-1").await.unwrap(), 1);
        assert_eq!(store.delete_staged_before(future).await.unwrap(), 0);
        for (owner, upload, part) in [("..", "u", "p"), ("o", "a/b", "p"), ("o", "u", "")] {
            assert!(matches!(
                store.put_part(owner, upload, part, Bytes::new()).await,
                Err(BlobError::InvalidName(_))
            ));
        }
    }

    fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            found.push(entry.path());
            if entry.path().is_dir() {
                found.extend(walkdir(&entry.path()));
            }
        }
        found
    }

    #[tokio::test]
    async fn uploads_stage_in_memory_and_on_disk() {
        staging(BlobStore::in_memory()).await;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        staging(BlobStore::local(&root).unwrap()).await;
        // On disk nothing is left: not even the emptied directories.
        let left: Vec<_> = walkdir(&root);
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn parts_keep_their_blobs_apart() {
        let dir = tempfile::tempdir().unwrap();
        let root = BlobStore::open(dir.path().to_str().unwrap(), &S3Settings::default()).unwrap();
        let reports = root.part("reports").unwrap();
        round_trip(reports.clone()).await;
        let digest = reports
            .put("owner-1", Bytes::from_static(b"report"))
            .await
            .unwrap();
        // On disk a part is a sub-directory of the store's.
        assert!(dir.path().join("reports/owner-1").join(&digest).is_file());
        assert!(matches!(
            root.get("owner-1", &digest).await,
            Err(BlobError::NotFound)
        ));
        assert_eq!(root.delete_owner("owner-1").await.unwrap(), 0);
        assert!(reports.get("owner-1", &digest).await.is_ok());
        assert!(matches!(root.part("../x"), Err(BlobError::InvalidName(_))));
    }

    #[test]
    fn urls_name_a_store_or_are_refused() {
        let none = S3Settings::default();
        for url in ["gs://bucket", "http://host/bucket", "s3://"] {
            assert!(
                matches!(BlobStore::open(url, &none), Err(BlobError::Config(_))),
                "{url}"
            );
        }
        let s3 = S3Settings::from_vars([
            ("AWS_ENDPOINT".to_owned(), "http://127.0.0.1:9".to_owned()),
            ("AWS_ALLOW_HTTP".to_owned(), "true".to_owned()),
            ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID".to_owned(), "key".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "hidden".to_owned()),
            ("HOME".to_owned(), "/root".to_owned()),
        ]);
        let debug = format!("{s3:?}");
        assert!(debug.contains("AWS_SECRET_ACCESS_KEY") && !debug.contains("hidden"));
        assert!(!debug.contains("HOME"));
        let store = BlobStore::open("s3://bucket/some/prefix/", &s3).unwrap();
        assert_eq!(store.location(), "s3://bucket/some/prefix");
        assert_eq!(
            store.part("gallery").unwrap().location(),
            "s3://bucket/some/prefix/gallery"
        );
    }

    /// The S3 backend against a real S3 API, when one is named: `scripts/s3-server --
    /// cargo test ...` starts one and sets AIMESH_TEST_S3_URL and the AWS_* settings.
    #[tokio::test]
    async fn blobs_round_trip_in_s3() {
        let Ok(url) = std::env::var("AIMESH_TEST_S3_URL") else {
            eprintln!("skipped: no S3 API named (AIMESH_TEST_S3_URL; see scripts/s3-server)");
            return;
        };
        let settings = S3Settings::from_vars(std::env::vars());
        let prefix = format!("kit-{}", uuid::Uuid::now_v7().simple());
        let store = BlobStore::open(&format!("{url}/{prefix}"), &settings).unwrap();
        round_trip(store.clone()).await;
        round_trip(store.part("reports").unwrap()).await;
        staging(store.part("staging").unwrap()).await;
        // A blob larger than one request part of the client.
        let big = Bytes::from(vec![7u8; 12 << 20]);
        let digest = store.put("owner-9", big.clone()).await.unwrap();
        assert_eq!(store.get("owner-9", &digest).await.unwrap(), big);
        assert_eq!(store.delete_owner("owner-9").await.unwrap(), 1);
        // A bucket that does not exist fails as a store failure, not a panic.
        let missing = BlobStore::open("s3://no-such-bucket-aimesh", &settings).unwrap();
        assert!(
            missing
                .put("owner", Bytes::from_static(b"x"))
                .await
                .is_err()
        );
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
