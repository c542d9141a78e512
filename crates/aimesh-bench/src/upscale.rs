//! `aimesh-bench upscale`: ESRGAN super-resolution (×2 and ×4) on deterministic photo-like
//! images, or on real photographs from a directory (`--photos`): seconds per input megapixel,
//! and how close the result comes to the original (PSNR, SSIM) against Lanczos3 resizing of
//! the same downscaled image.

use std::{path::PathBuf, time::Instant};

use aimesh_ai::image::{
    Esrgan, EsrganOptions, RunControl, Upscaler, esrgan, photo_like, psnr, ssim,
};
use anyhow::Context;
use image::imageops::{self, FilterType};

/// Options of the upscale benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// The models directory holding the pinned upscaling models.
    #[arg(long, env = "AIMESH_MODELS_DIR")]
    models_dir: PathBuf,
    /// The catalog's upscaling model to run.
    #[arg(long, default_value = esrgan::MODEL_ID,
          value_parser = clap::builder::PossibleValuesParser::new(esrgan::MODEL_IDS))]
    model: String,
    /// Another RDN model directory with an x2/ and optionally an x4/ network (e.g. the
    /// esrgan-medium package's `models/`), run instead of the pinned one, unverified.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Side of the original images, in pixels (inputs are this divided by the scale).
    #[arg(long, default_value_t = 768)]
    size: u32,
    /// Images per scale.
    #[arg(long, default_value_t = 3)]
    images: u32,
    /// A directory of photographs (PNG or JPEG) used as originals instead of the synthetic
    /// images (each cropped to a multiple of the scale; `--size` and `--images` are ignored).
    #[arg(long)]
    photos: Option<PathBuf>,
    /// Tile side in input pixels.
    #[arg(long, default_value_t = EsrganOptions::default().tile)]
    tile: u32,
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let engine_options = EsrganOptions {
        tile: options.tile,
        ..EsrganOptions::default()
    };
    let engine = match &options.model_dir {
        Some(dir) => Esrgan::load_dir(dir, engine_options),
        None => Esrgan::load_catalog(&options.models_dir, &options.model, engine_options),
    }
    .context("loading the upscaler")?;
    let name = options
        .model_dir
        .as_ref()
        .map_or_else(|| options.model.clone(), |dir| dir.display().to_string());
    let originals = match &options.photos {
        Some(dir) => photos(dir)?,
        None => (0..options.images)
            .map(|seed| photo_like(options.size, options.size, seed))
            .collect(),
    };
    let described = match &options.photos {
        Some(dir) => format!("{} photographs of {}", originals.len(), dir.display()),
        None => format!(
            "{} photo-like {size}×{size} originals",
            originals.len(),
            size = options.size
        ),
    };
    println!(
        "{name}: {described} per scale, tile {tile}, {cores} cores",
        tile = options.tile,
        cores = std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    for scale in [2u32, 4] {
        let (mut ours, mut lanczos) = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0));
        let (mut input_pixels, mut seconds) = (0.0, 0.0);
        for original in &originals {
            // Cropped to a multiple of the scale, so the round trip keeps the size.
            let (width, height) = (
                original.width() / scale * scale,
                original.height() / scale * scale,
            );
            let original = imageops::crop_imm(original, 0, 0, width, height).to_image();
            let small = imageops::resize(
                &original,
                width / scale,
                height / scale,
                FilterType::CatmullRom,
            );
            let started = Instant::now();
            let restored = engine
                .upscale(small.clone(), scale, RunControl::default())
                .await?;
            seconds += started.elapsed().as_secs_f64();
            input_pixels += f64::from(small.width() * small.height());
            let baseline = imageops::resize(&small, width, height, FilterType::Lanczos3);
            let n = originals.len() as f64;
            ours.0 += psnr(&original, &restored) / n;
            ours.1 += ssim(&original, &restored) / n;
            lanczos.0 += psnr(&original, &baseline) / n;
            lanczos.1 += ssim(&original, &baseline) / n;
            let detail = gradient_energy(&original);
            ours.2 += gradient_energy(&restored) / detail / n;
            lanczos.2 += gradient_energy(&baseline) / detail / n;
        }
        println!(
            "  ×{scale}: {:.2} s per input megapixel ({:.2} s per output megapixel); \
             PSNR {:.2} dB vs Lanczos3 {:.2} dB; SSIM {:.4} vs {:.4}; \
             detail kept {:.0}% vs {:.0}%",
            seconds / (input_pixels / 1e6),
            seconds / (input_pixels * f64::from(scale * scale) / 1e6),
            ours.0,
            lanczos.0,
            ours.1,
            lanczos.1,
            ours.2 * 100.0,
            lanczos.2 * 100.0,
        );
    }
    Ok(())
}

/// The PNG and JPEG images of `dir`, in name order, as RGB.
fn photos(dir: &std::path::Path) -> anyhow::Result<Vec<image::RgbImage>> {
    photo_paths(dir)?
        .iter()
        .map(|path| {
            Ok(image::open(path)
                .with_context(|| format!("decoding {}", path.display()))?
                .to_rgb8())
        })
        .collect()
}

/// The paths of the PNG and JPEG images of `dir`, in name order; an error when there are none.
pub(crate) fn photo_paths(dir: &std::path::Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|path| {
        path.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
    });
    paths.sort();
    anyhow::ensure!(
        !paths.is_empty(),
        "no PNG or JPEG images in {}",
        dir.display()
    );
    Ok(paths)
}

/// Mean gradient magnitude of the luma (central differences): how much fine detail an image
/// holds. A restored image's over its original's is the share of detail it brings back
/// (GAN-trained super-resolution aims at this rather than at PSNR).
fn gradient_energy(image: &image::RgbImage) -> f64 {
    let (width, height) = image.dimensions();
    let luma = |x: u32, y: u32| {
        let p = image.get_pixel(x, y);
        0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
    };
    let mut sum = 0.0;
    let mut count = 0u64;
    for y in 1..height.saturating_sub(1) {
        for x in 1..width.saturating_sub(1) {
            let gx = luma(x + 1, y) - luma(x - 1, y);
            let gy = luma(x, y + 1) - luma(x, y - 1);
            sum += (gx * gx + gy * gy).sqrt();
            count += 1;
        }
    }
    sum / count.max(1) as f64
}
