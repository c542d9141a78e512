//! The decoders a GGUF chat model runs on, chosen by its `general.architecture`:
//!
//! - `llama` (SmolLM2, Llama 2/3, Mistral...): aimesh's own decoder ([`Llama`]), the fastest on
//!   CPU;
//! - `qwen2` (Qwen2, Qwen2.5): candle-transformers' `quantized_qwen2`;
//! - `gemma3` (Gemma 3): candle-transformers' `quantized_gemma3`. That model applies the
//!   sliding window of its local layers only within one forward pass (a token generated later
//!   sees every cached position, and a prompt cannot be fed in chunks), so it is served within
//!   its window, where it computes exactly what Gemma 3 computes: the context is capped at
//!   the window and a prompt runs in one pass.

use candle_core::{
    Device, Result, Tensor,
    quantized::{GgmlDType, gguf_file},
};
use candle_transformers::models::{quantized_gemma3, quantized_qwen2};

use super::llama::{Cache, KvCache, Llama};

/// The architectures served, as GGUF names them.
pub const ARCHITECTURES: &[&str] = &["llama", "qwen2", "gemma3"];

/// A loaded model.
pub(super) enum Decoder {
    Llama(Box<Llama>),
    Qwen2(Box<quantized_qwen2::ModelWeights>),
    Gemma3(Box<quantized_gemma3::ModelWeights>),
}

/// What one generation has computed so far.
pub(super) enum State {
    /// The llama decoder's cache, owned by the generation.
    Llama(Cache),
    /// candle's models keep their cache inside; a pass at position 0 starts it afresh.
    Position(usize),
}

impl State {
    /// Positions computed.
    pub(super) fn len(&self) -> usize {
        match self {
            Self::Llama(cache) => cache.len(),
            Self::Position(position) => *position,
        }
    }
}

impl Decoder {
    /// Loads the model of `architecture` (one of [`ARCHITECTURES`]); `requantize` converts the
    /// llama decoder's matrices (the others keep the file's), `context` bounds the positions.
    pub(super) fn load<R: std::io::Seek + std::io::Read>(
        architecture: &str,
        content: gguf_file::Content,
        reader: &mut R,
        requantize: Option<GgmlDType>,
        context: usize,
    ) -> Result<Self> {
        let device = Device::Cpu;
        Ok(match architecture {
            "llama" => Self::Llama(Box::new(Llama::load(
                &content, reader, requantize, context,
            )?)),
            "qwen2" => Self::Qwen2(Box::new(quantized_qwen2::ModelWeights::from_gguf(
                content, reader, &device,
            )?)),
            "gemma3" => Self::Gemma3(Box::new(quantized_gemma3::ModelWeights::from_gguf(
                content, reader, &device,
            )?)),
            other => candle_core::bail!("architecture {other:?} is not served"),
        })
    }

    /// An empty state for one generation; the llama decoder's cache holds its keys and values
    /// as `kv_cache` says (candle's models keep theirs in f32).
    pub(super) fn state(&self, kv_cache: KvCache) -> State {
        match self {
            Self::Llama(model) => State::Llama(model.cache(kv_cache)),
            Self::Qwen2(_) | Self::Gemma3(_) => State::Position(0),
        }
    }

    /// The most prompt tokens one pass may take.
    pub(super) fn prefill_chunk(&self, chunk: usize) -> usize {
        match self {
            // The whole prompt, which the context (capped at the window) bounds.
            Self::Gemma3(_) => usize::MAX,
            Self::Llama(_) | Self::Qwen2(_) => chunk,
        }
    }

    /// Runs `tokens` at the positions after those `state` holds, adding theirs to it, and
    /// returns the logits of the last one.
    pub(super) fn forward(&mut self, tokens: &[u32], state: &mut State) -> Result<Vec<f32>> {
        match (self, state) {
            (Self::Llama(model), State::Llama(cache)) => model.forward(tokens, cache),
            (Self::Qwen2(model), State::Position(position)) => {
                candle_step(tokens, position, |input, at| model.forward(input, at))
            }
            (Self::Gemma3(model), State::Position(position)) => {
                candle_step(tokens, position, |input, at| model.forward(input, at))
            }
            _ => candle_core::bail!("a state of another model"),
        }
    }
}

/// One pass of a candle-transformers model, `forward(tokens, first position)`, over `tokens`
/// at `position`, which it advances; the logits of the last token.
fn candle_step(
    tokens: &[u32],
    position: &mut usize,
    forward: impl FnOnce(&Tensor, usize) -> Result<Tensor>,
) -> Result<Vec<f32>> {
    let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
    let logits = forward(&input, *position)?;
    *position += tokens.len();
    logits.flatten_all()?.to_vec1()
}
