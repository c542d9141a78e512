//! The engines behind the gallery's AI operations, as capabilities: each operation kind maps
//! to one [`Capability`], which an [`ImageEngine`] serves or not. The gallery knows engines
//! only through this trait; inference crates implement it (on their own threads), and the
//! composition root hands the loaded ones to [`ImageEngines`]. An operation whose capability
//! has no engine here is refused before any job is queued, with the reason and the fix.

use std::{collections::HashMap, fmt, sync::Arc};

use futures::future::BoxFuture;
use image::DynamicImage;
use tokio_util::sync::CancellationToken;

use crate::domain::Operation;

/// What an engine can do for the gallery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Enhancement and style filters, built in (always serving).
    Edit,
    /// Super-resolution.
    Upscale,
    /// Background removal (a foreground matte as alpha).
    RemoveBackground,
    /// Text-to-image generation.
    GenerateImage,
}

impl Capability {
    /// Every capability backed by an external engine.
    pub const ENGINES: [Capability; 3] = [
        Capability::Upscale,
        Capability::RemoveBackground,
        Capability::GenerateImage,
    ];

    /// The capability an operation needs.
    pub fn of(operation: &Operation) -> Self {
        match operation {
            Operation::Enhance { .. } | Operation::Style { .. } => Capability::Edit,
            Operation::Upscale { .. } => Capability::Upscale,
            Operation::RemoveBackground => Capability::RemoveBackground,
            Operation::Generate { .. } => Capability::GenerateImage,
        }
    }

    /// The name in messages and health entries.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Edit => "image-edit",
            Capability::Upscale => "image-upscale",
            Capability::RemoveBackground => "image-background-removal",
            Capability::GenerateImage => "image-generation",
        }
    }

    /// The job kind of operations needing this capability: a worker claims a kind only when
    /// it has the engine.
    pub fn job_kind(self) -> &'static str {
        match self {
            Capability::Edit => "gallery.edit",
            Capability::Upscale => "gallery.upscale",
            Capability::RemoveBackground => "gallery.remove_background",
            Capability::GenerateImage => "gallery.generate",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an engine is asked to do.
#[derive(Debug, Clone)]
pub enum EngineRequest {
    /// Upscale `image` by `factor`.
    Upscale {
        /// The source.
        image: DynamicImage,
        /// 2 to 4.
        factor: u32,
    },
    /// Remove `image`'s background.
    RemoveBackground {
        /// The source.
        image: DynamicImage,
    },
    /// Draw `prompt`.
    Generate {
        /// The prompt.
        prompt: String,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Seed of the engine's randomness.
        seed: u64,
    },
}

/// A progress report: `done` of `total` units of work (tiles, denoising steps).
pub type ProgressFn = Arc<dyn Fn(u32, u32) + Send + Sync>;

/// What the caller of a long engine call may do while it runs: follow its progress (the
/// callback may run on the engine's thread: it must be quick) and stop it (the engine checks
/// the token between units of work).
#[derive(Clone)]
pub struct EngineControl {
    /// Called after each unit of work.
    pub progress: ProgressFn,
    /// Cancelled when the caller gives up.
    pub cancel: CancellationToken,
}

impl fmt::Debug for EngineControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineControl")
            .field("cancelled", &self.cancel.is_cancelled())
            .finish()
    }
}

/// How an engine failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The engine is down or overloaded: worth another attempt.
    #[error("{0}")]
    Unavailable(String),
    /// The request cannot succeed (e.g. an input it refuses).
    #[error("{0}")]
    Refused(String),
}

/// An engine serving one gallery capability.
pub trait ImageEngine: Send + Sync + 'static {
    /// The engine's name, reported on the images it makes (e.g. "esrgan-psnr-small").
    fn name(&self) -> &str;
    /// The capability it serves.
    fn capability(&self) -> Capability;
    /// Runs a request of its capability, off the async runtime, reporting progress and
    /// stopping when `control.cancel` fires.
    fn run(
        &self,
        request: EngineRequest,
        control: EngineControl,
    ) -> BoxFuture<'static, Result<DynamicImage, EngineError>>;
}

/// The engines of one process, by capability, with why the missing ones are missing.
#[derive(Clone, Default)]
pub struct ImageEngines {
    engines: HashMap<Capability, Arc<dyn ImageEngine>>,
    missing: HashMap<Capability, String>,
}

impl fmt::Debug for ImageEngines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut serving: Vec<_> = self.engines.keys().map(|c| c.as_str()).collect();
        serving.sort_unstable();
        f.debug_struct("ImageEngines")
            .field("serving", &serving)
            .finish()
    }
}

impl ImageEngines {
    /// No engines: only the built-in edits serve.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds an engine (replacing one of the same capability).
    pub fn with(mut self, engine: Arc<dyn ImageEngine>) -> Self {
        self.missing.remove(&engine.capability());
        self.engines.insert(engine.capability(), engine);
        self
    }

    /// Records why a capability has no engine here (shown to callers with the fix).
    pub fn without(mut self, capability: Capability, reason: impl Into<String>) -> Self {
        if !self.engines.contains_key(&capability) {
            self.missing.insert(capability, reason.into());
        }
        self
    }

    /// Returns the engine of a capability, or why there is none.
    pub fn get(&self, capability: Capability) -> Result<Arc<dyn ImageEngine>, String> {
        if let Some(engine) = self.engines.get(&capability) {
            return Ok(engine.clone());
        }
        let reason = self.missing.get(&capability).cloned().unwrap_or_else(|| {
            "no engine for it is loaded by this deployment; install one and enable it in \
             AIMESH_ENGINES (see the models service's ListEngines)"
                .into()
        });
        Err(format!("capability not serving: {capability}: {reason}"))
    }

    /// Whether a capability serves here (the built-in edits always do).
    pub fn serves(&self, capability: Capability) -> bool {
        capability == Capability::Edit || self.engines.contains_key(&capability)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test fake: "upscales" by repeating pixels, to exercise the registry only.
    struct FakeUpscaler;

    impl ImageEngine for FakeUpscaler {
        fn name(&self) -> &str {
            "fake"
        }
        fn capability(&self) -> Capability {
            Capability::Upscale
        }
        fn run(
            &self,
            request: EngineRequest,
            _control: EngineControl,
        ) -> BoxFuture<'static, Result<DynamicImage, EngineError>> {
            Box::pin(async move {
                match request {
                    EngineRequest::Upscale { image, factor } => Ok(image.resize_exact(
                        image.width() * factor,
                        image.height() * factor,
                        image::imageops::FilterType::Nearest,
                    )),
                    _ => Err(EngineError::Refused("only upscaling".into())),
                }
            })
        }
    }

    #[test]
    fn missing_capabilities_say_why_and_how_to_fix() {
        let engines =
            ImageEngines::none().without(Capability::GenerateImage, "its model is not installed");
        let error = engines
            .get(Capability::GenerateImage)
            .err()
            .unwrap_or_default();
        assert!(
            error.starts_with("capability not serving: image-generation"),
            "{error}"
        );
        assert!(error.contains("not installed"));
        assert!(engines.get(Capability::Upscale).is_err());
        assert!(engines.serves(Capability::Edit));
        let engines = engines.with(Arc::new(FakeUpscaler));
        assert!(engines.serves(Capability::Upscale));
        assert_eq!(
            engines
                .get(Capability::Upscale)
                .map(|e| e.name().to_owned()),
            Ok("fake".to_owned())
        );
    }

    #[test]
    fn operations_map_to_capabilities_and_job_kinds() {
        assert_eq!(
            Capability::of(&Operation::Upscale { factor: 2 }).job_kind(),
            "gallery.upscale"
        );
        assert_eq!(
            Capability::of(&Operation::Enhance {
                sharpen_amount: 1.0
            }),
            Capability::Edit
        );
    }
}
