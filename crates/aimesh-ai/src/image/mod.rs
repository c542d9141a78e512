//! Image engines behind small traits, so the gallery depends on capabilities, not on an
//! implementation:
//!
//! - [`Upscaler`]: super-resolution. [`Esrgan`] runs pinned ESRGAN (idealo RDN) weights of
//!   UpscalerJS's npm packages on candle, tile by tile: `psnr-small` of
//!   `@upscalerjs/esrgan-legacy` by default, `@upscalerjs/esrgan-slim` as the option.
//! - [`ImageGenerator`]: text-to-image. [`StableDiffusion`] runs Stable Diffusion 1.5 / 2.1 /
//!   Turbo weights a user provides (`AIMESH_IMAGE_MODEL_DIR`), with a progress report per
//!   denoising step and cancellation between steps.
//! - [`BackgroundRemover`]: foreground matting. [`Matting`] runs a segmentation network
//!   (IS-Net, U²-Net) in ONNX that a user provides (`AIMESH_MATTING_MODEL`); none ships.
//!
//! Every engine runs on a dedicated inference thread fed by a bounded queue (see
//! [`crate::engine`]); a call is a future that resolves when the thread has answered.
//! Long calls take a [`RunControl`]: a progress callback (called on the inference thread,
//! so it must be quick: hand the value to a channel) and a cancellation token checked
//! between units of work (denoising steps, tiles). A call whose future is dropped is
//! abandoned at the next such check too.

pub mod diffusion;
pub mod esrgan;
pub mod matting;
mod tfjs;
mod tiles;

use std::sync::Arc;

use futures::future::BoxFuture;
pub use image::{RgbImage, RgbaImage};
use tokio_util::sync::CancellationToken;

pub use self::diffusion::{DiffusionLoadError, DiffusionOptions, StableDiffusion};
pub use self::esrgan::{Esrgan, EsrganOptions};
pub use self::matting::{Matting, MattingOptions, Normalization};
use crate::engine::EngineError;

/// How far a long call has come: `done` of `total` units (denoising steps, tiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Units finished.
    pub done: u32,
    /// Units in all.
    pub total: u32,
}

impl Progress {
    /// Percent done, 0 to 100.
    pub fn percent(&self) -> i32 {
        if self.total == 0 {
            return 100;
        }
        (u64::from(self.done.min(self.total)) * 100 / u64::from(self.total)) as i32
    }
}

/// A progress callback. It runs on the inference thread: keep it short (send to a channel).
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// What a caller may do to a long call while it runs.
#[derive(Clone, Default)]
pub struct RunControl {
    /// Called after every unit of work.
    pub progress: Option<ProgressFn>,
    /// Cancelled: the call stops at the next unit boundary with [`EngineError::Cancelled`].
    pub cancel: Option<CancellationToken>,
}

impl std::fmt::Debug for RunControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunControl")
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl RunControl {
    /// A control reporting to `progress` and stopping on `cancel`.
    pub fn new(
        progress: impl Fn(Progress) + Send + Sync + 'static,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            progress: Some(Arc::new(progress)),
            cancel: Some(cancel),
        }
    }

    pub(crate) fn report(&self, done: u32, total: u32) {
        if let Some(progress) = &self.progress {
            progress(Progress { done, total });
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
    }
}

/// A super-resolution engine. Object-safe: services hold an `Arc<dyn Upscaler>`.
pub trait Upscaler: Send + Sync + 'static {
    /// Whether the engine is serving (false while its inference thread restarts after a
    /// panic, and once it has stopped for good).
    fn is_alive(&self) -> bool {
        true
    }
    /// The engine's name, e.g. `esrgan-psnr-small`.
    fn name(&self) -> &'static str;
    /// The scale factors it offers, e.g. `[2, 4]`.
    fn scales(&self) -> &[u32];
    /// The largest input it accepts, in pixels (width × height).
    fn max_input_pixels(&self) -> u64;
    /// Upscales `image` by `scale` (one of [`Upscaler::scales`]): an image `scale` times as
    /// wide and as high. Progress counts tiles. An unsupported scale is refused with
    /// [`EngineError::InvalidInput`] naming `scale`, an empty or too large image naming
    /// `image`.
    fn upscale(
        &self,
        image: RgbImage,
        scale: u32,
        control: RunControl,
    ) -> BoxFuture<'static, Result<RgbImage, EngineError>>;
}

/// A text-to-image request. Unset fields take the model's defaults ([`GenerationDefaults`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationRequest {
    /// What to draw.
    pub prompt: String,
    /// What to steer away from (used only with classifier-free guidance, scale > 1).
    pub negative_prompt: String,
    /// Width in pixels, a multiple of [`GenerationDefaults::size_multiple`].
    pub width: Option<u32>,
    /// Height in pixels, a multiple of [`GenerationDefaults::size_multiple`].
    pub height: Option<u32>,
    /// Denoising steps, 1 to [`GenerationDefaults::max_steps`].
    pub steps: Option<u32>,
    /// Classifier-free guidance scale, 0 to 30; 1 or less turns guidance off (one UNet pass
    /// per step instead of two).
    pub guidance_scale: Option<f64>,
    /// Seed of the initial noise: the same request with the same seed gives the same image.
    /// Unset: a random seed.
    pub seed: Option<u64>,
}

/// What a text-to-image model does when a request leaves a parameter unset, and its limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerationDefaults {
    /// Default width and height.
    pub width: u32,
    /// Default height.
    pub height: u32,
    /// Default steps.
    pub steps: u32,
    /// Default guidance scale.
    pub guidance_scale: f64,
    /// Most steps a request may ask for.
    pub max_steps: u32,
    /// Largest width or height.
    pub max_side: u32,
    /// Width and height must be multiples of this.
    pub size_multiple: u32,
}

/// A generated image and the seed that made it (the request's, or the one drawn for it).
#[derive(Debug, Clone)]
pub struct GeneratedImage {
    /// The image.
    pub image: RgbImage,
    /// The seed of its initial noise: the same request with this seed gives the same image.
    pub seed: u64,
}

/// A text-to-image engine. Object-safe: services hold an `Arc<dyn ImageGenerator>`.
pub trait ImageGenerator: Send + Sync + 'static {
    /// Whether the engine is serving.
    fn is_alive(&self) -> bool {
        true
    }
    /// The engine's name, e.g. `stable-diffusion`.
    fn name(&self) -> &'static str;
    /// The loaded model, e.g. `sd-turbo` (its directory's name).
    fn model(&self) -> &str;
    /// Defaults and limits of the loaded model.
    fn defaults(&self) -> GenerationDefaults;
    /// Generates one image. Progress counts denoising steps; cancellation is honoured between
    /// steps. A bad parameter is refused with [`EngineError::InvalidInput`] naming it
    /// (`prompt`, `width`, `height`, `steps`, `guidance_scale`).
    fn generate(
        &self,
        request: GenerationRequest,
        control: RunControl,
    ) -> BoxFuture<'static, Result<GeneratedImage, EngineError>>;
}

/// A background-removal engine. Object-safe: services hold an `Arc<dyn BackgroundRemover>`.
pub trait BackgroundRemover: Send + Sync + 'static {
    /// Whether the engine is serving.
    fn is_alive(&self) -> bool {
        true
    }
    /// The engine's name.
    fn name(&self) -> &'static str;
    /// Returns `image` with an alpha channel: the foreground opaque, the background
    /// transparent, soft at the edges.
    fn remove_background(
        &self,
        image: RgbImage,
        control: RunControl,
    ) -> BoxFuture<'static, Result<RgbaImage, EngineError>>;
}

/// Peak signal-to-noise ratio of `b` against `a` over all channels, in dB (infinite when
/// identical). Both must have the same size.
pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(
        a.dimensions(),
        b.dimensions(),
        "psnr of images of different sizes"
    );
    let sum: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum();
    let mse = sum / a.as_raw().len().max(1) as f64;
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// Mean structural similarity (SSIM) of `b` against `a` on luma, with 8×8 windows at a
/// stride of 4 (the usual constants K1 = 0.01, K2 = 0.03). 1 means identical.
pub fn ssim(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(
        a.dimensions(),
        b.dimensions(),
        "ssim of images of different sizes"
    );
    let luma = |image: &RgbImage| -> Vec<f64> {
        image
            .pixels()
            .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
            .collect()
    };
    let (x, y) = (luma(a), luma(b));
    let (width, height) = (a.width() as usize, a.height() as usize);
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    const WINDOW: usize = 8;
    let mut total = 0.0;
    let mut windows = 0usize;
    let mut top = 0;
    while top + WINDOW <= height {
        let mut left = 0;
        while left + WINDOW <= width {
            let (mut mx, mut my, mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for row in top..top + WINDOW {
                for col in left..left + WINDOW {
                    let (p, q) = (x[row * width + col], y[row * width + col]);
                    mx += p;
                    my += q;
                    xx += p * p;
                    yy += q * q;
                    xy += p * q;
                }
            }
            let n = (WINDOW * WINDOW) as f64;
            let (mx, my) = (mx / n, my / n);
            let (vx, vy, cov) = (xx / n - mx * mx, yy / n - my * my, xy / n - mx * my);
            total += ((2.0 * mx * my + c1) * (2.0 * cov + c2))
                / ((mx * mx + my * my + c1) * (vx + vy + c2));
            windows += 1;
            left += WINDOW / 2;
        }
        top += WINDOW / 2;
    }
    if windows == 0 {
        1.0
    } else {
        total / windows as f64
    }
}

/// A deterministic photo-like test image (smooth lighting, hard-edged shapes, fine stripes,
/// a little grain), the same for a given size and seed on every machine: the quality tests
/// and benchmarks of the image engines use it.
pub fn photo_like(width: u32, height: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let s = seed as f32;
        let mut rgb = [
            120.0 + 80.0 * (fx * 3.1 + s).sin() * (fy * 2.3).cos(),
            110.0 + 70.0 * (fy * 4.0 + s * 0.7).sin(),
            100.0 + 60.0 * ((fx + fy) * 2.7 + s * 1.3).cos(),
        ];
        // A disc and a rectangle with hard edges.
        let (dx, dy) = (fx - 0.35 - 0.1 * (s * 0.9).sin(), fy - 0.45);
        if dx * dx + dy * dy < 0.04 {
            rgb = [230.0, 200.0 - 100.0 * fy, 60.0];
        }
        if (0.6..0.85).contains(&fx) && (0.15..0.5).contains(&fy) {
            rgb = [40.0, 60.0 + 120.0 * fx, 160.0];
        }
        // Fine stripes (a fence, text-like detail) in one band.
        if (0.65..0.8).contains(&fy) && ((x / 3) % 2 == 0) {
            rgb = rgb.map(|v| v * 0.55);
        }
        // Grain.
        let mut h =
            x.wrapping_mul(374761393) ^ y.wrapping_mul(668265263) ^ seed.wrapping_mul(2246822519);
        h = (h ^ (h >> 13)).wrapping_mul(1274126177);
        let grain = ((h >> 24) as f32 / 255.0 - 0.5) * 6.0;
        image::Rgb(rgb.map(|v| (v + grain).clamp(0.0, 255.0) as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_images_score_perfectly_and_noise_lowers_the_scores() {
        let a = RgbImage::from_fn(32, 32, |x, y| {
            image::Rgb([(x * 8) as u8, (y * 8) as u8, 90])
        });
        assert!(psnr(&a, &a).is_infinite());
        assert!((ssim(&a, &a) - 1.0).abs() < 1e-9);
        let b = RgbImage::from_fn(32, 32, |x, y| {
            let p = a.get_pixel(x, y);
            let n = if (x + y) % 2 == 0 { 10 } else { 0 };
            image::Rgb([p[0].saturating_add(n), p[1], p[2]])
        });
        let p = psnr(&a, &b);
        assert!(p > 20.0 && p < 50.0, "{p}");
        assert!(ssim(&a, &b) < 1.0);
        assert_eq!(Progress { done: 1, total: 4 }.percent(), 25);
    }
}
