//! The notes of an account in its data export: `notes/notes.json`, every note with its
//! translations as `aimesh.notes.v1.Note`.

use aimesh_kit::{export::ExportArchive, paging::all_pages};
use aimesh_proto::notes::v1 as pb;

use crate::{domain::ListQuery, error::NotesError, service::Notes};

/// Notes read per page.
const PAGE: u32 = 100;

/// Writes `owner`'s notes into `archive`; returns how many.
pub(crate) async fn export(
    notes: &Notes,
    owner: &str,
    archive: &ExportArchive,
) -> Result<u64, String> {
    let all: Vec<pb::Note> = all_pages(|after| async move {
        let query = ListQuery {
            page_size: PAGE,
            after,
            language: None,
            text: None,
        };
        let page = notes.list(owner, &query).await?;
        Ok::<_, NotesError>((
            page.notes.iter().map(pb::Note::from).collect(),
            page.next_after,
        ))
    })
    .await
    .map_err(|e| e.to_string())?;
    archive.records("notes/notes.json", &all).await?;
    Ok(all.len() as u64)
}
