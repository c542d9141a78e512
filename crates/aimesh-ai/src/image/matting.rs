//! Background removal: what exists, and what does not yet.
//!
//! Removing a background needs a trained salient-object segmentation network (IS-Net, U²-Net
//! and the like). The only such weights reachable from a package registry are AGPL-licensed,
//! so none ships with aimesh, and this build has no engine that runs one: no implementation
//! of [`BackgroundRemover`](super::BackgroundRemover) exists yet. The capability therefore
//! reports itself not serving, with [`unavailable_reason`] as the detail, and calls answer
//! with the same reason; nothing pretends to cut out a foreground.
//!
//! What is here is the part every such engine shares: [`apply_mask`], which turns a
//! network's soft foreground mask into the image's alpha channel.

use image::{GrayImage, RgbImage, RgbaImage, imageops::FilterType};

/// The setting naming a user-provided segmentation model.
pub const MODEL_SETTING: &str = "AIMESH_MATTING_MODEL";

/// Why background removal is not serving, given the configured model path (if any), with
/// what would fix it.
pub fn unavailable_reason(model: Option<&std::path::Path>) -> String {
    match model {
        None => format!(
            "no background-removal model is configured: set {MODEL_SETTING} to a salient-object \
             segmentation model (IS-Net / U²-Net style); none ships with aimesh because the \
             available weights are AGPL-licensed"
        ),
        Some(path) => format!(
            "{}: this build cannot run background-removal models yet (no IS-Net / U²-Net engine \
             is implemented); unset {MODEL_SETTING}",
            path.display()
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_becomes_the_alpha_channel_at_the_image_size() {
        let image = RgbImage::from_pixel(8, 4, image::Rgb([10, 20, 30]));
        let mask = GrayImage::from_fn(4, 2, |x, _| image::Luma([if x < 2 { 0 } else { 255 }]));
        let cut = apply_mask(&image, &mask);
        assert_eq!(cut.dimensions(), (8, 4));
        assert_eq!(cut.get_pixel(0, 0).0, [10, 20, 30, 0]);
        assert_eq!(cut.get_pixel(7, 3).0, [10, 20, 30, 255]);
        assert!(unavailable_reason(None).contains(MODEL_SETTING));
    }
}
