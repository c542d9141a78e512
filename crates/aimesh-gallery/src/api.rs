//! The tonic adapter of `aimesh.gallery.v1.GalleryService`: takes the caller from the request,
//! converts the message into domain values ([`crate::convert`]), calls [`Gallery`] and maps
//! the result back. No rules live here.

use aimesh_jobs::{Job, api::job_to_proto};
use aimesh_kit::{auth::principal, paging};
use aimesh_proto::{
    gallery::v1::{self as pb, gallery_service_server::GalleryService},
    google::api::HttpBody,
};
use tonic::{Request, Response, Status, metadata::MetadataValue};

use crate::{
    convert::{TRASH_FILTERS, parse_id, trash_query, variant},
    domain::{Image, ImagePage, ListQuery, NewUpload, Operation, Update},
    service::Gallery,
};

/// Room for the rest of an upload request beyond the file's bytes.
const ENVELOPE_BYTES: usize = 64 << 10;

/// Stored files never change under an id: clients and the edge may cache them for a year,
/// privately (they are the caller's).
const CACHE_CONTROL: &str = "private, max-age=31536000, immutable";

/// The gRPC face of the gallery service.
#[derive(Clone)]
pub struct GalleryApi {
    gallery: Gallery,
}

impl GalleryApi {
    /// Wraps the service.
    pub fn new(gallery: Gallery) -> Self {
        Self { gallery }
    }

    /// Returns the tonic server for this API; it accepts messages as large as the upload
    /// limit (plus room for the other fields) and sends images of any stored size.
    pub fn into_server(self) -> pb::gallery_service_server::GalleryServiceServer<Self> {
        let limit = self
            .gallery
            .config()
            .limits
            .max_bytes
            .saturating_add(ENVELOPE_BYTES);
        pb::gallery_service_server::GalleryServiceServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX)
    }

    fn image(&self, image: &Image) -> Option<pb::Image> {
        Some(image.to_proto(self.gallery.config().trash_retention))
    }

    fn page(&self, page: &ImagePage, filters: &str) -> (Vec<pb::Image>, String) {
        let retention = self.gallery.config().trash_retention;
        (
            page.images.iter().map(|i| i.to_proto(retention)).collect(),
            page.next_after
                .map(|after| paging::encode(after.as_bytes(), filters))
                .unwrap_or_default(),
        )
    }

    async fn submit(
        &self,
        owner: &str,
        source: Option<&str>,
        operation: Operation,
    ) -> Result<Option<aimesh_proto::jobs::v1::Job>, Status> {
        let source = source.map(|id| parse_id("id", id)).transpose()?;
        let job: Job = self.gallery.submit(owner, source, operation).await?;
        Ok(Some(job_to_proto(&job)))
    }
}

#[tonic::async_trait]
impl GalleryService for GalleryApi {
    async fn upload_image(
        &self,
        request: Request<pb::UploadImageRequest>,
    ) -> Result<Response<pb::UploadImageResponse>, Status> {
        let caller = principal(&request)?;
        let upload = NewUpload::try_from(request.into_inner())?;
        let image = self.gallery.upload(&caller.user_id, upload).await?;
        Ok(Response::new(pb::UploadImageResponse {
            image: self.image(&image),
        }))
    }

    async fn get_image(
        &self,
        request: Request<pb::GetImageRequest>,
    ) -> Result<Response<pb::GetImageResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let image = self.gallery.get(&caller.user_id, id).await?;
        Ok(Response::new(pb::GetImageResponse {
            image: self.image(&image),
        }))
    }

    async fn list_images(
        &self,
        request: Request<pb::ListImagesRequest>,
    ) -> Result<Response<pb::ListImagesResponse>, Status> {
        let caller = principal(&request)?;
        let query = ListQuery::try_from(request.get_ref())?;
        let page = self.gallery.list(&caller.user_id, &query).await?;
        let (images, next_page_token) = self.page(&page, &query.filter_key());
        Ok(Response::new(pb::ListImagesResponse {
            images,
            next_page_token,
        }))
    }

    async fn update_image(
        &self,
        request: Request<pb::UpdateImageRequest>,
    ) -> Result<Response<pb::UpdateImageResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let update = Update::try_from(request.get_ref())?;
        let image = self.gallery.update(&caller.user_id, id, &update).await?;
        Ok(Response::new(pb::UpdateImageResponse {
            image: self.image(&image),
        }))
    }

    async fn download_image(
        &self,
        request: Request<pb::DownloadImageRequest>,
    ) -> Result<Response<HttpBody>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let variant = variant(request.get_ref())?;
        let (file, bytes) = self.gallery.download(&caller.user_id, id, variant).await?;
        let mut response = Response::new(HttpBody {
            content_type: file.content_type,
            data: bytes.to_vec(),
            extensions: Vec::new(),
        });
        let headers = response.metadata_mut();
        headers.insert("cache-control", MetadataValue::from_static(CACHE_CONTROL));
        if let Ok(etag) = format!("\"{}\"", file.sha256).parse() {
            headers.insert("etag", etag);
        }
        Ok(response)
    }

    async fn get_image_url(
        &self,
        request: Request<pb::GetImageUrlRequest>,
    ) -> Result<Response<pb::GetImageUrlResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let id = parse_id("id", &request.id)?;
        let variant = variant(&pb::DownloadImageRequest {
            id: request.id.clone(),
            variant: request.variant,
        })?;
        let signed = self
            .gallery
            .image_url(&caller.user_id, id, variant, u64::from(request.ttl_seconds))
            .await?;
        Ok(Response::new(pb::GetImageUrlResponse {
            url: signed.url,
            expire_time: Some(aimesh_kit::proto::timestamp(signed.expires_at)),
        }))
    }

    async fn delete_image(
        &self,
        request: Request<pb::DeleteImageRequest>,
    ) -> Result<Response<pb::DeleteImageResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let image = self.gallery.trash(&caller.user_id, id).await?;
        Ok(Response::new(pb::DeleteImageResponse {
            image: self.image(&image),
        }))
    }

    async fn list_deleted_images(
        &self,
        request: Request<pb::ListDeletedImagesRequest>,
    ) -> Result<Response<pb::ListDeletedImagesResponse>, Status> {
        let caller = principal(&request)?;
        let (page_size, after) = trash_query(request.get_ref())?;
        let page = self
            .gallery
            .list_deleted(&caller.user_id, page_size, after)
            .await?;
        let (images, next_page_token) = self.page(&page, TRASH_FILTERS);
        Ok(Response::new(pb::ListDeletedImagesResponse {
            images,
            next_page_token,
        }))
    }

    async fn restore_image(
        &self,
        request: Request<pb::RestoreImageRequest>,
    ) -> Result<Response<pb::RestoreImageResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        let image = self.gallery.restore(&caller.user_id, id).await?;
        Ok(Response::new(pb::RestoreImageResponse {
            image: self.image(&image),
        }))
    }

    async fn permanently_delete_image(
        &self,
        request: Request<pb::PermanentlyDeleteImageRequest>,
    ) -> Result<Response<pb::PermanentlyDeleteImageResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_id("id", &request.get_ref().id)?;
        self.gallery.delete_permanently(&caller.user_id, id).await?;
        Ok(Response::new(pb::PermanentlyDeleteImageResponse {}))
    }

    async fn empty_trash(
        &self,
        request: Request<pb::EmptyTrashRequest>,
    ) -> Result<Response<pb::EmptyTrashResponse>, Status> {
        let caller = principal(&request)?;
        let deleted_count = self.gallery.empty_trash(&caller.user_id).await?;
        Ok(Response::new(pb::EmptyTrashResponse { deleted_count }))
    }

    async fn enhance_image(
        &self,
        request: Request<pb::EnhanceImageRequest>,
    ) -> Result<Response<pb::EnhanceImageResponse>, Status> {
        let caller = principal(&request)?;
        let operation = Operation::try_from(request.get_ref())?;
        let job = self
            .submit(&caller.user_id, Some(&request.get_ref().id), operation)
            .await?;
        Ok(Response::new(pb::EnhanceImageResponse { job }))
    }

    async fn stylize_image(
        &self,
        request: Request<pb::StylizeImageRequest>,
    ) -> Result<Response<pb::StylizeImageResponse>, Status> {
        let caller = principal(&request)?;
        let operation = Operation::try_from(request.get_ref())?;
        let job = self
            .submit(&caller.user_id, Some(&request.get_ref().id), operation)
            .await?;
        Ok(Response::new(pb::StylizeImageResponse { job }))
    }

    async fn upscale_image(
        &self,
        request: Request<pb::UpscaleImageRequest>,
    ) -> Result<Response<pb::UpscaleImageResponse>, Status> {
        let caller = principal(&request)?;
        let operation = Operation::try_from(request.get_ref())?;
        let job = self
            .submit(&caller.user_id, Some(&request.get_ref().id), operation)
            .await?;
        Ok(Response::new(pb::UpscaleImageResponse { job }))
    }

    async fn remove_background(
        &self,
        request: Request<pb::RemoveBackgroundRequest>,
    ) -> Result<Response<pb::RemoveBackgroundResponse>, Status> {
        let caller = principal(&request)?;
        let job = self
            .submit(
                &caller.user_id,
                Some(&request.get_ref().id),
                Operation::RemoveBackground,
            )
            .await?;
        Ok(Response::new(pb::RemoveBackgroundResponse { job }))
    }

    async fn generate_image(
        &self,
        request: Request<pb::GenerateImageRequest>,
    ) -> Result<Response<pb::GenerateImageResponse>, Status> {
        let caller = principal(&request)?;
        let operation = Operation::try_from(request.get_ref())?;
        let job = self.submit(&caller.user_id, None, operation).await?;
        Ok(Response::new(pb::GenerateImageResponse { job }))
    }
}
