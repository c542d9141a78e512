//! A llama decoder for quantized GGUF weights, arranged for generation on CPU. It computes
//! what candle-transformers' `quantized_llama` computes (RMS norms, interleaved rotary
//! embeddings, grouped-query causal attention, SwiGLU), with candle's quantized matrix
//! products, and does the rest itself:
//!
//! - the KV cache is one growing buffer per layer, appended to in place: nothing is copied
//!   per token (candle's model concatenates the whole cache, then repeats each key/value head
//!   for its query heads, at every step). It holds f32 values, or f16 ones for half the
//!   memory (see [`KvCache`]);
//! - query, key and value are one product (their weights stacked at load), as are the gate
//!   and up projections of the feed-forward layer;
//! - norms, rotary embeddings, attention and the gated activation are plain loops over the
//!   hidden states, spread over candle's worker threads; SiLU and the softmax's exponentials
//!   run on tract's SIMD kernels (a prompt of 193 tokens takes 9 million exponentials for
//!   SiLU). The softmax's maximum and total are folded in lanes by index, not by address
//!   (tract's softmax kernel sums in lanes that depend on the scores' address, so two runs of
//!   the same request could differ, and a seeded sampling must not);
//! - converted matrices are stored in the shapes candle's fastest kernels take (see
//!   [`QMatrix`]).

use candle_core::{
    Device, Result, Tensor, bail,
    quantized::{GgmlDType, QTensor, ggml_file::qtensor_from_ggml, gguf_file},
};
use half::f16;

use crate::{
    attention::{self, CacheValue, Heads},
    ops::Kernels,
    quant::QMatrix,
};

/// The sizes of a llama model, from its GGUF metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    /// Width of the hidden states.
    pub(super) dim: usize,
    /// Query heads.
    pub(super) heads: usize,
    /// Key/value heads (each serves `heads / kv_heads` query heads).
    pub(super) kv_heads: usize,
    /// Width of the feed-forward layer.
    pub(super) hidden: usize,
    /// Decoder blocks.
    pub(super) layers: usize,
    /// Tokens in the vocabulary.
    pub(super) vocab: usize,
}

impl Shape {
    fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    /// Width of one position's keys (or values) in the cache.
    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim()
    }
}

/// One decoder block.
struct Block {
    attention_norm: Vec<f32>,
    /// Query, key and value, stacked: `(dim + 2 × kv_dim) × dim`.
    qkv: QMatrix,
    output: QMatrix,
    ffn_norm: Vec<f32>,
    /// Gate and up projections, stacked: `(2 × hidden) × dim`.
    gate_up: QMatrix,
    down: QMatrix,
}

/// A llama model with quantized weights.
pub(super) struct Llama {
    shape: Shape,
    /// The token embeddings, dequantized: `vocab × dim`.
    embeddings: Vec<f32>,
    blocks: Vec<Block>,
    norm: Vec<f32>,
    /// The output projection (the token embeddings when the file ties them).
    output: QMatrix,
    eps: f32,
    rope: Rope,
    kernels: Kernels,
}

/// How the KV cache of a llama model holds the keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvCache {
    /// Single precision: exactly what the products computed.
    #[default]
    F32,
    /// Half precision (IEEE binary16, llama.cpp's default), widened to f32 as attention
    /// reads it (F16C): half the memory (SmolLM2-135M's full 2,048-token context holds 47 MB
    /// instead of 94). Rounding to f16 moves the logits by about a thousandth of their
    /// range (the tests check the greedy tokens stay the same). Not faster on the CPUs
    /// measured: the widening costs about what the smaller reads save (see the README's
    /// benchmarks).
    F16,
}

/// What a generation has computed so far: the keys and values of every position, per layer,
/// laid out `[position][kv head][head dim]`.
pub(super) struct Cache {
    layers: Layers,
    len: usize,
}

/// Every layer's keys and values, in the format the cache was made with.
enum Layers {
    F16(Vec<Layer<f16>>),
    F32(Vec<Layer<f32>>),
}

/// One layer's keys and values.
struct Layer<T> {
    keys: Vec<T>,
    values: Vec<T>,
}

impl<T> Layer<T> {
    fn layers(count: usize) -> Vec<Self> {
        (0..count)
            .map(|_| Self {
                keys: Vec::new(),
                values: Vec::new(),
            })
            .collect()
    }
}

impl Cache {
    /// Positions computed.
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

/// The rotary embedding's cosines and sines, `[position][pair]`.
struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    pairs: usize,
    positions: usize,
}

impl Rope {
    fn new(head_dim: usize, base: f32, positions: usize) -> Self {
        let pairs = head_dim / 2;
        let mut cos = Vec::with_capacity(positions * pairs);
        let mut sin = Vec::with_capacity(positions * pairs);
        for position in 0..positions {
            for pair in 0..pairs {
                let theta = f64::from(base).powf(-2.0 * pair as f64 / head_dim as f64);
                let angle = position as f64 * theta;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Self {
            cos,
            sin,
            pairs,
            positions,
        }
    }

    /// Rotates the adjacent pairs of each head of `x` (one position's heads, side by side).
    fn apply(&self, x: &mut [f32], position: usize) {
        let at = position * self.pairs;
        let (cos, sin) = (
            &self.cos[at..at + self.pairs],
            &self.sin[at..at + self.pairs],
        );
        for head in x.chunks_exact_mut(self.pairs * 2) {
            for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                let (x0, x1) = (pair[0], pair[1]);
                pair[0] = x0 * c - x1 * s;
                pair[1] = x0 * s + x1 * c;
            }
        }
    }
}

impl Llama {
    /// Loads a llama model from GGUF `content`, its matrices converted to `requantize` when
    /// given (else kept as stored); `positions` bounds the context.
    pub(super) fn load<R: std::io::Seek + std::io::Read>(
        content: &gguf_file::Content,
        reader: &mut R,
        requantize: Option<GgmlDType>,
        positions: usize,
    ) -> Result<Self> {
        let device = Device::Cpu;
        let metadata = |key: &str| {
            content
                .metadata
                .get(key)
                .ok_or_else(|| candle_core::Error::Msg(format!("no {key} in the metadata")))
        };
        let count = |key: &str| -> Result<usize> { Ok(metadata(key)?.to_u32()? as usize) };
        let dim = count("llama.embedding_length")?;
        let heads = count("llama.attention.head_count")?;
        let kv_heads = count("llama.attention.head_count_kv")?;
        if heads == 0
            || kv_heads == 0
            || !dim.is_multiple_of(heads)
            || !heads.is_multiple_of(kv_heads)
        {
            bail!("{dim} wide with {heads} heads and {kv_heads} key/value heads");
        }
        let head_dim = dim / heads;
        if count("llama.rope.dimension_count")? != head_dim || !head_dim.is_multiple_of(2) {
            bail!("rotary embeddings must span whole heads of even width");
        }
        if content.metadata.contains_key("llama.expert_count") && count("llama.expert_count")? > 1 {
            bail!("mixture-of-experts models are not supported");
        }
        let eps = metadata("llama.attention.layer_norm_rms_epsilon")?.to_f32()?;
        let base = metadata("llama.rope.freq_base")
            .and_then(|v| v.to_f32())
            .unwrap_or(10_000.0);
        let mut tensor = |name: &str| content.tensor(reader, name, &device);
        let embeddings_q = tensor("token_embd.weight")?;
        let (vocab, embedded) = embeddings_q.shape().dims2()?;
        if embedded != dim {
            bail!("token embeddings {embedded} wide, the model is {dim}");
        }
        let embeddings = embeddings_q
            .dequantize(&device)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let norm = vector(tensor("output_norm.weight")?, dim)?;
        let output = match tensor("output.weight") {
            Ok(output) => output,
            Err(_) => embeddings_q,
        };
        let layers = count("llama.block_count")?;
        let mut hidden = 0;
        let mut blocks = Vec::with_capacity(layers);
        for layer in 0..layers {
            let mut part = |name: &str| tensor(&format!("blk.{layer}.{name}.weight"));
            let gate = part("ffn_gate")?;
            hidden = gate.shape().dims2()?.0;
            blocks.push(Block {
                attention_norm: vector(part("attn_norm")?, dim)?,
                qkv: stacked(
                    [part("attn_q")?, part("attn_k")?, part("attn_v")?],
                    requantize,
                )?,
                output: matrix(part("attn_output")?, requantize)?,
                ffn_norm: vector(part("ffn_norm")?, dim)?,
                gate_up: stacked([gate, part("ffn_up")?], requantize)?,
                down: matrix(part("ffn_down")?, requantize)?,
            });
        }
        Ok(Self {
            shape: Shape {
                dim,
                heads,
                kv_heads,
                hidden,
                layers,
                vocab,
            },
            embeddings,
            blocks,
            norm,
            output: matrix(output, requantize)?,
            eps,
            rope: Rope::new(head_dim, base, positions),
            kernels: Kernels::new()?,
        })
    }

    /// An empty cache for one generation, holding its keys and values as `format` says.
    pub(super) fn cache(&self, format: KvCache) -> Cache {
        let layers = self.shape.layers;
        Cache {
            layers: match format {
                KvCache::F16 => Layers::F16(Layer::layers(layers)),
                KvCache::F32 => Layers::F32(Layer::layers(layers)),
            },
            len: 0,
        }
    }

    /// Runs `tokens` at the positions after those `cache` holds, adding theirs to it, and
    /// returns the logits of the last one.
    pub(super) fn forward(&self, tokens: &[u32], cache: &mut Cache) -> Result<Vec<f32>> {
        let Shape { dim, vocab, .. } = self.shape;
        let start = cache.len;
        if tokens.is_empty() {
            bail!("no tokens to run");
        }
        if start + tokens.len() > self.rope.positions {
            bail!(
                "{} positions, the context holds {}",
                start + tokens.len(),
                self.rope.positions
            );
        }
        let mut x = Vec::with_capacity(tokens.len() * dim);
        for &token in tokens {
            let token = token as usize;
            if token >= vocab {
                bail!("token {token} is outside the vocabulary of {vocab}");
            }
            x.extend_from_slice(&self.embeddings[token * dim..(token + 1) * dim]);
        }
        match &mut cache.layers {
            Layers::F16(layers) => self.blocks(&mut x, layers, start)?,
            Layers::F32(layers) => self.blocks(&mut x, layers, start)?,
        }
        cache.len += tokens.len();
        let last = &x[(tokens.len() - 1) * dim..];
        let mut normed = vec![0f32; dim];
        rms_norm(last, &self.norm, self.eps, &mut normed);
        self.output.multiply(&normed, 1)
    }

    /// Every decoder block, each with its layer of the cache, over the hidden states `x` of
    /// the positions from `start` on.
    fn blocks<T: CacheValue>(
        &self,
        x: &mut [f32],
        layers: &mut [Layer<T>],
        start: usize,
    ) -> Result<()> {
        for (block, layer) in self.blocks.iter().zip(layers) {
            self.block(block, x, &mut layer.keys, &mut layer.values, start)?;
        }
        Ok(())
    }

    /// One decoder block over the hidden states `x` of the positions from `start` on.
    fn block<T: CacheValue>(
        &self,
        block: &Block,
        x: &mut [f32],
        keys: &mut Vec<T>,
        values: &mut Vec<T>,
        start: usize,
    ) -> Result<()> {
        let Shape { dim, hidden, .. } = self.shape;
        let kv_dim = self.shape.kv_dim();
        let rows = x.len() / dim;
        let mut normed = vec![0f32; x.len()];
        for_rows(x, &mut normed, dim, dim, |x, out| {
            rms_norm(x, &block.attention_norm, self.eps, out)
        });
        let qkv = block.qkv.multiply(&normed, rows)?;
        let width = dim + 2 * kv_dim;
        let mut queries = Vec::with_capacity(rows * dim);
        let mut key = vec![0f32; kv_dim];
        for (row, qkv) in qkv.chunks_exact(width).enumerate() {
            let position = start + row;
            let (q, kv) = qkv.split_at(dim);
            let (k, v) = kv.split_at(kv_dim);
            let at = queries.len();
            queries.extend_from_slice(q);
            self.rope.apply(&mut queries[at..], position);
            key.copy_from_slice(k);
            self.rope.apply(&mut key, position);
            T::extend(keys, &key);
            T::extend(values, v);
        }
        let attended = self.attention(&queries, keys, values, start);
        let output = block.output.multiply(&attended, rows)?;
        x.iter_mut().zip(&output).for_each(|(x, o)| *x += o);

        for_rows(x, &mut normed, dim, dim, |x, out| {
            rms_norm(x, &block.ffn_norm, self.eps, out)
        });
        let gate_up = block.gate_up.multiply(&normed, rows)?;
        let mut activated = vec![0f32; rows * hidden];
        for_rows(
            &gate_up,
            &mut activated,
            2 * hidden,
            hidden,
            |gate_up, out| {
                let (gate, up) = gate_up.split_at(hidden);
                self.kernels.swiglu(gate, up, out);
            },
        );
        let down = block.down.multiply(&activated, rows)?;
        x.iter_mut().zip(&down).for_each(|(x, d)| *x += d);
        Ok(())
    }

    /// Causal grouped-query attention of `queries` (one row of heads per position from
    /// `start` on) over the cached keys and values of every position up to each query's.
    fn attention<T: CacheValue>(
        &self,
        queries: &[f32],
        keys: &[T],
        values: &[T],
        start: usize,
    ) -> Vec<f32> {
        let heads = Heads {
            heads: self.shape.heads,
            kv_heads: self.shape.kv_heads,
            head_dim: self.shape.head_dim(),
        };
        let seen = |row: usize| start + row + 1;
        attention::attend(&self.kernels, heads, queries, keys, values, seen)
    }
}

/// Applies `f` to each row of `x` (`width` wide) and its row of `out` (`out_width` wide),
/// on every core when there are several rows.
fn for_rows(
    x: &[f32],
    out: &mut [f32],
    width: usize,
    out_width: usize,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) {
    aimesh_kernels::for_each_chunk(out, out_width, |row, out| {
        f(&x[row * width..(row + 1) * width], out)
    });
}

/// `x / rms(x) · weight`.
fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let mean_square = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (mean_square + eps).sqrt();
    for ((out, &x), &w) in out.iter_mut().zip(x).zip(weight) {
        *out = x * scale * w;
    }
}

/// A norm's weights.
fn vector(tensor: QTensor, size: usize) -> Result<Vec<f32>> {
    let values = tensor
        .dequantize(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    if values.len() != size {
        bail!("a norm of {} weights, expected {size}", values.len());
    }
    Ok(values)
}

/// A matrix, converted to `requantize` when given.
fn matrix(tensor: QTensor, requantize: Option<GgmlDType>) -> Result<QMatrix> {
    match requantize {
        Some(dtype) => QMatrix::quantize(&tensor.dequantize(&Device::Cpu)?, dtype),
        None => QMatrix::new(tensor),
    }
}

/// Matrices of one input width stacked row-wise into one, converted to `requantize` when
/// given. Without conversion they must share a type, and their quantized rows are stacked
/// as they are.
fn stacked<const N: usize>(parts: [QTensor; N], requantize: Option<GgmlDType>) -> Result<QMatrix> {
    let device = Device::Cpu;
    let mut rows = 0;
    let mut width = None;
    for part in &parts {
        let (r, w) = part.shape().dims2()?;
        if *width.get_or_insert(w) != w {
            bail!("stacked matrices of widths {width:?} and {w}");
        }
        rows += r;
    }
    let width = width.unwrap_or(0);
    match requantize {
        Some(dtype) => {
            let parts = parts
                .iter()
                .map(|part| part.dequantize(&device))
                .collect::<Result<Vec<_>>>()?;
            QMatrix::quantize(&Tensor::cat(&parts, 0)?, dtype)
        }
        None => {
            let dtype = parts[0].dtype();
            if parts.iter().any(|part| part.dtype() != dtype) {
                bail!("stacked matrices of different types");
            }
            let mut data = Vec::new();
            for part in &parts {
                data.extend_from_slice(&part.data()?);
            }
            QMatrix::new(qtensor_from_ggml(dtype, &data, vec![rows, width], &device)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{fs::File, io::Cursor};

    use candle_transformers::models::quantized_llama::ModelWeights;

    use super::*;
    use crate::models;

    /// The real GGUF's tensors, every matrix dequantized to F32, as a GGUF in memory.
    fn dequantized_gguf() -> (gguf_file::Content, Cursor<Vec<u8>>) {
        let spec = models::spec(super::super::MODEL_ID).expect("pinned");
        let path = spec.dir(&models::dir_for_tests()).join(spec.files[0].name);
        let mut reader = File::open(&path).expect("the model (run `aimesh models fetch`)");
        let content = gguf_file::Content::read(&mut reader).expect("gguf");
        let mut tensors = Vec::new();
        for name in content.tensor_infos.keys() {
            let tensor = content
                .tensor(&mut reader, name, &Device::Cpu)
                .expect("tensor");
            let tensor = tensor.dequantize(&Device::Cpu).expect("dequantize");
            tensors.push((
                name.as_str(),
                QTensor::quantize(&tensor, GgmlDType::F32).expect("f32"),
            ));
        }
        let metadata: Vec<_> = content
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        let tensors: Vec<_> = tensors
            .iter()
            .map(|(name, tensor)| (*name, tensor))
            .collect();
        let mut buffer = Cursor::new(Vec::new());
        gguf_file::write(&mut buffer, &metadata, &tensors).expect("write");
        buffer.set_position(0);
        (
            gguf_file::Content::read(&mut buffer).expect("read back"),
            buffer,
        )
    }

    /// Our decoder and candle's `quantized_llama` on the real model's weights (in F32, so
    /// that no quantization of the activations hides a difference) give the same logits for
    /// a prompt and for the tokens generated after it.
    #[test]
    fn decoder_matches_candle_quantized_llama() {
        let (content, mut reader) = dequantized_gguf();
        let ours = Llama::load(&content, &mut reader, None, 64).expect("ours");
        let mut theirs =
            ModelWeights::from_gguf(content, &mut reader, &Device::Cpu).expect("theirs");

        let prompt = [1u32, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 30, 2];
        let mut cache = ours.cache(KvCache::F32);
        let mut position = 0;
        for tokens in [&prompt[..], &[28], &[1542], &[30]] {
            let mine = ours.forward(tokens, &mut cache).expect("ours");
            let input = Tensor::new(tokens, &Device::Cpu)
                .and_then(|t| t.unsqueeze(0))
                .expect("input");
            let reference: Vec<f32> = theirs
                .forward(&input, position)
                .and_then(|t| t.flatten_all()?.to_vec1())
                .expect("theirs");
            position += tokens.len();
            assert_eq!(mine.len(), reference.len());
            let largest = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = mine
                .iter()
                .zip(&reference)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                diff <= 1e-4 * largest.max(1.0),
                "at position {position}: logits differ by {diff} (largest {largest})"
            );
        }
        assert_eq!(cache.len(), position);
    }

    /// As stored (Q4_1 matrices and the Q8_0 output matrix on aimesh's tiled kernels), our
    /// decoder is about as close to the exact logits (the same weights dequantized to F32, on
    /// candle's `quantized_llama`) as candle's own quantized products are. Both quantize the
    /// activations to 8 bits, each with its own rounding, which moves the logits by 1-6% of
    /// their norm here: summed over the steps, ours may be at most a quarter further off than
    /// candle's, and at no step twice as far. The next token is the exact one at every step,
    /// or one the exact logits tie with it.
    #[test]
    fn weights_as_stored_are_as_accurate_as_candles_quantized_products() {
        let spec = models::spec(super::super::MODEL_ID).expect("pinned");
        let path = spec.dir(&models::dir_for_tests()).join(spec.files[0].name);
        let mut reader = File::open(&path).expect("the model (run `aimesh models fetch`)");
        let content = gguf_file::Content::read(&mut reader).expect("gguf");
        let ours = Llama::load(&content, &mut reader, None, 64).expect("ours");
        let mut candle =
            ModelWeights::from_gguf(content, &mut reader, &Device::Cpu).expect("candle");
        let (content, mut reader) = dequantized_gguf();
        let mut exact = ModelWeights::from_gguf(content, &mut reader, &Device::Cpu).expect("f32");
        let argmax = |logits: &[f32]| {
            logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i)
        };
        // Exact logits this close are a tie for the activations' 8-bit rounding to break
        // (it moves single logits by up to 0.5 here, candle's as ours): one step of this
        // prompt has its top two 0.046 apart.
        const TIE: f32 = 0.1;
        let distance = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt()
        };
        let prompt = [1u32, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 30, 2];
        let mut cache = ours.cache(KvCache::F32);
        let mut position = 0;
        // How far ours and candle's are from the exact logits, over every step.
        let mut off = (0f32, 0f32);
        for tokens in [&prompt[..], &[28], &[1542], &[30]] {
            let mine = ours.forward(tokens, &mut cache).expect("ours");
            let input = Tensor::new(tokens, &Device::Cpu)
                .and_then(|t| t.unsqueeze(0))
                .expect("input");
            let logits = |model: &mut ModelWeights| -> Vec<f32> {
                model
                    .forward(&input, position)
                    .and_then(|t| t.flatten_all()?.to_vec1())
                    .expect("logits")
            };
            let (theirs, reference) = (logits(&mut candle), logits(&mut exact));
            position += tokens.len();
            assert_eq!(mine.len(), reference.len());
            let (pick, best) = (argmax(&mine), argmax(&reference));
            assert!(
                reference[pick] >= reference[best] - TIE,
                "at position {position}: token {pick} (exact logit {}), the exact pick {best} ({})",
                reference[pick],
                reference[best]
            );
            let (ours_off, theirs_off) =
                (distance(&mine, &reference), distance(&theirs, &reference));
            assert!(
                ours_off <= 2.0 * theirs_off,
                "at position {position}: {ours_off} from the exact logits, candle {theirs_off}"
            );
            off.0 += ours_off;
            off.1 += theirs_off;
        }
        assert!(
            off.0 <= 1.25 * off.1,
            "in all {off:?} from the exact logits"
        );
    }

    /// An f16 cache against an f32 one, on the real model's weights in F32 (so that only the
    /// cache's rounding differs), over a prompt and the greedy tokens after it: the logits
    /// stay within a small fraction of their range, and every step picks the same token, or
    /// one the f32 logits tie with it.
    #[test]
    fn an_f16_cache_keeps_the_logits_and_the_greedy_tokens() {
        let (content, mut reader) = dequantized_gguf();
        let model = Llama::load(&content, &mut reader, None, 256).expect("ours");
        let argmax = |logits: &[f32]| {
            logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i as u32)
        };
        let (mut half, mut full) = (model.cache(KvCache::F16), model.cache(KvCache::F32));
        let prompt = [1u32, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 30, 2];
        let mut tokens = prompt.to_vec();
        let mut worst = 0f32;
        for step in 0..64 {
            let ours = model.forward(&tokens, &mut half).expect("f16");
            let exact = model.forward(&tokens, &mut full).expect("f32");
            let largest = exact.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = ours
                .iter()
                .zip(&exact)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            worst = worst.max(diff / largest);
            assert!(
                diff <= 0.01 * largest,
                "step {step}: logits differ by {diff} (largest {largest})"
            );
            let (pick, best) = (argmax(&ours), argmax(&exact));
            assert!(
                exact[pick as usize] >= exact[best as usize] - 0.05,
                "step {step}: token {pick}, the f32 cache's {best}"
            );
            // Both go on with the f32 cache's token, so the two runs see the same text.
            tokens = vec![best];
        }
        assert_eq!(half.len(), full.len());
        eprintln!("largest difference: {worst} of the largest logit");
    }

    #[test]
    fn rope_rotates_pairs_by_position() {
        let rope = Rope::new(4, 10_000.0, 8);
        let mut x = vec![1.0, 0.0, 1.0, 0.0];
        rope.apply(&mut x, 0);
        assert_eq!(x, vec![1.0, 0.0, 1.0, 0.0]);
        rope.apply(&mut x, 3);
        // The first pair turns by 3 radians, the second by 3 / 100.
        assert!((x[0] - 3f32.cos()).abs() < 1e-6 && (x[1] - 3f32.sin()).abs() < 1e-6);
        assert!((x[2] - 0.03f32.cos()).abs() < 1e-6 && (x[3] - 0.03f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn rms_norm_scales_by_the_root_mean_square() {
        let mut out = vec![0f32; 2];
        rms_norm(&[3.0, 4.0], &[1.0, 2.0], 0.0, &mut out);
        let rms = (12.5f32).sqrt();
        assert!((out[0] - 3.0 / rms).abs() < 1e-6 && (out[1] - 8.0 / rms).abs() < 1e-6);
    }
}
