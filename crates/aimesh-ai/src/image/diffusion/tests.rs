//! The real loading and sampling path on a tiny, randomly initialised Stable Diffusion
//! (CLIP text encoder, UNet, VAE, tokenizer) written to a temporary directory in the
//! diffusers layout: no diffusion weights can be fetched here.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use candle_nn::VarMap;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::image::Progress;

const HIDDEN: usize = 32;
const WORDS: [&str; 8] = ["a", "red", "cat", "on", "blue", "mat", "dog", "sun"];

fn write_json(path: &Path, value: &serde_json::Value) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

/// A word-level tokenizer in the CLIP tokenizer's shape: start and end tokens around the
/// words, `!` for SD 2.x style padding.
fn tokenizer_json() -> serde_json::Value {
    let mut vocab = serde_json::Map::new();
    vocab.insert("<|startoftext|>".into(), json!(0));
    vocab.insert("<|endoftext|>".into(), json!(1));
    vocab.insert("!".into(), json!(2));
    vocab.insert("<unk>".into(), json!(3));
    for (i, word) in WORDS.iter().enumerate() {
        vocab.insert((*word).into(), json!(4 + i));
    }
    let special = |name: &str, id: u32| json!({"id": name, "ids": [id], "tokens": [name]});
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "<|startoftext|>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}
            ],
            "pair": [
                {"SpecialToken": {"id": "<|startoftext|>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 0}},
                {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}
            ],
            "special_tokens": {
                "<|startoftext|>": special("<|startoftext|>", 0),
                "<|endoftext|>": special("<|endoftext|>", 1)
            }
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
}

/// Writes a tiny model: 2-block UNet (32, 64 channels), 2-block VAE (latents at half the
/// image size), a 2-layer CLIP of width 32. `spacing` is the scheduler's timestep spacing.
fn write_tiny_model(dir: &Path, spacing: &str) {
    let clip = json!({
        "architectures": ["CLIPTextModel"],
        "vocab_size": 4 + WORDS.len(),
        "hidden_size": HIDDEN,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 16,
        "hidden_act": "quick_gelu",
        "projection_dim": HIDDEN
    });
    write_json(&dir.join("text_encoder/config.json"), &clip);
    write_json(&dir.join("tokenizer/tokenizer.json"), &tokenizer_json());
    write_json(
        &dir.join("tokenizer/special_tokens_map.json"),
        &json!({"pad_token": "!", "eos_token": {"content": "<|endoftext|>"}}),
    );
    let unet = json!({
        "_class_name": "UNet2DConditionModel",
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": [32, 64],
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "attention_head_dim": 4,
        "cross_attention_dim": HIDDEN,
        "layers_per_block": 1,
        "norm_num_groups": 32,
        "sample_size": 16
    });
    write_json(&dir.join("unet/config.json"), &unet);
    let vae = json!({
        "_class_name": "AutoencoderKL",
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": [32, 64],
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 32,
        "sample_size": 32,
        "scaling_factor": 0.18215
    });
    write_json(&dir.join("vae/config.json"), &vae);
    write_json(
        &dir.join("scheduler/scheduler_config.json"),
        &json!({
            "_class_name": "DDIMScheduler",
            "beta_start": 0.00085,
            "beta_end": 0.012,
            "beta_schedule": "scaled_linear",
            "prediction_type": "epsilon",
            "num_train_timesteps": 1000,
            "steps_offset": 1,
            "timestep_spacing": spacing
        }),
    );

    // Random weights, built by the very code that loads them, then saved.
    let device = Device::Cpu;
    let clip: ClipConfig = serde_json::from_value(clip).unwrap();
    let map = VarMap::new();
    TextEncoder::new(VarBuilder::from_varmap(&map, DType::F32, &device), &clip).unwrap();
    map.save(dir.join("text_encoder/model.safetensors"))
        .unwrap();
    let unet: UnetJson = serde_json::from_value(unet).unwrap();
    let map = VarMap::new();
    UNet2DConditionModel::new(
        VarBuilder::from_varmap(&map, DType::F32, &device),
        4,
        4,
        false,
        unet_config(&unet).unwrap(),
    )
    .unwrap();
    map.save(dir.join("unet/diffusion_pytorch_model.safetensors"))
        .unwrap();
    let map = VarMap::new();
    AutoEncoderKL::new(
        VarBuilder::from_varmap(&map, DType::F32, &device),
        3,
        3,
        AutoEncoderKLConfig {
            block_out_channels: vec![32, 64],
            layers_per_block: 1,
            latent_channels: 4,
            norm_num_groups: 32,
            use_quant_conv: true,
            use_post_quant_conv: true,
        },
    )
    .unwrap();
    map.save(dir.join("vae/diffusion_pytorch_model.safetensors"))
        .unwrap();
}

fn request(seed: u64) -> GenerationRequest {
    GenerationRequest {
        prompt: "a red cat on a blue mat".into(),
        negative_prompt: "dog".into(),
        width: Some(24),
        height: Some(16),
        steps: Some(3),
        guidance_scale: Some(7.5),
        seed: Some(seed),
    }
}

#[tokio::test]
async fn a_tiny_model_generates_reproducibly_reporting_each_step() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), "leading");
    let engine = StableDiffusion::load(dir.path(), DiffusionOptions::default()).unwrap();
    let defaults = engine.defaults();
    // VAE ×2, UNet ×2: sizes in multiples of 4; the VAE's sample size is the default.
    assert_eq!(
        (defaults.size_multiple, defaults.width, defaults.steps),
        (4, 32, 30)
    );
    assert_eq!(defaults.guidance_scale, 7.5);

    let seen = Arc::new(Mutex::new(Vec::new()));
    let control = RunControl {
        progress: Some(Arc::new({
            let seen = seen.clone();
            move |p: Progress| seen.lock().unwrap().push(p)
        })),
        cancel: None,
    };
    let first = engine.generate(request(7), control).await.unwrap();
    assert_eq!(first.image.dimensions(), (24, 16));
    assert_eq!(first.seed, 7);
    let steps: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|p| (p.done, p.total))
        .collect();
    assert_eq!(steps, [(1, 3), (2, 3), (3, 3)]);

    let again = engine
        .generate(request(7), RunControl::default())
        .await
        .unwrap();
    assert_eq!(
        first.image, again.image,
        "the same seed gives the same image"
    );
    let other = engine
        .generate(request(8), RunControl::default())
        .await
        .unwrap();
    assert_ne!(first.image, other.image, "another seed gives another image");
    let unguided = GenerationRequest {
        guidance_scale: Some(0.0),
        seed: None,
        ..request(0)
    };
    let drawn = engine
        .generate(unguided, RunControl::default())
        .await
        .unwrap();
    assert_eq!(drawn.image.dimensions(), (24, 16));
}

#[tokio::test]
async fn cancellation_stops_between_steps_and_bad_parameters_name_their_field() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), "trailing");
    let engine = StableDiffusion::load(dir.path(), DiffusionOptions::default()).unwrap();
    // Trailing spacing: a few-step model, 1 step without guidance by default.
    assert_eq!(
        (engine.defaults().steps, engine.defaults().guidance_scale),
        (1, 0.0)
    );

    let cancel = CancellationToken::new();
    let steps = Arc::new(Mutex::new(0));
    let control = RunControl {
        progress: Some(Arc::new({
            let (cancel, steps) = (cancel.clone(), steps.clone());
            move |_: Progress| {
                *steps.lock().unwrap() += 1;
                cancel.cancel();
            }
        })),
        cancel: Some(cancel),
    };
    let error = engine
        .generate(
            GenerationRequest {
                steps: Some(4),
                ..request(1)
            },
            control,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, EngineError::Cancelled { .. }), "{error}");
    assert_eq!(
        *steps.lock().unwrap(),
        1,
        "stopped after the step that cancelled"
    );

    let cases = [
        (
            "prompt",
            GenerationRequest {
                prompt: " ".into(),
                ..request(1)
            },
        ),
        (
            "width",
            GenerationRequest {
                width: Some(30),
                ..request(1)
            },
        ),
        (
            "height",
            GenerationRequest {
                height: Some(4096),
                ..request(1)
            },
        ),
        (
            "steps",
            GenerationRequest {
                steps: Some(0),
                ..request(1)
            },
        ),
        (
            "guidance_scale",
            GenerationRequest {
                guidance_scale: Some(f64::NAN),
                ..request(1)
            },
        ),
    ];
    for (field, bad) in cases {
        let error = engine
            .generate(bad, RunControl::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&error, EngineError::InvalidInput { field: f, .. } if *f == field),
            "{field}: {error}"
        );
    }
    assert!(engine.is_alive());
}

#[test]
fn broken_model_directories_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let error = StableDiffusion::load(dir.path(), DiffusionOptions::default()).unwrap_err();
    assert!(
        matches!(error, DiffusionLoadError::Missing { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("text_encoder/config.json"),
        "{error}"
    );

    write_tiny_model(dir.path(), "leading");
    let path = dir.path().join("unet/config.json");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("\"cross_attention_dim\": 32", "\"cross_attention_dim\": 48");
    fs::write(&path, text).unwrap();
    let error = StableDiffusion::load(dir.path(), DiffusionOptions::default()).unwrap_err();
    assert!(
        error.to_string().contains("cross_attention_dim 48"),
        "{error}"
    );
}

#[test]
fn seeded_noise_is_standard_normal_and_fixed() {
    let noise = gaussian_noise(42, 20_000);
    let mean = noise.iter().map(|&x| f64::from(x)).sum::<f64>() / noise.len() as f64;
    let var = noise
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / noise.len() as f64;
    assert!(
        mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
        "{mean} {var}"
    );
    assert_eq!(gaussian_noise(42, 5), gaussian_noise(42, 5));
    assert_ne!(gaussian_noise(42, 5), gaussian_noise(43, 5));
}
