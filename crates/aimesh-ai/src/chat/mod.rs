//! Chat completion: the [`ChatModel`] trait, the messages and sampling parameters a request
//! carries, the events a reply streams, and the engine that implements it on a quantized
//! model read from a GGUF file ([`GgufChat`]: SmolLM2-135M-Instruct by default, or a llama,
//! qwen2 or gemma3 model the operator provides).
//!
//! A request is validated and its prompt rendered and tokenized on the caller's thread, so a
//! bad request fails at once with [`EngineError::InvalidInput`] naming the field. Generation
//! then runs on the engine's dedicated inference thread, one request at a time (the others
//! wait in its bounded queue; a full queue refuses with [`EngineError::Busy`]), and streams
//! [`ChatEvent`]s: text deltas, then one [`ChatEvent::Done`]. Dropping the receiver stops the
//! generation before the next token.

mod decoder;
mod gguf;
mod llama;
mod spm;
mod stop;
mod template;
mod tokenizer;

use std::fmt;

pub use self::decoder::ARCHITECTURES;
pub use self::gguf::{
    GgufChat, GgufChatOptions, MAX_CONTEXT, MODEL_ID, PREFILL_CHUNK, WeightFormat,
};
pub use self::llama::KvCache;
pub use self::template::ChatTemplate;
pub use self::tokenizer::GgufTokenizer;
use crate::engine::EngineError;

/// The most tokens one request may ask to generate.
pub const MAX_COMPLETION_TOKENS: u32 = 2048;
/// The most stop sequences one request may give.
pub const MAX_STOP_SEQUENCES: usize = 8;
/// The longest stop sequence, in bytes.
pub const MAX_STOP_BYTES: usize = 256;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Instructions framing the conversation; only as the first message.
    System,
    /// The person chatting.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The role's name in chat templates and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// What it says.
    pub content: String,
}

impl ChatMessage {
    /// A message of `role`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// How to pick the tokens of a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationParams {
    /// The most tokens to generate, 1 to [`MAX_COMPLETION_TOKENS`].
    pub max_tokens: u32,
    /// Sampling temperature, 0 to 2; 0 picks the most likely token (greedy, deterministic).
    pub temperature: f64,
    /// Nucleus sampling: sample among the most likely tokens whose probabilities add up to
    /// `top_p`, in (0, 1]; 1 disables it.
    pub top_p: f64,
    /// Sample among the `top_k` most likely tokens; 0 disables it.
    pub top_k: usize,
    /// Divides the scores of tokens seen in the last `repeat_last_n` tokens (prompt
    /// included), in (0, 10]; 1 disables it.
    pub repeat_penalty: f32,
    /// How many of the last tokens the repeat penalty looks at.
    pub repeat_last_n: usize,
    /// Seed of the sampler, for reproducible sampling; `None` picks one at random.
    pub seed: Option<u64>,
    /// Generation stops before any of these strings, which are not emitted (at most
    /// [`MAX_STOP_SEQUENCES`], each non-empty and at most [`MAX_STOP_BYTES`] bytes).
    pub stop: Vec<String>,
    /// Keeps generating past the end-of-turn token (which then appears in the text) until
    /// `max_tokens` or the end of the context: for benchmarks.
    pub ignore_eos: bool,
}

impl Default for GenerationParams {
    /// 256 tokens, greedy, no penalty, no stop sequence.
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: None,
            stop: Vec::new(),
            ignore_eos: false,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// The model ended its turn.
    Stop,
    /// `max_tokens` were generated, or the context is full.
    Length,
    /// A stop sequence was generated.
    StopSequence,
}

impl FinishReason {
    /// The reason's name in APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::StopSequence => "stop_sequence",
        }
    }
}

/// One event of a streamed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// More text of the reply: whole UTF-8 characters, never part of a stop sequence.
    Token {
        /// The text, to append to what came before.
        text: String,
    },
    /// The reply is complete; nothing follows.
    Done {
        /// Why generation ended.
        finish_reason: FinishReason,
        /// Tokens of the rendered prompt.
        prompt_tokens: u32,
        /// Tokens generated, not counting the end-of-turn token.
        completion_tokens: u32,
    },
}

/// The receiving side of a streamed reply. Dropping it stops the generation.
pub type ChatStream = tokio::sync::mpsc::Receiver<Result<ChatEvent, EngineError>>;

/// A chat model.
pub trait ChatModel: Send + Sync + 'static {
    /// Returns whether the engine is serving: false while its inference thread restarts
    /// after a panic, and once it has stopped for good.
    fn is_alive(&self) -> bool {
        true
    }

    /// The model's id: its catalog id, or the name of the file it was loaded from.
    fn name(&self) -> &str;

    /// What the model is, in a line (name, architecture, context), for model listings.
    fn summary(&self) -> String {
        String::new()
    }

    /// How many tokens the prompt and the reply may hold together.
    fn context_length(&self) -> usize;

    /// How many tokens `text` takes in this model's vocabulary; `None` when the engine
    /// cannot tell (callers then estimate).
    fn count_tokens(&self, _text: &str) -> Option<usize> {
        None
    }

    /// The first of the model's control tokens (`<|im_start|>`...) written in `text`, if
    /// any: [`ChatModel::chat`] refuses messages containing one.
    fn control_token_in(&self, _text: &str) -> Option<String> {
        None
    }

    /// Starts generating the assistant's reply to `messages` and returns its stream of
    /// events. Fails at once when the request is invalid ([`EngineError::InvalidInput`]) or
    /// the engine's queue is full ([`EngineError::Busy`]). Does not block.
    fn chat(
        &self,
        messages: Vec<ChatMessage>,
        params: GenerationParams,
    ) -> Result<ChatStream, EngineError>;
}

/// Checks the roles of a conversation: an optional system message first, then user and
/// assistant messages alternating, starting and ending with the user's.
pub fn validate_messages(messages: &[ChatMessage]) -> Result<(), EngineError> {
    let Some(last) = messages.last() else {
        return Err(EngineError::invalid("messages", "no messages"));
    };
    let mut expected = Role::User;
    for (i, message) in messages.iter().enumerate() {
        if message.role == Role::System && i == 0 {
            continue;
        }
        if message.role != expected {
            return Err(EngineError::invalid(
                "messages",
                format!(
                    "messages[{i}] is a {} message where a {expected} message belongs: an \
                     optional system message comes first, then user and assistant messages \
                     alternate, starting with the user's",
                    message.role
                ),
            ));
        }
        expected = match expected {
            Role::User => Role::Assistant,
            _ => Role::User,
        };
    }
    if last.role != Role::User {
        return Err(EngineError::invalid(
            "messages",
            "the last message must be the user's",
        ));
    }
    Ok(())
}

/// Checks sampling parameters against their documented ranges.
pub fn validate_params(params: &GenerationParams) -> Result<(), EngineError> {
    if params.max_tokens == 0 || params.max_tokens > MAX_COMPLETION_TOKENS {
        return Err(EngineError::invalid(
            "max_tokens",
            format!(
                "{} is out of range 1..={MAX_COMPLETION_TOKENS}",
                params.max_tokens
            ),
        ));
    }
    if !(0.0..=2.0).contains(&params.temperature) {
        return Err(EngineError::invalid(
            "temperature",
            format!("{} is out of range 0..=2", params.temperature),
        ));
    }
    if !(params.top_p > 0.0 && params.top_p <= 1.0) {
        return Err(EngineError::invalid(
            "top_p",
            format!("{} is out of range (0, 1]", params.top_p),
        ));
    }
    if !(params.repeat_penalty > 0.0 && params.repeat_penalty <= 10.0) {
        return Err(EngineError::invalid(
            "repeat_penalty",
            format!("{} is out of range (0, 10]", params.repeat_penalty),
        ));
    }
    if params.stop.len() > MAX_STOP_SEQUENCES {
        return Err(EngineError::invalid(
            "stop",
            format!(
                "{} stop sequences, at most {MAX_STOP_SEQUENCES} allowed",
                params.stop.len()
            ),
        ));
    }
    if let Some(bad) = params
        .stop
        .iter()
        .find(|stop| stop.is_empty() || stop.len() > MAX_STOP_BYTES)
    {
        return Err(EngineError::invalid(
            "stop",
            format!(
                "a stop sequence of {} bytes: each must have 1 to {MAX_STOP_BYTES}",
                bad.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: Result<(), EngineError>) -> Option<&'static str> {
        match result {
            Err(EngineError::InvalidInput { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn role_order_is_checked() {
        use ChatMessage as M;
        assert_eq!(field(validate_messages(&[])), Some("messages"));
        assert!(validate_messages(&[M::user("hi")]).is_ok());
        assert!(validate_messages(&[M::system("be brief"), M::user("hi")]).is_ok());
        assert!(validate_messages(&[M::user("a"), M::assistant("b"), M::user("c")]).is_ok());
        for bad in [
            vec![M::assistant("hi")],
            vec![M::user("a"), M::assistant("b")],
            vec![M::user("a"), M::user("b")],
            vec![M::user("a"), M::system("b"), M::user("c")],
            vec![M::system("a"), M::system("b"), M::user("c")],
        ] {
            assert_eq!(field(validate_messages(&bad)), Some("messages"), "{bad:?}");
        }
    }

    #[test]
    fn parameters_out_of_range_name_their_field() {
        let ok = GenerationParams::default();
        assert!(validate_params(&ok).is_ok());
        let cases: Vec<(&str, GenerationParams)> = vec![
            (
                "max_tokens",
                GenerationParams {
                    max_tokens: 0,
                    ..ok.clone()
                },
            ),
            (
                "max_tokens",
                GenerationParams {
                    max_tokens: MAX_COMPLETION_TOKENS + 1,
                    ..ok.clone()
                },
            ),
            (
                "temperature",
                GenerationParams {
                    temperature: -0.1,
                    ..ok.clone()
                },
            ),
            (
                "temperature",
                GenerationParams {
                    temperature: f64::NAN,
                    ..ok.clone()
                },
            ),
            (
                "top_p",
                GenerationParams {
                    top_p: 0.0,
                    ..ok.clone()
                },
            ),
            (
                "repeat_penalty",
                GenerationParams {
                    repeat_penalty: 0.0,
                    ..ok.clone()
                },
            ),
            (
                "stop",
                GenerationParams {
                    stop: vec![String::new()],
                    ..ok.clone()
                },
            ),
        ];
        for (expected, params) in cases {
            assert_eq!(
                field(validate_params(&params)),
                Some(expected),
                "{params:?}"
            );
        }
    }
}
