//! The reports service's part in what file-owning services share: rendered files count
//! against the per-user storage quota, open through signed URLs, and go with an account.

use aimesh_kit::{
    export::ExportArchive,
    files::{FileReader, FileRef, StoredBytes, StoredFile},
    owned::OwnedData,
    paging::all_pages,
};
use aimesh_proto::reports::v1 as pb;
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::{ReportsServiceError, report::ListQuery, service::Reports, store::ReportStore};

/// The service's kind in signed URLs.
pub const KIND: &str = "reports";

/// A report's one file: the rendered HTML or PDF.
pub const RENDERED: &str = "rendered";

impl StoredBytes for ReportStore {
    fn name(&self) -> &'static str {
        KIND
    }

    fn stored_bytes<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<i64, String>> {
        Box::pin(async move { self.usage(owner).await.map_err(|e| e.to_string()) })
    }
}

impl FileReader for Reports {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn read<'a>(&'a self, file: &'a FileRef) -> BoxFuture<'a, Result<Option<StoredFile>, String>> {
        Box::pin(async move {
            let Ok(id) = Uuid::try_parse(&file.id) else {
                return Ok(None);
            };
            if file.variant != RENDERED {
                return Ok(None);
            }
            match self.download(&file.owner, id).await {
                Ok((report, bytes)) => Ok(Some(StoredFile {
                    bytes,
                    content_type: report.content_type().to_owned(),
                    file_name: report.filename(),
                })),
                Err(
                    ReportsServiceError::NotFound(_)
                    | ReportsServiceError::NotReady { .. }
                    | ReportsServiceError::Blob(aimesh_kit::blob::BlobError::NotFound),
                ) => Ok(None),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}

impl OwnedData for Reports {
    fn name(&self) -> &'static str {
        KIND
    }

    fn delete_owner<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            Reports::delete_owner(self, owner)
                .await
                .map_err(|error| error.to_string())
        })
    }
    /// `reports/reports.json` (`aimesh.reports.v1.Report`) and each rendered file as
    /// `reports/files/<id>-<file name>`.
    fn export_owner<'a>(
        &'a self,
        owner: &'a str,
        archive: &'a ExportArchive,
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let reports = all_pages(|after| async move {
                let query = ListQuery {
                    page_size: 100,
                    after,
                    status: None,
                };
                let page = self.list(owner, &query).await?;
                Ok::<_, ReportsServiceError>((page.reports, page.next_after))
            })
            .await
            .map_err(|e| e.to_string())?;
            let records: Vec<pb::Report> = reports.iter().map(Into::into).collect();
            archive.records("reports/reports.json", &records).await?;
            let mut items = records.len() as u64;
            for report in &reports {
                let (report, bytes) = match self.download(owner, report.id).await {
                    Ok(read) => read,
                    Err(
                        ReportsServiceError::NotFound(_)
                        | ReportsServiceError::NotReady { .. }
                        | ReportsServiceError::Blob(aimesh_kit::blob::BlobError::NotFound),
                    ) => continue,
                    Err(e) => return Err(e.to_string()),
                };
                let name = format!("reports/files/{}-{}", report.id, report.filename());
                archive.file(&name, bytes, report.content_type()).await?;
                items += 1;
            }
            Ok(items)
        })
    }
}
