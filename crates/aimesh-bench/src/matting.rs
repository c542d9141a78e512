//! `aimesh-bench matting`: background removal with a user's ONNX segmentation model on the
//! photographs of a directory. For each photograph it writes the network-size input it fed
//! (`NAME.input.png`) and the mask it got (`NAME.mask.png`) to `--out`, and prints the seconds
//! per image; `scripts/bench-matting` runs onnxruntime on the same inputs beside it and
//! compares the masks.

use std::{path::PathBuf, time::Instant};

use aimesh_ai::image::{BackgroundRemover, Matting, MattingOptions, Normalization, RunControl};
use anyhow::Context;
use image::imageops::{self, FilterType};

/// Options of the matting benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// The ONNX segmentation model (IS-Net, U²-Net).
    #[arg(long, env = "AIMESH_MATTING_MODEL")]
    model: PathBuf,
    /// How the model expects its pixels.
    #[arg(long, default_value = Normalization::default().name(),
          value_parser = aimesh_models::normalization_parser())]
    normalization: Normalization,
    /// A directory of photographs (PNG or JPEG).
    #[arg(long)]
    photos: PathBuf,
    /// Where the inputs and masks are written.
    #[arg(long)]
    out: PathBuf,
    /// Threads of the network's matrix products (default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let mut engine_options = MattingOptions {
        normalization: options.normalization,
        ..MattingOptions::default()
    };
    if let Some(threads) = options.threads {
        engine_options.threads = threads;
    }
    let threads = engine_options.threads;
    let started = Instant::now();
    let engine = Matting::load(&options.model, engine_options).context("loading the model")?;
    let load = started.elapsed().as_secs_f64();
    let (width, height) = engine.input_size();
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let photos = crate::upscale::photo_paths(&options.photos)?;
    println!(
        "{}: input {width}×{height}, loaded and optimised in {load:.2} s; {} photographs, \
         {threads} threads",
        options.model.display(),
        photos.len()
    );
    let mut total = 0.0;
    for (index, path) in photos.iter().enumerate() {
        let photo = image::open(path)
            .with_context(|| format!("decoding {}", path.display()))?
            .to_rgb8();
        // Fed at the network's size, so the mask is the network's output as it is.
        let input = imageops::resize(&photo, width, height, FilterType::Triangle);
        let started = Instant::now();
        let cut = engine
            .remove_background(input.clone(), RunControl::default())
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        // The first image also pays for first-run allocations: it is shown, not averaged.
        if index > 0 || photos.len() == 1 {
            total += seconds;
        }
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("photo");
        input.save(options.out.join(format!("{name}.input.png")))?;
        let mask =
            image::GrayImage::from_fn(width, height, |x, y| image::Luma([cut.get_pixel(x, y)[3]]));
        mask.save(options.out.join(format!("{name}.mask.png")))?;
        let foreground =
            mask.pixels().filter(|p| p[0] >= 128).count() as f64 / f64::from(width * height);
        println!(
            "result\taimesh\t{name}\t{seconds:.3}\t{:.1}",
            foreground * 100.0
        );
    }
    let averaged = if photos.len() > 1 {
        photos.len() - 1
    } else {
        1
    };
    println!("mean\taimesh\t{:.3}", total / averaged as f64);
    Ok(())
}
