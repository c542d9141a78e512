//! An account's data as one ZIP archive: each service writes its records as JSON, in the API's
//! own shape (its protobuf messages in the proto3 JSON mapping with the proto field names, as the
//! REST API answers them), and its stored files as they were uploaded or made.
//!
//! The archive is written to a file as it grows (a service's files are never all in memory at
//! once); [`ExportArchive::finish`] closes it.

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

/// The messages of every aimesh API, to write any of them as JSON.
fn pool() -> Result<&'static DescriptorPool, String> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(aimesh_proto::FILE_DESCRIPTOR_SET)
            .map_err(|e| format!("the API descriptors do not decode: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// `message` in the proto3 JSON mapping with proto field names (the REST API's JSON).
pub fn to_json<M: prost::Name>(message: &M) -> Result<serde_json::Value, String> {
    let name = M::full_name();
    let descriptor = pool()?
        .get_message_by_name(&name)
        .ok_or_else(|| format!("{name} is not an API message"))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|e| format!("{name} does not decode: {e}"))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| format!("{name} as JSON: {e}"))
}

/// A client's file name made safe as the last part of an archive path: no folders, no control
/// characters, at most 100 characters; `fallback` when nothing is left.
pub fn entry_name(name: &str, fallback: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(100).collect();
    match cleaned.trim_matches('.') {
        "" => fallback.to_owned(),
        kept => kept.to_owned(),
    }
}

/// A ZIP archive being written. Shared by reference between the services that fill it;
/// entries are written one at a time.
#[derive(Clone)]
pub struct ExportArchive {
    writer: Arc<Mutex<Option<ZipWriter<File>>>>,
    path: PathBuf,
    entries: Arc<AtomicU64>,
}

impl std::fmt::Debug for ExportArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportArchive")
            .field("path", &self.path)
            .field("entries", &self.entries.load(Ordering::Relaxed))
            .finish()
    }
}

impl ExportArchive {
    /// Starts an archive at `path` (created or truncated).
    pub fn create(path: &Path) -> Result<Self, String> {
        let file = File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        Ok(Self {
            writer: Arc::new(Mutex::new(Some(ZipWriter::new(file)))),
            path: path.to_owned(),
            entries: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Entries written so far.
    pub fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }

    /// Writes `records` as a JSON array (see [`to_json`]) at `path` in the archive.
    pub async fn records<M: prost::Name>(&self, path: &str, records: &[M]) -> Result<(), String> {
        let values = records.iter().map(to_json).collect::<Result<Vec<_>, _>>()?;
        let json = serde_json::to_vec_pretty(&values).map_err(|e| format!("{path}: {e}"))?;
        self.write(path, Bytes::from(json), CompressionMethod::Deflated)
            .await
    }

    /// Writes a stored file at `path` in the archive (compressed unless its format already
    /// is: images, audio and PDF gain nothing from it).
    pub async fn file(&self, path: &str, bytes: Bytes, content_type: &str) -> Result<(), String> {
        let compressed = content_type.starts_with("image/")
            || content_type.starts_with("audio/")
            || content_type == "application/pdf"
            || content_type.contains("zip");
        let method = if compressed {
            CompressionMethod::Stored
        } else {
            CompressionMethod::Deflated
        };
        self.write(path, bytes, method).await
    }

    async fn write(
        &self,
        path: &str,
        bytes: Bytes,
        method: CompressionMethod,
    ) -> Result<(), String> {
        let writer = self.writer.clone();
        let name = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut guard = writer
                .lock()
                .map_err(|_| "the archive's writer panicked".to_owned())?;
            let zip = guard
                .as_mut()
                .ok_or_else(|| "the archive is already finished".to_owned())?;
            let options = SimpleFileOptions::default()
                .compression_method(method)
                .large_file(bytes.len() as u64 >= u64::from(u32::MAX));
            zip.start_file(name.as_str(), options)
                .map_err(|e| format!("{name}: {e}"))?;
            zip.write_all(&bytes).map_err(|e| format!("{name}: {e}"))
        })
        .await
        .map_err(|e| format!("writing {path}: {e}"))??;
        self.entries.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes the archive's directory and closes it; returns its path.
    pub async fn finish(self) -> Result<PathBuf, String> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let zip = writer
                .lock()
                .map_err(|_| "the archive's writer panicked".to_owned())?
                .take()
                .ok_or_else(|| "the archive is already finished".to_owned())?;
            zip.finish()
                .map(drop)
                .map_err(|e| format!("finishing the archive: {e}"))
        })
        .await
        .map_err(|e| format!("finishing the archive: {e}"))??;
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read;

    use aimesh_proto::notes::v1 as pb;

    use super::*;

    #[test]
    fn records_take_the_rest_apis_json_shape() {
        let note = pb::Note {
            id: "n1".into(),
            title: "Hello".into(),
            original_language: "en".into(),
            version: 3,
            create_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Default::default()
        };
        let json = to_json(&note).unwrap();
        assert_eq!(json["original_language"], "en");
        assert_eq!(json["version"], "3", "64-bit integers are strings");
        assert_eq!(json["create_time"], "2023-11-14T22:13:20Z");
        assert_eq!(json["original_text"], "", "defaults are written");
    }

    #[test]
    fn entry_names_cannot_leave_their_folder() {
        assert_eq!(entry_name("../../etc/passwd", "f"), "passwd");
        assert_eq!(entry_name("C:\\x\\report.pdf", "f"), "report.pdf");
        assert_eq!(entry_name("..", "f"), "f");
        assert_eq!(entry_name("a\nb.txt", "f"), "ab.txt");
    }

    #[tokio::test]
    async fn an_archive_holds_records_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let archive = ExportArchive::create(&dir.path().join("a.zip")).unwrap();
        archive
            .records(
                "notes/notes.json",
                &[pb::Note {
                    title: "T".into(),
                    ..Default::default()
                }],
            )
            .await
            .unwrap();
        archive
            .file("gallery/a.png", Bytes::from_static(b"\x89PNG"), "image/png")
            .await
            .unwrap();
        assert_eq!(archive.entries(), 2);
        let path = archive.finish().await.unwrap();
        let mut zip = zip::ZipArchive::new(File::open(path).unwrap()).unwrap();
        let mut text = String::new();
        zip.by_name("notes/notes.json")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value[0]["title"], "T");
        let mut png = Vec::new();
        zip.by_name("gallery/a.png")
            .unwrap()
            .read_to_end(&mut png)
            .unwrap();
        assert_eq!(png, b"\x89PNG");
    }
}
