//! The processing service's part in an account's data export and deletion: documents with
//! their originals, AI tasks, quizzes with their submissions.

use aimesh_kit::{
    export::{ExportArchive, entry_name},
    owned::OwnedData,
    paging::all_pages,
};
use aimesh_proto::processing::v1 as pb;
use futures::future::BoxFuture;

use crate::{
    domain::ListQuery,
    error::ProcessingError,
    quizzes::{convert::quiz_to_proto, domain::HistoryQuery, service::Quizzes},
    service::Processing,
    tasks::{domain::TaskQuery, service::Tasks},
};

/// Records read per page.
const PAGE: u32 = 100;

/// `processing/documents.json` (`aimesh.processing.v1.Document`) and each original as
/// `processing/originals/<id>-<file name>`.
pub(crate) async fn documents(
    processing: &Processing,
    owner: &str,
    archive: &ExportArchive,
) -> Result<u64, String> {
    let documents = all_pages(|after| async move {
        let query = ListQuery {
            page_size: PAGE,
            after,
            status: None,
        };
        let page = processing.list(owner, &query).await?;
        Ok::<_, ProcessingError>((page.documents, page.next_after))
    })
    .await
    .map_err(|e| e.to_string())?;
    let records: Vec<pb::Document> = documents.iter().map(Into::into).collect();
    archive
        .records("processing/documents.json", &records)
        .await?;
    let mut items = records.len() as u64;
    for document in &documents {
        let bytes = match processing.original(owner, document).await {
            Ok(bytes) => bytes,
            // Deleted since it was listed.
            Err(ProcessingError::Blob(aimesh_kit::blob::BlobError::NotFound)) => continue,
            Err(e) => return Err(e.to_string()),
        };
        let name = format!(
            "processing/originals/{}-{}",
            document.id,
            entry_name(&document.filename, "file")
        );
        archive.file(&name, bytes, &document.content_type).await?;
        items += 1;
    }
    Ok(items)
}

impl OwnedData for Tasks {
    fn name(&self) -> &'static str {
        "tasks"
    }

    fn delete_owner<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            self.store()
                .delete_owner(owner)
                .await
                .map_err(|e| e.to_string())
        })
    }

    /// `processing/tasks.json`: every task (`aimesh.processing.v1.Task`) with its result.
    fn export_owner<'a>(
        &'a self,
        owner: &'a str,
        archive: &'a ExportArchive,
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let tasks: Vec<pb::Task> = all_pages(|after| async move {
                let query = TaskQuery {
                    page_size: PAGE,
                    after,
                    document_id: None,
                    task_type: None,
                    status: None,
                };
                let page = self.list(owner, &query).await?;
                Ok::<_, ProcessingError>((
                    page.tasks.iter().map(pb::Task::from).collect(),
                    page.next_after,
                ))
            })
            .await
            .map_err(|e| e.to_string())?;
            archive.records("processing/tasks.json", &tasks).await?;
            Ok(tasks.len() as u64)
        })
    }
}

impl OwnedData for Quizzes {
    fn name(&self) -> &'static str {
        "quizzes"
    }

    fn delete_owner<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            self.store()
                .delete_owner(owner)
                .await
                .map_err(|e| e.to_string())
        })
    }

    /// `processing/quizzes.json` (`aimesh.processing.v1.Quiz`, answers included: they are the
    /// owner's) and `processing/quiz_submissions.json` (`aimesh.processing.v1.QuizSubmission`).
    fn export_owner<'a>(
        &'a self,
        owner: &'a str,
        archive: &'a ExportArchive,
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let error = |e: ProcessingError| e.to_string();
            let quizzes: Vec<pb::Quiz> = self
                .store()
                .list_owner(owner)
                .await
                .map_err(error)?
                .iter()
                .map(|quiz| quiz_to_proto(quiz, true))
                .collect();
            archive.records("processing/quizzes.json", &quizzes).await?;
            let submissions: Vec<pb::QuizSubmission> = all_pages(|after| async move {
                let query = HistoryQuery {
                    page_size: PAGE,
                    after,
                    document_id: None,
                };
                let page = self.history(owner, &query).await?;
                Ok::<_, ProcessingError>((
                    page.submissions
                        .iter()
                        .map(pb::QuizSubmission::from)
                        .collect(),
                    page.next_after,
                ))
            })
            .await
            .map_err(error)?;
            archive
                .records("processing/quiz_submissions.json", &submissions)
                .await?;
            Ok((quizzes.len() + submissions.len()) as u64)
        })
    }
}
