//! The tonic adapter of `aimesh.speech.v1.SpeechService`: takes the caller from the request,
//! converts the message into domain values ([`crate::convert`]), calls [`Speech`] and maps
//! the result back. No rules live here.

use aimesh_jobs::api::job_to_proto;
use aimesh_kit::{auth::principal, paging};
use aimesh_proto::{
    google::api::HttpBody,
    speech::v1::{self as pb, speech_service_server::SpeechService},
};
use tonic::{Request, Response, Status};

use crate::{
    convert::{Export, audio_page, parse_id, voice_to_proto},
    domain::{ListQuery, NewAudio, NewTranscription},
    service::Speech,
};

/// Room for the rest of an upload request beyond the recording's bytes.
const ENVELOPE_BYTES: usize = 64 << 10;

/// The gRPC face of the speech service.
#[derive(Clone)]
pub struct SpeechApi {
    speech: Speech,
}

impl SpeechApi {
    /// Wraps the service.
    pub fn new(speech: Speech) -> Self {
        Self { speech }
    }

    /// Returns the tonic server for this API; it accepts messages as large as the upload
    /// limit (plus room for the other fields) and sends files of any stored size.
    pub fn into_server(self) -> pb::speech_service_server::SpeechServiceServer<Self> {
        let limit = usize::try_from(self.speech.config().max_upload_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(ENVELOPE_BYTES);
        pb::speech_service_server::SpeechServiceServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX)
    }
}

#[tonic::async_trait]
impl SpeechService for SpeechApi {
    async fn create_transcription(
        &self,
        request: Request<pb::CreateTranscriptionRequest>,
    ) -> Result<Response<pb::CreateTranscriptionResponse>, Status> {
        let caller = principal(&request)?;
        let new = NewTranscription::try_from(request.into_inner())?;
        let (transcription, job) = self
            .speech
            .create_transcription(&caller.user_id, new)
            .await?;
        Ok(Response::new(pb::CreateTranscriptionResponse {
            transcription: Some((&transcription).into()),
            job: Some(job_to_proto(&job)),
        }))
    }

    async fn get_transcription(
        &self,
        request: Request<pb::GetTranscriptionRequest>,
    ) -> Result<Response<pb::GetTranscriptionResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let transcription = self.speech.get_transcription(&caller.user_id, id).await?;
        Ok(Response::new(pb::GetTranscriptionResponse {
            transcription: Some((&transcription).into()),
        }))
    }

    async fn list_transcriptions(
        &self,
        request: Request<pb::ListTranscriptionsRequest>,
    ) -> Result<Response<pb::ListTranscriptionsResponse>, Status> {
        let caller = principal(&request)?;
        let query = ListQuery::try_from(request.get_ref())?;
        let page = self
            .speech
            .list_transcriptions(&caller.user_id, &query)
            .await?;
        Ok(Response::new(pb::ListTranscriptionsResponse {
            transcriptions: page.items.iter().map(Into::into).collect(),
            next_page_token: page
                .next_after
                .map(|after| paging::encode(after.as_bytes(), &query.filter_key()))
                .unwrap_or_default(),
        }))
    }

    async fn delete_transcription(
        &self,
        request: Request<pb::DeleteTranscriptionRequest>,
    ) -> Result<Response<pb::DeleteTranscriptionResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.speech
            .delete_transcription(&caller.user_id, id)
            .await?;
        Ok(Response::new(pb::DeleteTranscriptionResponse {}))
    }

    async fn export_transcription(
        &self,
        request: Request<pb::ExportTranscriptionRequest>,
    ) -> Result<Response<HttpBody>, Status> {
        let caller = principal(&request)?;
        let export = Export::try_from(request.get_ref())?;
        let (content, content_type) = self
            .speech
            .export(&caller.user_id, export.id, export.format)
            .await?;
        Ok(Response::new(HttpBody {
            content_type: content_type.to_owned(),
            data: content.into_bytes(),
            extensions: Vec::new(),
        }))
    }

    async fn list_voices(
        &self,
        request: Request<pb::ListVoicesRequest>,
    ) -> Result<Response<pb::ListVoicesResponse>, Status> {
        principal(&request)?;
        let (voices, engine) = self.speech.voices(&request.get_ref().language)?;
        Ok(Response::new(pb::ListVoicesResponse {
            voices: voices.iter().map(voice_to_proto).collect(),
            engine: engine.to_owned(),
        }))
    }

    async fn synthesize_audio(
        &self,
        request: Request<pb::SynthesizeAudioRequest>,
    ) -> Result<Response<pb::SynthesizeAudioResponse>, Status> {
        let caller = principal(&request)?;
        let new = NewAudio::try_from(request.into_inner())?;
        let (audio, cached) = self.speech.synthesize(&caller.user_id, new).await?;
        Ok(Response::new(pb::SynthesizeAudioResponse {
            audio: Some((&audio).into()),
            cached,
        }))
    }

    async fn get_audio(
        &self,
        request: Request<pb::GetAudioRequest>,
    ) -> Result<Response<pb::GetAudioResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let audio = self.speech.get_audio(&caller.user_id, id).await?;
        Ok(Response::new(pb::GetAudioResponse {
            audio: Some((&audio).into()),
        }))
    }

    async fn list_audio(
        &self,
        request: Request<pb::ListAudioRequest>,
    ) -> Result<Response<pb::ListAudioResponse>, Status> {
        let caller = principal(&request)?;
        let (page_size, after) = audio_page(request.get_ref())?;
        let page = self
            .speech
            .list_audio(&caller.user_id, page_size, after)
            .await?;
        Ok(Response::new(pb::ListAudioResponse {
            audio: page.items.iter().map(Into::into).collect(),
            next_page_token: page
                .next_after
                .map(|after| paging::encode(after.as_bytes(), "audio"))
                .unwrap_or_default(),
        }))
    }

    async fn delete_audio(
        &self,
        request: Request<pb::DeleteAudioRequest>,
    ) -> Result<Response<pb::DeleteAudioResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.speech.delete_audio(&caller.user_id, id).await?;
        Ok(Response::new(pb::DeleteAudioResponse {}))
    }

    async fn download_audio(
        &self,
        request: Request<pb::DownloadAudioRequest>,
    ) -> Result<Response<HttpBody>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let (audio, bytes) = self.speech.download_audio(&caller.user_id, id).await?;
        Ok(Response::new(HttpBody {
            content_type: audio.format.content_type().to_owned(),
            data: bytes.to_vec(),
            extensions: Vec::new(),
        }))
    }

    async fn get_audio_url(
        &self,
        request: Request<pb::GetAudioUrlRequest>,
    ) -> Result<Response<pb::GetAudioUrlResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let ttl = u64::from(request.get_ref().ttl_seconds);
        let signed = self
            .speech
            .file_url(&caller.user_id, id, false, ttl)
            .await?;
        Ok(Response::new(pb::GetAudioUrlResponse {
            url: signed.url,
            expire_time: Some(aimesh_kit::proto::timestamp(signed.expires_at)),
        }))
    }

    async fn get_recording_url(
        &self,
        request: Request<pb::GetRecordingUrlRequest>,
    ) -> Result<Response<pb::GetRecordingUrlResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let ttl = u64::from(request.get_ref().ttl_seconds);
        let signed = self.speech.file_url(&caller.user_id, id, true, ttl).await?;
        Ok(Response::new(pb::GetRecordingUrlResponse {
            url: signed.url,
            expire_time: Some(aimesh_kit::proto::timestamp(signed.expires_at)),
        }))
    }
}
