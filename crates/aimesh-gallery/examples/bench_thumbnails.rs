//! Thumbnail throughput of the gallery's image core, side by side with Pillow on the same
//! files: each JPEG photo is decoded (EXIF orientation applied, within the upload limits) and
//! turned into the 256 px and 1024 px thumbnails (`fast_image_resize` Lanczos3, JPEG quality
//! 82), one file after another on one thread, as an upload does. Prints files/s and
//! thumbnails/s; no assertion on speed.
//!
//! Run through `scripts/bench-thumbnails` (which also runs the peer), or alone:
//! `cargo run --release -p aimesh-gallery --example bench_thumbnails -- DIR [FILES] [WIDTH HEIGHT] [MIN-SECONDS]`
//! (writes FILES photo-like JPEGs of WIDTH × HEIGHT into DIR first when it holds none).

#![allow(clippy::unwrap_used, missing_docs)]

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aimesh_gallery::{
    DecodeLimits, decode,
    domain::THUMBNAIL_SIZES,
    imaging::thumbnail,
    samples::{jpeg, landscape},
};

fn jpegs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(
        args.first()
            .cloned()
            .unwrap_or_else(|| "bench-photos".into()),
    );
    let count: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(12);
    let width: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3000);
    let height: u32 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let min_seconds: f64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(5.0);

    std::fs::create_dir_all(&dir).unwrap();
    if jpegs(&dir).is_empty() {
        for seed in 0..count {
            let photo = landscape(width, height, seed);
            std::fs::write(dir.join(format!("photo-{seed:03}.jpg")), jpeg(&photo, &[])).unwrap();
        }
        println!(
            "wrote {count} JPEGs of {width} × {height} into {}",
            dir.display()
        );
    }
    let files: Vec<Vec<u8>> = jpegs(&dir)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let limits = DecodeLimits::default();
    let run = |bytes: &[u8]| -> usize {
        let decoded = decode(bytes, &limits).unwrap();
        THUMBNAIL_SIZES
            .iter()
            .map(|&side| thumbnail(&decoded.image, side).unwrap().bytes.len())
            .filter(|&len| len > 0)
            .count()
    };
    run(&files[0]); // warm up
    let started = Instant::now();
    let (mut done, mut made) = (0u64, 0usize);
    while started.elapsed() < Duration::from_secs_f64(min_seconds) || done == 0 {
        for bytes in &files {
            made += run(bytes);
            done += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "aimesh (image + fast_image_resize, {:?}): {done} files in {elapsed:.2} s",
        fast_image_resize::CpuExtensions::default()
    );
    println!(
        "result\taimesh\t{:.2}\t{:.2}",
        done as f64 / elapsed,
        made as f64 / elapsed
    );
}
