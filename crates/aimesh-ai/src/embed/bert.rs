//! The BERT encoder of all-MiniLM, arranged for CPU inference. It computes what
//! candle-transformers' `BertModel` computes (same weights, same exact-erf GELU), with less
//! work per layer:
//!
//! - texts are packed: their tokens lie end to end, `(tokens, hidden)`, so every dense layer
//!   (nearly all of the arithmetic) is one matrix product over real tokens, none over padding.
//!   Only attention lays the texts out side by side, padded to the longest, and its softmax
//!   stops at each text's length, so padding costs a little attention and nothing else;
//! - query, key and value are one matrix product (their weights concatenated at load), with
//!   the attention scale folded into the query weights; their bias is added while the heads
//!   are laid out for attention;
//! - each bias, residual and layer normalisation is one pass, as is the intermediate layer's
//!   bias and GELU, each spread over every core (candle runs most element-wise operations on
//!   one thread);
//! - where the CPU has VNNI, the feed-forward layers multiply 8-bit blocks
//!   ([`FeedForward::Q8_0`]), as Whisper's encoder does: embeddings within a hair of f32's
//!   (a test holds them to candle's), the products several times faster.

use std::f32::consts::{FRAC_1_SQRT_2, LOG2_E};

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, InplaceOp1, Layout, Result, Shape, Tensor, bail,
    quantized::GgmlDType,
};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;

use crate::{ops::contiguous, quant::QMatrix};

/// How the encoder's feed-forward layers (two thirds of its dense arithmetic) multiply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedForward {
    /// In f32, as stored: candle-transformers' `BertModel` to within float rounding.
    F32,
    /// Weights quantized to Q8_0 at load (one f16 scale per 32 weights, as for Whisper's
    /// encoder), activations to 8 bits per 32 values, on aimesh's tiled 8-bit kernels. The
    /// attention's projections stay f32.
    Q8_0,
}

impl FeedForward {
    /// [`Q8_0`](Self::Q8_0) where this CPU multiplies 8-bit blocks with VNNI, several times
    /// faster than f32 there; [`F32`](Self::F32) elsewhere (AVX2 alone gains nothing from it).
    pub fn for_this_cpu() -> Self {
        if aimesh_kernels::has_vnni() {
            Self::Q8_0
        } else {
            Self::F32
        }
    }
}

/// A dense layer's weight: f32, kept transposed and contiguous for `x · weight`, or 8-bit
/// blocks of its rows.
enum Weight {
    F32(Tensor),
    Q8_0(QMatrix),
}

/// A dense layer, `x · weightᵀ`; its bias is added by the operation that follows the product.
struct Dense {
    weight: Weight,
    bias: Vec<f32>,
}

impl Dense {
    /// The layer whose `weight` (`outputs × inputs`) and `bias` are under `vb`, its weight
    /// kept as `kind` says.
    fn load(vb: VarBuilder<'_>, inputs: usize, outputs: usize, kind: FeedForward) -> Result<Self> {
        let weight = vb.get((outputs, inputs), "weight")?;
        let bias = vb.get(outputs, "bias")?;
        Self::new(&weight, &bias, kind)
    }

    /// The layer of `weight` (`outputs × inputs`) and `bias`, its weight kept as `kind` says.
    fn new(weight: &Tensor, bias: &Tensor, kind: FeedForward) -> Result<Self> {
        let weight = match kind {
            FeedForward::F32 => Weight::F32(weight.t()?.contiguous()?),
            FeedForward::Q8_0 => Weight::Q8_0(QMatrix::quantize(weight, GgmlDType::Q8_0)?),
        };
        Ok(Self {
            weight,
            bias: bias.to_vec1()?,
        })
    }

    /// `x · weightᵀ`, without the bias.
    fn product(&self, x: &Tensor) -> Result<Tensor> {
        match &self.weight {
            Weight::F32(weight) => x.matmul(weight),
            Weight::Q8_0(weight) => weight.forward(x),
        }
    }
}

/// One transformer layer.
struct Layer {
    qkv: Dense,
    output: Dense,
    attention_norm: AddNorm,
    intermediate: Dense,
    down: Dense,
    output_norm: AddNorm,
}

/// The encoder: embeddings and layers, returning the last hidden states.
pub(super) struct Encoder {
    word_embeddings: Tensor,
    /// Position embeddings plus the embedding of token type 0 (every input is one segment).
    position_embeddings: Tensor,
    embedding_norm: AddNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_size: usize,
    hidden: usize,
    max_positions: usize,
}

impl Encoder {
    /// Builds the encoder from BERT weights named as in Hugging Face checkpoints, its
    /// feed-forward layers multiplying as `feed_forward` says.
    pub(super) fn load(
        vb: &VarBuilder<'_>,
        config: &Config,
        feed_forward: FeedForward,
    ) -> Result<Self> {
        if config.hidden_act != HiddenAct::Gelu {
            bail!("hidden_act {:?}: only gelu is supported", config.hidden_act);
        }
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !hidden.is_multiple_of(heads) {
            bail!("hidden_size {hidden} is not divisible by {heads} heads");
        }
        let head_size = hidden / heads;
        let eps = config.layer_norm_eps as f32;
        let e = vb.pp("embeddings");
        let word_embeddings = e.get((config.vocab_size, hidden), "word_embeddings.weight")?;
        let token_type = e
            .get(
                (config.type_vocab_size, hidden),
                "token_type_embeddings.weight",
            )?
            .get(0)?;
        let position_embeddings = e
            .get(
                (config.max_position_embeddings, hidden),
                "position_embeddings.weight",
            )?
            .broadcast_add(&token_type)?;
        let embedding_norm = AddNorm::load(e.pp("LayerNorm"), vec![0.0; hidden], eps)?;
        let scale = 1.0 / (head_size as f64).sqrt();
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention.self");
                let part = |name: &str| -> Result<(Tensor, Tensor)> {
                    Ok((
                        a.get((hidden, hidden), &format!("{name}.weight"))?,
                        a.get(hidden, &format!("{name}.bias"))?,
                    ))
                };
                let (qw, qb) = part("query")?;
                let (kw, kb) = part("key")?;
                let (vw, vb_) = part("value")?;
                let weight = Tensor::cat(&[(qw * scale)?, kw, vw], 0)?;
                let bias = Tensor::cat(&[(qb * scale)?, kb, vb_], 0)?;
                // The attention's projections stay f32 (see FeedForward::Q8_0).
                let output = Dense::load(
                    l.pp("attention.output.dense"),
                    hidden,
                    hidden,
                    FeedForward::F32,
                )?;
                let attention_norm =
                    AddNorm::load(l.pp("attention.output.LayerNorm"), output.bias.clone(), eps)?;
                let down = Dense::load(
                    l.pp("output.dense"),
                    config.intermediate_size,
                    hidden,
                    feed_forward,
                )?;
                let output_norm = AddNorm::load(l.pp("output.LayerNorm"), down.bias.clone(), eps)?;
                Ok(Layer {
                    qkv: Dense::new(&weight, &bias, FeedForward::F32)?,
                    output,
                    attention_norm,
                    intermediate: Dense::load(
                        l.pp("intermediate.dense"),
                        hidden,
                        config.intermediate_size,
                        feed_forward,
                    )?,
                    down,
                    output_norm,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word_embeddings,
            position_embeddings,
            embedding_norm,
            layers,
            heads,
            head_size,
            hidden,
            max_positions: config.max_position_embeddings,
        })
    }

    /// Runs the encoder on texts given as token ids laid end to end: `ids` holds
    /// `lengths[0]` tokens of the first text, then those of the second... Returns the last
    /// hidden states of every token in the same order, `(tokens, hidden)`.
    pub(super) fn forward(&self, ids: &[u32], lengths: &[usize]) -> Result<Tensor> {
        let packing = Packing::new(lengths);
        if packing.tokens != ids.len() {
            bail!("{} ids for texts of {} tokens", ids.len(), packing.tokens);
        }
        if packing.width > self.max_positions {
            bail!(
                "a text of {} tokens, the model has {} positions",
                packing.width,
                self.max_positions
            );
        }
        let device = self.word_embeddings.device();
        let positions: Vec<u32> = lengths
            .iter()
            .flat_map(|&length| 0..length as u32)
            .collect();
        let words = self
            .word_embeddings
            .index_select(&Tensor::new(ids, device)?, 0)?;
        let positions = self
            .position_embeddings
            .index_select(&Tensor::new(positions.as_slice(), device)?, 0)?;
        let mut x = words.apply_op2_no_bwd(&positions, &self.embedding_norm)?;
        for layer in &self.layers {
            x = self.layer(layer, &x, &packing)?;
        }
        Ok(x)
    }

    fn layer(&self, layer: &Layer, x: &Tensor, packing: &Packing) -> Result<Tensor> {
        let qkv = layer.qkv.product(x)?;
        // Each group of texts attends on its own, the groups side by side on every core (a
        // group's products are too small for the matrix kernel to share out).
        let context = packing
            .groups
            .par_iter()
            .map(|group| self.attention(&layer.qkv.bias, &qkv, group))
            .collect::<Result<Vec<_>>>()?;
        let context = match context.as_slice() {
            [one] => one.clone(),
            many => Tensor::cat(many, 0)?,
        };
        let attended = layer.output.product(&context)?;
        let x = attended.apply_op2_no_bwd(x, &layer.attention_norm)?;
        let up = layer
            .intermediate
            .product(&x)?
            .apply_op1_no_bwd(&BiasGelu(&layer.intermediate.bias))?;
        layer
            .down
            .product(&up)?
            .apply_op2_no_bwd(&x, &layer.output_norm)
    }

    /// Self-attention of one group of texts, from the packed query-key-value products of the
    /// whole batch (bias not added). Returns the group's packed `(tokens, hidden)` context.
    fn attention(&self, bias: &[f32], qkv: &Tensor, group: &Group) -> Result<Tensor> {
        let packing = &group.packing;
        // (tokens, 3 × hidden) → (3, texts, heads, width, head size), bias added.
        let split = SplitHeads {
            packing,
            heads: self.heads,
            size: self.head_size,
        };
        let parts = qkv
            .narrow(0, group.first_token, packing.tokens)?
            .apply_op1_no_bwd(&BiasOp(bias, &split))?;
        let (q, k, v) = (parts.get(0)?, parts.get(1)?, parts.get(2)?);
        let scores = q.matmul(&k.t()?)?;
        scores.inplace_op1(&MaskedSoftmax { packing })?;
        scores.matmul(&v)?.apply_op1_no_bwd(&MergeHeads {
            packing,
            hidden: self.hidden,
        })
    }
}

/// Texts per attention group: texts given in order of length (as the batcher does) then
/// attend padded to little more than their own length.
const GROUP: usize = 4;

/// Where each text's tokens lie in a packed batch, and how its texts are grouped for
/// attention.
struct Packing {
    /// The first token of each text.
    starts: Vec<usize>,
    lengths: Vec<usize>,
    /// The longest text.
    width: usize,
    tokens: usize,
    /// Consecutive texts, [`GROUP`] at most, that attend together.
    groups: Vec<Group>,
}

/// Consecutive texts of a batch that attend together.
struct Group {
    /// The group's first token in the batch.
    first_token: usize,
    /// The group's texts, on their own.
    packing: Packing,
}

impl Packing {
    fn new(lengths: &[usize]) -> Self {
        let mut packing = Self::ungrouped(lengths);
        let mut first_token = 0;
        packing.groups = lengths
            .chunks(GROUP)
            .map(|lengths| {
                let group = Group {
                    first_token,
                    packing: Self::ungrouped(lengths),
                };
                first_token += group.packing.tokens;
                group
            })
            .collect();
        packing
    }

    fn ungrouped(lengths: &[usize]) -> Self {
        let mut starts = Vec::with_capacity(lengths.len());
        let mut tokens = 0;
        for &length in lengths {
            starts.push(tokens);
            tokens += length;
        }
        Self {
            starts,
            lengths: lengths.to_vec(),
            width: lengths.iter().copied().max().unwrap_or(0),
            tokens,
            groups: Vec::new(),
        }
    }

    fn texts(&self) -> usize {
        self.lengths.len()
    }
}

/// An operation on packed hidden states that also adds a dense layer's bias.
struct BiasOp<'a, T>(&'a [f32], &'a T);

/// Lays packed `(tokens, 3 × hidden)` query-key-value rows out for attention, adding their
/// bias: `(3, texts, heads, width, head size)`, zero at padded positions.
struct SplitHeads<'a> {
    packing: &'a Packing,
    heads: usize,
    size: usize,
}

impl CustomOp1 for BiasOp<'_, SplitHeads<'_>> {
    fn name(&self) -> &'static str {
        "split-heads"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (bias, op) = (self.0, self.1);
        let qkv = contiguous(self.name(), storage, layout)?;
        let (heads, size, packing) = (op.heads, op.size, op.packing);
        let hidden = heads * size;
        let (texts, width) = (packing.texts(), packing.width);
        if qkv.len() != packing.tokens * 3 * hidden || bias.len() != 3 * hidden {
            bail!(
                "split-heads: {} values for {} tokens",
                qkv.len(),
                packing.tokens
            );
        }
        let block = heads * width * size;
        let mut out = vec![0f32; 3 * texts * block];
        out.par_chunks_mut(block)
            .enumerate()
            .for_each(|(index, out)| {
                let (part, text) = (index / texts, index % texts);
                let start = packing.starts[text];
                for head in 0..heads {
                    let column = part * hidden + head * size;
                    let bias = &bias[column..column + size];
                    for position in 0..packing.lengths[text] {
                        let row = (start + position) * 3 * hidden + column;
                        let from = &qkv[row..row + size];
                        let at = (head * width + position) * size;
                        for ((out, &x), &b) in out[at..at + size].iter_mut().zip(from).zip(bias) {
                            *out = x + b;
                        }
                    }
                }
            });
        Ok((
            CpuStorage::F32(out),
            Shape::from((3, texts, heads, width, size)),
        ))
    }
}

/// Softmax over the attention scores `(texts, heads, width, width)` of each query, over the
/// keys its text has (padding gets no weight), in place. Rows of padded queries become zero.
struct MaskedSoftmax<'a> {
    packing: &'a Packing,
}

impl InplaceOp1 for MaskedSoftmax<'_> {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let CpuStorage::F32(data) = storage else {
            bail!("masked-softmax: f32 only");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("masked-softmax: contiguous tensors only");
        };
        let width = self.packing.width;
        let scores = &mut data[start..end];
        let per_text = scores.len() / self.packing.texts().max(1);
        if width == 0 || scores.len() != per_text * self.packing.texts() {
            bail!(
                "masked-softmax: {} scores do not fit the texts",
                scores.len()
            );
        }
        scores
            .par_chunks_mut(width)
            .enumerate()
            .for_each(|(row, scores)| {
                let length = self.packing.lengths[row * width / per_text];
                let query = row % width;
                let (keys, padding) = scores.split_at_mut(length);
                padding.fill(0.0);
                if query >= length {
                    keys.fill(0.0);
                    return;
                }
                let max = keys.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                // Apart from the sum, so that this loop vectorises.
                keys.iter_mut().for_each(|score| *score = exp(*score - max));
                let scale = 1.0 / keys.iter().sum::<f32>();
                keys.iter_mut().for_each(|score| *score *= scale);
            });
        Ok(())
    }
}

/// Gathers attention's output `(texts, heads, width, head size)` back into packed
/// `(tokens, hidden)` rows.
struct MergeHeads<'a> {
    packing: &'a Packing,
    hidden: usize,
}

impl CustomOp1 for MergeHeads<'_> {
    fn name(&self) -> &'static str {
        "merge-heads"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let context = contiguous(self.name(), storage, layout)?;
        let (packing, hidden) = (self.packing, self.hidden);
        let Some(&[_, heads, width, size]) = layout.shape().dims().get(..4) else {
            bail!("merge-heads: expected (texts, heads, width, size)");
        };
        if heads * size != hidden || context.len() != packing.texts() * heads * width * size {
            bail!("merge-heads: {:?} does not fit the texts", layout.shape());
        }
        let mut out = vec![0f32; packing.tokens * hidden];
        // Each text's rows, one disjoint slice apiece.
        let mut rows = Vec::with_capacity(packing.texts());
        let mut rest = out.as_mut_slice();
        for &length in &packing.lengths {
            let (own, tail) = rest.split_at_mut(length * hidden);
            rows.push(own);
            rest = tail;
        }
        rows.into_par_iter().enumerate().for_each(|(text, out)| {
            for (position, out) in out.chunks_mut(hidden).enumerate() {
                for (head, out) in out.chunks_mut(size).enumerate() {
                    let at = ((text * heads + head) * width + position) * size;
                    out.copy_from_slice(&context[at..at + size]);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((packing.tokens, hidden))))
    }
}

/// `layer_norm(x + bias + residual)` over rows: a dense layer's bias, the residual
/// connection and the layer normalisation that follows, in one pass on every core.
struct AddNorm {
    bias: Vec<f32>,
    weight: Vec<f32>,
    shift: Vec<f32>,
    eps: f32,
}

impl AddNorm {
    fn load(vb: VarBuilder<'_>, bias: Vec<f32>, eps: f32) -> Result<Self> {
        let size = bias.len();
        Ok(Self {
            bias,
            weight: vb.get(size, "weight")?.to_vec1()?,
            shift: vb.get(size, "bias")?.to_vec1()?,
            eps,
        })
    }
}

impl CustomOp2 for AddNorm {
    fn name(&self) -> &'static str {
        "add-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        residual: &CpuStorage,
        residual_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(self.name(), x, x_layout)?;
        let residual = contiguous(self.name(), residual, residual_layout)?;
        let size = self.bias.len();
        if size == 0 || x.len() != residual.len() || !x.len().is_multiple_of(size) {
            bail!(
                "add-norm: {} and {} values are not rows of {size}",
                x.len(),
                residual.len()
            );
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(size)
            .zip(x.par_chunks(size))
            .zip(residual.par_chunks(size))
            .for_each(|((out, x), residual)| {
                let mut sum = 0.0;
                for (((out, &x), &r), &b) in out.iter_mut().zip(x).zip(residual).zip(&self.bias) {
                    *out = x + r + b;
                    sum += *out;
                }
                let mean = sum / size as f32;
                let variance =
                    out.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / size as f32;
                let scale = 1.0 / (variance + self.eps).sqrt();
                for ((out, &w), &s) in out.iter_mut().zip(&self.weight).zip(&self.shift) {
                    *out = (*out - mean) * scale * w + s;
                }
            });
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }
}

/// `gelu(x + bias)` with the exact (erf) GELU, over rows of `x`, on every core.
struct BiasGelu<'a>(&'a [f32]);

impl CustomOp1 for BiasGelu<'_> {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(self.name(), storage, layout)?;
        let bias = self.0;
        let columns = bias.len();
        if columns == 0 || !x.len().is_multiple_of(columns) {
            bail!("bias-gelu: {} values are not rows of {columns}", x.len());
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(columns)
            .zip(x.par_chunks(columns))
            .for_each(|(out, x)| {
                for ((out, &x), &b) in out.iter_mut().zip(x).zip(bias) {
                    let v = x + b;
                    *out = 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2));
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// The error function in f32 as a rational function of `x²` (odd numerator of degree 13,
/// even denominator of degree 8) on [-4, 4], where erf reaches ±1 in f32. Unlike libm's
/// `erff`, it has no branches or table lookups, so the compiler vectorises the loop above;
/// it stays within 1e-6 of libm's (a test checks), well below the encoder's f32 noise.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: [f32; 7] = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ];
    const Q: [f32; 5] = [
        -1.456_607_2e-5,
        -2.133_740_6e-4,
        -1.682_827e-3,
        -7.373_329e-3,
        -1.426_474e-2,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = P[1..].iter().fold(P[0], |acc, &c| acc * x2 + c);
    let q = Q[1..].iter().fold(Q[0], |acc, &c| acc * x2 + c);
    x * p / q
}

/// `e^x` for `x ≤ 0` (softmax's shifted scores) in f32: `x = n·ln 2 + r` with `n` the nearest
/// integer (`ln 2` in two parts, so that `r` is exact) and `|r| ≤ ½ ln 2`, then `e^r` by a
/// degree-6 polynomial (fitted for relative error) times `2^n`, set in the exponent bits. No
/// branches, tables or libm calls, so the loop vectorises; within 2e-7 relative of libm's (a
/// test checks). Below -87 (where f32 turns subnormal) it returns 0.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const C: [f32; 7] = [
        1.382_942e-3,
        8.374_771e-3,
        4.166_836e-2,
        1.666_642_1e-1,
        4.999_999e-1,
        1.0,
        1.0,
    ];
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding 1.5 × 2^23 rounds to the nearest integer, which then sits in the low mantissa
    // bits (SSE2 has no vector rounding instruction).
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.max(-87.0);
    let shifted = clamped * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (clamped - n * LN2_HIGH) - n * LN2_LOW;
    let power = C[1..].iter().fold(C[0], |acc, &c| acc * r + c);
    // 2^n for n in [-126, 0]: its biased exponent alone.
    let exponent = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    let value = power * f32::from_bits(exponent << 23);
    if x < -87.0 { 0.0 } else { value }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;

    #[test]
    fn erf_stays_within_a_millionth_of_libm() {
        let mut worst = 0f32;
        for i in -60_000..=60_000 {
            let x = i as f32 / 10_000.0;
            let diff = (erf(x) - candle_core::cpu::erf::erf_f32(x)).abs();
            worst = worst.max(diff);
        }
        assert!(worst < 1e-6, "{worst}");
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(10.0) - 1.0).abs() < 1e-6 && (erf(-10.0) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn exp_stays_within_two_ten_millionths_of_libm() {
        let mut worst = 0f32;
        for i in 0..=870_000 {
            let x = -(i as f32) / 10_000.0;
            let relative = (exp(x) - x.exp()).abs() / x.exp();
            worst = worst.max(relative);
        }
        assert!(worst < 2e-7, "{worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn bias_gelu_matches_candle() {
        let device = Device::Cpu;
        let x = Tensor::arange(-300i64, 300, &device)
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| (t / 50.0)?.reshape((20, 30)))
            .expect("x");
        let bias: Vec<f32> = (0..30).map(|i| i as f32 / 100.0).collect();
        let ours = x.apply_op1_no_bwd(&BiasGelu(&bias)).expect("ours");
        let theirs = x
            .broadcast_add(&Tensor::new(bias.as_slice(), &device).expect("bias"))
            .and_then(|t| t.gelu_erf())
            .expect("theirs");
        let diff = (ours - theirs)
            .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
            .expect("diff");
        assert!(diff < 1e-6, "{diff}");
    }
}
