//! `aimesh-bench conversation`: a chat reply streamed through the whole conversation pipeline
//! (SendMessage, then WatchMessage: the reply job is queued, claimed by a worker, its message
//! refined and its intent detected before the chat model answers) against the same chat model
//! called directly (ModelsService.Chat, streamed), in one mesh on this machine.
//!
//! Both are timed from the request to the first text (time to first token) and to the end
//! (tokens per second over the reply, from the first token on). The pipeline's overhead is
//! their ratio. Greedy decoding both ways; the pipeline adds its system prompt to the prompt,
//! so its prompt is longer than the direct call's.

use std::{path::PathBuf, time::Instant};

use aimesh::ServiceKind;
use aimesh_models::EngineKind;
use aimesh_proto::{
    conversation::v1::{
        self as cpb, conversation_service_client::ConversationServiceClient,
        watch_message_response::Event,
    },
    models::v1::{self as mpb, models_service_client::ModelsServiceClient},
};
use anyhow::Context;

use crate::documents::{Bearer, Running, channel, login, median};

/// What each run asks: a plain chat question (the pipeline's intent is "chat").
const QUESTION: &str = "Explain how photosynthesis works, in a few sentences for a curious \
child.";

/// Options of the conversation benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// The models directory (the chat and embeddings models).
    #[arg(long, env = "AIMESH_MODELS_DIR")]
    models_dir: PathBuf,
    /// Measured runs of each path (after one warm-up run of each); medians are printed.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Most tokens of a reply, both ways.
    #[arg(long, default_value_t = 128)]
    tokens: u32,
}

/// One timed reply.
struct Timing {
    first_ms: f64,
    total_ms: f64,
    tokens: u32,
}

impl Timing {
    /// Tokens per second after the first.
    fn rate(&self) -> f64 {
        let generating = (self.total_ms - self.first_ms) / 1e3;
        if self.tokens > 1 && generating > 0.0 {
            f64::from(self.tokens - 1) / generating
        } else {
            0.0
        }
    }
}

/// Runs the benchmark.
pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let tokens = options.tokens;
    let mesh = Running::start_with(
        "127.0.0.1:0".parse()?,
        Some((
            &options.models_dir,
            vec![EngineKind::Chat, EngineKind::Embeddings],
        )),
        true,
        None,
        ServiceKind::ALL,
        |config| config.conversation.chat_reply_max_tokens = tokens,
    )
    .await?;
    let direct = channel(&format!("http://{}", mesh.addr)).await?;
    let (bearer, _) = login(direct.clone()).await?;
    let mut models = ModelsServiceClient::with_interceptor(direct.clone(), Bearer(bearer.clone()));
    let mut chats = ConversationServiceClient::with_interceptor(direct, Bearer(bearer));

    println!(
        "aimesh-bench: a streamed chat reply of at most {tokens} tokens (greedy), {} runs each \
         after a warm-up, medians",
        options.runs
    );
    let mut direct_runs = Vec::new();
    let mut pipeline_runs = Vec::new();
    for run in 0..=options.runs {
        let direct = direct_chat(&mut models, tokens).await?;
        let pipeline = pipeline_chat(&mut chats).await?;
        if run > 0 {
            direct_runs.push(direct);
            pipeline_runs.push(pipeline);
        }
    }
    println!(
        "{:<34} {:>10} {:>10} {:>8} {:>10}",
        "path", "TTFT ms", "total ms", "tokens", "tokens/s"
    );
    let direct = report("ModelsService.Chat (direct)", &direct_runs);
    let pipeline = report("conversation pipeline", &pipeline_runs);
    println!(
        "pipeline / direct: time to first token {:.2}x, tokens/s {:.2}x (+{:.0} ms before the \
         first token)",
        pipeline.0 / direct.0,
        pipeline.1 / direct.1,
        pipeline.0 - direct.0
    );
    mesh.stop().await
}

/// Prints a path's medians; returns its median time to first token and rate.
fn report(name: &str, runs: &[Timing]) -> (f64, f64) {
    let first = median(runs.iter().map(|t| t.first_ms).collect());
    let total = median(runs.iter().map(|t| t.total_ms).collect());
    let tokens = median(runs.iter().map(|t| f64::from(t.tokens)).collect());
    let rate = median(runs.iter().map(Timing::rate).collect());
    println!("{name:<34} {first:>10.1} {total:>10.1} {tokens:>8.0} {rate:>10.1}");
    (first, rate)
}

type Intercepted =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>;

async fn direct_chat(
    models: &mut ModelsServiceClient<Intercepted>,
    tokens: u32,
) -> anyhow::Result<Timing> {
    let began = Instant::now();
    let mut stream = models
        .chat(mpb::ChatRequest {
            messages: vec![mpb::ChatMessage {
                role: mpb::Role::User.into(),
                content: QUESTION.into(),
            }],
            max_tokens: Some(tokens),
            temperature: Some(0.0),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut first = None;
    let mut used = 0;
    while let Some(reply) = stream.message().await? {
        if first.is_none() && !reply.text.is_empty() {
            first = Some(began.elapsed());
        }
        if let Some(usage) = reply.usage {
            used = usage.completion_tokens;
        }
    }
    Ok(Timing {
        first_ms: first.context("the reply had no text")?.as_secs_f64() * 1e3,
        total_ms: began.elapsed().as_secs_f64() * 1e3,
        tokens: used,
    })
}

async fn pipeline_chat(
    chats: &mut ConversationServiceClient<Intercepted>,
) -> anyhow::Result<Timing> {
    // A new session each run: the same prompt every time, no history.
    let session = chats
        .create_session(cpb::CreateSessionRequest {
            title: "bench".into(),
        })
        .await?
        .into_inner()
        .session
        .context("a session")?;
    let began = Instant::now();
    let sent = chats
        .send_message(cpb::SendMessageRequest {
            session_id: session.id.clone(),
            content: QUESTION.into(),
            document_context: None,
            image_id: String::new(),
        })
        .await?
        .into_inner();
    let pending = sent.assistant_message.context("the pending reply")?;
    let mut stream = chats
        .watch_message(cpb::WatchMessageRequest {
            session_id: session.id.clone(),
            id: pending.id,
        })
        .await?
        .into_inner();
    let mut first = None;
    let mut last = None;
    while let Some(event) = stream.message().await? {
        match event.event {
            Some(Event::Delta(text)) if first.is_none() && !text.is_empty() => {
                first = Some(began.elapsed());
            }
            Some(Event::Message(message)) => last = Some(message),
            _ => {}
        }
    }
    let message = last.context("the stream ended without the message")?;
    anyhow::ensure!(
        message.status() == cpb::MessageStatus::Done,
        "the reply ended {:?}: {}",
        message.status(),
        message.failure_reason
    );
    // Another intent would time another path (a search, an image) than the chat reply.
    anyhow::ensure!(
        message.intent() == cpb::Intent::Chat,
        "the message was taken as {:?} ({:.2}), not chat: {:?}",
        message.intent(),
        message.intent_confidence,
        message.content
    );
    Ok(Timing {
        first_ms: first.context("the reply had no text")?.as_secs_f64() * 1e3,
        total_ms: began.elapsed().as_secs_f64() * 1e3,
        tokens: u32::try_from(message.completion_tokens).unwrap_or(0),
    })
}
