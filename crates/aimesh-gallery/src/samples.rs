//! Deterministic, photo-like pictures for tests and the benchmark: a sky gradient, a sun,
//! rolling hills and a fine texture, all from a seed; and EXIF blocks with an orientation and
//! a GPS position, to check what uploads keep and strip. Nothing here serves requests.

use image::{
    DynamicImage, ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage, codecs::jpeg::JpegEncoder,
};

/// A cheap, well-mixed hash of a pixel position and a seed (SplitMix64's finaliser).
fn noise(x: u32, y: u32, seed: u64) -> u8 {
    let mut z = seed ^ (u64::from(x) << 32 | u64::from(y)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u8
}

/// A landscape of `width` × `height` pixels, different for each seed.
pub fn landscape(width: u32, height: u32, seed: u64) -> RgbImage {
    let (w, h) = (width.max(1) as f32, height.max(1) as f32);
    let phase = (seed % 628) as f32 / 100.0;
    let sun = (w * (0.2 + (seed % 60) as f32 / 100.0), h * 0.25);
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let horizon =
            h * (0.6 + 0.08 * (fx / w * 6.0 + phase).sin() + 0.03 * (fx / w * 23.0).sin());
        let grain = f32::from(noise(x, y, seed)) / 255.0 - 0.5;
        let [r, g, b] = if fy < horizon {
            let t = fy / horizon;
            let d = ((fx - sun.0).powi(2) + (fy - sun.1).powi(2)).sqrt() / (w.min(h) * 0.08);
            let glow = (1.0 - d).max(0.0) * 200.0;
            [
                70.0 + 120.0 * t + glow,
                130.0 + 80.0 * t + glow * 0.9,
                230.0 - 40.0 * t + glow * 0.3,
            ]
        } else {
            let t = (fy - horizon) / (h - horizon).max(1.0);
            let stripes = 12.0 * (fx / w * 40.0 + fy / h * 15.0).sin();
            [
                40.0 + 50.0 * t + stripes,
                110.0 - 30.0 * t + stripes,
                40.0 + 10.0 * t,
            ]
        };
        let c = |v: f32| (v + grain * 18.0).clamp(0.0, 255.0) as u8;
        Rgb([c(r), c(g), c(b)])
    })
}

/// A landscape with a transparent border (for alpha handling).
pub fn cutout(width: u32, height: u32, seed: u64) -> RgbaImage {
    let rgb = landscape(width, height, seed);
    RgbaImage::from_fn(width, height, |x, y| {
        let p = rgb.get_pixel(x, y);
        let inside = x > width / 8 && x < width * 7 / 8 && y > height / 8 && y < height * 7 / 8;
        Rgba([p[0], p[1], p[2], if inside { 255 } else { 0 }])
    })
}

/// An EXIF block (little-endian TIFF) with an orientation tag and a GPS position.
pub fn exif_with_gps(orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\0".to_vec();
    tiff.extend(8u32.to_le_bytes()); // IFD0 right after the header
    // IFD0: two entries (orientation, GPS IFD pointer), then no next IFD.
    tiff.extend(2u16.to_le_bytes());
    tiff.extend(0x0112u16.to_le_bytes());
    tiff.extend(3u16.to_le_bytes()); // SHORT
    tiff.extend(1u32.to_le_bytes());
    tiff.extend(u32::from(orientation).to_le_bytes());
    let gps_ifd = 8 + 2 + 2 * 12 + 4;
    tiff.extend(0x8825u16.to_le_bytes());
    tiff.extend(4u16.to_le_bytes()); // LONG
    tiff.extend(1u32.to_le_bytes());
    tiff.extend((gps_ifd as u32).to_le_bytes());
    tiff.extend(0u32.to_le_bytes());
    // GPS IFD: latitude reference "N" and latitude 48/1, 51/1, 24/1 (Paris).
    let rationals = gps_ifd + 2 + 2 * 12 + 4;
    tiff.extend(2u16.to_le_bytes());
    tiff.extend(0x0001u16.to_le_bytes());
    tiff.extend(2u16.to_le_bytes()); // ASCII
    tiff.extend(2u32.to_le_bytes());
    tiff.extend(*b"N\0\0\0");
    tiff.extend(0x0002u16.to_le_bytes());
    tiff.extend(5u16.to_le_bytes()); // RATIONAL
    tiff.extend(3u32.to_le_bytes());
    tiff.extend((rationals as u32).to_le_bytes());
    tiff.extend(0u32.to_le_bytes());
    for value in [48u32, 51, 24] {
        tiff.extend(value.to_le_bytes());
        tiff.extend(1u32.to_le_bytes());
    }
    tiff
}

/// Whether a file's bytes contain the GPS position [`exif_with_gps`] writes.
pub fn contains_gps(bytes: &[u8]) -> bool {
    let mut needle = Vec::new();
    for value in [48u32, 51, 24] {
        needle.extend(value.to_le_bytes());
        needle.extend(1u32.to_le_bytes());
    }
    bytes.windows(needle.len()).any(|w| w == needle.as_slice())
}

/// Encodes an image as JPEG (quality 90), with `exif` when not empty.
pub fn jpeg(image: &RgbImage, exif: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut bytes, 90);
    if !exif.is_empty() {
        // The JPEG encoder accepts EXIF; it cannot refuse it.
        let _ = encoder.set_exif_metadata(exif.to_vec());
    }
    let _ = encoder.write_image(
        image.as_raw(),
        image.width(),
        image.height(),
        image::ExtendedColorType::Rgb8,
    );
    bytes
}

/// Encodes an image in a format of the `image` crate.
pub fn encode(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    let _ = image.write_to(&mut bytes, format);
    bytes.into_inner()
}
