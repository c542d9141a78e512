//! Conversions between the protobuf messages of `aimesh.gallery.v1` and the gallery domain.
//!
//! Requests become validated domain values through `TryFrom` (every offending field is
//! reported, as an INVALID_ARGUMENT with the fields named); domain values become responses
//! through `From`.

use aimesh_kit::{
    error::{Violations, parse_uuid},
    paging,
    proto::timestamp,
};
use aimesh_proto::gallery::v1 as pb;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    domain::{
        self, Image, ListQuery, Metadata, NewUpload, Operation, Origin, Style, Update, Variant,
    },
    error::GalleryError,
};

fn finish<T: aimesh_kit::error::Checked>(
    violations: Violations,
    values: T,
) -> Result<T::Values, GalleryError> {
    violations
        .finish(values)
        .map_err(GalleryError::InvalidArgument)
}

/// Parses the id a request names in `field`.
pub fn parse_id(field: &str, id: &str) -> Result<Uuid, GalleryError> {
    let mut violations = Violations::new();
    let id = violations.check(field, parse_uuid(id));
    finish(violations, id)
}

fn time(value: &prost_types::Timestamp) -> Result<DateTime<Utc>, &'static str> {
    let nanos = u32::try_from(value.nanos).map_err(|_| "is not a valid timestamp")?;
    DateTime::from_timestamp(value.seconds, nanos).ok_or("is not a valid timestamp")
}

/// The domain origin a proto origin names (`None` for unspecified).
pub fn origin_filter(origin: pb::ImageOrigin) -> Option<Origin> {
    match origin {
        pb::ImageOrigin::Unspecified => None,
        pb::ImageOrigin::Uploaded => Some(Origin::Uploaded),
        pb::ImageOrigin::Generated => Some(Origin::Generated),
        pb::ImageOrigin::Derived => Some(Origin::Derived),
    }
}

impl From<Origin> for pb::ImageOrigin {
    fn from(origin: Origin) -> Self {
        match origin {
            Origin::Uploaded => pb::ImageOrigin::Uploaded,
            Origin::Generated => pb::ImageOrigin::Generated,
            Origin::Derived => pb::ImageOrigin::Derived,
        }
    }
}

/// The variant a DownloadImage request asks for.
pub fn variant(request: &pb::DownloadImageRequest) -> Result<Variant, GalleryError> {
    match pb::ImageVariant::try_from(request.variant) {
        Ok(pb::ImageVariant::Unspecified | pb::ImageVariant::Original) => Ok(Variant::Original),
        Ok(pb::ImageVariant::Thumbnail256) => Ok(Variant::Thumbnail256),
        Ok(pb::ImageVariant::Thumbnail1024) => Ok(Variant::Thumbnail1024),
        Err(_) => Err(GalleryError::invalid("variant", "is not a known variant")),
    }
}

fn metadata(
    violations: &mut Violations,
    title: &str,
    prompt: &str,
    tags: &[String],
    tags_field: &str,
) -> Option<Metadata> {
    let title = violations.check("title", domain::validate_title(title));
    let prompt = violations.check("prompt", domain::validate_prompt(prompt));
    let tags = violations.check(tags_field, domain::validate_tags(tags));
    Some(Metadata {
        title: title?,
        prompt: prompt?,
        tags: tags?,
    })
}

// === requests -> domain ===

impl TryFrom<pb::UploadImageRequest> for NewUpload {
    type Error = GalleryError;

    fn try_from(request: pb::UploadImageRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let metadata = metadata(
            &mut violations,
            &request.title,
            &request.prompt,
            &request.tags,
            "tags",
        );
        let body = request.body.unwrap_or_default();
        if body.data.is_empty() {
            violations.add("body.data", "must not be empty");
        }
        let metadata = finish(violations, metadata)?;
        Ok(NewUpload {
            data: Bytes::from(body.data),
            metadata,
            keep_metadata: request.keep_metadata,
        })
    }
}

impl TryFrom<&pb::ListImagesRequest> for ListQuery {
    type Error = GalleryError;

    fn try_from(request: &pb::ListImagesRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let page_size =
            violations.check("page_size", domain::validate_page_size(request.page_size));
        let tag = if request.tag.is_empty() {
            Some(None)
        } else {
            violations
                .check("tag", domain::validate_tag(&request.tag))
                .map(Some)
        };
        let origin = violations.check(
            "origin",
            pb::ImageOrigin::try_from(request.origin)
                .map(origin_filter)
                .map_err(|_| "is not a known origin"),
        );
        let created_after = match &request.created_after {
            Some(at) => violations.check("created_after", time(at)).map(Some),
            None => Some(None),
        };
        let created_before = match &request.created_before {
            Some(at) => violations.check("created_before", time(at)).map(Some),
            None => Some(None),
        };
        let (page_size, tag, origin, created_after, created_before) = finish(
            violations,
            (page_size, tag, origin, created_after, created_before),
        )?;
        let mut query = ListQuery {
            page_size,
            after: None,
            tag,
            origin,
            created_after,
            created_before,
        };
        let mut violations = Violations::new();
        let after = violations.check(
            "page_token",
            paging::decode_uuid(&request.page_token, &query.filter_key()),
        );
        query.after = finish(violations, after)?;
        Ok(query)
    }
}

/// The filters of a ListDeletedImages page token.
pub const TRASH_FILTERS: &str = "trash";

/// Validates a ListDeletedImages request: the page size and the cursor.
pub fn trash_query(
    request: &pb::ListDeletedImagesRequest,
) -> Result<(u32, Option<Uuid>), GalleryError> {
    let mut violations = Violations::new();
    let page_size = violations.check("page_size", domain::validate_page_size(request.page_size));
    let after = violations.check(
        "page_token",
        paging::decode_uuid(&request.page_token, TRASH_FILTERS),
    );
    finish(violations, (page_size, after))
}

impl TryFrom<&pb::UpdateImageRequest> for Update {
    type Error = GalleryError;

    fn try_from(request: &pb::UpdateImageRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let title = request
            .title
            .as_deref()
            .map(|title| violations.check("title", domain::validate_title(title)));
        let prompt = request
            .prompt
            .as_deref()
            .map(|prompt| violations.check("prompt", domain::validate_prompt(prompt)));
        let tags = request
            .tags
            .as_ref()
            .map(|tags| violations.check("tags.values", domain::validate_tags(&tags.values)));
        violations
            .into_result()
            .map_err(GalleryError::InvalidArgument)?;
        Ok(Update {
            title: title.flatten(),
            prompt: prompt.flatten(),
            tags: tags.flatten(),
        })
    }
}

impl TryFrom<&pb::EnhanceImageRequest> for Operation {
    type Error = GalleryError;

    fn try_from(request: &pb::EnhanceImageRequest) -> Result<Self, Self::Error> {
        let sharpen_amount = domain::validate_sharpen_amount(request.sharpen_amount)
            .map_err(|e| GalleryError::invalid("sharpen_amount", e))?;
        Ok(Operation::Enhance { sharpen_amount })
    }
}

impl TryFrom<&pb::StylizeImageRequest> for Operation {
    type Error = GalleryError;

    fn try_from(request: &pb::StylizeImageRequest) -> Result<Self, Self::Error> {
        let style = match pb::ImageStyle::try_from(request.style) {
            Ok(pb::ImageStyle::Grayscale) => Style::Grayscale,
            Ok(pb::ImageStyle::Sepia) => Style::Sepia,
            Ok(pb::ImageStyle::Posterize) => Style::Posterize,
            Ok(pb::ImageStyle::PencilSketch) => Style::PencilSketch,
            Ok(pb::ImageStyle::Cartoon) => Style::Cartoon,
            Ok(pb::ImageStyle::Emboss) => Style::Emboss,
            Ok(pb::ImageStyle::Painting) => Style::Painting,
            Ok(pb::ImageStyle::Unspecified) => {
                return Err(GalleryError::invalid("style", "must name a style"));
            }
            Err(_) => return Err(GalleryError::invalid("style", "is not a known style")),
        };
        Ok(Operation::Style { style })
    }
}

impl TryFrom<&pb::UpscaleImageRequest> for Operation {
    type Error = GalleryError;

    fn try_from(request: &pb::UpscaleImageRequest) -> Result<Self, Self::Error> {
        let factor = domain::validate_factor(request.factor)
            .map_err(|e| GalleryError::invalid("factor", e))?;
        Ok(Operation::Upscale { factor })
    }
}

impl TryFrom<&pb::GenerateImageRequest> for Operation {
    type Error = GalleryError;

    fn try_from(request: &pb::GenerateImageRequest) -> Result<Self, Self::Error> {
        let mut violations = Violations::new();
        let prompt = violations.check(
            "prompt",
            domain::validate_prompt(&request.prompt).and_then(|prompt| {
                if prompt.is_empty() {
                    Err("must not be empty".to_owned())
                } else {
                    Ok(prompt)
                }
            }),
        );
        let width = violations.check("width", domain::validate_side(request.width));
        let height = violations.check("height", domain::validate_side(request.height));
        let title = violations.check("title", domain::validate_title(&request.title));
        let tags = violations.check("tags", domain::validate_tags(&request.tags));
        let (prompt, width, height, title, tags) =
            finish(violations, (prompt, width, height, title, tags))?;
        let seed = request.seed.unwrap_or_else(|| {
            // A fresh seed per request: the low bits of a new UUIDv7's random part.
            let bytes = Uuid::now_v7().into_bytes();
            u64::from_be_bytes([
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14],
                bytes[15],
            ])
        });
        Ok(Operation::Generate {
            prompt,
            width,
            height,
            seed,
            title,
            tags,
        })
    }
}

// === domain -> responses ===

impl Image {
    /// The image as a message; `retention` is how long the trash keeps it.
    pub fn to_proto(&self, retention: std::time::Duration) -> pb::Image {
        let purge = self.deleted_at.and_then(|deleted| {
            chrono::Duration::from_std(retention)
                .ok()
                .and_then(|retention| deleted.checked_add_signed(retention))
        });
        pb::Image {
            id: self.id.to_string(),
            title: self.title.clone(),
            prompt: self.prompt.clone(),
            tags: self.tags.clone(),
            origin: pb::ImageOrigin::from(self.origin).into(),
            source_id: self.source_id.map(|id| id.to_string()).unwrap_or_default(),
            operation: self.operation.clone(),
            format: self.format.clone(),
            content_type: self.original.content_type.clone(),
            width: self.width,
            height: self.height,
            size_bytes: self.original.size_bytes,
            sha256: self.original.sha256.clone(),
            perceptual_hash: self.perceptual_hash.clone(),
            metadata_kept: self.metadata_kept,
            job_id: self.job_id.map(|id| id.to_string()).unwrap_or_default(),
            create_time: Some(timestamp(self.created_at)),
            update_time: Some(timestamp(self.updated_at)),
            delete_time: self.deleted_at.map(timestamp),
            purge_time: purge.map(timestamp),
        }
    }
}
