//! The speech service's part in what file-owning services share: recordings and audio count
//! against the per-user storage quota, open through signed URLs, and go with an account.

use aimesh_kit::{
    files::{FileReader, FileRef, StoredBytes, StoredFile},
    owned::OwnedData,
};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::{SpeechError, service::Speech, store::SpeechStore};

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
                            file_name: format!("{id}.{}", audio.format.as_str()),
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
}
