//! Whisper's text decoder with a key/value cache for self-attention as well as
//! cross-attention, so that each decoding step runs the new token only (candle's decoder
//! reruns the whole sequence at every step). Loads the same weights (`model.decoder.*`).
//!
//! A step multiplies one token's vector by every weight matrix of the decoder and by the
//! output projection (the token embeddings, 51,864 × 384): it is bound by reading the
//! weights, 120 MB at 32 bits. They are kept in 8-bit blocks instead (GGML Q8_0, one scale
//! per 32 weights; 32 MB), as CTranslate2's int8 mode keeps them. The cross-attention key and
//! value projections stay in f32: they run once per window, on all 1,500 audio frames (a
//! small share of a window's time), and in 8 bits together with the encoder's 8-bit
//! feed-forward they cost Whisper base the first sentence of the benchmark's clip.
//!
//! Every step also reads the cross-attention's keys and values of all 1,500 frames, in every
//! layer (18 MB in f32 for tiny, 37 MB for base): they are kept in f16 (half the memory), and
//! attention runs on the chat engine's loops (`crate::attention`), one pass over the cache
//! per (token, head) instead of candle's six operations with a thread-pool handover each.

use candle_core::{Device, Result, Tensor, quantized::GgmlDType};
use candle_nn::{Embedding, LayerNorm, Linear, Module, VarBuilder};
use candle_transformers::models::whisper::Config;
use half::f16;

use crate::{
    attention::{self, CacheValue, Heads},
    ops::Kernels,
    quant::{QLinear, QMatrix},
};

/// Self-attention's projections: query, key and value stacked into one matrix (`3 d × d`,
/// the key's bias zero: it has none), one product per step instead of three.
#[derive(Debug, Clone)]
struct SelfAttention {
    qkv: QLinear,
    out: QLinear,
}

impl SelfAttention {
    fn load(d: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let (weight, bias) = super::stacked_qkv(&vb, d, 1.0)?;
        Ok(Self {
            // Q8_0 blocks lie along rows: stacking the rows quantizes each as on its own.
            qkv: QLinear::quantized(&weight, Some(bias))?,
            out: QLinear::q8_0(d, d, true, vb.pp("out_proj"))?,
        })
    }
}

/// Cross-attention's projections. The keys and values, of all audio frames once per window,
/// stay in f32.
#[derive(Debug, Clone)]
struct CrossAttention {
    query: QLinear,
    key: Linear,
    value: Linear,
    out: QLinear,
}

impl CrossAttention {
    fn load(d: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            query: QLinear::q8_0(d, d, true, vb.pp("q_proj"))?,
            key: candle_nn::linear_no_bias(d, d, vb.pp("k_proj"))?,
            value: candle_nn::linear(d, d, vb.pp("v_proj"))?,
            out: QLinear::q8_0(d, d, true, vb.pp("out_proj"))?,
        })
    }
}

#[derive(Debug, Clone)]
struct Layer {
    self_attn: SelfAttention,
    self_ln: LayerNorm,
    cross_attn: CrossAttention,
    cross_ln: LayerNorm,
    fc1: QLinear,
    fc2: QLinear,
    mlp_ln: LayerNorm,
}

/// The decoder's weights.
#[derive(Debug)]
pub(crate) struct Decoder {
    embed: Embedding,
    positions: Tensor,
    layers: Vec<Layer>,
    ln: LayerNorm,
    /// The token embeddings in Q8_0, scoring the next token.
    logits: QMatrix,
    heads: Heads,
    max_positions: usize,
    kernels: Kernels,
}

/// The cache of one window's decoding, laid out `[position][head][head dim]`.
pub(crate) struct State {
    /// Per layer: keys and values of the audio features, in f16.
    cross: Vec<(Vec<f16>, Vec<f16>)>,
    /// Per layer: keys and values of the tokens so far (a few hundred at most: f32).
    past: Vec<(Vec<f32>, Vec<f32>)>,
    /// Tokens decoded so far.
    len: usize,
}

impl Decoder {
    pub(crate) fn load(vb: VarBuilder<'_>, config: &Config) -> Result<Self> {
        let d = config.d_model;
        let ln = |vb: VarBuilder<'_>| candle_nn::layer_norm(d, 1e-5, vb);
        let layers = (0..config.decoder_layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                Ok(Layer {
                    self_attn: SelfAttention::load(d, vb.pp("self_attn"))?,
                    self_ln: ln(vb.pp("self_attn_layer_norm"))?,
                    cross_attn: CrossAttention::load(d, vb.pp("encoder_attn"))?,
                    cross_ln: ln(vb.pp("encoder_attn_layer_norm"))?,
                    fc1: QLinear::q8_0(d, 4 * d, true, vb.pp("fc1"))?,
                    fc2: QLinear::q8_0(4 * d, d, true, vb.pp("fc2"))?,
                    mlp_ln: ln(vb.pp("final_layer_norm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let embed = candle_nn::embedding(config.vocab_size, d, vb.pp("embed_tokens"))?;
        let logits = QMatrix::quantize(embed.embeddings(), GgmlDType::Q8_0)?;
        Ok(Self {
            embed,
            logits,
            positions: vb.get((config.max_target_positions, d), "embed_positions.weight")?,
            layers,
            ln: ln(vb.pp("layer_norm"))?,
            heads: Heads {
                heads: config.decoder_attention_heads,
                kv_heads: config.decoder_attention_heads,
                head_dim: d / config.decoder_attention_heads,
            },
            max_positions: config.max_target_positions,
            kernels: Kernels::new()?,
        })
    }

    /// Starts decoding a window: projects the audio features (`[1, frames, d_model]`) into
    /// every layer's cross-attention keys and values.
    pub(crate) fn begin(&self, features: &Tensor) -> Result<State> {
        let half = |projected: Tensor| -> Result<Vec<f16>> {
            let mut values = Vec::new();
            f16::extend(&mut values, &projected.flatten_all()?.to_vec1()?);
            Ok(values)
        };
        let cross = self
            .layers
            .iter()
            .map(|layer| {
                let k = half(layer.cross_attn.key.forward(features)?)?;
                let v = half(layer.cross_attn.value.forward(features)?)?;
                Ok((k, v))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(State {
            cross,
            past: vec![(Vec::new(), Vec::new()); self.layers.len()],
            len: 0,
        })
    }

    /// How many tokens a window may hold.
    pub(crate) fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Feeds `tokens` after those already in `state` and returns the logits of the token
    /// following the last one, `[vocab]`.
    pub(crate) fn step(
        &self,
        state: &mut State,
        tokens: &[u32],
        device: &Device,
    ) -> Result<Tensor> {
        let n = tokens.len();
        let input = Tensor::new(tokens, device)?.unsqueeze(0)?;
        let positions = self.positions.narrow(0, state.len, n)?;
        let mut x = self.embed.forward(&input)?.broadcast_add(&positions)?;
        let past = state.len;
        let values = |x: Tensor| -> Result<Vec<f32>> { x.flatten_all()?.to_vec1() };
        let dims = x.dims3()?;
        let d = dims.2;
        for ((layer, (keys, vals)), (cross_keys, cross_values)) in
            self.layers.iter().zip(&mut state.past).zip(&state.cross)
        {
            // Self-attention over the cached tokens and the new ones.
            let h = layer.self_ln.forward(&x)?;
            let qkv = values(layer.self_attn.qkv.forward(&h)?)?;
            let mut q = Vec::with_capacity(n * d);
            for row in qkv.chunks_exact(3 * d) {
                let (query, kv) = row.split_at(d);
                let (key, value) = kv.split_at(d);
                q.extend_from_slice(query);
                keys.extend_from_slice(key);
                vals.extend_from_slice(value);
            }
            let seen = |row: usize| past + row + 1;
            let attended = attention::attend(&self.kernels, self.heads, &q, keys, vals, seen);
            let attended = Tensor::from_vec(attended, dims, device)?;
            x = (x + layer.self_attn.out.forward(&attended)?)?;

            // Cross-attention over the audio.
            let h = layer.cross_ln.forward(&x)?;
            let q = values(layer.cross_attn.query.forward(&h)?)?;
            // Every token sees every audio frame.
            let frames = cross_keys.len() / (self.heads.kv_heads * self.heads.head_dim);
            let frames = |_: usize| frames;
            let attended = attention::attend(
                &self.kernels,
                self.heads,
                &q,
                cross_keys,
                cross_values,
                frames,
            );
            let attended = Tensor::from_vec(attended, dims, device)?;
            x = (x + layer.cross_attn.out.forward(&attended)?)?;

            let h = layer.mlp_ln.forward(&x)?;
            x = (x + layer.fc2.forward(&layer.fc1.forward(&h)?.gelu()?)?)?;
        }
        state.len += n;
        let last = self.ln.forward(&x.narrow(1, n - 1, 1)?)?.squeeze(0)?;
        // Logits share the token embedding matrix: [1, d] x [d, vocab].
        self.logits.forward(&last)?.squeeze(0)
    }
}
