//! Text-to-image with Stable Diffusion on candle: candle-transformers' UNet, VAE and DDIM
//! scheduler, a CLIP text encoder read from the model's own config, for weights a user
//! provides. No diffusion weights ship with aimesh.
//!
//! # Installing a model
//!
//! A model is a directory in the Hugging Face diffusers layout (Stable Diffusion 1.5, 2.1,
//! SD-Turbo and other models of the same architecture), weights in safetensors:
//!
//! ```text
//! <model dir>/
//!   text_encoder/config.json   CLIP text model config
//!   text_encoder/model.safetensors
//!   tokenizer/tokenizer.json   CLIP tokenizer (or tokenizer.json at the top)
//!   tokenizer/special_tokens_map.json   optional: its pad_token (SD 2.x pads with "!")
//!   unet/config.json
//!   unet/diffusion_pytorch_model.safetensors   (or diffusion_pytorch_model.fp16.safetensors)
//!   vae/config.json
//!   vae/diffusion_pytorch_model.safetensors    (or .fp16.safetensors)
//!   scheduler/scheduler_config.json
//! ```
//!
//! Weights in f16 or bf16 are converted to f32 when loading (this runs on the CPU).
//!
//! # Sampling
//!
//! The scheduler is DDIM (η = 0) with the model's beta schedule, prediction type (ε or v) and
//! timestep spacing, whatever scheduler class the model names: DDIM is deterministic, so a
//! seed always gives the same image. Models whose scheduler spaces timesteps `trailing` (the
//! distilled few-step models such as SD-Turbo) default to 1 step without guidance; others to
//! 30 steps at guidance 7.5. The initial noise comes from a fixed generator seeded by the
//! request. Progress is reported after every denoising step; cancellation (or the caller going
//! away) is honoured between steps.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::mpsc::Receiver,
};

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use candle_transformers::models::stable_diffusion::{
    ddim::DDIMSchedulerConfig,
    schedulers::{BetaSchedule, PredictionType, SchedulerConfig, TimestepSpacing},
    unet_2d::{BlockConfig, UNet2DConditionModel, UNet2DConditionModelConfig},
    vae::{AutoEncoderKL, AutoEncoderKLConfig},
};
use futures::future::BoxFuture;
use image::RgbImage;
use serde::Deserialize;
use tokenizers::Tokenizer;
use tokio::sync::oneshot;

use super::{GeneratedImage, GenerationDefaults, GenerationRequest, ImageGenerator, RunControl};
use crate::engine::{EngineError, EngineQueue};

/// The engine's name.
const ENGINE: &str = "stable-diffusion";
/// Longest prompt in characters (CLIP reads at most 77 tokens anyway).
const MAX_PROMPT_CHARS: usize = 2000;
/// Highest guidance scale accepted.
const MAX_GUIDANCE: f64 = 30.0;

/// How [`StableDiffusion`] bounds its work.
#[derive(Debug, Clone)]
pub struct DiffusionOptions {
    /// Requests that may wait for the inference thread; more are refused with
    /// [`EngineError::Busy`]. At least 1.
    pub queue_capacity: usize,
    /// Largest width or height a request may ask for.
    pub max_side: u32,
    /// Most denoising steps a request may ask for.
    pub max_steps: u32,
}

impl Default for DiffusionOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 4,
            max_side: 1024,
            max_steps: 150,
        }
    }
}

/// Why a model directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DiffusionLoadError {
    /// A file the model needs is missing.
    #[error("{}: missing (expected a diffusers-layout Stable Diffusion directory)", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is unusable: a config this engine does not run, a bad tokenizer, weights that
    /// do not fit their config.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The inference thread could not start.
    #[error("cannot start the inference thread: {0}")]
    Thread(std::io::Error),
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> DiffusionLoadError {
    DiffusionLoadError::Invalid {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The text encoder's `config.json` (a CLIP text model).
#[derive(Debug, Clone, Deserialize)]
struct ClipConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    max_position_embeddings: usize,
    #[serde(default = "quick_gelu")]
    hidden_act: String,
    #[serde(default = "layer_norm_eps")]
    layer_norm_eps: f64,
}

fn quick_gelu() -> String {
    "quick_gelu".into()
}

fn layer_norm_eps() -> f64 {
    1e-5
}

/// `unet/config.json` as diffusers writes it (the fields this engine reads).
#[derive(Debug, Deserialize)]
struct UnetJson {
    in_channels: usize,
    out_channels: usize,
    block_out_channels: Vec<usize>,
    down_block_types: Vec<String>,
    attention_head_dim: OneOrMany,
    cross_attention_dim: usize,
    layers_per_block: usize,
    #[serde(default = "thirty_two")]
    norm_num_groups: usize,
    #[serde(default = "layer_norm_eps")]
    norm_eps: f64,
    #[serde(default)]
    use_linear_projection: bool,
    #[serde(default = "yes")]
    flip_sin_to_cos: bool,
    #[serde(default)]
    freq_shift: f64,
    #[serde(default = "one")]
    downsample_padding: usize,
    #[serde(default = "one_f64")]
    mid_block_scale_factor: f64,
    #[serde(default)]
    center_input_sample: bool,
    #[serde(default)]
    transformer_layers_per_block: Option<OneOrMany>,
    #[serde(default)]
    addition_embed_type: Option<String>,
    #[serde(default)]
    class_embed_type: Option<String>,
    sample_size: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(usize),
    Many(Vec<usize>),
}

impl OneOrMany {
    fn at(&self, i: usize) -> Option<usize> {
        match self {
            OneOrMany::One(n) => Some(*n),
            OneOrMany::Many(v) => v.get(i).copied(),
        }
    }
}

fn thirty_two() -> usize {
    32
}
fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn one_f64() -> f64 {
    1.0
}

/// `vae/config.json`.
#[derive(Debug, Deserialize)]
struct VaeJson {
    #[serde(default = "three")]
    in_channels: usize,
    #[serde(default = "three")]
    out_channels: usize,
    block_out_channels: Vec<usize>,
    layers_per_block: usize,
    latent_channels: usize,
    #[serde(default = "thirty_two")]
    norm_num_groups: usize,
    #[serde(default = "scaling_factor")]
    scaling_factor: f64,
    #[serde(default = "yes")]
    use_quant_conv: bool,
    #[serde(default = "yes")]
    use_post_quant_conv: bool,
    sample_size: Option<usize>,
}

fn three() -> usize {
    3
}
fn scaling_factor() -> f64 {
    0.18215
}

/// `scheduler/scheduler_config.json`.
#[derive(Debug, Deserialize)]
struct SchedulerJson {
    #[serde(default = "beta_start")]
    beta_start: f64,
    #[serde(default = "beta_end")]
    beta_end: f64,
    #[serde(default = "scaled_linear")]
    beta_schedule: String,
    #[serde(default = "epsilon")]
    prediction_type: String,
    #[serde(default = "thousand")]
    num_train_timesteps: usize,
    #[serde(default = "one")]
    steps_offset: usize,
    #[serde(default = "leading")]
    timestep_spacing: String,
}

fn beta_start() -> f64 {
    0.00085
}
fn beta_end() -> f64 {
    0.012
}
fn scaled_linear() -> String {
    "scaled_linear".into()
}
fn epsilon() -> String {
    "epsilon".into()
}
fn thousand() -> usize {
    1000
}
fn leading() -> String {
    "leading".into()
}

/// The CLIP text transformer of Stable Diffusion's text encoder (names under `text_model.`),
/// returning the last hidden states after the final layer norm.
struct TextEncoder {
    token_embedding: Embedding,
    position_embedding: Embedding,
    layers: Vec<EncoderLayer>,
    final_layer_norm: LayerNorm,
    heads: usize,
    gelu: bool,
}

struct EncoderLayer {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl TextEncoder {
    fn new(vb: VarBuilder<'_>, c: &ClipConfig) -> candle_core::Result<Self> {
        let vb = vb.pp("text_model");
        let d = c.hidden_size;
        let norm = |vb: VarBuilder<'_>| candle_nn::layer_norm(d, c.layer_norm_eps, vb);
        let embeddings = vb.pp("embeddings");
        let token_embedding =
            candle_nn::embedding(c.vocab_size, d, embeddings.pp("token_embedding"))?;
        let position_embedding = candle_nn::embedding(
            c.max_position_embeddings,
            d,
            embeddings.pp("position_embedding"),
        )?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let vb = vb.pp("encoder").pp("layers").pp(i);
                let attn = vb.pp("self_attn");
                Ok(EncoderLayer {
                    q: candle_nn::linear(d, d, attn.pp("q_proj"))?,
                    k: candle_nn::linear(d, d, attn.pp("k_proj"))?,
                    v: candle_nn::linear(d, d, attn.pp("v_proj"))?,
                    out: candle_nn::linear(d, d, attn.pp("out_proj"))?,
                    norm1: norm(vb.pp("layer_norm1"))?,
                    norm2: norm(vb.pp("layer_norm2"))?,
                    fc1: candle_nn::linear(d, c.intermediate_size, vb.pp("mlp").pp("fc1"))?,
                    fc2: candle_nn::linear(c.intermediate_size, d, vb.pp("mlp").pp("fc2"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            token_embedding,
            position_embedding,
            layers,
            final_layer_norm: norm(vb.pp("final_layer_norm"))?,
            heads: c.num_attention_heads,
            gelu: c.hidden_act == "gelu",
        })
    }

    /// `ids`: (batch, positions) u32.
    fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        let positions = Tensor::arange(0u32, len as u32, ids.device())?;
        let mut xs = self
            .token_embedding
            .forward(ids)?
            .broadcast_add(&self.position_embedding.forward(&positions)?)?;
        let d = xs.dim(D::Minus1)?;
        let head = d / self.heads;
        let mask: Vec<f32> = (0..len)
            .flat_map(|i| (0..len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (len, len), ids.device())?;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((batch, len, self.heads, head))?
                .transpose(1, 2)?
                .contiguous()
        };
        for layer in &self.layers {
            let residual = xs.clone();
            let h = layer.norm1.forward(&xs)?;
            let q = split((layer.q.forward(&h)? * (head as f64).powf(-0.5))?)?;
            let k = split(layer.k.forward(&h)?)?;
            let v = split(layer.v.forward(&h)?)?;
            let scores = q.matmul(&k.t()?)?.broadcast_add(&mask)?;
            let weights = candle_nn::ops::softmax_last_dim(&scores)?;
            let attended = weights
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((batch, len, d))?;
            xs = (residual + layer.out.forward(&attended)?)?;
            let residual = xs.clone();
            let h = layer.fc1.forward(&layer.norm2.forward(&xs)?)?;
            let h = if self.gelu {
                h.gelu_erf()?
            } else {
                (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?
            };
            xs = (residual + layer.fc2.forward(&h)?)?;
        }
        self.final_layer_norm.forward(&xs)
    }
}

/// A loaded model, owned by the inference thread.
struct Pipeline {
    tokenizer: Tokenizer,
    pad_id: u32,
    eos_id: u32,
    max_tokens: usize,
    text: TextEncoder,
    unet: UNet2DConditionModel,
    unet_in_channels: usize,
    vae: AutoEncoderKL,
    vae_scale: f64,
    vae_factor: usize,
    latent_channels: usize,
    scheduler: DDIMSchedulerConfig,
    device: Device,
}

/// A Stable Diffusion model served by one inference thread.
#[derive(Debug)]
pub struct StableDiffusion {
    queue: EngineQueue<Job>,
    model: String,
    defaults: GenerationDefaults,
}

#[derive(Debug)]
struct Job {
    request: GenerationRequest,
    seed: u64,
    control: RunControl,
    reply: oneshot::Sender<Result<GeneratedImage, EngineError>>,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, DiffusionLoadError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(DiffusionLoadError::Missing {
                path: path.to_owned(),
            });
        }
        Err(source) => {
            return Err(DiffusionLoadError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_str(&text).map_err(|e| invalid(path, format!("bad config: {e}")))
}

/// The first of `names` present in `dir`.
fn weights_file(dir: &Path, names: &[&str]) -> Result<PathBuf, DiffusionLoadError> {
    names
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| DiffusionLoadError::Missing {
            path: dir.join(names[0]),
        })
}

/// Reads a safetensors file into memory (no mmap: this crate has no unsafe code).
fn read_weights(path: &Path, device: &Device) -> Result<VarBuilder<'static>, DiffusionLoadError> {
    let tensors = candle_core::safetensors::load(path, device)
        .map_err(|e| invalid(path, format!("not a readable safetensors file: {e}")))?;
    Ok(VarBuilder::from_tensors(tensors, DType::F32, device))
}

impl StableDiffusion {
    /// Loads the model in `dir` (layout in the [module docs](self)) and starts its inference
    /// thread. Blocking: reads every weight file.
    pub fn load(dir: &Path, options: DiffusionOptions) -> Result<Self, DiffusionLoadError> {
        let device = Device::Cpu;
        // Text encoder and tokenizer.
        let clip_path = dir.join("text_encoder/config.json");
        let clip: ClipConfig = read_json(&clip_path)?;
        if !matches!(clip.hidden_act.as_str(), "quick_gelu" | "gelu") {
            return Err(invalid(
                &clip_path,
                format!("hidden_act {} is not supported", clip.hidden_act),
            ));
        }
        if clip.num_attention_heads == 0
            || !clip.hidden_size.is_multiple_of(clip.num_attention_heads)
        {
            return Err(invalid(
                &clip_path,
                "hidden_size is not a multiple of the heads",
            ));
        }
        let text_weights = weights_file(
            &dir.join("text_encoder"),
            &["model.safetensors", "model.fp16.safetensors"],
        )?;
        let text = TextEncoder::new(read_weights(&text_weights, &device)?, &clip)
            .map_err(|e| invalid(&text_weights, format!("does not fit config.json: {e}")))?;
        let tokenizer_path = [
            dir.join("tokenizer/tokenizer.json"),
            dir.join("tokenizer.json"),
        ]
        .into_iter()
        .find(|path| path.is_file())
        .ok_or_else(|| DiffusionLoadError::Missing {
            path: dir.join("tokenizer/tokenizer.json"),
        })?;
        let tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| invalid(&tokenizer_path, format!("bad tokenizer: {e}")))?;
        let token = |name: &str| {
            tokenizer
                .token_to_id(name)
                .ok_or_else(|| invalid(&tokenizer_path, format!("no token {name}")))
        };
        let eos_id = token("<|endoftext|>")?;
        let pad_token = pad_token(dir).unwrap_or_else(|| "<|endoftext|>".to_owned());
        let pad_id = token(&pad_token)?;
        if let Some(id) = tokenizer
            .get_vocab(true)
            .values()
            .find(|&&id| id as usize >= clip.vocab_size)
        {
            return Err(invalid(
                &tokenizer_path,
                format!(
                    "token id {id} is beyond the text encoder's {} tokens",
                    clip.vocab_size
                ),
            ));
        }

        // UNet.
        let unet_path = dir.join("unet/config.json");
        let unet_json: UnetJson = read_json(&unet_path)?;
        let unet_config = unet_config(&unet_json).map_err(|reason| invalid(&unet_path, reason))?;
        if unet_json.cross_attention_dim != clip.hidden_size {
            return Err(invalid(
                &unet_path,
                format!(
                    "cross_attention_dim {} differs from the text encoder's hidden_size {}",
                    unet_json.cross_attention_dim, clip.hidden_size
                ),
            ));
        }
        let unet_weights = weights_file(
            &dir.join("unet"),
            &[
                "diffusion_pytorch_model.safetensors",
                "diffusion_pytorch_model.fp16.safetensors",
            ],
        )?;
        let unet = UNet2DConditionModel::new(
            read_weights(&unet_weights, &device)?,
            unet_json.in_channels,
            unet_json.out_channels,
            false,
            unet_config,
        )
        .map_err(|e| invalid(&unet_weights, format!("does not fit config.json: {e}")))?;

        // VAE.
        let vae_path = dir.join("vae/config.json");
        let vae_json: VaeJson = read_json(&vae_path)?;
        if vae_json.block_out_channels.is_empty() || vae_json.out_channels != 3 {
            return Err(invalid(&vae_path, "expected an RGB autoencoder"));
        }
        if vae_json.latent_channels != unet_json.in_channels
            || unet_json.in_channels != unet_json.out_channels
        {
            return Err(invalid(
                &unet_path,
                format!(
                    "the UNet takes {} channels and gives {}, the VAE's latents have {}",
                    unet_json.in_channels, unet_json.out_channels, vae_json.latent_channels
                ),
            ));
        }
        let vae_weights = weights_file(
            &dir.join("vae"),
            &[
                "diffusion_pytorch_model.safetensors",
                "diffusion_pytorch_model.fp16.safetensors",
            ],
        )?;
        let vae = AutoEncoderKL::new(
            read_weights(&vae_weights, &device)?,
            vae_json.in_channels,
            vae_json.out_channels,
            AutoEncoderKLConfig {
                block_out_channels: vae_json.block_out_channels.clone(),
                layers_per_block: vae_json.layers_per_block,
                latent_channels: vae_json.latent_channels,
                norm_num_groups: vae_json.norm_num_groups,
                use_quant_conv: vae_json.use_quant_conv,
                use_post_quant_conv: vae_json.use_post_quant_conv,
            },
        )
        .map_err(|e| invalid(&vae_weights, format!("does not fit config.json: {e}")))?;
        let vae_factor = 1usize << (vae_json.block_out_channels.len() - 1);

        // Scheduler.
        let scheduler_path = dir.join("scheduler/scheduler_config.json");
        let scheduler_json: SchedulerJson = read_json(&scheduler_path)?;
        let scheduler =
            scheduler_config(&scheduler_json).map_err(|reason| invalid(&scheduler_path, reason))?;
        let few_step = matches!(scheduler.timestep_spacing, TimestepSpacing::Trailing);

        // Sizes must survive the VAE's and the UNet's downsamplings.
        let size_multiple = (vae_factor << (unet_json.block_out_channels.len() - 1)) as u32;
        let native = vae_json
            .sample_size
            .or(unet_json.sample_size.map(|s| s * vae_factor))
            .unwrap_or(512) as u32;
        let native = (native / size_multiple).max(1) * size_multiple;
        let defaults = GenerationDefaults {
            width: native.min(options.max_side),
            height: native.min(options.max_side),
            steps: if few_step {
                1
            } else {
                30.min(options.max_steps)
            },
            guidance_scale: if few_step { 0.0 } else { 7.5 },
            max_steps: options.max_steps,
            max_side: options.max_side,
            size_multiple,
        };
        let pipeline = Pipeline {
            tokenizer,
            pad_id,
            eos_id,
            max_tokens: clip.max_position_embeddings,
            text,
            unet,
            unet_in_channels: unet_json.in_channels,
            vae,
            vae_scale: vae_json.scaling_factor,
            vae_factor,
            latent_channels: vae_json.latent_channels,
            scheduler,
            device,
        };
        let queue = EngineQueue::spawn(
            ENGINE,
            "stable-diffusion",
            options.queue_capacity,
            move |jobs: &Receiver<Job>| {
                while let Ok(job) = jobs.recv() {
                    if job.reply.is_closed() {
                        continue;
                    }
                    let result = pipeline.run(&job, &defaults);
                    let _ = job.reply.send(result);
                }
            },
        )
        .map_err(DiffusionLoadError::Thread)?;
        let model = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "stable-diffusion".into());
        Ok(Self {
            queue,
            model,
            defaults,
        })
    }

    /// Checks a request against the model's limits, filling in its defaults.
    fn resolve(&self, request: &GenerationRequest) -> Result<GenerationRequest, EngineError> {
        let d = &self.defaults;
        if request.prompt.trim().is_empty() {
            return Err(EngineError::invalid("prompt", "must not be empty"));
        }
        for (field, text) in [
            ("prompt", &request.prompt),
            ("negative_prompt", &request.negative_prompt),
        ] {
            let chars = text.chars().count();
            if chars > MAX_PROMPT_CHARS {
                return Err(EngineError::invalid(
                    field,
                    format!("{chars} characters, at most {MAX_PROMPT_CHARS}"),
                ));
            }
        }
        let side = |field: &'static str, value: Option<u32>, default: u32| {
            let value = value.unwrap_or(default);
            if value == 0 || value > d.max_side || !value.is_multiple_of(d.size_multiple) {
                return Err(EngineError::invalid(
                    field,
                    format!(
                        "{value}: must be a multiple of {} from {} to {}",
                        d.size_multiple, d.size_multiple, d.max_side
                    ),
                ));
            }
            Ok(value)
        };
        let width = side("width", request.width, d.width)?;
        let height = side("height", request.height, d.height)?;
        let steps = request.steps.unwrap_or(d.steps);
        if steps == 0 || steps > d.max_steps {
            return Err(EngineError::invalid(
                "steps",
                format!("{steps}: must be from 1 to {}", d.max_steps),
            ));
        }
        let guidance_scale = request.guidance_scale.unwrap_or(d.guidance_scale);
        if !guidance_scale.is_finite() || !(0.0..=MAX_GUIDANCE).contains(&guidance_scale) {
            return Err(EngineError::invalid(
                "guidance_scale",
                format!("{guidance_scale}: must be from 0 to {MAX_GUIDANCE}"),
            ));
        }
        Ok(GenerationRequest {
            prompt: request.prompt.clone(),
            negative_prompt: request.negative_prompt.clone(),
            width: Some(width),
            height: Some(height),
            steps: Some(steps),
            guidance_scale: Some(guidance_scale),
            seed: request.seed,
        })
    }
}

/// The pad token the tokenizer's `special_tokens_map.json` names, if any.
fn pad_token(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join("tokenizer/special_tokens_map.json")).ok()?;
    let map: serde_json::Value = serde_json::from_str(&text).ok()?;
    match map.get("pad_token")? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => other.get("content")?.as_str().map(str::to_owned),
    }
}

fn unet_config(json: &UnetJson) -> Result<UNet2DConditionModelConfig, String> {
    if let Some(kind) = &json.addition_embed_type {
        return Err(format!(
            "addition_embed_type {kind} (SDXL-style conditioning) is not supported"
        ));
    }
    if let Some(kind) = &json.class_embed_type {
        return Err(format!("class_embed_type {kind} is not supported"));
    }
    if json.block_out_channels.is_empty()
        || json.block_out_channels.len() != json.down_block_types.len()
    {
        return Err("block_out_channels and down_block_types differ in length".into());
    }
    let blocks = json
        .block_out_channels
        .iter()
        .zip(&json.down_block_types)
        .enumerate()
        .map(|(i, (&out_channels, kind))| {
            let use_cross_attn = match kind.as_str() {
                "CrossAttnDownBlock2D" => Some(
                    json.transformer_layers_per_block
                        .as_ref()
                        .map_or(Some(1), |t| t.at(i))
                        .ok_or("transformer_layers_per_block is too short")?,
                ),
                "DownBlock2D" => None,
                other => return Err(format!("down block type {other} is not supported")),
            };
            let attention_head_dim = json
                .attention_head_dim
                .at(i)
                .ok_or("attention_head_dim is too short")?;
            if out_channels % json.norm_num_groups != 0 {
                return Err(format!(
                    "{out_channels} channels do not split into {} groups",
                    json.norm_num_groups
                ));
            }
            Ok(BlockConfig {
                out_channels,
                use_cross_attn,
                attention_head_dim,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(UNet2DConditionModelConfig {
        center_input_sample: json.center_input_sample,
        flip_sin_to_cos: json.flip_sin_to_cos,
        freq_shift: json.freq_shift,
        blocks,
        layers_per_block: json.layers_per_block,
        downsample_padding: json.downsample_padding,
        mid_block_scale_factor: json.mid_block_scale_factor,
        norm_num_groups: json.norm_num_groups,
        norm_eps: json.norm_eps,
        cross_attention_dim: json.cross_attention_dim,
        sliced_attention_size: None,
        use_linear_projection: json.use_linear_projection,
    })
}

fn scheduler_config(json: &SchedulerJson) -> Result<DDIMSchedulerConfig, String> {
    Ok(DDIMSchedulerConfig {
        beta_start: json.beta_start,
        beta_end: json.beta_end,
        beta_schedule: match json.beta_schedule.as_str() {
            "scaled_linear" => BetaSchedule::ScaledLinear,
            "linear" => BetaSchedule::Linear,
            "squaredcos_cap_v2" => BetaSchedule::SquaredcosCapV2,
            other => return Err(format!("beta_schedule {other} is not supported")),
        },
        eta: 0.0,
        steps_offset: json.steps_offset,
        prediction_type: match json.prediction_type.as_str() {
            "epsilon" => PredictionType::Epsilon,
            "v_prediction" => PredictionType::VPrediction,
            "sample" => PredictionType::Sample,
            other => return Err(format!("prediction_type {other} is not supported")),
        },
        train_timesteps: json.num_train_timesteps,
        timestep_spacing: match json.timestep_spacing.as_str() {
            "leading" => TimestepSpacing::Leading,
            "linspace" => TimestepSpacing::Linspace,
            "trailing" => TimestepSpacing::Trailing,
            other => return Err(format!("timestep_spacing {other} is not supported")),
        },
    })
}

/// Standard normal values from a fixed generator (SplitMix64, Box–Muller), so a seed gives
/// the same noise on every machine and version.
fn gaussian_noise(seed: u64, count: usize) -> Vec<f32> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut values = Vec::with_capacity(count + 1);
    while values.len() < count {
        // Uniform in (0, 1]: never 0, so the logarithm is finite.
        let u1 = ((next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (next() >> 11) as f64 / (1u64 << 53) as f64;
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        values.push((radius * angle.cos()) as f32);
        values.push((radius * angle.sin()) as f32);
    }
    values.truncate(count);
    values
}

impl Pipeline {
    fn run(&self, job: &Job, defaults: &GenerationDefaults) -> Result<GeneratedImage, EngineError> {
        let failed = |e: candle_core::Error| EngineError::failed(ENGINE, e);
        let request = &job.request;
        let width = request.width.unwrap_or(defaults.width) as usize;
        let height = request.height.unwrap_or(defaults.height) as usize;
        let steps = request.steps.unwrap_or(defaults.steps) as usize;
        let guidance = request.guidance_scale.unwrap_or(defaults.guidance_scale);
        let guided = guidance > 1.0;
        let stop = || {
            if job.control.is_cancelled() || job.reply.is_closed() {
                Err(EngineError::Cancelled { engine: ENGINE })
            } else {
                Ok(())
            }
        };

        let conditional = self.encode(&request.prompt)?;
        let context = if guided {
            let unconditional = self.encode(&request.negative_prompt)?;
            Tensor::cat(&[unconditional, conditional], 0).map_err(failed)?
        } else {
            conditional
        };

        let mut scheduler = self.scheduler.build(steps).map_err(failed)?;
        let shape = (
            1,
            self.latent_channels,
            height / self.vae_factor,
            width / self.vae_factor,
        );
        let noise = gaussian_noise(job.seed, shape.0 * shape.1 * shape.2 * shape.3);
        let mut latents = (Tensor::from_vec(noise, shape, &self.device).map_err(failed)?
            * scheduler.init_noise_sigma())
        .map_err(failed)?;
        debug_assert_eq!(self.unet_in_channels, self.latent_channels);

        let timesteps = scheduler.timesteps().to_vec();
        let total = timesteps.len() as u32;
        for (i, &timestep) in timesteps.iter().enumerate() {
            stop()?;
            let input = if guided {
                Tensor::cat(&[&latents, &latents], 0).map_err(failed)?
            } else {
                latents.clone()
            };
            let input = scheduler
                .scale_model_input(input, timestep)
                .map_err(failed)?;
            let predicted = self
                .unet
                .forward(&input, timestep as f64, &context)
                .map_err(failed)?;
            let predicted = if guided {
                let parts = predicted.chunk(2, 0).map_err(failed)?;
                let (unconditional, conditional) = (&parts[0], &parts[1]);
                (unconditional + ((conditional - unconditional).map_err(failed)? * guidance))
                    .map_err(failed)?
            } else {
                predicted
            };
            latents = scheduler
                .step(&predicted, timestep, &latents)
                .map_err(failed)?;
            job.control.report(i as u32 + 1, total);
        }
        stop()?;

        let decoded = self
            .vae
            .decode(&(latents / self.vae_scale).map_err(failed)?)
            .map_err(failed)?;
        let pixels = ((decoded / 2.0).and_then(|t| t + 0.5))
            .and_then(|t| t.clamp(0f32, 1f32))
            .and_then(|t| t * 255.0)
            .and_then(|t| t.round())
            .and_then(|t| t.to_dtype(DType::U8))
            .and_then(|t| t.squeeze(0))
            .and_then(|t| t.permute((1, 2, 0)))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<u8>())
            .map_err(failed)?;
        let image = RgbImage::from_raw(width as u32, height as u32, pixels).ok_or_else(|| {
            EngineError::failed(ENGINE, "the VAE returned an image of another size")
        })?;
        Ok(GeneratedImage {
            image,
            seed: job.seed,
        })
    }

    /// Token ids of `text`, cut or padded to the text encoder's window, through the encoder:
    /// (1, positions, hidden).
    fn encode(&self, text: &str) -> Result<Tensor, EngineError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EngineError::invalid("prompt", format!("cannot be tokenized: {e}")))?;
        let mut ids = encoding.get_ids().to_vec();
        if ids.len() > self.max_tokens {
            ids.truncate(self.max_tokens - 1);
            ids.push(self.eos_id);
        }
        ids.resize(self.max_tokens, self.pad_id);
        let ids = Tensor::new(ids.as_slice(), &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(|e| EngineError::failed(ENGINE, e))?;
        self.text
            .forward(&ids)
            .map_err(|e| EngineError::failed(ENGINE, e))
    }
}

/// A seed for a request that gave none.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

impl ImageGenerator for StableDiffusion {
    fn is_alive(&self) -> bool {
        self.queue.is_alive()
    }

    fn name(&self) -> &'static str {
        ENGINE
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn defaults(&self) -> GenerationDefaults {
        self.defaults
    }

    fn generate(
        &self,
        request: GenerationRequest,
        control: RunControl,
    ) -> BoxFuture<'static, Result<GeneratedImage, EngineError>> {
        let submitted = self.resolve(&request).and_then(|request| {
            let seed = request.seed.unwrap_or_else(random_seed);
            let (reply, answer) = oneshot::channel();
            self.queue.submit(Job {
                request,
                seed,
                control,
                reply,
            })?;
            Ok(answer)
        });
        Box::pin(async move {
            submitted?
                .await
                .map_err(|_| EngineError::Stopped { engine: ENGINE })?
        })
    }
}

#[cfg(test)]
mod tests;
