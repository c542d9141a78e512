//! What every service that stores a user's files shares: one storage quota per user across all
//! of them ([`quota`]), and short-lived signed URLs to single files ([`signing`]) answered by
//! `aimesh.files.v1.FilesService` ([`FilesApi`]), which hands each token to the reader the
//! owning service registered ([`FileReaders`]); the kit knows no service.
//!
//! The signing key comes from `AIMESH_SIGNING_KEY` when set (hex or base64, at least 32
//! bytes; every process of a deployment must have the same). Otherwise [`database_key`] reads
//! the deployment's key from the shared database, the first process creating it, so a split
//! deployment (a service signs, another process answers) agrees on one key with no setting.

pub mod quota;
pub mod signing;

use std::{collections::HashMap, sync::Arc};

use aimesh_proto::{
    files::v1::{self as pb, files_service_server::FilesServiceServer},
    google::api::HttpBody,
};
use bytes::Bytes;
use futures::future::BoxFuture;
use tonic::{Request, Response, Status, metadata::MetadataValue};

pub use self::quota::{QuotaError, QuotaPermit, StorageQuota, StoredBytes};
pub use self::signing::{FileRef, SignError, SignedUrl, SigningKey, TokenError, UrlSigner};
use crate::{db::Db, with_db};

/// The migrations of the kit's own table (the signing key).
pub const MIGRATIONS: crate::db::Migrations = crate::migrations!("files");

/// The name of the signed URLs' key in the `signing_keys` table.
const KEY_NAME: &str = "files";

/// Reads the deployment's signing key from the database, creating a random one when there is
/// none yet (concurrent first starts agree: the first insert wins, every process reads it).
pub async fn database_key(db: &Db) -> Result<SigningKey, String> {
    let candidate = SigningKey::generate().to_hex();
    with_db!(db, INSERT "signing_keys", |pool| {
        sqlx::query(
            "INSERT INTO signing_keys (name, secret, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(KEY_NAME)
        .bind(&candidate)
        .bind(crate::db::now())
        .execute(pool)
        .await
        .map(drop)
    })
    .map_err(|e| format!("storing the signing key failed: {e}"))?;
    let (secret,): (String,) = with_db!(db, SELECT "signing_keys", |pool| {
        sqlx::query_as("SELECT secret FROM signing_keys WHERE name = $1")
            .bind(KEY_NAME)
            .fetch_one(pool)
            .await
    })
    .map_err(|e| format!("reading the signing key failed: {e}"))?;
    SigningKey::parse(&secret)
}

/// A stored file as a reader returns it.
#[derive(Debug, Clone)]
pub struct StoredFile {
    /// The bytes.
    pub bytes: Bytes,
    /// Its media type.
    pub content_type: String,
    /// A file name for `content-disposition`.
    pub file_name: String,
}

/// Reads the files of one service for signed URLs.
pub trait FileReader: Send + Sync + 'static {
    /// The service's kind in tokens (`gallery`).
    fn kind(&self) -> &'static str;

    /// Returns the file, or `None` when it no longer exists (or never did). `file.owner` is
    /// the owner the token was signed for: read only that owner's data.
    fn read<'a>(&'a self, file: &'a FileRef) -> BoxFuture<'a, Result<Option<StoredFile>, String>>;
}

/// The file readers of every service, by kind.
#[derive(Clone, Default)]
pub struct FileReaders {
    readers: HashMap<&'static str, Arc<dyn FileReader>>,
}

impl std::fmt::Debug for FileReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.readers.keys()).finish()
    }
}

impl FileReaders {
    /// No reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a service's reader (replacing one of the same kind).
    pub fn register(&mut self, reader: Arc<dyn FileReader>) -> &mut Self {
        self.readers.insert(reader.kind(), reader);
        self
    }

    /// Returns the file a reference names, `None` when it is gone or no reader knows its kind.
    pub async fn read(&self, file: &FileRef) -> Result<Option<StoredFile>, String> {
        match self.readers.get(file.kind.as_str()) {
            Some(reader) => reader.read(file).await,
            None => Ok(None),
        }
    }
}

/// What a file-owning service needs from the kit: the shared quota and the URL signer.
#[derive(Debug, Clone)]
pub struct SharedFiles {
    /// The per-user quota over every service.
    pub quota: StorageQuota,
    /// Signs URLs to single files.
    pub signer: UrlSigner,
}

/// `aimesh.files.v1.FilesService`: answers signed URLs (public: the token is the credential).
#[derive(Debug, Clone)]
pub struct FilesApi {
    signer: UrlSigner,
    readers: FileReaders,
}

impl FilesApi {
    /// Verifies tokens with `signer` and reads files through `readers`.
    pub fn new(signer: UrlSigner, readers: FileReaders) -> Self {
        Self { signer, readers }
    }

    /// Returns the tonic server.
    pub fn into_server(self) -> FilesServiceServer<Self> {
        FilesServiceServer::new(self).max_encoding_message_size(usize::MAX)
    }
}

#[tonic::async_trait]
impl pb::files_service_server::FilesService for FilesApi {
    async fn get_signed_file(
        &self,
        request: Request<pb::GetSignedFileRequest>,
    ) -> Result<Response<HttpBody>, Status> {
        let token = &request.get_ref().token;
        let now = chrono::Utc::now();
        let (file, expires_at) = self
            .signer
            .verify_expiring(token, now)
            .map_err(|error| Status::unauthenticated(error.to_string()))?;
        let expires_in = (expires_at - now).num_seconds().max(0);
        let stored = self.readers.read(&file).await.map_err(|reason| {
            tracing::error!(kind = %file.kind, reason, "reading a signed file failed");
            Status::internal("internal error")
        })?;
        let Some(stored) = stored else {
            return Err(Status::not_found(format!(
                "the file this URL named no longer exists ({} {} {})",
                file.kind, file.id, file.variant
            )));
        };
        let mut response = Response::new(HttpBody {
            content_type: if stored.content_type.is_empty() {
                "application/octet-stream".into()
            } else {
                stored.content_type
            },
            data: stored.bytes.to_vec(),
            extensions: Vec::new(),
        });
        let headers = response.metadata_mut();
        if let Ok(value) = MetadataValue::try_from(content_disposition(&stored.file_name)) {
            headers.insert("content-disposition", value);
        }
        if let Ok(value) = MetadataValue::try_from(format!("private, max-age={expires_in}")) {
            headers.insert("cache-control", value);
        }
        headers.insert(
            "x-content-type-options",
            MetadataValue::from_static("nosniff"),
        );
        Ok(response)
    }
}

/// `inline; filename="<name>"` with the name reduced to characters safe in a quoted header
/// value, plus `filename*` carrying the full name percent-encoded (RFC 6266).
pub fn content_disposition(file_name: &str) -> String {
    let name = if file_name.trim().is_empty() {
        "file"
    } else {
        file_name.trim()
    };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .-_()+,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    let encoded: String = name
        .bytes()
        .take(600)
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("inline; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::testing::{Backend, TestDatabase};

    #[test]
    fn file_names_are_safe_in_the_header() {
        assert_eq!(
            content_disposition("report 1.pdf"),
            "inline; filename=\"report 1.pdf\"; filename*=UTF-8''report%201.pdf"
        );
        let hostile = content_disposition("a\"b\r\nSet-Cookie: x.pdf");
        assert!(!hostile.contains('\r') && !hostile.contains('\n'));
        assert!(hostile.starts_with("inline; filename=\"a_b__Set-Cookie_ x.pdf\""));
        assert!(content_disposition("").contains("filename=\"file\""));
        assert!(MetadataValue::try_from(content_disposition("café ☕.png")).is_ok());
    }

    #[tokio::test]
    async fn the_key_in_the_database_is_created_once() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let test_db = TestDatabase::create(backend).await;
            let db = test_db.connect().await;
            db.migrate(&MIGRATIONS).await.unwrap();
            let (first, second) = tokio::join!(database_key(&db), database_key(&db));
            assert_eq!(first.unwrap().to_hex(), second.unwrap().to_hex());
            let third = database_key(&db).await.unwrap();
            let signer = UrlSigner::new(third, None, std::time::Duration::from_secs(60));
            let file = FileRef::new("k", "o", "i", "v");
            let url = signer
                .sign(&file, std::time::Duration::from_secs(60))
                .unwrap();
            let again = UrlSigner::new(
                database_key(&db).await.unwrap(),
                None,
                std::time::Duration::from_secs(60),
            );
            assert_eq!(again.verify(&url.token).unwrap(), file);
            db.close().await;
        }
    }
}
