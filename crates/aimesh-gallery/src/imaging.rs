//! Image decoding, re-encoding, thumbnails and hashes: the synchronous, CPU-bound core of the
//! gallery. Callers on an async runtime run it on a blocking thread.
//!
//! Every upload is hostile until decoded: its bytes are capped, its format is sniffed from its
//! magic number (PNG, JPEG, WebP, GIF only), and its declared dimensions are checked against a
//! pixel budget from the header, before any pixel buffer is allocated (the `image` crate's
//! [`image::Limits`] enforce the same while decoding). Decoders run behind `catch_unwind`.

use std::{
    io::Cursor,
    panic::{AssertUnwindSafe, catch_unwind},
};

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{
    DynamicImage, ImageDecoder, ImageEncoder, ImageFormat, ImageReader,
    codecs::{jpeg::JpegEncoder, png::PngEncoder, webp::WebPEncoder},
};
use image_hasher::{HashAlg, HasherConfig};

/// JPEG quality of stored originals re-encoded from JPEG.
const ORIGINAL_JPEG_QUALITY: u8 = 90;
/// JPEG quality of thumbnails.
const THUMBNAIL_JPEG_QUALITY: u8 = 82;

/// Limits of decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest file accepted, in bytes.
    pub max_bytes: usize,
    /// Most pixels (width × height) accepted.
    pub max_pixels: u64,
    /// Longest side accepted, in pixels.
    pub max_side: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: 30 << 20,
            max_pixels: 50_000_000,
            max_side: 20_000,
        }
    }
}

impl DecodeLimits {
    /// The most bytes a decoded image may take (RGBA at 16 bits per channel, plus slack for
    /// the decoder's own buffers).
    fn max_alloc(&self) -> u64 {
        self.max_pixels.saturating_mul(8).saturating_add(64 << 20)
    }
}

/// Why an image was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The file is empty.
    #[error("is empty")]
    Empty,
    /// The file is larger than allowed.
    #[error("is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// The file's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not one of the accepted formats.
    #[error("is not a PNG, JPEG, WebP or GIF image")]
    UnsupportedFormat,
    /// More pixels than allowed.
    #[error(
        "declares {width} × {height} pixels, more than the limit of {max_pixels} pixels \
         ({max_side} px a side)"
    )]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The pixel limit.
        max_pixels: u64,
        /// The side limit.
        max_side: u32,
    },
    /// The file is malformed.
    #[error("could not be decoded: {0}")]
    Malformed(String),
}

/// An accepted stored format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// WebP.
    Webp,
    /// GIF (its first frame; stored as PNG).
    Gif,
}

impl Format {
    /// The short name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpeg",
            Format::Webp => "webp",
            Format::Gif => "gif",
        }
    }

    /// The media type.
    pub fn mime_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
            Format::Webp => "image/webp",
            Format::Gif => "image/gif",
        }
    }

    fn from_image(format: ImageFormat) -> Option<Self> {
        Some(match format {
            ImageFormat::Png => Format::Png,
            ImageFormat::Jpeg => Format::Jpeg,
            ImageFormat::WebP => Format::Webp,
            ImageFormat::Gif => Format::Gif,
            _ => return None,
        })
    }
}

/// A decoded image.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The pixels, EXIF orientation applied.
    pub image: DynamicImage,
    /// The sniffed format.
    pub format: Format,
    /// Whether the file carried EXIF metadata.
    pub had_exif: bool,
}

/// Sniffs, checks and decodes an image within `limits`, applying its EXIF orientation.
/// Never panics on any input.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let format = image::guess_format(bytes)
        .ok()
        .and_then(Format::from_image)
        .ok_or(DecodeError::UnsupportedFormat)?;
    catch_unwind(AssertUnwindSafe(|| decode_unchecked(bytes, format, limits))).unwrap_or_else(
        |_| {
            Err(DecodeError::Malformed(
                "the decoder failed on this file".into(),
            ))
        },
    )
}

fn decode_unchecked(
    bytes: &[u8],
    format: Format,
    limits: &DecodeLimits,
) -> Result<Decoded, DecodeError> {
    let malformed = |error: image::ImageError| match error {
        image::ImageError::Limits(_) => too_many(bytes, limits),
        other => DecodeError::Malformed(other.to_string()),
    };
    let image_format = match format {
        Format::Png => ImageFormat::Png,
        Format::Jpeg => ImageFormat::Jpeg,
        Format::Webp => ImageFormat::WebP,
        Format::Gif => ImageFormat::Gif,
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_alloc());
    reader.limits(decoder_limits);
    // Reads the header only; the limits are checked against its dimensions here.
    let mut decoder = reader.into_decoder().map_err(|error| match error {
        image::ImageError::Limits(_) => too_many(bytes, limits),
        other => malformed(other),
    })?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(DecodeError::Malformed("has no pixels".into()));
    }
    if width > limits.max_side
        || height > limits.max_side
        || u64::from(width) * u64::from(height) > limits.max_pixels
    {
        return Err(DecodeError::TooManyPixels {
            width,
            height,
            max_pixels: limits.max_pixels,
            max_side: limits.max_side,
        });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let had_exif = matches!(decoder.exif_metadata(), Ok(Some(ref exif)) if !exif.is_empty());
    let mut image = DynamicImage::from_decoder(decoder).map_err(malformed)?;
    image.apply_orientation(orientation);
    Ok(Decoded {
        image,
        format,
        had_exif,
    })
}

/// The refusal of an image whose header the decoder's limits refused, with the dimensions the
/// header declares (read by `imagesize`, which parses headers only).
fn too_many(bytes: &[u8], limits: &DecodeLimits) -> DecodeError {
    let (width, height) = imagesize::blob_size(bytes)
        .map(|size| {
            (
                u32::try_from(size.width).unwrap_or(u32::MAX),
                u32::try_from(size.height).unwrap_or(u32::MAX),
            )
        })
        .unwrap_or((0, 0));
    DecodeError::TooManyPixels {
        width,
        height,
        max_pixels: limits.max_pixels,
        max_side: limits.max_side,
    }
}

/// Encoded bytes with their format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Their format (never GIF).
    pub format: Format,
}

/// Encodes an image for storage as an original without any metadata: JPEG stays JPEG, WebP
/// stays (lossless) WebP, PNG and GIF become PNG.
pub fn encode_original(image: &DynamicImage, from: Format) -> Result<Encoded, String> {
    match from {
        Format::Jpeg => encode_jpeg(image, ORIGINAL_JPEG_QUALITY),
        Format::Webp => encode_webp(image),
        Format::Png | Format::Gif => encode_png(image),
    }
}

/// Encodes an image as PNG.
pub fn encode_png(image: &DynamicImage) -> Result<Encoded, String> {
    let mut bytes = Vec::new();
    let image = normalise_depth(image);
    PngEncoder::new(&mut bytes)
        .write_image(
            image.as_bytes(),
            image.width(),
            image.height(),
            image.color().into(),
        )
        .map_err(|e| format!("PNG encoding failed: {e}"))?;
    Ok(Encoded {
        bytes,
        format: Format::Png,
    })
}

/// Encodes an image as JPEG (alpha dropped) at `quality`.
pub fn encode_jpeg(image: &DynamicImage, quality: u8) -> Result<Encoded, String> {
    let mut bytes = Vec::new();
    let rgb = DynamicImage::ImageRgb8(image.to_rgb8());
    JpegEncoder::new_with_quality(&mut bytes, quality)
        .write_image(
            rgb.as_bytes(),
            rgb.width(),
            rgb.height(),
            rgb.color().into(),
        )
        .map_err(|e| format!("JPEG encoding failed: {e}"))?;
    Ok(Encoded {
        bytes,
        format: Format::Jpeg,
    })
}

/// Encodes an image as lossless WebP.
pub fn encode_webp(image: &DynamicImage) -> Result<Encoded, String> {
    let mut bytes = Vec::new();
    let image = if image.color().has_alpha() {
        DynamicImage::ImageRgba8(image.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(image.to_rgb8())
    };
    WebPEncoder::new_lossless(&mut bytes)
        .write_image(
            image.as_bytes(),
            image.width(),
            image.height(),
            image.color().into(),
        )
        .map_err(|e| format!("WebP encoding failed: {e}"))?;
    Ok(Encoded {
        bytes,
        format: Format::Webp,
    })
}

/// 8 bits per channel (PNG keeps 16-bit images as they are; floats become 16 bits).
fn normalise_depth(image: &DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageRgb32F(_) => DynamicImage::ImageRgb16(image.to_rgb16()),
        DynamicImage::ImageRgba32F(_) => DynamicImage::ImageRgba16(image.to_rgba16()),
        other => other.clone(),
    }
}

/// The size of an image scaled down to fit in a `side` × `side` box (never scaled up).
pub fn fit(width: u32, height: u32, side: u32) -> (u32, u32) {
    if width <= side && height <= side {
        return (width.max(1), height.max(1));
    }
    let scale = f64::from(side) / f64::from(width.max(height));
    let w = (f64::from(width) * scale).round().max(1.0) as u32;
    let h = (f64::from(height) * scale).round().max(1.0) as u32;
    (w.min(side), h.min(side))
}

/// Resizes an image to exactly `width` × `height` with `fast_image_resize` (Lanczos3
/// convolution, alpha-aware), in 8 bits per channel.
pub fn resize(image: &DynamicImage, width: u32, height: u32) -> Result<DynamicImage, String> {
    let source = if image.color().has_alpha() {
        DynamicImage::ImageRgba8(image.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(image.to_rgb8())
    };
    if (source.width(), source.height()) == (width, height) {
        return Ok(source);
    }
    let mut target = if source.color().has_alpha() {
        DynamicImage::new_rgba8(width, height)
    } else {
        DynamicImage::new_rgb8(width, height)
    };
    Resizer::new()
        .resize(
            &source,
            &mut target,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
        )
        .map_err(|e| format!("resizing failed: {e}"))?;
    Ok(target)
}

/// Makes a thumbnail fitting in `side` px: JPEG for opaque images, lossless WebP for images
/// with transparency.
pub fn thumbnail(image: &DynamicImage, side: u32) -> Result<Encoded, String> {
    let (width, height) = fit(image.width(), image.height(), side);
    let small = resize(image, width, height)?;
    if small.color().has_alpha() && has_transparency(&small) {
        encode_webp(&small)
    } else {
        encode_jpeg(&small, THUMBNAIL_JPEG_QUALITY)
    }
}

fn has_transparency(image: &DynamicImage) -> bool {
    image
        .as_rgba8()
        .is_some_and(|rgba| rgba.pixels().any(|p| p.0[3] < 255))
}

/// The perceptual (gradient) hash of an image, 64 bits in base64.
pub fn perceptual_hash(image: &DynamicImage) -> String {
    HasherConfig::new()
        .hash_alg(HashAlg::Gradient)
        .hash_size(8, 8)
        .to_hasher()
        .hash_image(image)
        .to_base64()
}

/// The Hamming distance between two perceptual hashes, when both are valid.
pub fn hash_distance(a: &str, b: &str) -> Option<u32> {
    let a = image_hasher::ImageHash::<Box<[u8]>>::from_base64(a).ok()?;
    let b = image_hasher::ImageHash::<Box<[u8]>>::from_base64(b).ok()?;
    (a.as_bytes().len() == b.as_bytes().len()).then(|| a.dist(&b))
}

/// Everything stored for a new image, made from its decoded pixels.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The original to store.
    pub original: Encoded,
    /// The 256 px thumbnail.
    pub thumbnail_256: Encoded,
    /// The 1024 px thumbnail.
    pub thumbnail_1024: Encoded,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Perceptual hash.
    pub perceptual_hash: String,
}

/// Prepares an image for storage: `original` is the stored original already encoded, or
/// `None` to encode `image` without metadata in a format close to `from`.
pub fn prepare(
    image: &DynamicImage,
    from: Format,
    original: Option<Encoded>,
) -> Result<Prepared, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let original = match original {
            Some(original) => original,
            None => encode_original(image, from)?,
        };
        let [small, large] = crate::domain::THUMBNAIL_SIZES;
        Ok(Prepared {
            original,
            thumbnail_256: thumbnail(image, small)?,
            thumbnail_1024: thumbnail(image, large)?,
            width: image.width(),
            height: image.height(),
            perceptual_hash: perceptual_hash(image),
        })
    }))
    .unwrap_or_else(|_| Err("image processing failed on this image".into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use image::{Rgb, RgbImage};

    use super::*;

    fn gradient(width: u32, height: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
            Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
        }))
    }

    /// A PNG signature and IHDR chunk declaring `width` × `height`, and nothing else.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(width.to_be_bytes());
        ihdr.extend(height.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        bytes.extend(13u32.to_be_bytes());
        bytes.extend(&ihdr);
        let crc = crc32(&ihdr);
        bytes.extend(crc.to_be_bytes());
        bytes
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn a_huge_declared_png_is_refused_from_its_header() {
        let error = decode(&png_header(100_000, 100_000), &DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(
                error,
                DecodeError::TooManyPixels {
                    width: 100_000,
                    height: 100_000,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn exif_orientation_is_applied_and_the_metadata_dropped() {
        use crate::samples;
        let photo = samples::landscape(64, 32, 1);
        let bytes = samples::jpeg(&photo, &samples::exif_with_gps(6));
        assert!(samples::contains_gps(&bytes));
        let decoded = decode(&bytes, &DecodeLimits::default()).unwrap();
        assert!(decoded.had_exif);
        assert_eq!(
            (decoded.image.width(), decoded.image.height()),
            (32, 64),
            "orientation 6 turns the picture a quarter"
        );
        let prepared = prepare(&decoded.image, decoded.format, None).unwrap();
        assert_eq!(prepared.original.format, Format::Jpeg);
        assert!(!samples::contains_gps(&prepared.original.bytes));
        let again = decode(&prepared.original.bytes, &DecodeLimits::default()).unwrap();
        assert!(!again.had_exif);
        assert_eq!((again.image.width(), again.image.height()), (32, 64));
    }

    #[test]
    fn every_accepted_format_decodes_and_a_gif_gives_its_first_frame() {
        use crate::samples;
        let photo = DynamicImage::ImageRgb8(samples::landscape(48, 36, 2));
        for (format, expected) in [
            (ImageFormat::Png, Format::Png),
            (ImageFormat::WebP, Format::Webp),
            (ImageFormat::Jpeg, Format::Jpeg),
        ] {
            let bytes = samples::encode(&photo, format);
            let decoded = decode(&bytes, &DecodeLimits::default()).unwrap();
            assert_eq!(decoded.format, expected);
            assert_eq!((decoded.image.width(), decoded.image.height()), (48, 36));
        }
        let gif = samples::encode(
            &DynamicImage::ImageRgba8(photo.to_rgba8()),
            ImageFormat::Gif,
        );
        let decoded = decode(&gif, &DecodeLimits::default()).unwrap();
        assert_eq!(decoded.format, Format::Gif);
        let prepared = prepare(&decoded.image, decoded.format, None).unwrap();
        assert_eq!(
            prepared.original.format,
            Format::Png,
            "a GIF is stored as PNG"
        );
    }

    #[test]
    fn limits_on_bytes_and_pixels_are_enforced() {
        let limits = DecodeLimits {
            max_bytes: 1 << 20,
            max_pixels: 1000,
            max_side: 100,
        };
        let png = crate::samples::encode(&gradient(50, 50), ImageFormat::Png);
        assert!(matches!(
            decode(&png, &limits),
            Err(DecodeError::TooManyPixels {
                width: 50,
                height: 50,
                ..
            })
        ));
        let limits = DecodeLimits {
            max_bytes: 10,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            decode(&png, &limits),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn formats_other_than_the_four_are_refused() {
        assert_eq!(
            decode(b"%PDF-1.5 not an image", &DecodeLimits::default()).unwrap_err(),
            DecodeError::UnsupportedFormat
        );
        assert_eq!(
            decode(b"", &DecodeLimits::default()).unwrap_err(),
            DecodeError::Empty
        );
    }

    #[test]
    fn thumbnails_fit_their_boxes_and_keep_the_aspect() {
        assert_eq!(fit(4000, 3000, 256), (256, 192));
        assert_eq!(fit(100, 50, 256), (100, 50));
        assert_eq!(fit(1, 10_000, 256), (1, 256));
        let image = gradient(1600, 900);
        let prepared = prepare(&image, Format::Png, None).unwrap();
        let small = decode(&prepared.thumbnail_256.bytes, &DecodeLimits::default()).unwrap();
        assert_eq!((small.image.width(), small.image.height()), (256, 144));
        assert_eq!(prepared.thumbnail_256.format, Format::Jpeg);
        assert_eq!(prepared.original.format, Format::Png);
        let again = decode(&prepared.original.bytes, &DecodeLimits::default()).unwrap();
        assert_eq!(again.image.to_rgb8(), image.to_rgb8(), "PNG is lossless");
    }

    #[test]
    fn perceptual_hashes_survive_resizing_but_not_another_picture() {
        let image = gradient(640, 480);
        let small = resize(&image, 160, 120).unwrap();
        let flipped = image.fliph();
        let a = perceptual_hash(&image);
        assert!(hash_distance(&a, &perceptual_hash(&small)).unwrap() <= 4);
        assert!(hash_distance(&a, &perceptual_hash(&flipped)).unwrap() > 10);
    }
}
