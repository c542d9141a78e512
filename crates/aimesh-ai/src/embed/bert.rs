//! The BERT encoder of all-MiniLM, arranged for CPU inference. It computes what
//! candle-transformers' `BertModel` computes (same weights, same exact-erf GELU), with less
//! work per layer:
//!
//! - query, key and value are one matrix product (their weights concatenated at load), with
//!   the attention scale folded into the query weights;
//! - the intermediate layer's bias and GELU are one pass, spread over every core (candle runs
//!   element-wise operations on one thread);
//! - hidden states stay a `(texts × positions, hidden)` matrix, so every dense layer is one
//!   matrix product;
//! - a batch without padding adds no attention mask.

use std::f32::consts::FRAC_1_SQRT_2;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};

/// A dense layer: `x · weightᵀ + bias`, the weight kept transposed and contiguous.
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    fn load(vb: VarBuilder<'_>, inputs: usize, outputs: usize) -> Result<Self> {
        let weight = vb.get((outputs, inputs), "weight")?;
        let bias = vb.get(outputs, "bias")?;
        Self::new(&weight, bias)
    }

    fn new(weight: &Tensor, bias: Tensor) -> Result<Self> {
        Ok(Self {
            weight: weight.t()?.contiguous()?,
            bias,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// Layer normalisation over the last dimension.
struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Norm {
    fn load(vb: VarBuilder<'_>, size: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(size, "weight")?,
            bias: vb.get(size, "bias")?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// One transformer layer.
struct Layer {
    qkv: Dense,
    output: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    down: Dense,
    output_norm: Norm,
}

/// The encoder: embeddings and layers, returning the last hidden states.
pub(super) struct Encoder {
    word_embeddings: Tensor,
    /// Position embeddings plus the embedding of token type 0 (every input is one segment).
    position_embeddings: Tensor,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    head_size: usize,
    hidden: usize,
}

impl Encoder {
    /// Builds the encoder from BERT weights named as in Hugging Face checkpoints.
    pub(super) fn load(vb: &VarBuilder<'_>, config: &Config) -> Result<Self> {
        if config.hidden_act != HiddenAct::Gelu {
            bail!("hidden_act {:?}: only gelu is supported", config.hidden_act);
        }
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !hidden.is_multiple_of(heads) {
            bail!("hidden_size {hidden} is not divisible by {heads} heads");
        }
        let head_size = hidden / heads;
        let eps = config.layer_norm_eps;
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
        let embedding_norm = Norm::load(e.pp("LayerNorm"), hidden, eps)?;
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
                Ok(Layer {
                    qkv: Dense::new(&weight, bias)?,
                    output: Dense::load(l.pp("attention.output.dense"), hidden, hidden)?,
                    attention_norm: Norm::load(l.pp("attention.output.LayerNorm"), hidden, eps)?,
                    intermediate: Dense::load(
                        l.pp("intermediate.dense"),
                        hidden,
                        config.intermediate_size,
                    )?,
                    down: Dense::load(l.pp("output.dense"), config.intermediate_size, hidden)?,
                    output_norm: Norm::load(l.pp("output.LayerNorm"), hidden, eps)?,
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
        })
    }

    /// Runs the encoder on `ids` (`texts × width`, u32) whose `mask` (same shape, f32, 1 for
    /// a token and 0 for padding) says which positions hold tokens; `padded` tells whether
    /// any is 0. Returns the last hidden states, `texts × width × hidden`.
    pub(super) fn forward(&self, ids: &Tensor, mask: &Tensor, padded: bool) -> Result<Tensor> {
        let (texts, width) = ids.dims2()?;
        let rows = texts * width;
        let words = self.word_embeddings.index_select(&ids.flatten_all()?, 0)?;
        let positions = self.position_embeddings.narrow(0, 0, width)?;
        let x = words
            .reshape((texts, width, self.hidden))?
            .broadcast_add(&positions)?
            .reshape((rows, self.hidden))?;
        let mut x = self.embedding_norm.forward(&x)?;
        // Additive mask: 0 where attended, the lowest float where padding.
        let mask = if padded {
            let blocked = ((mask.ones_like()? - mask)? * f64::from(f32::MIN))?;
            Some(blocked.reshape((texts, 1, 1, width))?)
        } else {
            None
        };
        for layer in &self.layers {
            x = self.layer(layer, &x, mask.as_ref(), texts, width)?;
        }
        x.reshape((texts, width, self.hidden))
    }

    fn layer(
        &self,
        layer: &Layer,
        x: &Tensor,
        mask: Option<&Tensor>,
        texts: usize,
        width: usize,
    ) -> Result<Tensor> {
        let (heads, size) = (self.heads, self.head_size);
        // (rows, 3 × hidden) → (3, texts, heads, width, head size)
        let qkv = layer
            .qkv
            .forward(x)?
            .reshape((texts, width, 3, heads, size))?
            .permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scores = q.matmul(&k.t()?)?;
        let scores = match mask {
            Some(mask) => scores.broadcast_add(mask)?,
            None => scores,
        };
        let probabilities = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probabilities
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((texts * width, self.hidden))?;
        let attended = layer.output.forward(&context)?;
        let x = layer.attention_norm.forward(&(attended + x)?)?;
        let up = x
            .matmul(&layer.intermediate.weight)?
            .apply_op2_no_bwd(&layer.intermediate.bias, &BiasGelu)?;
        let down = layer.down.forward(&up)?;
        layer.output_norm.forward(&(down + x)?)
    }
}

/// `gelu(x + bias)` with the exact (erf) GELU, over rows of `x`, on every core.
struct BiasGelu;

impl CustomOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(bias)) = (x, bias) else {
            bail!("bias-gelu: f32 only");
        };
        let (Some((x_start, x_end)), Some((b_start, b_end))) = (
            x_layout.contiguous_offsets(),
            bias_layout.contiguous_offsets(),
        ) else {
            bail!("bias-gelu: contiguous tensors only");
        };
        let (x, bias) = (&x[x_start..x_end], &bias[b_start..b_end]);
        let columns = bias.len();
        if columns == 0 || !x.len().is_multiple_of(columns) {
            bail!("bias-gelu: {} values are not rows of {columns}", x.len());
        }
        let mut out = vec![0f32; x.len()];
        let threads = candle_core::utils::get_num_threads().max(1);
        let rows_per_thread = (x.len() / columns).div_ceil(threads).max(1);
        let chunk = rows_per_thread * columns;
        std::thread::scope(|scope| {
            for (x, out) in x.chunks(chunk).zip(out.chunks_mut(chunk)) {
                scope.spawn(move || bias_gelu_rows(x, bias, out));
            }
        });
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }
}

fn bias_gelu_rows(x: &[f32], bias: &[f32], out: &mut [f32]) {
    for (x, out) in x.chunks(bias.len()).zip(out.chunks_mut(bias.len())) {
        for ((out, &x), &b) in out.iter_mut().zip(x).zip(bias) {
            let v = x + b;
            *out = 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2));
        }
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
    fn bias_gelu_matches_candle() {
        let device = Device::Cpu;
        let x = Tensor::arange(-300i64, 300, &device)
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| (t / 50.0)?.reshape((20, 30)))
            .expect("x");
        let bias = Tensor::arange(0i64, 30, &device)
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t / 100.0)
            .expect("bias");
        let ours = x.apply_op2_no_bwd(&bias, &BiasGelu).expect("ours");
        let theirs = x
            .broadcast_add(&bias)
            .and_then(|t| t.gelu_erf())
            .expect("theirs");
        let diff = (ours - theirs)
            .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
            .expect("diff");
        assert!(diff < 1e-6, "{diff}");
    }
}
