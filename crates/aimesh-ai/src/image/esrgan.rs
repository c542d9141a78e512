//! ESRGAN super-resolution on candle: the idealo ISR "RDN" networks (residual dense blocks:
//! convolutions, concatenations, additions, then upsampling) trained on DIV2K, as the npm
//! package `@upscalerjs/esrgan-slim` ships them (TF.js layers models, float32), ×2 and ×4.
//!
//! The network is fully convolutional; images of any size are run tile by tile (see
//! [`super::tiles`]) with a margin of the network's receptive radius, so memory stays bounded
//! and seams are exact. Pixel values go in and come out on the 0-255 scale the models were
//! trained on.

use std::{
    path::{Path, PathBuf},
    sync::mpsc::Receiver,
};

use candle_core::Device;
use futures::future::BoxFuture;
use image::RgbImage;
use tokio::sync::oneshot;

use super::{RunControl, Upscaler, tfjs::Graph, tiles};
use crate::{
    engine::{EngineError, EngineQueue},
    models::{self, ModelError},
};

/// The catalog id of the model this engine runs.
pub const MODEL_ID: &str = "esrgan-slim";
/// The engine's name.
const ENGINE: &str = "esrgan-slim";
/// The scales the pinned model offers, and the directory of each inside the model's.
const SCALES: [u32; 2] = [2, 4];
/// The RDN models take and give pixel values on the 0-255 scale.
const INPUT_SCALE: f32 = 1.0;

/// How [`Esrgan`] bounds its work.
#[derive(Debug, Clone)]
pub struct EsrganOptions {
    /// Tile core side, in input pixels. Memory of a run grows with its square.
    pub tile: u32,
    /// Requests that may wait for the inference thread; more are refused with
    /// [`EngineError::Busy`]. At least 1.
    pub queue_capacity: usize,
    /// Largest input in pixels (width × height).
    pub max_input_pixels: u64,
}

impl Default for EsrganOptions {
    fn default() -> Self {
        Self {
            tile: 128,
            queue_capacity: 8,
            max_input_pixels: 1 << 20,
        }
    }
}

/// The ESRGAN engine: one inference thread serving both scales.
#[derive(Debug)]
pub struct Esrgan {
    queue: EngineQueue<Request>,
    max_input_pixels: u64,
}

#[derive(Debug)]
struct Request {
    image: RgbImage,
    scale: u32,
    control: RunControl,
    reply: oneshot::Sender<Result<RgbImage, EngineError>>,
}

impl Esrgan {
    /// Verifies the pinned `esrgan-slim` files in `models_dir`, loads both scales and starts
    /// the inference thread. Blocking.
    pub fn load(models_dir: &Path, options: EsrganOptions) -> Result<Self, ModelError> {
        let spec = models::spec(MODEL_ID).expect("esrgan-slim is in the catalog");
        let dir = spec.verify(models_dir)?;
        Self::load_dir(&dir, options)
    }

    /// Loads the `x2/` and `x4/` TF.js models of `dir` without checking them against the
    /// catalog (for other RDN weights of the same layout, e.g. `esrgan-medium`). Blocking.
    pub fn load_dir(dir: &Path, options: EsrganOptions) -> Result<Self, ModelError> {
        let device = Device::Cpu;
        let mut graphs = Vec::new();
        for scale in SCALES {
            let path: PathBuf = dir.join(format!("x{scale}")).join("model.json");
            let graph = Graph::load(&path, &device)?;
            if graph.scale != scale as usize {
                return Err(ModelError::invalid(
                    &path,
                    format!("the network upscales ×{}, expected ×{scale}", graph.scale),
                ));
            }
            graphs.push((scale, graph));
        }
        let tile = options.tile.max(16);
        let queue = EngineQueue::spawn(
            ENGINE,
            "esrgan",
            options.queue_capacity,
            move |requests: &Receiver<Request>| {
                while let Ok(request) = requests.recv() {
                    let Request {
                        image,
                        scale,
                        control,
                        reply,
                    } = request;
                    if reply.is_closed() {
                        continue;
                    }
                    let Some((_, graph)) = graphs.iter().find(|(s, _)| *s == scale) else {
                        let _ = reply.send(Err(EngineError::invalid("scale", "unsupported")));
                        continue;
                    };
                    let tiling = tiles::Tiling {
                        tile,
                        margin: graph.radius as u32,
                        scale,
                        input_scale: INPUT_SCALE,
                    };
                    let result = tiles::run(
                        &image,
                        tiling,
                        &device,
                        &control,
                        &|| reply.is_closed(),
                        &|input| graph.forward(input),
                    )
                    .map_err(|error| match error {
                        tiles::TileError::Cancelled => EngineError::Cancelled { engine: ENGINE },
                        tiles::TileError::Model(error) => EngineError::failed(ENGINE, error),
                    });
                    let _ = reply.send(result);
                }
            },
        )
        .map_err(|error| {
            ModelError::invalid(dir, format!("cannot start the inference thread: {error}"))
        })?;
        Ok(Self {
            queue,
            max_input_pixels: options.max_input_pixels,
        })
    }
}

impl Upscaler for Esrgan {
    fn is_alive(&self) -> bool {
        self.queue.is_alive()
    }

    fn name(&self) -> &'static str {
        ENGINE
    }

    fn scales(&self) -> &[u32] {
        &SCALES
    }

    fn max_input_pixels(&self) -> u64 {
        self.max_input_pixels
    }

    fn upscale(
        &self,
        image: RgbImage,
        scale: u32,
        control: RunControl,
    ) -> BoxFuture<'static, Result<RgbImage, EngineError>> {
        let checked = (|| {
            if !SCALES.contains(&scale) {
                return Err(EngineError::invalid(
                    "scale",
                    format!("×{scale} is not offered; use one of ×2, ×4"),
                ));
            }
            let pixels = u64::from(image.width()) * u64::from(image.height());
            if pixels == 0 {
                return Err(EngineError::invalid("image", "the image is empty"));
            }
            if pixels > self.max_input_pixels {
                return Err(EngineError::invalid(
                    "image",
                    format!(
                        "{}×{} is {pixels} pixels, at most {} may be upscaled",
                        image.width(),
                        image.height(),
                        self.max_input_pixels
                    ),
                ));
            }
            let (reply, answer) = oneshot::channel();
            self.queue.submit(Request {
                image,
                scale,
                control,
                reply,
            })?;
            Ok(answer)
        })();
        Box::pin(async move {
            checked?
                .await
                .map_err(|_| EngineError::Stopped { engine: ENGINE })?
        })
    }
}

#[cfg(test)]
mod tests;
