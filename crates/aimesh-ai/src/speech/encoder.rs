//! Whisper's audio encoder with its feed-forward in 8 bits. Loads the same weights as
//! candle's encoder (`model.encoder.*`) and computes the same function.
//!
//! A 30-second window is 1,500 audio frames after the convolutions, and every frame goes
//! through each layer's attention projections and feed-forward: in f32 those products are
//! most of the encoder's arithmetic, the feed-forward two thirds of them. Its weights are
//! kept in Q8_0 here (one scale per 32 weights, as CTranslate2's int8 mode keeps them) and
//! multiplied by aimesh's tiled 8-bit kernels, the activations quantized to 8 bits per block
//! of 32 as they go in: on AVX-512 VNNI three to six times as fast as candle's f32 products
//! of the same shape (`cargo run --release -p aimesh-kernels --example products`).
//!
//! The attention projections stay in f32 (the query, key and value projections as one
//! matrix, one product instead of three). In 8 bits their rounding goes through a softmax
//! over 1,500 frames, and the transcripts show it: on a resampled clip of the tests, words
//! were lost ("The quick roundfox jump over" for "The quick brown fox jumps over") that the
//! f32 projections keep. The convolutions and attention's own products (scores and weighted
//! values, activations by activations) stay in f32 too, as in CTranslate2.
//!
//! GELU and the softmax of the scores (13.5 million exponentials per layer of tiny) run on
//! tract's SIMD kernels across the worker threads ([`crate::ops`]), where candle's take one
//! value at a time.

use candle_core::{D, Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, LayerNorm, Linear, Module, VarBuilder};
use candle_transformers::models::whisper::Config;

use crate::{ops::Kernels, quant::QLinear};

#[derive(Debug, Clone)]
struct Layer {
    attn_ln: LayerNorm,
    /// The query, key and value projections stacked (`3 d × d`), the query's scaled by
    /// `1/√head_dim` (the scores' scale) and the key's bias zero (it has none).
    qkv: Linear,
    out: Linear,
    mlp_ln: LayerNorm,
    fc1: QLinear,
    fc2: QLinear,
}

/// The encoder's weights.
#[derive(Debug)]
pub(crate) struct Encoder {
    conv1: Conv1d,
    conv2: Conv1d,
    /// Sinusoidal position embeddings, `[max_source_positions, d_model]`.
    positions: Tensor,
    layers: Vec<Layer>,
    ln_post: LayerNorm,
    heads: usize,
    kernels: Kernels,
}

impl Encoder {
    pub(crate) fn load(vb: VarBuilder<'_>, config: &Config) -> Result<Self> {
        let d = config.d_model;
        let heads = config.encoder_attention_heads;
        if heads == 0 || !d.is_multiple_of(heads) {
            candle_core::bail!("{d} wide is not a whole number of {heads} heads");
        }
        let ln = |vb: VarBuilder<'_>| candle_nn::layer_norm(d, 1e-5, vb);
        let conv = |inputs: usize, stride: usize, vb: VarBuilder<'_>| {
            let config = Conv1dConfig {
                padding: 1,
                stride,
                ..Default::default()
            };
            candle_nn::conv1d(inputs, d, 3, config, vb)
        };
        let scale = 1.0 / ((d / heads) as f64).sqrt();
        let layers = (0..config.encoder_layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                let attn = vb.pp("self_attn");
                let (qkv, bias) = super::stacked_qkv(&attn, d, scale)?;
                Ok(Layer {
                    attn_ln: ln(vb.pp("self_attn_layer_norm"))?,
                    qkv: Linear::new(qkv, Some(bias)),
                    out: candle_nn::linear(d, d, attn.pp("out_proj"))?,
                    mlp_ln: ln(vb.pp("final_layer_norm"))?,
                    fc1: QLinear::q8_0(d, 4 * d, true, vb.pp("fc1"))?,
                    fc2: QLinear::q8_0(4 * d, d, true, vb.pp("fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            conv1: conv(config.num_mel_bins, 1, vb.pp("conv1"))?,
            conv2: conv(d, 2, vb.pp("conv2"))?,
            positions: sinusoids(config.max_source_positions, d, vb.device())?,
            layers,
            ln_post: ln(vb.pp("layer_norm"))?,
            heads,
            kernels: Kernels::new()?,
        })
    }

    /// The audio features of a window's log-mel spectrogram (`[1, mel bins, frames]`):
    /// `[1, frames / 2, d_model]`.
    pub(crate) fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let gelu = |x: Tensor| self.kernels.gelu(&x);
        let x = gelu(self.conv1.forward(mel)?)?;
        let x = gelu(self.conv2.forward(&x)?)?.transpose(1, 2)?;
        let frames = x.dim(1)?;
        if frames > self.positions.dim(0)? {
            candle_core::bail!("{frames} audio frames, more than the encoder's positions");
        }
        let mut x = x.broadcast_add(&self.positions.narrow(0, 0, frames)?)?;
        for layer in &self.layers {
            let h = layer.attn_ln.forward(&x)?;
            let attended = self
                .kernels
                .attention(&layer.qkv.forward(&h)?, self.heads)?;
            x = (x + layer.out.forward(&attended)?)?;
            let h = layer.mlp_ln.forward(&x)?;
            x = (x + layer.fc2.forward(&gelu(layer.fc1.forward(&h)?)?)?)?;
        }
        self.ln_post.forward(&x)
    }
}

/// Whisper's sinusoidal position embeddings, `[length, channels]`: the sines of each
/// position times geometrically spaced frequencies, then their cosines (as candle and
/// Whisper compute them).
fn sinusoids(length: usize, channels: usize, device: &candle_core::Device) -> Result<Tensor> {
    let half = channels / 2;
    if half < 2 {
        candle_core::bail!("{channels} channels: too few for position embeddings");
    }
    let increment = 10_000f32.ln() / (half - 1) as f32;
    let frequencies: Vec<f32> = (0..half).map(|i| (i as f32 * -increment).exp()).collect();
    let frequencies = Tensor::new(frequencies.as_slice(), device)?.unsqueeze(0)?;
    let positions = Tensor::arange(0, length as u32, device)?
        .to_dtype(candle_core::DType::F32)?
        .unsqueeze(1)?;
    let angles = positions.broadcast_mul(&frequencies)?;
    Tensor::cat(&[angles.sin()?, angles.cos()?], D::Minus1)
}
