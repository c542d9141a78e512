//! `aimesh-bench upscale`: ESRGAN super-resolution (×2 and ×4) on deterministic photo-like
//! images: seconds per input megapixel, and how close the result comes to the original
//! (PSNR, SSIM) against Lanczos3 resizing of the same downscaled image.

use std::{path::PathBuf, time::Instant};

use aimesh_ai::image::{Esrgan, EsrganOptions, RunControl, Upscaler, photo_like, psnr, ssim};
use anyhow::Context;
use image::imageops::{self, FilterType};

/// Options of the upscale benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// The models directory holding the pinned esrgan-slim.
    #[arg(long, env = "AIMESH_MODELS_DIR")]
    models_dir: PathBuf,
    /// Another RDN model directory with the same x2/ and x4/ layout (e.g. the esrgan-medium
    /// package's `models/`), run instead of the pinned one, unverified.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Side of the original images, in pixels (inputs are this divided by the scale).
    #[arg(long, default_value_t = 768)]
    size: u32,
    /// Images per scale.
    #[arg(long, default_value_t = 3)]
    images: u32,
    /// Tile side in input pixels.
    #[arg(long, default_value_t = 128)]
    tile: u32,
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let engine_options = EsrganOptions {
        tile: options.tile,
        ..EsrganOptions::default()
    };
    let engine = match &options.model_dir {
        Some(dir) => Esrgan::load_dir(dir, engine_options),
        None => Esrgan::load(&options.models_dir, engine_options),
    }
    .context("loading the upscaler")?;
    let name = options
        .model_dir
        .as_ref()
        .map_or_else(|| "esrgan-slim".to_owned(), |dir| dir.display().to_string());
    println!(
        "{name}: {n} photo-like {size}×{size} originals per scale, tile {tile}, {cores} cores",
        n = options.images,
        size = options.size,
        tile = options.tile,
        cores = std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    for scale in [2u32, 4] {
        let side = options.size / scale * scale;
        let (mut ours, mut lanczos) = ((0.0, 0.0), (0.0, 0.0));
        let (mut input_pixels, mut seconds) = (0.0, 0.0);
        for seed in 0..options.images {
            let original = photo_like(side, side, seed);
            let small = imageops::resize(
                &original,
                side / scale,
                side / scale,
                FilterType::CatmullRom,
            );
            let started = Instant::now();
            let restored = engine
                .upscale(small.clone(), scale, RunControl::default())
                .await?;
            seconds += started.elapsed().as_secs_f64();
            input_pixels += f64::from(small.width() * small.height());
            let baseline = imageops::resize(&small, side, side, FilterType::Lanczos3);
            let n = f64::from(options.images);
            ours.0 += psnr(&original, &restored) / n;
            ours.1 += ssim(&original, &restored) / n;
            lanczos.0 += psnr(&original, &baseline) / n;
            lanczos.1 += ssim(&original, &baseline) / n;
        }
        println!(
            "  ×{scale}: {:.2} s per input megapixel ({:.2} s per output megapixel); \
             PSNR {:.2} dB vs Lanczos3 {:.2} dB; SSIM {:.4} vs {:.4}",
            seconds / (input_pixels / 1e6),
            seconds / (input_pixels * f64::from(scale * scale) / 1e6),
            ours.0,
            lanczos.0,
            ours.1,
            lanczos.1,
        );
    }
    Ok(())
}
