//! The gallery's AI operations served by the inference engines: adapters from the gallery's
//! [`ImageEngine`] capability trait to `aimesh_ai`'s [`Upscaler`], [`ImageGenerator`] and
//! [`BackgroundRemover`], built from the engines this process loaded. A capability whose
//! engine is missing keeps the loader's reason (and its fix) for the gallery to answer with.

use std::sync::Arc;

use aimesh_ai::{
    engine::EngineError as InferenceError,
    image::{BackgroundRemover, GenerationRequest, ImageGenerator, Progress, RunControl, Upscaler},
};
use aimesh_gallery::{
    Capability, EngineControl, EngineError, EngineRequest, ImageEngine, ImageEngines, imaging,
};
use aimesh_models::Engines;
use futures::{FutureExt, future::BoxFuture};
use image::{DynamicImage, GenericImageView};

/// The gallery's engines from the inference engines loaded here.
pub(crate) fn image_engines(engines: &Engines) -> ImageEngines {
    let mut gallery = ImageEngines::none();
    gallery = match &engines.upscaler {
        Ok(upscaler) => gallery.with(Arc::new(UpscaleEngine(upscaler.clone()))),
        Err(unavailable) => gallery.without(Capability::Upscale, unavailable.detail()),
    };
    gallery = match &engines.image_generator {
        Ok(generator) => gallery.with(Arc::new(GenerateEngine(generator.clone()))),
        Err(unavailable) => gallery.without(Capability::GenerateImage, unavailable.detail()),
    };
    match &engines.background_remover {
        Ok(remover) => gallery.with(Arc::new(MattingEngine(remover.clone()))),
        Err(unavailable) => gallery.without(Capability::RemoveBackground, unavailable.detail()),
    }
}

/// The inference engines' progress and cancellation, from the gallery's.
fn run_control(control: EngineControl) -> RunControl {
    let progress = control.progress;
    RunControl::new(
        move |Progress { done, total }| progress(done, total),
        control.cancel,
    )
}

/// Busy or stopped engines are worth another attempt; refused input and cancellation are not.
fn engine_error(error: InferenceError) -> EngineError {
    match error {
        InferenceError::Busy { .. } | InferenceError::Stopped { .. } => {
            EngineError::Unavailable(error.to_string())
        }
        InferenceError::InvalidInput { .. }
        | InferenceError::Failed { .. }
        | InferenceError::Cancelled { .. } => EngineError::Refused(error.to_string()),
    }
}

fn mismatch(engine: &str, request: &EngineRequest) -> EngineError {
    EngineError::Refused(format!("{engine} cannot serve {request:?}"))
}

/// Super-resolution. A factor the network does not offer (×3 on a ×2/×4 model) runs at the
/// next larger scale and is brought to size with Lanczos; transparency is upscaled with
/// Lanczos beside the network's colour.
struct UpscaleEngine(Arc<dyn Upscaler>);

/// The network scale that serves `factor`: itself when offered, else the smallest larger one.
fn scale_for(scales: &[u32], factor: u32) -> Option<u32> {
    if scales.contains(&factor) {
        return Some(factor);
    }
    scales.iter().copied().filter(|&s| s > factor).min()
}

impl ImageEngine for UpscaleEngine {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn capability(&self) -> Capability {
        Capability::Upscale
    }

    fn run(
        &self,
        request: EngineRequest,
        control: EngineControl,
    ) -> BoxFuture<'static, Result<DynamicImage, EngineError>> {
        let upscaler = self.0.clone();
        async move {
            let EngineRequest::Upscale { image, factor } = request else {
                return Err(mismatch(upscaler.name(), &request));
            };
            let Some(scale) = scale_for(upscaler.scales(), factor) else {
                return Err(EngineError::Refused(format!(
                    "factor: {} offers {:?}, not ×{factor}",
                    upscaler.name(),
                    upscaler.scales()
                )));
            };
            let (width, height) = image.dimensions();
            if u64::from(width) * u64::from(height) > upscaler.max_input_pixels() {
                return Err(EngineError::Refused(format!(
                    "image: {width}×{height} is larger than {} accepts ({} pixels at most)",
                    upscaler.name(),
                    upscaler.max_input_pixels()
                )));
            }
            let alpha = image.color().has_alpha().then(|| image.to_rgba8());
            let colour = upscaler
                .upscale(image.to_rgb8(), scale, run_control(control))
                .await
                .map_err(engine_error)?;
            let (target_w, target_h) = (width * factor, height * factor);
            let mut out = DynamicImage::ImageRgb8(colour);
            if out.dimensions() != (target_w, target_h) {
                out = resize(out, target_w, target_h).await?;
            }
            let Some(alpha) = alpha else {
                return Ok(out);
            };
            // The matte follows with Lanczos: the network sees colour only.
            let alpha = resize(DynamicImage::ImageRgba8(alpha), target_w, target_h).await?;
            let mut rgba = out.to_rgba8();
            for (pixel, source) in rgba.pixels_mut().zip(alpha.to_rgba8().pixels()) {
                pixel[3] = source[3];
            }
            Ok(DynamicImage::ImageRgba8(rgba))
        }
        .boxed()
    }
}

/// Resizes off the async runtime.
async fn resize(image: DynamicImage, width: u32, height: u32) -> Result<DynamicImage, EngineError> {
    tokio::task::spawn_blocking(move || imaging::resize(&image, width, height))
        .await
        .map_err(|e| EngineError::Unavailable(format!("resizing stopped: {e}")))?
        .map_err(EngineError::Refused)
}

/// Text-to-image.
struct GenerateEngine(Arc<dyn ImageGenerator>);

impl ImageEngine for GenerateEngine {
    fn name(&self) -> &str {
        self.0.model()
    }

    fn capability(&self) -> Capability {
        Capability::GenerateImage
    }

    fn run(
        &self,
        request: EngineRequest,
        control: EngineControl,
    ) -> BoxFuture<'static, Result<DynamicImage, EngineError>> {
        let EngineRequest::Generate {
            prompt,
            width,
            height,
            seed,
        } = request
        else {
            return futures::future::ready(Err(mismatch(self.name(), &request))).boxed();
        };
        let request = GenerationRequest {
            prompt,
            width: Some(width),
            height: Some(height),
            seed: Some(seed),
            ..GenerationRequest::default()
        };
        self.0
            .generate(request, run_control(control))
            .map(|generated| {
                generated
                    .map(|generated| DynamicImage::ImageRgb8(generated.image))
                    .map_err(engine_error)
            })
            .boxed()
    }
}

/// Background removal: the matte as the alpha channel.
struct MattingEngine(Arc<dyn BackgroundRemover>);

impl ImageEngine for MattingEngine {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn capability(&self) -> Capability {
        Capability::RemoveBackground
    }

    fn run(
        &self,
        request: EngineRequest,
        control: EngineControl,
    ) -> BoxFuture<'static, Result<DynamicImage, EngineError>> {
        let EngineRequest::RemoveBackground { image } = request else {
            return futures::future::ready(Err(mismatch(self.name(), &request))).boxed();
        };
        self.0
            .remove_background(image.to_rgb8(), run_control(control))
            .map(|cut| cut.map(DynamicImage::ImageRgba8).map_err(engine_error))
            .boxed()
    }
}
