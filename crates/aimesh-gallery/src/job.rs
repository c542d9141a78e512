//! The gallery's jobs: one handler per operation capability (`gallery.edit` for the built-in
//! enhancement and styles, `gallery.upscale`, `gallery.remove_background`, `gallery.generate`
//! for the engines), each producing a new image linked to its source; and the scheduled trash
//! purge (`gallery.purge_trash`). An operation's image is stored once per job, so a repeated
//! attempt finds it instead of storing another.

use std::sync::Arc;

use aimesh_jobs::{JobContext, JobError, JobHandler, JobOutput};
use aimesh_proto::gallery::v1 as pb;
use futures::future::BoxFuture;
use image::DynamicImage;

use crate::{
    domain::{Metadata, Operation, OperationJob, Origin},
    edit,
    engine::{Capability, EngineControl, EngineError, EngineRequest},
    error::GalleryError,
    imaging::{self, Format},
    service::{Gallery, Provenance, blocking},
};

/// The job kind of the trash purge.
pub const PURGE_KIND: &str = "gallery.purge_trash";

/// Runs the operation jobs of one capability; their payload is an [`OperationJob`] (JSON).
pub struct OperationHandler {
    gallery: Gallery,
    capability: Capability,
}

impl OperationHandler {
    /// Creates the handler of `capability`'s jobs.
    pub fn new(gallery: Gallery, capability: Capability) -> Self {
        Self {
            gallery,
            capability,
        }
    }

    /// Handlers for every capability this process serves.
    pub fn serving(gallery: &Gallery) -> Vec<Self> {
        std::iter::once(Capability::Edit)
            .chain(Capability::ENGINES)
            .filter(|capability| gallery.engines().serves(*capability))
            .map(|capability| Self::new(gallery.clone(), capability))
            .collect()
    }
}

impl JobHandler for OperationHandler {
    fn kind(&self) -> &'static str {
        self.capability.job_kind()
    }

    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let gallery = self.gallery.clone();
        Box::pin(async move { run_operation(gallery, ctx).await })
    }
}

fn retryable(error: GalleryError) -> JobError {
    match error {
        GalleryError::NotFound(_) => {
            JobError::Permanent("the source image no longer exists".into())
        }
        GalleryError::QuotaExceeded { .. } | GalleryError::InvalidArgument(_) => {
            JobError::Permanent(error.to_string())
        }
        other => JobError::Retryable(other.to_string()),
    }
}

async fn run_operation(gallery: Gallery, ctx: JobContext) -> Result<JobOutput, JobError> {
    let request: OperationJob = serde_json::from_slice(&ctx.job.payload)
        .map_err(|e| JobError::Permanent(format!("unreadable job payload: {e}")))?;
    let owner = ctx.job.owner_id.clone();
    let operation_name = request.operation.name();
    // An earlier attempt may have stored the image already.
    if let Some(existing) = gallery
        .store()
        .by_job(ctx.job.id)
        .await
        .map_err(retryable)?
    {
        return Ok(result(
            &existing,
            &operation_name,
            "stored by an earlier attempt",
        ));
    }
    let source = match request.source_id {
        Some(id) => Some(gallery.get(&owner, id).await.map_err(retryable)?),
        None => None,
    };
    let pixels = match &source {
        Some(source) => {
            ctx.progress(10, "reading the source image", "").await;
            Some(gallery.load_pixels(source).await.map_err(retryable)?)
        }
        None => None,
    };
    ctx.progress(25, &format!("running {operation_name}"), "")
        .await;
    // Engine progress (units done of a total) moves the job from 25 % to 65 %.
    let (progress_tx, mut progress_rx) = tokio::sync::watch::channel((0u32, 0u32));
    let control = EngineControl {
        progress: Arc::new(move |done, total| {
            progress_tx.send_replace((done, total));
        }),
        cancel: ctx.cancel.clone(),
    };
    let work = apply(&gallery, &request.operation, pixels, control);
    tokio::pin!(work);
    let (output, engine_name) = loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
            output = &mut work => break output?,
            Ok(()) = progress_rx.changed() => {
                let (done, total) = *progress_rx.borrow_and_update();
                if total > 0 {
                    let percent = 25 + (u64::from(done.min(total)) * 40 / u64::from(total)) as i32;
                    ctx.progress(percent, &format!("{operation_name}: {done} of {total}"), "")
                        .await;
                }
            }
        }
    };
    let limits = gallery.config().limits;
    if u64::from(output.width()) * u64::from(output.height()) > limits.max_pixels
        || output.width() > limits.max_side
        || output.height() > limits.max_side
    {
        return Err(JobError::Permanent(format!(
            "the result has {} × {} pixels, more than the limit of {} pixels",
            output.width(),
            output.height(),
            limits.max_pixels
        )));
    }
    if ctx.cancel.is_cancelled() {
        return Err(JobError::Cancelled);
    }
    ctx.progress(70, "encoding the image and its thumbnails", "")
        .await;
    // Transparency needs PNG; otherwise a derivative keeps its source's format.
    let format = match &source {
        _ if output.color().has_alpha() => Format::Png,
        Some(source) if source.format == "jpeg" => Format::Jpeg,
        Some(source) if source.format == "webp" => Format::Webp,
        _ => Format::Png,
    };
    let prepared = blocking(move || imaging::prepare(&output, format, None))
        .await
        .map_err(retryable)?
        .map_err(JobError::Permanent)?;
    let (metadata, origin) = match (&request.operation, &source) {
        (
            Operation::Generate {
                prompt,
                title,
                tags,
                ..
            },
            _,
        ) => (
            Metadata {
                title: title.clone(),
                prompt: prompt.clone(),
                tags: tags.clone(),
            },
            Origin::Generated,
        ),
        (_, Some(source)) => (
            Metadata {
                title: source.title.clone(),
                prompt: source.prompt.clone(),
                tags: source.tags.clone(),
            },
            Origin::Derived,
        ),
        (_, None) => (Metadata::default(), Origin::Derived),
    };
    ctx.progress(85, "storing the image", "").await;
    let image = gallery
        .store_new(
            &owner,
            prepared,
            metadata,
            false,
            Provenance {
                origin,
                source_id: request.source_id,
                operation: operation_name.clone(),
                job_id: Some(ctx.job.id),
            },
        )
        .await
        .map_err(retryable)?;
    Ok(result(&image, &operation_name, &engine_name))
}

fn result(image: &crate::domain::Image, operation: &str, engine: &str) -> JobOutput {
    JobOutput::message(&pb::ImageOperationResult {
        image_id: image.id.to_string(),
        source_id: image.source_id.map(|id| id.to_string()).unwrap_or_default(),
        operation: operation.to_owned(),
        engine: engine.to_owned(),
    })
}

/// Runs an operation: the built-in edits on a blocking thread, the others on their engine.
async fn apply(
    gallery: &Gallery,
    operation: &Operation,
    pixels: Option<DynamicImage>,
    control: EngineControl,
) -> Result<(DynamicImage, String), JobError> {
    let need_source = |pixels: Option<DynamicImage>| {
        pixels.ok_or_else(|| JobError::Permanent("the operation needs a source image".into()))
    };
    let engine_request = match operation {
        Operation::Enhance { sharpen_amount } => {
            let (pixels, amount) = (need_source(pixels)?, *sharpen_amount);
            let out = blocking(move || edit::enhance(&pixels, amount))
                .await
                .map_err(retryable)?;
            return Ok((out, edit::ENHANCE_ENGINE.to_owned()));
        }
        Operation::Style { style } => {
            let (pixels, style) = (need_source(pixels)?, *style);
            let out = blocking(move || edit::stylize(&pixels, style))
                .await
                .map_err(retryable)?;
            return Ok((out, format!("{} (imageproc)", style.as_str())));
        }
        Operation::Upscale { factor } => EngineRequest::Upscale {
            image: need_source(pixels)?,
            factor: *factor,
        },
        Operation::RemoveBackground => EngineRequest::RemoveBackground {
            image: need_source(pixels)?,
        },
        Operation::Generate {
            prompt,
            width,
            height,
            seed,
            ..
        } => EngineRequest::Generate {
            prompt: prompt.clone(),
            width: *width,
            height: *height,
            seed: *seed,
        },
    };
    let engine = gallery
        .engines()
        .get(Capability::of(operation))
        .map_err(JobError::Retryable)?;
    let name = engine.name().to_owned();
    let out = engine
        .run(engine_request, control)
        .await
        .map_err(|error| match error {
            EngineError::Unavailable(reason) => JobError::Retryable(reason),
            EngineError::Refused(reason) => JobError::Permanent(reason),
        })?;
    Ok((out, name))
}

/// Runs the scheduled trash purge: deletes for good the images in the trash longer than the
/// retention period.
pub struct PurgeHandler {
    gallery: Gallery,
}

impl PurgeHandler {
    /// Creates the handler.
    pub fn new(gallery: Gallery) -> Self {
        Self { gallery }
    }
}

impl JobHandler for PurgeHandler {
    fn kind(&self) -> &'static str {
        PURGE_KIND
    }

    fn run(&self, _ctx: JobContext) -> BoxFuture<'static, Result<JobOutput, JobError>> {
        let gallery = self.gallery.clone();
        Box::pin(async move {
            let purged = gallery
                .purge_expired()
                .await
                .map_err(|e| JobError::Retryable(e.to_string()))?;
            if purged > 0 {
                tracing::info!(purged, "purged images from the trash");
            }
            Ok(JobOutput::message(&pb::PurgeTrashResult {
                purged_count: purged,
            }))
        })
    }
}
