//! `aimesh-bench transcribe`: Whisper (tiny.en, or `--model whisper-base`) speech-to-text on
//! a fixed clip, a few runs,
//! printing the median real-time factor (processing seconds per audio second) and where the
//! time went (audio decoding and log-mel, encoder, decoder).

use std::{path::PathBuf, time::Instant};

use aimesh_ai::speech::{self, Stages, WhisperModel, WhisperOptions};
use anyhow::Context;

/// Options of the transcribe benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// The audio file to transcribe (WAV, FLAC, MP3 or Ogg Vorbis).
    #[arg(long)]
    audio: PathBuf,
    /// Timed runs (after one warm-up run).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The models directory (converted on first use).
    #[arg(long, env = "AIMESH_MODELS_DIR")]
    models_dir: PathBuf,
    /// The Whisper model.
    #[arg(long, default_value = speech::convert::MODEL_ID)]
    model: String,
    /// The spoken language (a multilingual model detects it when unset).
    #[arg(long)]
    language: Option<String>,
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || bench(options)).await?
}

fn bench(options: Options) -> anyhow::Result<()> {
    let audio = std::fs::read(&options.audio)
        .with_context(|| format!("reading {}", options.audio.display()))?;
    speech::prepare_model(&options.models_dir, &options.model).context("preparing whisper")?;
    let mut model = WhisperModel::load(
        &options.models_dir,
        &options.model,
        &WhisperOptions::default(),
    )
    .context("loading whisper")?;
    let language = options.language.as_deref();
    let (warm, _) = model.transcribe_file(audio.clone(), language)?;
    println!(
        "aimesh {} (decoder and encoder feed-forward in Q8_0): {:.1} s of audio, language {} \
         ({:?}), {} segments, {} cores",
        model.id(),
        warm.duration,
        warm.language,
        warm.language_probability,
        warm.segments.len(),
        cores()
    );
    println!("  text: {}", warm.text);
    let mut runs: Vec<(f64, Stages)> = Vec::with_capacity(options.runs);
    for run in 0..options.runs.max(1) {
        let started = Instant::now();
        let (transcript, stages) = model.transcribe_file(audio.clone(), language)?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "  run {}: {seconds:.3} s (audio+mel {:.3} s, encoder {:.3} s, decoder {:.3} s over {} steps in {} windows)",
            run + 1,
            stages.audio.as_secs_f64(),
            stages.encoder.as_secs_f64(),
            stages.decoder.as_secs_f64(),
            stages.decoder_steps,
            stages.windows,
        );
        anyhow::ensure!(transcript.text == warm.text, "runs disagree");
        runs.push((seconds, stages));
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median, stages) = runs[runs.len() / 2];
    let rtf = median / warm.duration;
    println!(
        "aimesh: median {median:.3} s, real-time factor {rtf:.4}, {:.1}x real time \
         (audio+mel {:.3} s, encoder {:.3} s, decoder {:.3} s)",
        1.0 / rtf,
        stages.audio.as_secs_f64(),
        stages.encoder.as_secs_f64(),
        stages.decoder.as_secs_f64(),
    );
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
