//! `aimesh-bench embed`: sentence-embedding throughput of the all-MiniLM-L6-v2 engine
//! ([`aimesh_ai::embed::MiniLm`]) on a fixed set of generated sentences, at several client
//! batch sizes (texts per embed call): once with several calls in flight, so the engine's
//! dynamic batcher fills its forward passes as it would under many clients, and once one call
//! at a time, as a single caller of a library (sentence-transformers' `encode`) works.
//!
//! Each figure is printed as a line `result<TAB>batch<TAB>mode<TAB>sentences/s` for
//! `scripts/bench-embed`, which sets them beside bench/embed_peer.py's.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use aimesh_ai::embed::{EmbedOptions, EmbedStats, Embedder, FeedForward, MiniLm, dot};
use anyhow::Context;
use futures::{StreamExt, TryStreamExt};

/// Sentences embedded before measuring.
const WARM_UP: usize = 64;

/// Options of the embeddings benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// Sentences to embed at each batch size.
    #[arg(long, default_value_t = 2000)]
    sentences: usize,
    /// Client batch sizes (texts per embed call), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 8, 32, 128])]
    batch_sizes: Vec<usize>,
    /// Embed calls in flight in the concurrent mode.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Most texts per forward pass of the engine.
    #[arg(long, default_value_t = EmbedOptions::default().max_batch)]
    max_batch: usize,
    /// Longest the engine waits for more requests to batch, in milliseconds.
    #[arg(long, default_value_t = 2)]
    max_wait_ms: u64,
    /// How the engine's feed-forward layers multiply: `q8_0` (8-bit blocks, the default
    /// where the CPU has VNNI) or `f32`. With `q8_0` the benchmark also prints how far its
    /// embeddings are from f32's.
    #[arg(long, value_parser = parse_feed_forward, default_value = default_feed_forward())]
    feed_forward: FeedForward,
    /// The models directory holding all-minilm-l6-v2.
    #[arg(long, env = "AIMESH_MODELS_DIR")]
    models_dir: PathBuf,
    /// Only write the sentences, one per line, to this file (for the peer) and exit.
    #[arg(long)]
    write_sentences: Option<PathBuf>,
}

pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let sentences = generate(options.sentences);
    if let Some(path) = &options.write_sentences {
        std::fs::write(path, sentences.join("\n") + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        return Ok(());
    }
    let engine_options = EmbedOptions {
        max_batch: options.max_batch,
        max_wait: Duration::from_millis(options.max_wait_ms),
        queue_capacity: options.concurrency.max(1) * 2,
        max_texts: options
            .batch_sizes
            .iter()
            .copied()
            .max()
            .unwrap_or(1)
            .max(WARM_UP),
        feed_forward: options.feed_forward,
        ..EmbedOptions::default()
    };
    let models_dir = options.models_dir.clone();
    let started = Instant::now();
    let engine = Arc::new(
        tokio::task::spawn_blocking(move || MiniLm::load(&models_dir, engine_options)).await??,
    );
    println!(
        "all-MiniLM-L6-v2 loaded in {:.1} s; {} sentences, {:.1} words on average; {} inference threads",
        started.elapsed().as_secs_f64(),
        sentences.len(),
        sentences
            .iter()
            .map(|s| s.split_whitespace().count())
            .sum::<usize>() as f64
            / sentences.len().max(1) as f64,
        std::thread::available_parallelism().map_or(1, usize::from),
    );
    if options.feed_forward != FeedForward::F32 {
        compare_with_f32(&engine, &options.models_dir, &sentences).await?;
    }
    // Warm up: allocator, thread pools, caches.
    engine
        .embed(sentences.iter().take(WARM_UP).cloned().collect())
        .await?;

    for &batch in &options.batch_sizes {
        let batch = batch.max(1);
        for (mode, concurrency) in [
            ("concurrent", options.concurrency.max(1)),
            ("sequential", 1),
        ] {
            let before = engine.stats();
            let rate = throughput(&engine, &sentences, batch, concurrency).await?;
            let spent = delta(before, engine.stats());
            println!("batch {batch:>4}, {concurrency:>2} in flight: {rate:>8.1} sentences/s");
            println!("  {}", breakdown(&spent));
            println!("result\t{batch}\t{mode}\t{rate:.1}");
        }
    }
    Ok(())
}

fn parse_feed_forward(value: &str) -> Result<FeedForward, String> {
    match value {
        "f32" => Ok(FeedForward::F32),
        "q8_0" => Ok(FeedForward::Q8_0),
        other => Err(format!("{other}: f32 or q8_0")),
    }
}

fn default_feed_forward() -> &'static str {
    match FeedForward::for_this_cpu() {
        FeedForward::F32 => "f32",
        FeedForward::Q8_0 => "q8_0",
    }
}

/// Prints the cosine similarity of `engine`'s embeddings of the first 256 sentences with
/// those of an engine whose feed-forward layers are f32 (both unit length).
async fn compare_with_f32(
    engine: &MiniLm,
    models_dir: &std::path::Path,
    sentences: &[String],
) -> anyhow::Result<()> {
    let models_dir = models_dir.to_owned();
    let reference = tokio::task::spawn_blocking(move || {
        MiniLm::load(
            &models_dir,
            EmbedOptions {
                feed_forward: FeedForward::F32,
                ..EmbedOptions::default()
            },
        )
    })
    .await??;
    let mut similarity = Vec::new();
    // In calls of WARM_UP texts: the engine takes at least that many at once.
    for chunk in sentences[..sentences.len().min(256)].chunks(WARM_UP) {
        let ours = engine.embed(chunk.to_vec()).await?;
        let theirs = reference.embed(chunk.to_vec()).await?;
        similarity.extend(ours.iter().zip(&theirs).map(|(a, b)| dot(a, b)));
    }
    println!(
        "feed-forward vs f32 embeddings, cosine over {} sentences: mean {:.5}, min {:.5}",
        similarity.len(),
        similarity.iter().sum::<f32>() / similarity.len().max(1) as f32,
        similarity.iter().copied().fold(f32::INFINITY, f32::min),
    );
    Ok(())
}

/// Embeds every sentence in calls of `batch`, `concurrency` calls in flight; sentences/s.
async fn throughput(
    engine: &MiniLm,
    sentences: &[String],
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let embedded: usize = futures::stream::iter(sentences.chunks(batch))
        .map(|chunk| engine.embed(chunk.to_vec()))
        .buffer_unordered(concurrency)
        .map_ok(|vectors| vectors.len())
        .try_fold(0, |sum, n| async move { Ok(sum + n) })
        .await?;
    anyhow::ensure!(
        embedded == sentences.len(),
        "embedded {embedded} of {}",
        sentences.len()
    );
    Ok(embedded as f64 / started.elapsed().as_secs_f64())
}

/// The engine's work between two snapshots.
fn delta(before: EmbedStats, after: EmbedStats) -> EmbedStats {
    EmbedStats {
        batches: after.batches - before.batches,
        passes: after.passes - before.passes,
        texts: after.texts - before.texts,
        tokens: after.tokens - before.tokens,
        padded_tokens: after.padded_tokens - before.padded_tokens,
        tokenize: after.tokenize.saturating_sub(before.tokenize),
        forward: after.forward.saturating_sub(before.forward),
        pool: after.pool.saturating_sub(before.pool),
    }
}

/// Where the inference thread's time went, and how well batches filled.
fn breakdown(s: &EmbedStats) -> String {
    let busy = (s.tokenize + s.forward + s.pool).as_secs_f64().max(1e-9);
    let share = |d: Duration| 100.0 * d.as_secs_f64() / busy;
    format!(
        "engine: {:.2} s busy (tokenize {:.1}%, forward {:.1}%, pool {:.1}%); {:.1} texts per pass, \
         {:.1} tokens per text, padding {:.1}% of positions",
        busy,
        share(s.tokenize),
        share(s.forward),
        share(s.pool),
        s.texts as f64 / s.passes.max(1) as f64,
        s.tokens as f64 / s.texts.max(1) as f64,
        100.0 * (s.padded_tokens.saturating_sub(s.tokens)) as f64 / s.padded_tokens.max(1) as f64,
    )
}

/// `count` varied English sentences, the same on every run: one to three clauses from
/// several domains, 5 to about 45 words.
fn generate(count: usize) -> Vec<String> {
    const SUBJECTS: &[&str] = &[
        "The new database server",
        "A small team of engineers",
        "My neighbour's old dog",
        "The city council",
        "Our quarterly revenue",
        "The research group at the university",
        "A sudden thunderstorm",
        "The customer support agent",
        "This recipe for lemon cake",
        "The central bank",
        "The football club",
        "An unexpected software update",
        "The hiking trail near the lake",
        "Her latest novel",
        "The train to the airport",
        "A group of volunteers",
        "The solar panel factory",
        "The museum's new exhibition",
        "The mobile app",
        "Local farmers",
    ];
    const VERBS: &[&str] = &[
        "announced",
        "reviewed",
        "delayed",
        "celebrated",
        "rejected",
        "improved",
        "described",
        "replaced",
        "predicted",
        "ignored",
        "measured",
        "completed",
        "criticised",
        "welcomed",
        "tested",
    ];
    const OBJECTS: &[&str] = &[
        "the results of the latest experiment",
        "a plan to reduce energy consumption",
        "the price of fresh vegetables",
        "several complaints about slow responses",
        "the schedule for next season",
        "an ambitious proposal for public transport",
        "the quality of the drinking water",
        "a long report on climate risks",
        "the interest rate decision",
        "the winning goal in the final minute",
        "the performance of the search feature",
        "a collection of paintings from the nineteenth century",
        "the safety rules for the construction site",
        "the results of the election",
        "a cheaper way to store old photographs",
    ];
    const TAILS: &[&str] = &[
        "",
        " on Monday morning",
        " after a long debate",
        " despite strong opposition from residents",
        " because the previous version kept crashing",
        " while most people were on holiday",
        " without telling anyone in advance",
        " in a surprisingly short time",
        " for the third time this year",
        " before the heavy rain arrived",
    ];
    const JOINS: &[&str] = &[
        ", and",
        ", but",
        "; meanwhile,",
        ", although",
        ", so",
        ", while",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: usize| {
        // xorshift64*: deterministic and good enough to vary sentences.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    };
    (0..count)
        .map(|_| {
            let clauses = 1 + next(3);
            let mut sentence = String::new();
            for c in 0..clauses {
                if c > 0 {
                    sentence.push_str(JOINS[next(JOINS.len())]);
                    sentence.push(' ');
                    let subject = SUBJECTS[next(SUBJECTS.len())];
                    let mut chars = subject.chars();
                    if let Some(first) = chars.next() {
                        sentence.extend(first.to_lowercase());
                        sentence.push_str(chars.as_str());
                    }
                } else {
                    sentence.push_str(SUBJECTS[next(SUBJECTS.len())]);
                }
                sentence.push(' ');
                sentence.push_str(VERBS[next(VERBS.len())]);
                sentence.push(' ');
                sentence.push_str(OBJECTS[next(OBJECTS.len())]);
                sentence.push_str(TAILS[next(TAILS.len())]);
            }
            sentence.push('.');
            sentence
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_deterministic_and_varied() {
        let a = generate(500);
        assert_eq!(a, generate(500));
        let distinct: std::collections::HashSet<&String> = a.iter().collect();
        assert!(distinct.len() > 490, "{}", distinct.len());
        let lengths: Vec<usize> = a.iter().map(|s| s.split_whitespace().count()).collect();
        assert!(lengths.iter().min() < Some(&9) && lengths.iter().max() > Some(&30));
    }
}
