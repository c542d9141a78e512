//! `aimesh-bench`: load benchmarks that print their figures side by side with a peer.
//!
//! ```text
//! cargo run --release -p aimesh-bench -- notes --duration-secs 10 --concurrency 64
//! cargo run --release -p aimesh-bench -- jobs --jobs 20000
//! cargo run --release -p aimesh-bench -- events --events 20000 [--database-url sqlite]
//! cargo run --release -p aimesh-bench -- watch --streams 10000
//! cargo run --release -p aimesh-bench -- embed --models-dir DIR
//! cargo run --release -p aimesh-bench -- chat --models-dir DIR --tokens 128
//! cargo run --release -p aimesh-bench -- conversation --models-dir DIR --tokens 128
//! cargo run --release -p aimesh-bench -- transcribe --audio clip.wav
//! cargo run --release -p aimesh-bench -- reports --events 100000
//! cargo run --release -p aimesh-bench -- upscale --models-dir DIR
//! cargo run --release -p aimesh-bench -- matting --model isnet.onnx --photos DIR --out DIR
//! cargo run --release -p aimesh-bench -- upload --size-mib 50 [--edge http://127.0.0.1:8080]
//! cargo run --release -p aimesh-bench -- searchable --models-dir DIR --pages 100
//! cargo run --release -p aimesh-bench -- search --models-dir DIR --chunks 10000,100000
//! cargo run --release -p aimesh-bench -- soak --addr 127.0.0.1:50051 --server-pid PID
//! ```
//! `scripts/bench-jobs` runs the jobs benchmark beside the same workload on Celery;
//! `scripts/bench-embed` the embeddings benchmark beside sentence-transformers;
//! `scripts/bench-chat` the chat benchmark beside llama.cpp on the same model file;
//! `scripts/bench-transcribe` the transcribe benchmark beside faster-whisper;
//! `scripts/bench-matting` the matting benchmark beside onnxruntime on the same inputs;
//! `scripts/bench-upload` the document benchmarks with Envoy in front and curl as the REST peer;
//! `scripts/chaos` the soak, after the fault suite.

mod chat;
mod conversation;
mod documents;
mod embed;
mod events;
mod jobs;
mod matting;
mod notes;
mod reports;
mod soak;
mod transcribe;
mod upscale;
mod watch;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "aimesh load benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// GetNote and CreateNote against a minimal tonic echo server.
    Notes(notes::Options),
    /// No-op job throughput and enqueue-to-start latency on PostgreSQL.
    Jobs(jobs::Options),
    /// Domain events through the relay to a NATS JetStream consumer, beside the write rate.
    Events(events::Options),
    /// Many concurrent WatchJob streams: server memory per stream and delivery latency.
    Watch(watch::Options),
    /// Sentence embeddings per second (all-MiniLM-L6-v2) at several client batch sizes.
    Embed(embed::Options),
    /// Chat model prompt processing and generation speed (SmolLM2, greedy).
    Chat(chat::Options),
    /// A chat reply through the conversation pipeline against ModelsService.Chat: time to
    /// first token and tokens/s.
    Conversation(conversation::Options),
    /// Whisper speech-to-text on a fixed clip: real-time factor and time per stage.
    Transcribe(transcribe::Options),
    /// Reports of 100,000 events end to end through the API: create, render, download.
    Reports(reports::Options),
    /// ESRGAN super-resolution: seconds per megapixel, PSNR/SSIM against Lanczos3.
    Upscale(upscale::Options),
    /// Background removal with a user's ONNX segmentation model, masks written for comparison.
    Matting(matting::Options),
    /// Document upload throughput over gRPC, directly and through Envoy, and REST with curl.
    Upload(documents::UploadOptions),
    /// Time from uploading a generated PDF until a search finds it.
    Searchable(documents::SearchableOptions),
    /// SearchDocuments latency (p50/p95) at growing numbers of stored chunks.
    Search(documents::SearchOptions),
    /// A running mesh under a steady notes load (a share of its measured capacity) for a long
    /// while: errors, and the server's resident memory at the start and the end.
    Soak(soak::Options),
}

/// mimalloc rather than the system allocator: the RPC path allocates and frees small buffers on
/// every call, often on another thread than the one that allocated them, and the AI engines
/// churn through large activations. glibc's allocator took a tenth of the server's time on a
/// GetNote; with mimalloc GetNote serves 5-11 % more calls and embeddings run 13-28 % faster
/// (README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Notes(options) => notes::run(options).await,
        Command::Jobs(options) => jobs::run(options).await,
        Command::Watch(options) => watch::run(options).await,
        Command::Events(options) => events::run(options).await,
        Command::Embed(options) => embed::run(options).await,
        Command::Chat(options) => chat::run(options).await,
        Command::Conversation(options) => conversation::run(options).await,
        Command::Transcribe(options) => transcribe::run(options).await,
        Command::Reports(options) => reports::run(options).await,
        Command::Upscale(options) => upscale::run(options).await,
        Command::Matting(options) => matting::run(options).await,
        Command::Upload(options) => documents::upload(options).await,
        Command::Searchable(options) => documents::searchable(options).await,
        Command::Search(options) => documents::search(options).await,
        Command::Soak(options) => soak::run(options).await,
    }
}
