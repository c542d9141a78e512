//! all-MiniLM-L6-v2 (a 6-layer BERT) on candle, computing sentence-transformers' embeddings:
//! WordPiece tokens truncated to [`MAX_TOKENS`], the encoder's last hidden states averaged
//! over the attention mask, scaled to unit length.
//!
//! # Dynamic batching
//!
//! Every request goes through one bounded queue to one inference thread. The thread takes the
//! first waiting request, then gathers more until it holds [`EmbedOptions::max_batch`] texts
//! or [`EmbedOptions::max_wait`] has passed since the first arrived, tokenizes them together,
//! sorts them by length and runs as few forward passes as [`EmbedOptions::max_batch`] and
//! [`EmbedOptions::max_batch_tokens`] allow, then hands each requester its own vectors. A pass
//! packs its texts end to end (see the encoder), so padding costs only attention, which lays
//! texts side by side: texts of like length go together. A
//! request that finds the queue full is refused with [`EngineError::Busy`]; one whose caller
//! went away before its turn is skipped.

use std::{
    fs,
    panic::{self, AssertUnwindSafe},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError, TryRecvError},
    },
    time::{Duration, Instant},
};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use futures::future::BoxFuture;
use serde::Deserialize;
use tokenizers::{Encoding, Tokenizer, TruncationParams};
use tokio::sync::oneshot;

use super::{
    Embedder,
    bert::{Encoder, FeedForward},
    normalize,
};
use crate::{
    engine::{EngineError, EngineQueue},
    models::{self, ModelError},
};

/// The catalog id of the model this engine runs.
pub const MODEL_ID: &str = "all-minilm-l6-v2";
/// The engine's name.
const ENGINE: &str = "minilm";
/// Longest input in tokens (special tokens included); longer texts are truncated. This is
/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2 (the model has 512
/// positions but was trained on at most 256), so embeddings match theirs.
pub const MAX_TOKENS: usize = 256;

/// How [`MiniLm`] batches and bounds its work.
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    /// Most texts in one forward pass (at least 1).
    pub max_batch: usize,
    /// Most tokens, padding included, in one forward pass (at least one text always goes).
    pub max_batch_tokens: usize,
    /// Longest the inference thread waits, after a request arrives, for more to batch with it.
    pub max_wait: Duration,
    /// Requests that may wait for the inference thread; more are refused with
    /// [`EngineError::Busy`]. At least 1.
    pub queue_capacity: usize,
    /// Most texts one request may carry.
    pub max_texts: usize,
    /// How the feed-forward layers multiply: by default 8-bit blocks where the CPU has VNNI,
    /// f32 elsewhere ([`FeedForward::for_this_cpu`]).
    pub feed_forward: FeedForward,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            max_batch: 64,
            max_batch_tokens: 64 * 64,
            max_wait: Duration::from_millis(2),
            queue_capacity: 256,
            max_texts: 256,
            feed_forward: FeedForward::for_this_cpu(),
        }
    }
}

/// all-MiniLM-L6-v2 sentence embeddings (384 dimensions), served by one inference thread with
/// dynamic batching (see the [module docs](self)). The thread ends when this is dropped.
#[derive(Debug)]
pub struct MiniLm {
    queue: EngineQueue<Request>,
    dimensions: usize,
    max_texts: usize,
    counters: Arc<Counters>,
}

/// What the inference thread has done since the engine was loaded: how much work, and where
/// its time went (see [`MiniLm::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmbedStats {
    /// Batches taken from the queue.
    pub batches: u64,
    /// Forward passes run.
    pub passes: u64,
    /// Texts embedded.
    pub texts: u64,
    /// Tokens embedded, special tokens included.
    pub tokens: u64,
    /// Positions attention computed: each pass's texts times its longest text.
    pub padded_tokens: u64,
    /// Time spent tokenizing.
    pub tokenize: Duration,
    /// Time spent in the model's forward passes.
    pub forward: Duration,
    /// Time spent pooling and normalising (and copying the results out).
    pub pool: Duration,
}

/// The counters behind [`EmbedStats`], updated by the inference thread.
#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    passes: AtomicU64,
    texts: AtomicU64,
    tokens: AtomicU64,
    padded_tokens: AtomicU64,
    tokenize_ns: AtomicU64,
    forward_ns: AtomicU64,
    pool_ns: AtomicU64,
}

fn add_elapsed(counter: &AtomicU64, since: Instant) {
    let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
    counter.fetch_add(nanos, Ordering::Relaxed);
}

/// One caller's texts and where to send their embeddings.
#[derive(Debug)]
struct Request {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, EngineError>>,
}

/// `1_Pooling/config.json`: which pooling the model was trained with.
#[derive(Debug, Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

impl MiniLm {
    /// Verifies the model's files in `models_dir` (sizes and SHA-256, see
    /// [`ModelSpec::verify`](models::ModelSpec::verify)), loads them, checks the model with one
    /// forward pass and starts the inference thread. Blocking: run it off the async runtime.
    pub fn load(models_dir: &Path, options: EmbedOptions) -> Result<Self, ModelError> {
        let started = Instant::now();
        let spec = models::spec(MODEL_ID)
            .ok_or_else(|| ModelError::invalid(models_dir, "all-minilm-l6-v2 is not pinned"))?;
        let dir = spec.verify(models_dir)?;

        let config_path = dir.join("config.json");
        let config: Config = serde_json::from_slice(&read(&config_path)?)
            .map_err(|e| ModelError::invalid(&config_path, format!("not a BERT config: {e}")))?;

        let pooling_path = dir.join("1_Pooling").join("config.json");
        let pooling: PoolingConfig = serde_json::from_slice(&read(&pooling_path)?)
            .map_err(|e| ModelError::invalid(&pooling_path, e))?;
        if !pooling.pooling_mode_mean_tokens
            || pooling.pooling_mode_cls_token
            || pooling.pooling_mode_max_tokens
            || pooling.pooling_mode_mean_sqrt_len_tokens
        {
            return Err(ModelError::invalid(
                &pooling_path,
                "only mean pooling is supported",
            ));
        }

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| ModelError::invalid(&tokenizer_path, e))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(config.max_position_embeddings),
                ..TruncationParams::default()
            }))
            .map_err(|e| ModelError::invalid(&tokenizer_path, e))?;
        // Texts are packed, not padded (see the encoder).
        tokenizer.with_padding(None);

        let weights_path = dir.join("model.safetensors");
        let device = Device::Cpu;
        // Read into memory (this crate has no unsafe code, so no mmap).
        let tensors = candle_core::safetensors::load(&weights_path, &device)
            .map_err(|e| ModelError::invalid(&weights_path, e))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = Encoder::load(&vb, &config, options.feed_forward).map_err(|e| {
            ModelError::invalid(&weights_path, format!("does not fit config.json: {e}"))
        })?;

        let counters = Arc::new(Counters::default());
        let runner = Runner {
            counters: Arc::clone(&counters),
            model,
            tokenizer,
            max_batch: options.max_batch.max(1),
            max_batch_tokens: options.max_batch_tokens.max(1),
        };
        let probe = runner
            .embed_all(&["probe".to_owned()])
            .map_err(|e| ModelError::invalid(&weights_path, e))?;
        let dimensions = probe.first().map_or(0, Vec::len);
        if dimensions != config.hidden_size {
            return Err(ModelError::invalid(
                &weights_path,
                format!(
                    "embeddings of {dimensions} dimensions, expected {}",
                    config.hidden_size
                ),
            ));
        }

        let max_wait = options.max_wait;
        let max_batch = runner.max_batch;
        let queue = EngineQueue::spawn(ENGINE, "embed-minilm", options.queue_capacity, move |rx| {
            serve(&runner, rx, max_batch, max_wait)
        })
        .map_err(|source| ModelError::Io {
            path: dir.clone(),
            source,
        })?;
        tracing::info!(
            engine = ENGINE,
            dimensions,
            load_ms = started.elapsed().as_millis() as u64,
            "embedding model loaded"
        );
        Ok(Self {
            queue,
            dimensions,
            max_texts: options.max_texts.max(1),
            counters,
        })
    }

    /// What the engine has done so far and where its time went (the probe pass at load
    /// included).
    pub fn stats(&self) -> EmbedStats {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        EmbedStats {
            batches: get(&c.batches),
            passes: get(&c.passes),
            texts: get(&c.texts),
            tokens: get(&c.tokens),
            padded_tokens: get(&c.padded_tokens),
            tokenize: Duration::from_nanos(get(&c.tokenize_ns)),
            forward: Duration::from_nanos(get(&c.forward_ns)),
            pool: Duration::from_nanos(get(&c.pool_ns)),
        }
    }
}

impl Embedder for MiniLm {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn is_alive(&self) -> bool {
        self.queue.is_alive()
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EngineError>> {
        let checked = validate(&texts, self.max_texts).and_then(|()| {
            let (reply, answer) = oneshot::channel();
            self.queue.submit(Request { texts, reply })?;
            Ok(answer)
        });
        Box::pin(async move {
            checked?
                .await
                .map_err(|_| EngineError::Stopped { engine: ENGINE })?
        })
    }
}

/// Refuses an empty list, an empty text or too many texts.
fn validate(texts: &[String], max_texts: usize) -> Result<(), EngineError> {
    if texts.is_empty() {
        return Err(EngineError::invalid("texts", "no text to embed"));
    }
    if texts.len() > max_texts {
        return Err(EngineError::invalid(
            "texts",
            format!("{} texts, at most {max_texts} per request", texts.len()),
        ));
    }
    if let Some(i) = texts.iter().position(|text| text.trim().is_empty()) {
        return Err(EngineError::invalid("texts", format!("text {i} is empty")));
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The inference thread: gathers requests into batches and answers them.
fn serve(runner: &Runner, requests: &Receiver<Request>, max_batch: usize, max_wait: Duration) {
    while let Ok(first) = requests.recv() {
        let deadline = Instant::now() + max_wait;
        let mut texts = first.texts.len();
        let mut batch = vec![first];
        while texts < max_batch {
            let next = match requests.try_recv() {
                Ok(request) => request,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match requests.recv_timeout(left) {
                        Ok(request) => request,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            texts += next.texts.len();
            batch.push(next);
        }
        runner.answer(batch);
    }
    tracing::debug!(engine = ENGINE, "embedding thread stopped");
}

/// The model and what it takes to run it.
struct Runner {
    counters: Arc<Counters>,
    model: Encoder,
    tokenizer: Tokenizer,
    max_batch: usize,
    max_batch_tokens: usize,
}

impl Runner {
    /// Embeds the texts of every request still awaited and sends each its vectors.
    fn answer(&self, batch: Vec<Request>) {
        let started = Instant::now();
        let batch: Vec<Request> = batch.into_iter().filter(|r| !r.reply.is_closed()).collect();
        let texts: Vec<&str> = batch
            .iter()
            .flat_map(|r| r.texts.iter().map(String::as_str))
            .collect();
        if texts.is_empty() {
            return;
        }
        let count = texts.len();
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        let result = panic::catch_unwind(AssertUnwindSafe(|| self.embed_all(&texts)))
            .unwrap_or_else(|_| Err("inference panicked".into()));
        tracing::debug!(
            engine = ENGINE,
            requests = batch.len(),
            texts = count,
            ok = result.is_ok(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "embedded a batch"
        );
        match result {
            Ok(vectors) => {
                let mut vectors = vectors.into_iter();
                for request in batch {
                    let own: Vec<Vec<f32>> = vectors.by_ref().take(request.texts.len()).collect();
                    let _ = request.reply.send(Ok(own));
                }
            }
            Err(message) => {
                tracing::warn!(engine = ENGINE, %message, "embedding failed");
                for request in batch {
                    let _ = request
                        .reply
                        .send(Err(EngineError::failed(ENGINE, &message)));
                }
            }
        }
    }

    /// Embeds `texts` in as few forward passes as the limits allow, longest first.
    fn embed_all<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, String> {
        let started = Instant::now();
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let encodings = self
            .tokenizer
            .encode_batch_fast(inputs, true)
            .map_err(|e| format!("tokenization failed: {e}"))?;
        add_elapsed(&self.counters.tokenize_ns, started);
        let tokens: usize = encodings.iter().map(Encoding::len).sum();
        self.counters
            .texts
            .fetch_add(encodings.len() as u64, Ordering::Relaxed);
        self.counters
            .tokens
            .fetch_add(tokens as u64, Ordering::Relaxed);
        let order = length_order(&encodings);
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); encodings.len()];
        for chunk in chunks(&order, &encodings, self.max_batch, self.max_batch_tokens) {
            let members: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            let vectors = self
                .forward(&members)
                .map_err(|e| format!("forward pass failed: {e}"))?;
            for (&i, vector) in chunk.iter().zip(vectors) {
                out[i] = vector;
            }
        }
        Ok(out)
    }

    /// One forward pass over the texts packed end to end, mean pooling over each text's
    /// tokens, L2 normalisation.
    fn forward(&self, encodings: &[&Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let lengths: Vec<usize> = encodings.iter().map(|e| e.len()).collect();
        let ids: Vec<u32> = encodings
            .iter()
            .flat_map(|e| e.get_ids().iter().copied())
            .collect();
        let width = lengths.iter().copied().max().unwrap_or(0);
        self.counters.passes.fetch_add(1, Ordering::Relaxed);
        self.counters
            .padded_tokens
            .fetch_add((encodings.len() * width) as u64, Ordering::Relaxed);
        let started = Instant::now();
        let hidden = self.model.forward(&ids, &lengths)?;
        add_elapsed(&self.counters.forward_ns, started);
        let started = Instant::now();
        let (_, size) = hidden.dims2()?;
        let states = hidden.flatten_all()?.to_vec1::<f32>()?;
        let mut rows = states.chunks_exact(size);
        let vectors = lengths
            .iter()
            .map(|&length| {
                let mut vector = vec![0f32; size];
                for row in rows.by_ref().take(length) {
                    vector.iter_mut().zip(row).for_each(|(v, x)| *v += x);
                }
                let tokens = length.max(1) as f32;
                vector.iter_mut().for_each(|v| *v /= tokens);
                normalize(&mut vector);
                vector
            })
            .collect();
        add_elapsed(&self.counters.pool_ns, started);
        Ok(vectors)
    }
}

/// Indices of `encodings`, longest first (ties in input order).
fn length_order(encodings: &[Encoding]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..encodings.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
    order
}

/// Splits `order` (longest first) into runs of at most `max_batch` texts whose padded size
/// (texts × longest) stays within `max_tokens`; a run has at least one text.
fn chunks<'a>(
    order: &'a [usize],
    encodings: &[Encoding],
    max_batch: usize,
    max_tokens: usize,
) -> Vec<&'a [usize]> {
    chunk_lengths(
        &order
            .iter()
            .map(|&i| encodings[i].len())
            .collect::<Vec<_>>(),
        max_batch,
        max_tokens,
    )
    .into_iter()
    .map(|range| &order[range])
    .collect()
}

/// The ranges that [`chunks`] cuts from lengths sorted longest first.
fn chunk_lengths(
    lengths: &[usize],
    max_batch: usize,
    max_tokens: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < lengths.len() {
        let width = lengths[start].max(1);
        let fit = (max_tokens / width).clamp(1, max_batch.max(1));
        let end = (start + fit).min(lengths.len());
        ranges.push(start..end);
        start = end;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use candle_core::Tensor;

    use super::*;

    /// Runs our encoder with `feed_forward` and candle-transformers' `BertModel` on texts of
    /// several lengths, in no particular order, more than one attention group: packed for
    /// ours, one at a time for candle's (so no padding either). Returns each text's hidden
    /// states, ours then theirs, `(tokens, hidden)`.
    fn ours_and_candles(feed_forward: FeedForward) -> Vec<(Tensor, Tensor)> {
        let dir = models::spec(MODEL_ID)
            .expect("pinned")
            .dir(&models::dir_for_tests());
        let config: Config =
            serde_json::from_slice(&fs::read(dir.join("config.json")).expect("config"))
                .expect("config");
        let device = Device::Cpu;
        let tensors =
            candle_core::safetensors::load(dir.join("model.safetensors"), &device).expect("load");
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let ours = Encoder::load(&vb, &config, feed_forward).expect("ours");
        let theirs =
            candle_transformers::models::bert::BertModel::load(vb, &config).expect("theirs");
        let texts: Vec<Vec<u32>> = [9usize, 3, 7, 7, 12, 2, 5, 40]
            .iter()
            .enumerate()
            .map(|(t, &length)| {
                let mut ids = vec![101u32];
                ids.extend((1..length - 1).map(|i| 1000 + ((t * 131 + i * 17) % 20_000) as u32));
                ids.push(102);
                ids
            })
            .collect();
        let packed: Vec<u32> = texts.iter().flatten().copied().collect();
        let lengths: Vec<usize> = texts.iter().map(Vec::len).collect();
        let ours = ours.forward(&packed, &lengths).expect("ours");
        let mut first = 0;
        texts
            .iter()
            .map(|ids| {
                let ids = Tensor::new(ids.as_slice(), &device)
                    .and_then(|t| t.unsqueeze(0))
                    .expect("ids");
                let theirs = theirs
                    .forward(&ids, &ids.zeros_like().expect("types"), None)
                    .and_then(|t| t.squeeze(0))
                    .expect("theirs");
                let length = theirs.dims()[0];
                let own = ours.narrow(0, first, length).expect("rows");
                first += length;
                (own, theirs)
            })
            .collect()
    }

    #[test]
    fn encoder_matches_candle_bert() {
        for (text, (ours, theirs)) in ours_and_candles(FeedForward::F32).iter().enumerate() {
            let diff = (ours - theirs)
                .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
                .expect("diff");
            assert!(diff < 1e-4, "text {text}: {diff}");
        }
    }

    /// With 8-bit feed-forward layers (on whatever kernels this CPU has) the embeddings, the
    /// mean of the hidden states, stay within a hair of f32's.
    #[test]
    fn eight_bit_feed_forward_keeps_the_embeddings() {
        let mean = |states: &Tensor| -> Vec<f32> {
            states
                .mean(0)
                .and_then(|m| m.to_vec1::<f32>())
                .expect("mean")
        };
        for (text, (ours, theirs)) in ours_and_candles(FeedForward::Q8_0).iter().enumerate() {
            let similarity = crate::embed::cosine(&mean(ours), &mean(theirs));
            // Measured: 0.9992 for the two-token text, 0.9997-0.9998 for the others.
            assert!(similarity > 0.999, "text {text}: cosine {similarity}");
        }
    }

    #[test]
    fn chunks_respect_the_batch_and_token_limits() {
        // Longest first: the first chunk is bounded by tokens, later ones by texts.
        let lengths = [100, 90, 50, 10, 10, 10, 10, 10];
        let ranges = chunk_lengths(&lengths, 4, 200);
        assert_eq!(ranges, vec![0..2, 2..6, 6..8]);
        // A text longer than the token budget still goes, alone.
        assert_eq!(chunk_lengths(&[500, 5], 8, 100), vec![0..1, 1..2]);
        assert!(chunk_lengths(&[], 8, 100).is_empty());
    }

    #[test]
    fn requests_are_validated() {
        let texts = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(validate(&texts(&["a", "b"]), 2).is_ok());
        for bad in [texts(&[]), texts(&["a", " \n"]), texts(&["a", "b", "c"])] {
            let error = validate(&bad, 2).expect_err("refused");
            assert!(
                matches!(error, EngineError::InvalidInput { field: "texts", .. }),
                "{error}"
            );
        }
    }
}
