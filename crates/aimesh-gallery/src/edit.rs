//! The built-in edits: enhancement and named style filters, each a classic method taken from
//! `imageproc` or `image` (contrast stretch, unsharp mask, Gaussian and bilateral filters,
//! Canny edges, median filter, 3×3 kernels) composed, not re-implemented. Synchronous and
//! CPU-bound: callers run them on a blocking thread.

use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage, imageops};
use imageproc::{
    contrast::stretch_contrast,
    edges::canny,
    filter::{
        bilateral::GaussianEuclideanColorDistance, bilateral_filter, filter_clamped,
        gaussian_blur_f32, median_filter,
    },
    kernel::Kernel,
    map::{map_pixels, map_pixels2},
    stats::percentile,
};

use crate::domain::Style;

/// What the enhancement runs, as reported on its results.
pub const ENHANCE_ENGINE: &str =
    "contrast stretch (1st-99th luminance percentile, imageproc) + unsharp mask (image)";

/// Enhances an image: a linear contrast stretch sending the 1st and 99th percentiles of its
/// luminance to black and white (the same range on every channel, so hues stay), then an
/// unsharp mask of strength `amount`.
pub fn enhance(image: &DynamicImage, amount: f32) -> DynamicImage {
    let rgba = image.to_rgba8();
    let luma = image.to_luma8();
    let low = percentile(&luma, 1);
    let high = percentile(&luma, 99);
    let stretched = if low < high {
        stretch_contrast(&rgba, low, high, 0, 255)
    } else {
        rgba
    };
    // `unsharpen` adds (original - blurred) once; a stronger mask adds it `amount` times.
    let sharpened = imageops::unsharpen(&stretched, 1.0 + amount * 0.5, 2);
    let out = if (amount - 1.0).abs() < f32::EPSILON {
        sharpened
    } else {
        map_pixels2(&stretched, &sharpened, |base: Rgba<u8>, sharp: Rgba<u8>| {
            let mix = |b: u8, s: u8| {
                (f32::from(b) + (f32::from(s) - f32::from(b)) * amount).clamp(0.0, 255.0) as u8
            };
            Rgba([
                mix(base[0], sharp[0]),
                mix(base[1], sharp[1]),
                mix(base[2], sharp[2]),
                base[3],
            ])
        })
    };
    restore_alpha(image, out)
}

/// Applies a named style.
pub fn stylize(image: &DynamicImage, style: Style) -> DynamicImage {
    match style {
        Style::Grayscale => DynamicImage::ImageLuma8(image.to_luma8()),
        Style::Sepia => sepia(image),
        Style::Posterize => posterize(image, 4),
        Style::PencilSketch => DynamicImage::ImageLuma8(pencil_sketch(&image.to_luma8())),
        Style::Cartoon => cartoon(image),
        Style::Emboss => emboss(image),
        Style::Painting => restore_alpha(image, median_filter(&image.to_rgba8(), 3, 3)),
    }
}

/// Keeps the source's alpha channel only if it had one.
fn restore_alpha(source: &DynamicImage, out: RgbaImage) -> DynamicImage {
    if source.color().has_alpha() {
        DynamicImage::ImageRgba8(out)
    } else {
        DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(out).to_rgb8())
    }
}

/// The classic sepia matrix (as in Microsoft's and most photo editors' sepia filters).
fn sepia(image: &DynamicImage) -> DynamicImage {
    let out = map_pixels(&image.to_rgba8(), |p: Rgba<u8>| {
        let [r, g, b, a] = p.0.map(f32::from);
        let clamp = |v: f32| v.min(255.0) as u8;
        Rgba([
            clamp(0.393 * r + 0.769 * g + 0.189 * b),
            clamp(0.349 * r + 0.686 * g + 0.168 * b),
            clamp(0.272 * r + 0.534 * g + 0.131 * b),
            a as u8,
        ])
    });
    restore_alpha(image, out)
}

/// Quantises every channel to `levels` evenly spaced values.
fn posterize(image: &DynamicImage, levels: u8) -> DynamicImage {
    let step = 255.0 / f32::from(levels.max(2) - 1);
    let out = map_pixels(&image.to_rgba8(), |p: Rgba<u8>| {
        let q = |c: u8| ((f32::from(c) / step).round() * step) as u8;
        Rgba([q(p[0]), q(p[1]), q(p[2]), p[3]])
    });
    restore_alpha(image, out)
}

/// The classic pencil sketch: the grey image colour-dodged with a Gaussian blur of its
/// negative.
fn pencil_sketch(gray: &GrayImage) -> GrayImage {
    let mut negative = gray.clone();
    imageops::invert(&mut negative);
    let blurred = gaussian_blur_f32(&negative, 8.0);
    map_pixels2(gray, &blurred, |base: Luma<u8>, blur: Luma<u8>| {
        let (b, s) = (u32::from(base[0]), u32::from(blur[0]));
        Luma([if s >= 255 {
            255
        } else {
            ((b * 255) / (255 - s)).min(255) as u8
        }])
    })
}

/// Flat colours from a bilateral filter, outlined by Canny edges.
fn cartoon(image: &DynamicImage) -> DynamicImage {
    let rgb = image.to_rgb8();
    let smooth = bilateral_filter(&rgb, 3, 3.0, GaussianEuclideanColorDistance::new(25.0));
    let edges = canny(&image.to_luma8(), 40.0, 100.0);
    let out = RgbImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        if edges.get_pixel(x, y)[0] > 0 {
            Rgb([20, 20, 20])
        } else {
            *smooth.get_pixel(x, y)
        }
    });
    DynamicImage::ImageRgb8(out)
}

/// A relief lit from the top left: the 3×3 emboss kernel on each channel, offset to grey.
fn emboss(image: &DynamicImage) -> DynamicImage {
    const EMBOSS: [i32; 9] = [-2, -1, 0, -1, 1, 1, 0, 1, 2];
    let filtered = filter_clamped::<_, _, u8>(&image.to_rgb8(), Kernel::new(&EMBOSS, 3, 3));
    DynamicImage::ImageRgb8(filtered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dull(width: u32, height: u32) -> DynamicImage {
        // A low-contrast scene: values between 100 and 150.
        DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
            let v = 100 + ((x + y) * 50 / (width + height)) as u8;
            Rgb([v, v.saturating_add(5), v.saturating_sub(5)])
        }))
    }

    #[test]
    fn enhancement_widens_the_histogram() {
        let image = dull(64, 48);
        let out = enhance(&image, 1.0).to_luma8();
        let (low, high) = (percentile(&out, 1), percentile(&out, 99));
        assert!(low < 20 && high > 235, "{low}..{high}");
        assert_eq!(enhance(&image, 2.5).color(), image.color());
    }

    #[test]
    fn every_style_keeps_the_size_and_changes_the_picture() {
        let image = dull(40, 30);
        for style in [
            Style::Grayscale,
            Style::Sepia,
            Style::Posterize,
            Style::PencilSketch,
            Style::Cartoon,
            Style::Emboss,
            Style::Painting,
        ] {
            let out = stylize(&image, style);
            assert_eq!((out.width(), out.height()), (40, 30), "{style:?}");
        }
        let sepia = stylize(&image, Style::Sepia).to_rgb8();
        let p = sepia.get_pixel(10, 10);
        assert!(p[0] > p[1] && p[1] > p[2], "sepia is warm: {p:?}");
        let poster = stylize(&image, Style::Posterize).to_rgb8();
        assert!(
            poster
                .pixels()
                .all(|p| p.0.iter().all(|c| [0, 85, 170, 255].contains(c)))
        );
    }
}
