//! The speech service's part in what file-owning services share: recordings and audio count
//! against the per-user storage quota, open through signed URLs, and go with an account.

use aimesh_kit::{
    export::{ExportArchive, entry_name},
    files::{FileReader, FileRef, StoredBytes, StoredFile},
    owned::OwnedData,
    paging::all_pages,
};
use aimesh_proto::speech::v1 as pb;
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::{SpeechError, domain::ListQuery, service::Speech, store::SpeechStore};

/// The service's kind in signed URLs.
pub const KIND: &str = "speech";

/// Synthesised audio.
pub const AUDIO: &str = "audio";

/// A transcription's uploaded recording.
pub const RECORDING: &str = "recording";

impl StoredBytes for SpeechStore {
    fn name(&self) -> &'static str {
        KIND
    }

    fn stored_bytes<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<i64, String>> {
        Box::pin(async move { self.usage(owner).await.map_err(|e| e.to_string()) })
    }
}

impl FileReader for Speech {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn read<'a>(&'a self, file: &'a FileRef) -> BoxFuture<'a, Result<Option<StoredFile>, String>> {
        Box::pin(async move {
            let Ok(id) = Uuid::try_parse(&file.id) else {
                return Ok(None);
            };
            let read =
                match file.variant.as_str() {
                    AUDIO => self
                        .download_audio(&file.owner, id)
                        .await
                        .map(|(audio, bytes)| StoredFile {
                            bytes,
                            content_type: audio.format.content_type().to_owned(),
                            file_name: format!("{id}.{}", audio.format.extension()),
                        }),
                    RECORDING => self.download_recording(&file.owner, id).await.map(
                        |(transcription, bytes)| StoredFile {
                            bytes,
                            content_type: if transcription.content_type.is_empty() {
                                "application/octet-stream".into()
                            } else {
                                transcription.content_type
                            },
                            file_name: transcription.filename,
                        },
                    ),
                    _ => return Ok(None),
                };
            match read {
                Ok(stored) => Ok(Some(stored)),
                Err(
                    SpeechError::AudioNotFound(_)
                    | SpeechError::TranscriptionNotFound(_)
                    | SpeechError::RecordingGone(_)
                    | SpeechError::Blob(aimesh_kit::blob::BlobError::NotFound),
                ) => Ok(None),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}

impl OwnedData for Speech {
    fn name(&self) -> &'static str {
        KIND
    }

    fn delete_owner<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            Speech::delete_owner(self, owner)
                .await
                .map_err(|error| error.to_string())
        })
    }
    /// `speech/transcriptions.json` (with their timed segments) and each recording still kept
    /// as `speech/recordings/<id>-<file name>`; `speech/audio.json` and each synthesised file
    /// as `speech/audio/<id>.<format>`.
    fn export_owner<'a>(
        &'a self,
        owner: &'a str,
        archive: &'a ExportArchive,
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let error = |e: SpeechError| e.to_string();
            let listed = all_pages(|after| async move {
                let query = ListQuery {
                    page_size: 100,
                    after,
                    status: None,
                };
                let page = self.list_transcriptions(owner, &query).await?;
                Ok::<_, SpeechError>((page.items, page.next_after))
            })
            .await
            .map_err(error)?;
            let mut transcriptions = Vec::with_capacity(listed.len());
            for listed in listed {
                // Read again with the segments.
                match self.get_transcription(owner, listed.id).await {
                    Ok(full) => transcriptions.push(full),
                    Err(SpeechError::TranscriptionNotFound(_)) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            let records: Vec<pb::Transcription> = transcriptions.iter().map(Into::into).collect();
            archive
                .records("speech/transcriptions.json", &records)
                .await?;
            let mut items = records.len() as u64;
            for transcription in &transcriptions {
                // The transcription is already read: only its bytes are fetched.
                let bytes = match self.recording(owner, transcription).await {
                    Ok(bytes) => bytes,
                    // Expired, or deleted since it was read.
                    Err(
                        SpeechError::RecordingGone(_)
                        | SpeechError::Blob(aimesh_kit::blob::BlobError::NotFound),
                    ) => continue,
                    Err(e) => return Err(e.to_string()),
                };
                let name = format!(
                    "speech/recordings/{}-{}",
                    transcription.id,
                    entry_name(&transcription.filename, "recording")
                );
                archive
                    .file(&name, bytes, &transcription.content_type)
                    .await?;
                items += 1;
            }

            let audio = all_pages(|after| async move {
                let page = self.list_audio(owner, 100, after).await?;
                Ok::<_, SpeechError>((page.items, page.next_after))
            })
            .await
            .map_err(error)?;
            let records: Vec<pb::Audio> = audio.iter().map(Into::into).collect();
            archive.records("speech/audio.json", &records).await?;
            items += records.len() as u64;
            for clip in &audio {
                let bytes = match self.audio_bytes(owner, clip).await {
                    Ok(bytes) => bytes,
                    // Deleted since it was listed.
                    Err(SpeechError::Blob(aimesh_kit::blob::BlobError::NotFound)) => continue,
                    Err(e) => return Err(e.to_string()),
                };
                let name = format!("speech/audio/{}.{}", clip.id, clip.format.extension());
                archive
                    .file(&name, bytes, clip.format.content_type())
                    .await?;
                items += 1;
            }
            Ok(items)
        })
    }
}
