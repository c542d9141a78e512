//! ESRGAN super-resolution on candle: the idealo ISR "RDN" networks (residual dense blocks:
//! convolutions, concatenations, additions, then upsampling) trained on DIV2K, as UpscalerJS
//! ships them (TF.js layers models). The default is the PSNR-trained `psnr-small` ×2 network
//! of `@upscalerjs/esrgan-legacy` (×4 is its ×2 enlarged 2× more by Lanczos3), the one that
//! beats Lanczos resizing on photographs; `esrgan-slim` (`@upscalerjs/esrgan-slim`, native ×2
//! and ×4, faster, but not closer to the original than Lanczos) is the optional other.
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

/// The catalog id of the model [`Esrgan::load`] runs: the PSNR-trained RDN, which comes closer
/// to the original than Lanczos resizing does (see the tests).
pub const MODEL_ID: &str = "esrgan-psnr-small";
/// The catalog's upscaling models, the default first.
pub const MODEL_IDS: [&str; 2] = [MODEL_ID, "esrgan-slim"];
/// The scales the engine offers.
const SCALES: [u32; 2] = [2, 4];
/// The RDN models take and give pixel values on the 0-255 scale.
const INPUT_SCALE: f32 = 1.0;

/// How [`Esrgan`] bounds its work.
#[derive(Debug, Clone)]
pub struct EsrganOptions {
    /// Tile core side, in input pixels. Memory of a run grows with the square of the tile
    /// plus its margins, and so does the work: the margins are recomputed by every tile.
    /// At 256 (the default), psnr-small peaks at about 600 MB and runs 28 % faster than at
    /// 128 (400 MB); see the README's gallery figures.
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
            tile: 256,
            queue_capacity: 8,
            max_input_pixels: 1 << 20,
        }
    }
}

/// The ESRGAN engine: one inference thread serving both scales.
#[derive(Debug)]
pub struct Esrgan {
    name: &'static str,
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

/// How one scale is reached: a network (an index into the loaded ones), then its result
/// enlarged by `resize` with Lanczos3 (1: not at all).
#[derive(Debug)]
struct Route {
    scale: u32,
    graph: usize,
    resize: u32,
}

impl Esrgan {
    /// Verifies the pinned [`MODEL_ID`] files in `models_dir`, loads them and starts the
    /// inference thread. Blocking.
    pub fn load(models_dir: &Path, options: EsrganOptions) -> Result<Self, ModelError> {
        Self::load_catalog(models_dir, MODEL_ID, options)
    }

    /// Verifies the files of the catalog's upscaling model `id` (e.g. `esrgan-slim`) in
    /// `models_dir` and loads them as [`Esrgan::load_dir`] does. Blocking.
    pub fn load_catalog(
        models_dir: &Path,
        id: &str,
        options: EsrganOptions,
    ) -> Result<Self, ModelError> {
        let spec = models::spec(id)
            .filter(|spec| spec.capability == models::Capability::ImageUpscale)
            .ok_or_else(|| {
                ModelError::invalid(models_dir, format!("{id} is not an upscaling model"))
            })?;
        let dir = spec.verify(models_dir)?;
        Self::load_named(&dir, spec.id, options)
    }

    /// Loads the TF.js models of `dir` without checking them against the catalog: `x2/` (a
    /// ×2 network) and, when present, `x4/` (a ×4 network). Without `x4/`, ×4 is the ×2
    /// network's result enlarged 2× more with Lanczos3: on photographs that comes closer to
    /// the original than running the network twice (whose second pass sees an input unlike
    /// its training's) or Lanczos3 alone. For other RDN weights of this layout, e.g.
    /// `esrgan-medium`. Blocking.
    pub fn load_dir(dir: &Path, options: EsrganOptions) -> Result<Self, ModelError> {
        Self::load_named(dir, "esrgan", options)
    }

    fn load_named(
        dir: &Path,
        name: &'static str,
        options: EsrganOptions,
    ) -> Result<Self, ModelError> {
        let device = Device::Cpu;
        let mut graphs = Vec::new();
        for scale in SCALES {
            let path: PathBuf = dir.join(format!("x{scale}")).join("model.json");
            if scale != 2 && !path.exists() {
                continue;
            }
            let graph = Graph::load(&path, &device)?;
            if graph.scale != scale as usize {
                return Err(ModelError::invalid(
                    &path,
                    format!("the network upscales ×{}, expected ×{scale}", graph.scale),
                ));
            }
            graphs.push(graph);
        }
        let routes: Vec<Route> = SCALES
            .iter()
            .map(|&scale| {
                let native = graphs.iter().position(|g| g.scale == scale as usize);
                // Only ×2 is required: ×4 is then the ×2 network, and Lanczos3 for the rest.
                match native {
                    Some(graph) => Route {
                        scale,
                        graph,
                        resize: 1,
                    },
                    None => Route {
                        scale,
                        graph: 0,
                        resize: scale / 2,
                    },
                }
            })
            .collect();
        let tile = options.tile.max(16);
        let queue = EngineQueue::spawn(
            name,
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
                    let Some(route) = routes.iter().find(|r| r.scale == scale) else {
                        let _ = reply.send(Err(EngineError::invalid("scale", "unsupported")));
                        continue;
                    };
                    let result =
                        run_route(&graphs, route, &image, tile, &device, &control, &|| {
                            reply.is_closed()
                        })
                        .map_err(|error| match error {
                            tiles::TileError::Cancelled => EngineError::Cancelled { engine: name },
                            tiles::TileError::Model(error) => EngineError::failed(name, error),
                        });
                    let _ = reply.send(result);
                }
            },
        )
        .map_err(|error| {
            ModelError::invalid(dir, format!("cannot start the inference thread: {error}"))
        })?;
        Ok(Self {
            name,
            queue,
            max_input_pixels: options.max_input_pixels,
        })
    }
}

/// Runs the network of `route` tile by tile, then resizes the result as the route says.
fn run_route(
    graphs: &[Graph],
    route: &Route,
    image: &RgbImage,
    tile: u32,
    device: &Device,
    control: &RunControl,
    abandoned: &dyn Fn() -> bool,
) -> Result<RgbImage, tiles::TileError> {
    let graph = &graphs[route.graph];
    let tiling = tiles::Tiling {
        tile,
        margin: graph.radius as u32,
        scale: graph.scale as u32,
        input_scale: INPUT_SCALE,
    };
    let image = tiles::run(image, tiling, device, control, abandoned, &|input| {
        graph.forward(input)
    })?;
    if route.resize == 1 {
        return Ok(image);
    }
    let (width, height) = image.dimensions();
    Ok(image::imageops::resize(
        &image,
        width * route.resize,
        height * route.resize,
        image::imageops::FilterType::Lanczos3,
    ))
}

impl Upscaler for Esrgan {
    fn is_alive(&self) -> bool {
        self.queue.is_alive()
    }

    fn name(&self) -> &'static str {
        self.name
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
        let name = self.name;
        Box::pin(async move {
            checked?
                .await
                .map_err(|_| EngineError::Stopped { engine: name })?
        })
    }
}

#[cfg(test)]
mod tests;
