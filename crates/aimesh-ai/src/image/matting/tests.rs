use std::sync::{Arc, Mutex};

use image::Rgb;
use tokio_util::sync::CancellationToken;

use super::{testing::write_red_foreground_model, *};
use crate::image::Progress;

/// A grey picture with a red square (x 24..56, y 16..48) and a blue band at the bottom.
fn red_square_on_grey() -> RgbImage {
    RgbImage::from_fn(96, 80, |x, y| {
        if (24..56).contains(&x) && (16..48).contains(&y) {
            Rgb([230, 20, 30])
        } else if y >= 64 {
            Rgb([20, 40, 220])
        } else {
            Rgb([128, 128, 128])
        }
    })
}

fn load(size: Option<u32>) -> (tempfile::TempDir, Matting) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("red.onnx");
    write_red_foreground_model(&path, size).unwrap();
    let engine = Matting::load(&path, MattingOptions::default()).unwrap();
    (dir, engine)
}

fn assert_cut_out(image: &RgbImage, cut: &RgbaImage) {
    assert_eq!(cut.dimensions(), image.dimensions());
    for (x, y, pixel) in cut.enumerate_pixels() {
        assert_eq!(
            pixel.0[..3],
            image.get_pixel(x, y).0,
            "colour kept at {x},{y}"
        );
    }
    let alpha = |x, y| cut.get_pixel(x, y)[3];
    // Inside the square, away from its edges (the network works at a lower resolution).
    for (x, y) in [(32, 24), (48, 40), (40, 32)] {
        assert!(alpha(x, y) > 240, "foreground at {x},{y}: {}", alpha(x, y));
    }
    // Grey and blue are background.
    for (x, y) in [(4, 4), (90, 30), (10, 56), (40, 74), (90, 76)] {
        assert!(alpha(x, y) < 10, "background at {x},{y}: {}", alpha(x, y));
    }
}

#[tokio::test]
async fn the_network_cuts_out_what_it_segments_at_the_image_size() {
    let (_dir, engine) = load(Some(32));
    assert_eq!(engine.input_size(), (32, 32));
    assert_eq!(engine.name(), ENGINE_NAME);
    let image = red_square_on_grey();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let control = RunControl::new(
        {
            let reports = reports.clone();
            move |progress: Progress| reports.lock().unwrap().push(progress.percent())
        },
        CancellationToken::new(),
    );
    let cut = engine
        .remove_background(image.clone(), control)
        .await
        .unwrap();
    assert_cut_out(&image, &cut);
    assert_eq!(*reports.lock().unwrap(), [0, 100]);
}

#[tokio::test]
async fn a_model_declaring_no_input_size_runs_at_the_default_size() {
    let (_dir, engine) = load(None);
    assert_eq!(engine.input_size(), (DEFAULT_SIZE, DEFAULT_SIZE));
    let image = red_square_on_grey();
    let cut = engine
        .remove_background(image.clone(), RunControl::default())
        .await
        .unwrap();
    assert_cut_out(&image, &cut);
}

#[tokio::test]
async fn empty_images_and_cancelled_calls_are_refused() {
    let (_dir, engine) = load(Some(16));
    let error = engine
        .remove_background(RgbImage::new(0, 5), RunControl::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, EngineError::InvalidInput { field: "image", .. }),
        "{error:?}"
    );
    let cancel = CancellationToken::new();
    cancel.cancel();
    let error = engine
        .remove_background(red_square_on_grey(), RunControl::new(|_| {}, cancel))
        .await
        .unwrap_err();
    assert!(matches!(error, EngineError::Cancelled { .. }), "{error:?}");
    // The engine still serves.
    assert!(engine.is_alive());
    engine
        .remove_background(red_square_on_grey(), RunControl::default())
        .await
        .unwrap();
}

#[test]
fn files_that_are_not_segmentation_models_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.onnx");
    let error = Matting::load(&missing, MattingOptions::default()).unwrap_err();
    assert!(
        error.to_string().contains("absent.onnx: no such file"),
        "{error}"
    );

    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"this is not a protobuf model at all").unwrap();
    let error = Matting::load(&garbage, MattingOptions::default()).unwrap_err();
    assert!(matches!(error, ModelError::Invalid { .. }), "{error:?}");
    assert!(error.to_string().contains("garbage.onnx"), "{error}");
}

#[test]
fn a_model_whose_first_output_is_not_a_mask_is_refused() {
    use prost::Message;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pooled-first.onnx");
    let mut model = super::testing::red_foreground_model(Some(32));
    // The half-size pooled map first: 16×16 values for a 32×32 input.
    model.graph.as_mut().unwrap().output.reverse();
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    let error = Matting::load(&path, MattingOptions::default()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("pooled-first.onnx") && message.contains("32×32 mask"),
        "{message}"
    );
}

#[test]
fn a_mask_becomes_the_alpha_channel_at_the_image_size() {
    let image = RgbImage::from_pixel(8, 4, image::Rgb([10, 20, 30]));
    let mask = GrayImage::from_fn(4, 2, |x, _| image::Luma([if x < 2 { 0 } else { 255 }]));
    let cut = apply_mask(&image, &mask);
    assert_eq!(cut.dimensions(), (8, 4));
    assert_eq!(cut.get_pixel(0, 0).0, [10, 20, 30, 0]);
    assert_eq!(cut.get_pixel(7, 3).0, [10, 20, 30, 255]);
    assert!(unavailable_reason().contains(MODEL_SETTING));
    assert_eq!(
        Normalization::from_name(Normalization::ALL[0].name()),
        Some(Normalization::default())
    );
    assert_eq!(
        Normalization::from_name("imagenet"),
        Some(Normalization::Imagenet)
    );
}
