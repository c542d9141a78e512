//! `aimesh-bench chat`: prompt processing and generation speed of the chat engine
//! (SmolLM2-135M-Instruct, GGUF Q4_1, on aimesh's llama decoder over aimesh's and candle's
//! quantized kernels), greedy, on a fixed prompt, for each weight format.
//!
//! Each run sends the same request through [`ChatModel::chat`] and times the stream: the
//! prompt is processed when the first token arrives (the first token is sampled from the
//! prompt's logits), and every later token costs one forward pass. The end-of-turn token is
//! ignored so that every run generates exactly `--tokens` tokens. `bench/chat_peer.py` does
//! the same with llama.cpp (llama-cpp-python) on the same file and its own requantisations
//! of it; `scripts/bench-chat` runs both in paired rounds. `--model` measures another
//! chat model instead (a GGUF file, or the catalog's optional gemma3-270m).

use std::{path::PathBuf, time::Instant};

use aimesh_ai::chat::{
    ChatEvent, ChatMessage, ChatModel, GenerationParams, GgufChat, GgufChatOptions, KvCache,
    WeightFormat,
};
use anyhow::{Context, bail};

/// The user message of every run (`bench/chat_peer.py` sends the same one).
pub(crate) const PROMPT: &str = "Read the following notes and then write a detailed, \
friendly explanation for a new team member. The service mesh routes every request through a \
sidecar proxy that terminates TLS, checks the caller's identity, applies rate limits and \
retries, and records a trace span. Jobs are stored in PostgreSQL; workers claim them with a \
lease, renew the lease while they run, and a job whose lease expires is handed to another \
worker. Notes are small documents with a title, a body and tags; they are versioned, and an \
update must name the version it replaces. Inference engines run on dedicated threads fed by \
bounded queues, so a burst of requests is refused quickly instead of piling up. Explain how \
these parts fit together, what can go wrong in each, and how an operator would notice.";

/// Options of the chat benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// The models directory holding smollm2-135m-instruct.
    #[arg(long, env = "AIMESH_MODELS_DIR")]
    models_dir: PathBuf,
    /// Measured runs per weight format (after one warm-up run); the median is printed.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Tokens generated per run.
    #[arg(long, default_value_t = 128)]
    tokens: u32,
    /// Weight formats to measure, comma-separated: as-stored (the engine's default: Q4_1
    /// matrices, Q8_0 embeddings, as the file has them), q8_0, q4_k.
    #[arg(long, default_value = "as-stored,q8_0,q4_k")]
    weights: String,
    /// How the KV cache holds keys and values: f32 (the engine's default) or f16 (llama.cpp's
    /// default).
    #[arg(long, default_value = "f32", value_parser = kv_cache)]
    kv_cache: KvCache,
    /// Another chat model to measure instead of SmolLM2: a GGUF file of a llama, qwen2 or
    /// gemma3 model, or a chat model of the catalog (gemma3-270m); its weights as stored.
    #[arg(long)]
    model: Option<String>,
}

/// One timed run.
struct Run {
    prompt_tokens: u32,
    prompt_per_sec: f64,
    generation_per_sec: f64,
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let formats = options
        .weights
        .split(',')
        .map(|name| match name {
            "q4_k" => Ok((WeightFormat::Q4K, "q4_k", "Q4_1 converted to Q4_K")),
            "q8_0" => Ok((WeightFormat::Q8_0, "q8_0", "Q4_1 converted to Q8_0")),
            "as-stored" => Ok((WeightFormat::AsStored, "as-stored", "Q4_1 as stored")),
            other => bail!("--weights {other}: expected q4_k, q8_0 or as-stored"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kv_cache = options.kv_cache;
    if let Some(choice) = options.model.clone() {
        let models_dir = options.models_dir.clone();
        let loaded = Instant::now();
        let model = tokio::task::spawn_blocking(move || {
            let options = GgufChatOptions {
                weights: WeightFormat::AsStored,
                kv_cache,
                ..GgufChatOptions::default()
            };
            match aimesh_ai::models::spec(&choice) {
                Some(_) => GgufChat::load_catalog(&models_dir, &choice, options),
                None => GgufChat::load_file(std::path::Path::new(&choice), options),
            }
        })
        .await?
        .context("loading the chat model")?;
        println!(
            "chat: {}, greedy, {} generated tokens, median of {} runs, {threads} threads, \
             {kv_cache:?} KV cache",
            model.summary(),
            options.tokens,
            options.runs
        );
        return measure(
            &model,
            &options,
            ("as-stored", "as stored"),
            loaded.elapsed().as_secs_f64(),
        )
        .await;
    }
    println!(
        "chat: SmolLM2-135M-Instruct, greedy, {} generated tokens, median of {} runs, \
         {threads} threads, {kv_cache:?} KV cache",
        options.tokens, options.runs
    );
    for (weights, key, label) in formats {
        let models_dir = options.models_dir.clone();
        let loaded = Instant::now();
        let model = tokio::task::spawn_blocking(move || {
            GgufChat::load(
                &models_dir,
                GgufChatOptions {
                    weights,
                    kv_cache,
                    ..GgufChatOptions::default()
                },
            )
        })
        .await?
        .context("loading the chat model")?;
        measure(
            &model,
            &options,
            (key, label),
            loaded.elapsed().as_secs_f64(),
        )
        .await?;
    }
    Ok(())
}

/// Times `options.runs` replies of `model` after a warm-up and prints the medians, on a line
/// that names the format by its key (`scripts/bench-chat` pairs the lines by it).
async fn measure(
    model: &GgufChat,
    options: &Options,
    (key, label): (&str, &str),
    load_secs: f64,
) -> anyhow::Result<()> {
    let mut runs = Vec::with_capacity(options.runs);
    for i in 0..=options.runs {
        let run = one_run(model, options.tokens).await?;
        if i > 0 {
            runs.push(run);
        }
    }
    let prompt_tokens = runs.first().map_or(0, |run| run.prompt_tokens);
    let pp = median(runs.iter().map(|run| run.prompt_per_sec).collect());
    let tg = median(runs.iter().map(|run| run.generation_per_sec).collect());
    println!(
        "  aimesh [{key}] ({label}): load {load_secs:.2} s, prompt {prompt_tokens} tokens \
         {pp:.1} tok/s, generation {tg:.1} tok/s"
    );
    Ok(())
}

async fn one_run(model: &GgufChat, tokens: u32) -> anyhow::Result<Run> {
    let params = GenerationParams {
        max_tokens: tokens,
        ignore_eos: true,
        ..GenerationParams::default()
    };
    let started = Instant::now();
    let mut stream = model.chat(vec![ChatMessage::user(PROMPT)], params)?;
    let mut first = None;
    while let Some(event) = stream.recv().await {
        match event? {
            ChatEvent::Token { .. } => {
                first.get_or_insert_with(Instant::now);
            }
            ChatEvent::Done {
                prompt_tokens,
                completion_tokens,
                ..
            } => {
                let done = Instant::now();
                let Some(first) = first else {
                    bail!("no token before the end");
                };
                if completion_tokens != tokens {
                    bail!("{completion_tokens} tokens generated, expected {tokens}");
                }
                return Ok(Run {
                    prompt_tokens,
                    prompt_per_sec: f64::from(prompt_tokens) / (first - started).as_secs_f64(),
                    generation_per_sec: f64::from(completion_tokens - 1)
                        / (done - first).as_secs_f64(),
                });
            }
        }
    }
    bail!("the stream ended without Done")
}

/// `--kv-cache`: f16 or f32.
fn kv_cache(name: &str) -> Result<KvCache, String> {
    match name {
        "f16" => Ok(KvCache::F16),
        "f32" => Ok(KvCache::F32),
        other => Err(format!("{other}: expected f16 or f32")),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
