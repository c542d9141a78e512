//! The notes of an account in its data export: `notes/notes.json`, every note with its
//! translations as `aimesh.notes.v1.Note`.

use aimesh_kit::export::ExportArchive;
use aimesh_proto::notes::v1 as pb;

use crate::{domain::ListQuery, service::Notes};

/// Notes read per page.
const PAGE: u32 = 100;

/// Writes `owner`'s notes into `archive`; returns how many.
pub(crate) async fn export(
    notes: &Notes,
    owner: &str,
    archive: &ExportArchive,
) -> Result<u64, String> {
    let mut all = Vec::new();
    let mut query = ListQuery {
        page_size: PAGE,
        after: None,
        language: None,
        text: None,
    };
    loop {
        let page = notes.list(owner, &query).await.map_err(|e| e.to_string())?;
        all.extend(page.notes.iter().map(pb::Note::from));
        match page.next_after {
            Some(after) => query.after = Some(after),
            None => break,
        }
    }
    archive.records("notes/notes.json", &all).await?;
    Ok(all.len() as u64)
}
