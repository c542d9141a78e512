//! Quantized matrices laid out for candle's fastest CPU kernels.
//!
//! On x86-64, candle multiplies Q4_K and Q8_0 matrices with tiled kernels (weights repacked
//! into 16-row tiles, 8-bit dot products by VNNI instructions, AMX for long prompts) only when
//! the matrix is a multiple of 256 wide and of 16 tall; otherwise it falls back to a plain
//! dot product per row, several times slower. The models' matrices are often narrower
//! (SmolLM2's 576 wide, Whisper tiny's 384) or oddly tall (Whisper's 51,864-token output
//! projection): padded with zero columns and rows they compute the same product, with a
//! third more multiplications done several times faster. Matrices kept as stored are padded
//! the same way, exactly: zero bytes are zero blocks in every GGUF type. Matrices of GGUF's
//! 32-value block types go to aimesh's own tiled kernels where this CPU has them
//! ([`aimesh_kernels::Tiles`]): Q4_0 and Q4_1, which candle has no tiled kernel for, and Q8_0,
//! which they take unpadded.

use std::sync::Arc;

use aimesh_kernels::Tiles;
use candle_core::{
    D, Device, Module, Result, Tensor,
    quantized::{GgmlDType, QMatMul, QTensor, ggml_file::qtensor_from_ggml},
};

/// A quantized `outputs × inputs` matrix, stored padded where that brings a faster kernel.
#[derive(Debug, Clone)]
pub(crate) struct QMatrix {
    weight: Weight,
    inputs: usize,
    outputs: usize,
    /// The stored matrix's width and height (at least `inputs` and `outputs`).
    padded: (usize, usize),
}

/// Whose kernels multiply a matrix.
#[derive(Debug, Clone)]
enum Weight {
    Candle(QMatMul),
    Tiles(Arc<Tiles>),
}

impl QMatrix {
    /// Quantizes the f32 `weight` (`outputs × inputs`) to `dtype`, on aimesh's tiled kernels or
    /// padded with zeros to the shape candle's take, when this CPU has them for `dtype`.
    pub(crate) fn quantize(weight: &Tensor, dtype: GgmlDType) -> Result<Self> {
        let (outputs, inputs) = weight.dims2()?;
        if inputs.is_multiple_of(dtype.block_size()) {
            // Whole blocks: padding the quantized matrix with zero blocks, where that brings a
            // faster kernel, gives the blocks quantizing a padded one would.
            return Self::new(QTensor::quantize(weight, dtype)?);
        }
        let padded = padded_shape(dtype, inputs, outputs);
        let weight = weight
            .pad_with_zeros(1, 0, padded.0 - inputs)?
            .pad_with_zeros(0, 0, padded.1 - outputs)?;
        Ok(Self {
            weight: Weight::Candle(QMatMul::from_qtensor(QTensor::quantize(&weight, dtype)?)?),
            inputs,
            outputs,
            padded,
        })
    }

    /// A matrix kept as it is: its values unchanged, repacked for aimesh's tiled kernels or
    /// padded with zero blocks to the shape of candle's tiled ones where this CPU has them.
    pub(crate) fn new(tensor: QTensor) -> Result<Self> {
        let (outputs, inputs) = tensor.shape().dims2()?;
        if let Some(tiles) = Tiles::pack(&tensor)? {
            return Ok(Self {
                weight: Weight::Tiles(Arc::new(tiles)),
                inputs,
                outputs,
                padded: (inputs, outputs),
            });
        }
        let padded = padded_shape(tensor.dtype(), inputs, outputs);
        let tensor = if padded == (inputs, outputs) {
            tensor
        } else {
            pad_blocks(&tensor, padded)?
        };
        Ok(Self {
            weight: Weight::Candle(QMatMul::from_qtensor(tensor)?),
            inputs,
            outputs,
            padded,
        })
    }

    /// `x · weightᵀ` for the `rows` rows of `x` (each `inputs` wide), row after row.
    pub(crate) fn multiply(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        match &self.weight {
            Weight::Tiles(tiles) => tiles.multiply(x, rows),
            Weight::Candle(_) => {
                if rows == 0 || !x.len().is_multiple_of(rows) {
                    candle_core::bail!("{} values in {rows} rows", x.len());
                }
                let x = Tensor::from_slice(x, (rows, x.len() / rows), &Device::Cpu)?;
                self.forward(&x)?.flatten_all()?.to_vec1()
            }
        }
    }

    /// `x · weightᵀ` over the last dimension of `x` (`inputs` wide).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let width = x.dim(D::Minus1)?;
        if width != self.inputs {
            candle_core::bail!("{width} inputs for a matrix {} wide", self.inputs);
        }
        let x = if self.padded.0 > width {
            x.pad_with_zeros(D::Minus1, 0, self.padded.0 - width)?
        } else {
            x.clone()
        };
        let y = match &self.weight {
            Weight::Candle(weight) => weight.forward(&x)?,
            Weight::Tiles(tiles) => {
                let dims = x.dims().to_vec();
                let rows = dims[..dims.len() - 1].iter().product();
                let y = tiles.multiply(&x.flatten_all()?.to_vec1()?, rows)?;
                let mut shape = dims;
                *shape.last_mut().expect("a matrix's input has dimensions") = self.outputs;
                Tensor::from_vec(y, shape, x.device())?
            }
        };
        if self.padded.1 > self.outputs {
            y.narrow(D::Minus1, 0, self.outputs)
        } else {
            Ok(y)
        }
    }
}

/// A dense layer, `x · weightᵀ + bias`, with its weight quantized to Q8_0 (one scale per 32
/// weights, as CTranslate2's int8 mode keeps them): Whisper's layers.
#[derive(Debug, Clone)]
pub(crate) struct QLinear {
    weight: QMatrix,
    bias: Option<Tensor>,
}

impl QLinear {
    /// The layer whose `weight` (`outputs × inputs`) and optional `bias` are under `vb`.
    pub(crate) fn q8_0(
        inputs: usize,
        outputs: usize,
        bias: bool,
        vb: candle_nn::VarBuilder<'_>,
    ) -> Result<Self> {
        let weight = vb.get((outputs, inputs), "weight")?;
        Self::quantized(&weight, bias.then(|| vb.get(outputs, "bias")).transpose()?)
    }

    /// The layer of the f32 `weight` (`outputs × inputs`), quantized to Q8_0, and `bias`.
    pub(crate) fn quantized(weight: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Self {
            weight: QMatrix::quantize(weight, GgmlDType::Q8_0)?,
            bias,
        })
    }
}

impl Module for QLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.weight.forward(x)?;
        match &self.bias {
            Some(bias) => y.broadcast_add(bias),
            None => Ok(y),
        }
    }
}

/// The width and height a matrix of `dtype` is stored at: a multiple of 256 by a multiple of
/// 16 where candle has tiled kernels for `dtype` on this CPU, else its own.
fn padded_shape(dtype: GgmlDType, inputs: usize, outputs: usize) -> (usize, usize) {
    if tiled(dtype) {
        (inputs.next_multiple_of(256), outputs.next_multiple_of(16))
    } else {
        (inputs, outputs)
    }
}

/// `tensor` padded with zero bytes to `inputs × outputs`: zero blocks, whose scales are zero,
/// in every GGUF type. Both widths must be whole blocks.
fn pad_blocks(tensor: &QTensor, (inputs, outputs): (usize, usize)) -> Result<QTensor> {
    let dtype = tensor.dtype();
    let (rows, width) = tensor.shape().dims2()?;
    let (block, bytes) = (dtype.block_size(), dtype.type_size());
    if !width.is_multiple_of(block) || !inputs.is_multiple_of(block) {
        candle_core::bail!("{width} and {inputs} wide: not whole blocks of {block}");
    }
    let (row_bytes, padded_row_bytes) = (width / block * bytes, inputs / block * bytes);
    let data = tensor.data()?;
    let mut padded = vec![0u8; outputs * padded_row_bytes];
    for (from, to) in data
        .chunks_exact(row_bytes)
        .zip(padded.chunks_exact_mut(padded_row_bytes))
        .take(rows)
    {
        to[..row_bytes].copy_from_slice(from);
    }
    qtensor_from_ggml(dtype, &padded, vec![outputs, inputs], &Device::Cpu)
}

/// Whether candle has tiled kernels for `dtype` on this CPU: Q4_K on any AVX2 CPU, Q8_0 where
/// the CPU has VNNI (AVX-512 or AVX).
fn tiled(dtype: GgmlDType) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        match dtype {
            GgmlDType::Q4K => has!("avx2") && has!("fma"),
            GgmlDType::Q8_0 => {
                (has!("avx512f") && has!("avx512vnni")) || (has!("avxvnni") && has!("avx2"))
            }
            _ => false,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = dtype;
        false
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    /// Converted matrices, padded or not, compute the product of the original ones to within
    /// the quantization error, in their original shape.
    #[test]
    fn quantized_matrices_compute_the_same_product() {
        for (inputs, outputs) in [(576, 64), (384, 40)] {
            let weights: Vec<f32> = (0..outputs * inputs)
                .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.1)
                .collect();
            let x: Vec<f32> = (0..3 * inputs)
                .map(|i| (i * 104_729 % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let weight = Tensor::from_slice(&weights, (outputs, inputs), &Device::Cpu).expect("w");
            let exact: Vec<f32> = x
                .chunks_exact(inputs)
                .flat_map(|x| {
                    weights
                        .chunks_exact(inputs)
                        .map(move |w| w.iter().zip(x).map(|(a, b)| a * b).sum::<f32>())
                })
                .collect();
            let largest = exact.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (dtype, tolerance) in [(GgmlDType::Q8_0, 0.01), (GgmlDType::Q4K, 0.1)] {
                let matrix = QMatrix::quantize(&weight, dtype).expect("quantize");
                assert_eq!(matrix.inputs, inputs);
                for rows in [1, 3] {
                    let x = Tensor::from_slice(&x[..rows * inputs], (rows, inputs), &Device::Cpu)
                        .expect("x");
                    let product: Vec<f32> = matrix
                        .forward(&x)
                        .and_then(|y| y.flatten_all()?.to_vec1())
                        .expect("product");
                    assert_eq!(product.len(), rows * outputs);
                    let diff = product
                        .iter()
                        .zip(&exact)
                        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                    assert!(
                        diff <= tolerance * largest,
                        "{dtype:?} {outputs}x{inputs}, {rows} rows: off by {diff} of {largest}"
                    );
                }
            }
        }
    }
}
