//! The tonic adapter of `aimesh.notes.v1.NotesService`: takes the caller from the request,
//! converts the message into domain values ([`crate::convert`]), calls [`Notes`] and maps the
//! result back. No rules live here.

use aimesh_jobs::api::job_to_proto;
use aimesh_kit::{auth::principal, paging};
use aimesh_proto::notes::v1::{self as pb, notes_service_server::NotesService};
use tonic::{Request, Response, Status};

use crate::{
    convert::{NoteDeletion, NoteUpdate, note_id},
    domain::{ListQuery, NewNote, TranslateRequest},
    service::Notes,
};

/// The gRPC face of the notes service.
#[derive(Clone)]
pub struct NotesApi {
    notes: Notes,
}

impl NotesApi {
    /// Wraps the service.
    pub fn new(notes: Notes) -> Self {
        Self { notes }
    }

    /// Returns the tonic server for this API.
    pub fn into_server(self) -> pb::notes_service_server::NotesServiceServer<Self> {
        pb::notes_service_server::NotesServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl NotesService for NotesApi {
    async fn create_note(
        &self,
        request: Request<pb::CreateNoteRequest>,
    ) -> Result<Response<pb::CreateNoteResponse>, Status> {
        let caller = principal(&request)?;
        let new = NewNote::try_from(request.into_inner())?;
        let note = self.notes.create(&caller.user_id, new).await?;
        Ok(Response::new(pb::CreateNoteResponse {
            note: Some((&note).into()),
        }))
    }

    async fn get_note(
        &self,
        request: Request<pb::GetNoteRequest>,
    ) -> Result<Response<pb::GetNoteResponse>, Status> {
        let caller = principal(&request)?;
        let id = note_id("id", &request.get_ref().id)?;
        let note = self.notes.get(&caller.user_id, id).await?;
        Ok(Response::new(pb::GetNoteResponse {
            note: Some(note.as_ref().into()),
        }))
    }

    async fn list_notes(
        &self,
        request: Request<pb::ListNotesRequest>,
    ) -> Result<Response<pb::ListNotesResponse>, Status> {
        let caller = principal(&request)?;
        let query = ListQuery::try_from(request.get_ref())?;
        let page = self.notes.list(&caller.user_id, &query).await?;
        Ok(Response::new(pb::ListNotesResponse {
            notes: page.notes.iter().map(Into::into).collect(),
            next_page_token: page
                .next_after
                .map(|after| paging::encode(after.as_bytes(), &query.filter_key()))
                .unwrap_or_default(),
        }))
    }

    async fn update_note(
        &self,
        request: Request<pb::UpdateNoteRequest>,
    ) -> Result<Response<pb::UpdateNoteResponse>, Status> {
        let caller = principal(&request)?;
        let update = NoteUpdate::try_from(request.into_inner())?;
        let note = self
            .notes
            .update(&caller.user_id, update.id, &update.patch)
            .await?;
        Ok(Response::new(pb::UpdateNoteResponse {
            note: Some((&note).into()),
        }))
    }

    async fn delete_note(
        &self,
        request: Request<pb::DeleteNoteRequest>,
    ) -> Result<Response<pb::DeleteNoteResponse>, Status> {
        let caller = principal(&request)?;
        let deletion = NoteDeletion::try_from(request.get_ref())?;
        self.notes
            .delete(&caller.user_id, deletion.id, deletion.expected_version)
            .await?;
        Ok(Response::new(pb::DeleteNoteResponse {}))
    }

    async fn translate_note(
        &self,
        request: Request<pb::TranslateNoteRequest>,
    ) -> Result<Response<pb::TranslateNoteResponse>, Status> {
        let caller = principal(&request)?;
        let translate = TranslateRequest::try_from(request.into_inner())?;
        let job = self.notes.translate(&caller.user_id, translate).await?;
        Ok(Response::new(pb::TranslateNoteResponse {
            job: Some(job_to_proto(&job)),
        }))
    }

    async fn list_languages(
        &self,
        request: Request<pb::ListLanguagesRequest>,
    ) -> Result<Response<pb::ListLanguagesResponse>, Status> {
        principal(&request)?;
        let engines = self
            .notes
            .engines()
            .iter()
            .map(|engine| pb::TranslationEngine {
                name: engine.name().to_owned(),
                pairs: engine
                    .pairs()
                    .iter()
                    .map(|pair| pb::LanguagePair {
                        source_language: pair.source.clone(),
                        target_language: pair.target.clone(),
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(pb::ListLanguagesResponse { engines }))
    }

    async fn get_note_stats(
        &self,
        request: Request<pb::GetNoteStatsRequest>,
    ) -> Result<Response<pb::GetNoteStatsResponse>, Status> {
        let caller = principal(&request)?;
        let stats = self.notes.stats(&caller.user_id).await?;
        Ok(Response::new(stats.into()))
    }
}
