//! Running a fully convolutional image network over an image of any size in bounded memory:
//! the image is cut into tiles whose cores do not overlap, each run with a margin of
//! surrounding pixels at least as wide as the network's receptive radius, and only the core of
//! each result is kept. Every output pixel is then computed from the same input neighbourhood
//! as in one pass over the whole image, so the seams are exact (up to float rounding), not
//! merely blended; memory depends on the tile size alone. At the image's edges the margin is
//! the image mirrored (as SR inference usually pads), not the zeros a convolution pads with,
//! which the networks were not trained on and which leave a bright or dark frame.

use candle_core::{Device, Tensor};
use image::RgbImage;

use super::RunControl;

/// How an image is cut.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tiling {
    /// Core side in input pixels.
    pub tile: u32,
    /// Context around each core in input pixels (at least the network's receptive radius).
    pub margin: u32,
    /// Output pixels per input pixel.
    pub scale: u32,
    /// Input values are pixel values (0-255) times this.
    pub input_scale: f32,
}

/// Why a tiled run stopped.
#[derive(Debug)]
pub(crate) enum TileError {
    Cancelled,
    Model(candle_core::Error),
}

impl From<candle_core::Error> for TileError {
    fn from(error: candle_core::Error) -> Self {
        TileError::Model(error)
    }
}

/// Runs `network` (NCHW, 3 channels in and out) over `image` tile by tile, reporting each
/// tile to `control` and stopping when it is cancelled (or when `abandoned` says so).
pub(crate) fn run(
    image: &RgbImage,
    tiling: Tiling,
    device: &Device,
    control: &RunControl,
    abandoned: &dyn Fn() -> bool,
    network: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<RgbImage, TileError> {
    let (width, height) = image.dimensions();
    let tile = tiling.tile.max(1);
    let scale = tiling.scale;
    let mut output = RgbImage::new(width * scale, height * scale);
    let columns = width.div_ceil(tile);
    let rows = height.div_ceil(tile);
    let total = columns * rows;
    let mut done = 0;
    for row in 0..rows {
        for column in 0..columns {
            if control.is_cancelled() || abandoned() {
                return Err(TileError::Cancelled);
            }
            // The core, and the region run: the core plus the margin on every side, mirrored
            // where it falls outside the image.
            let (x0, y0) = (column * tile, row * tile);
            let (x1, y1) = ((x0 + tile).min(width), (y0 + tile).min(height));
            let (ex0, ey0) = (
                i64::from(x0) - i64::from(tiling.margin),
                i64::from(y0) - i64::from(tiling.margin),
            );
            let w = (x1 - x0 + 2 * tiling.margin) as usize;
            let h = (y1 - y0 + 2 * tiling.margin) as usize;
            let mut planes = vec![0f32; 3 * w * h];
            for y in 0..h {
                let source_y = mirror(ey0 + y as i64, height);
                for x in 0..w {
                    let pixel = image.get_pixel(mirror(ex0 + x as i64, width), source_y);
                    for c in 0..3 {
                        planes[c * w * h + y * w + x] = f32::from(pixel[c]) * tiling.input_scale;
                    }
                }
            }
            let input = Tensor::from_vec(planes, (1, 3, h, w), device)?;
            let result = network(&input)?;
            let (_, channels, out_h, out_w) = result.dims4()?;
            if channels != 3 || out_h != h * scale as usize || out_w != w * scale as usize {
                return Err(TileError::Model(candle_core::Error::Msg(format!(
                    "the network returned {channels}×{out_h}×{out_w} for a {h}×{w} tile at ×{scale}"
                ))));
            }
            let values = result.flatten_all()?.to_vec1::<f32>()?;
            let plane = out_w * out_h;
            let (ox, oy) = (tiling.margin * scale, tiling.margin * scale);
            for y in 0..(y1 - y0) * scale {
                for x in 0..(x1 - x0) * scale {
                    let at = ((oy + y) as usize) * out_w + (ox + x) as usize;
                    let pixel = image::Rgb(std::array::from_fn(|c| {
                        (values[c * plane + at] / tiling.input_scale)
                            .round()
                            .clamp(0.0, 255.0) as u8
                    }));
                    output.put_pixel(x0 * scale + x, y0 * scale + y, pixel);
                }
            }
            done += 1;
            control.report(done, total);
        }
    }
    Ok(output)
}

/// The coordinate `i` of an axis of `n` pixels mirrored into it (the edge pixel not repeated:
/// -1 is 1, n is n - 2), for margins wider than the image too.
fn mirror(i: i64, n: u32) -> u32 {
    let n = i64::from(n);
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let i = i.rem_euclid(period);
    (if i < n { i } else { period - i }) as u32
}

#[cfg(test)]
mod tests {
    use super::mirror;

    #[test]
    fn coordinates_mirror_at_both_edges() {
        let row: Vec<u32> = (-4..9).map(|i| mirror(i, 5)).collect();
        assert_eq!(row, [4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0]);
        assert_eq!(mirror(-3, 1), 0);
        assert_eq!(mirror(7, 2), 1);
    }
}
