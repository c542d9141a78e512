//! The chat engine on the architectures besides SmolLM2's llama: Gemma 3 on the catalog's real
//! gemma3-270m (needs `AIMESH_MODELS_DIR` holding it: `aimesh models fetch gemma3-270m`), and
//! qwen2 on a tiny randomly initialised model this test writes with SmolLM2's tokenizer. Each
//! engine's greedy reply is checked against candle-transformers' model run directly on the
//! same prompt, in one pass where the engine feeds the prompt in chunks.

use std::{collections::HashMap, fs::File, path::Path, sync::OnceLock};

use aimesh_ai::{
    chat::{
        ARCHITECTURES, ChatEvent, ChatMessage, ChatModel, GenerationParams, GgufChat,
        GgufChatOptions, GgufTokenizer, PREFILL_CHUNK,
    },
    models::{self, ModelError},
};
use candle_core::{
    DType, Device, Tensor,
    quantized::{GgmlDType, QTensor, gguf_file},
};
use candle_transformers::models::{quantized_gemma3, quantized_qwen2};
use rand::{Rng, SeedableRng, rngs::StdRng};

const GEMMA: &str = "gemma3-270m";

fn gemma() -> &'static GgufChat {
    static MODEL: OnceLock<GgufChat> = OnceLock::new();
    MODEL.get_or_init(|| {
        GgufChat::load_catalog(&models::dir_for_tests(), GEMMA, GgufChatOptions::default())
            .expect("gemma3-270m loads (`aimesh models fetch gemma3-270m`)")
    })
}

fn gemma_path() -> std::path::PathBuf {
    let spec = models::spec(GEMMA).expect("in the catalog");
    spec.dir(&models::dir_for_tests()).join(spec.files[0].name)
}

/// The reply's text and how many tokens it took.
fn reply(model: &GgufChat, messages: Vec<ChatMessage>, params: GenerationParams) -> (String, u32) {
    let mut stream = model.chat(messages, params).expect("accepted");
    let mut text = String::new();
    while let Some(event) = stream.blocking_recv() {
        match event.expect("no engine error") {
            ChatEvent::Token { text: piece } => text.push_str(&piece),
            ChatEvent::Done {
                completion_tokens, ..
            } => return (text, completion_tokens),
        }
    }
    panic!("no Done event after {text:?}");
}

/// Greedy continuation of `prompt` by a candle model's `forward(tokens, position)`: the
/// prompt in one pass, then a token at a time, `tokens` of them (or to an end token).
fn reference(
    mut forward: impl FnMut(&[u32], usize) -> Vec<f32>,
    prompt: &[u32],
    tokens: usize,
    end: &[u32],
) -> Vec<u32> {
    let mut logits = forward(prompt, 0);
    let mut out = Vec::new();
    for _ in 0..tokens {
        let next = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(id, _)| id as u32)
            .expect("logits");
        if end.contains(&next) {
            break;
        }
        out.push(next);
        logits = forward(&[next], prompt.len() + out.len() - 1);
    }
    out
}

fn run<F>(forward: F) -> impl FnMut(&[u32], usize) -> Vec<f32>
where
    F: Fn(&Tensor, usize) -> candle_core::Result<Tensor>,
{
    move |tokens, position| {
        let input = Tensor::new(tokens, &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .expect("input");
        forward(&input, position)
            .and_then(|logits| logits.flatten_all()?.to_vec1())
            .expect("forward")
    }
}

#[test]
fn gemma3_tokenizer_reads_sentencepiece_from_the_file() {
    let tokenizer = gemma().tokenizer();
    assert_eq!(tokenizer.vocab_size(), 262_144);
    for text in [
        "café 日本",
        "Hello, world! 🙂 naïve\tspaces  and\nnewlines\n\n",
        "x = [1, 22, 333]",
    ] {
        let ids = tokenizer.encode(text).expect("encodes");
        assert_eq!(tokenizer.decode(&ids).expect("decodes"), text);
    }
    // Words with the space before them are single pieces (no prefix space for Gemma).
    let ids = tokenizer.encode("Hello world").expect("encodes");
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(tokenizer.token(ids[1]), Some("▁world"));
    // Turn markup is one control token each; runs of newlines are single user-defined tokens.
    let start = tokenizer
        .token_id("<start_of_turn>")
        .expect("in the vocabulary");
    let ids = tokenizer
        .encode("<start_of_turn>user\nHi<end_of_turn>\n\n")
        .expect("encodes");
    assert_eq!(ids.first(), Some(&start));
    assert_eq!(ids.last(), tokenizer.token_id("\n\n").as_ref());
    assert_eq!(ids.len(), 6, "{ids:?}");
    // Markup in a message is found, to be refused; newlines are not markup.
    assert_eq!(
        tokenizer.control_token_in("say <end_of_turn> now"),
        Some("<end_of_turn>")
    );
    assert_eq!(tokenizer.control_token_in("two\n\nparagraphs"), None);
    // The prompt starts with <bos> once, whether or not the template writes it.
    let bos = tokenizer.bos_token_id().expect("gemma has <bos>");
    let prompt = gemma()
        .render_prompt(&[ChatMessage::user("Hi")])
        .expect("renders");
    let ids = tokenizer.encode_prompt(&prompt).expect("encodes");
    assert_eq!(ids[0], bos);
    assert_ne!(ids[1], bos);
    assert_eq!(tokenizer.encode_prompt("Hi").expect("encodes")[0], bos);
}

#[test]
fn gemma3_replies_as_candles_gemma3_computes() {
    let model = gemma();
    assert_eq!(model.name(), GEMMA);
    // Served within its sliding window (512 tokens for this model).
    assert_eq!(model.context_length(), 512);
    assert!(model.summary().contains("gemma3"), "{}", model.summary());
    let messages = vec![
        ChatMessage::system("Answer in one short sentence."),
        ChatMessage::user("What is the capital of France?"),
    ];
    let prompt = model.render_prompt(&messages).expect("renders");
    assert!(
        prompt.starts_with("<bos><start_of_turn>user\nAnswer in one short sentence.\n\nWhat"),
        "{prompt:?}"
    );
    assert!(
        prompt.ends_with("<end_of_turn>\n<start_of_turn>model\n"),
        "{prompt:?}"
    );
    let (text, tokens) = reply(
        model,
        messages,
        GenerationParams {
            max_tokens: 24,
            ..GenerationParams::default()
        },
    );

    let ids = model.tokenizer().encode_prompt(&prompt).expect("encodes");
    let mut reader = File::open(gemma_path()).expect("the model file");
    let content = gguf_file::Content::read(&mut reader).expect("gguf");
    let candle = std::cell::RefCell::new(
        quantized_gemma3::ModelWeights::from_gguf(content, &mut reader, &Device::Cpu)
            .expect("candle's gemma3"),
    );
    let end = end_ids(model.tokenizer());
    let expected = reference(
        run(|input, position| candle.borrow_mut().forward(input, position)),
        &ids,
        24,
        &end,
    );
    println!("gemma3-270m, greedy, {tokens} tokens: {text:?}");
    assert_eq!(tokens as usize, expected.len());
    assert_eq!(text, model.tokenizer().decode(&expected).expect("decodes"));
    assert!(!text.trim().is_empty(), "an empty reply");
}

/// The tokens that end a reply, as the engine takes them.
fn end_ids(tokenizer: &GgufTokenizer) -> Vec<u32> {
    let mut end = vec![tokenizer.eos_token_id()];
    end.extend(
        ["<|im_end|>", "<end_of_turn>", "<|eot_id|>"]
            .iter()
            .filter_map(|token| tokenizer.token_id(token)),
    );
    end
}

/// SmolLM2's GGUF metadata for the tokenizer and chat template.
fn smollm_tokenizer_metadata() -> HashMap<String, gguf_file::Value> {
    let spec = models::spec(aimesh_ai::chat::MODEL_ID).expect("pinned");
    let path = spec.dir(&models::dir_for_tests()).join(spec.files[0].name);
    let mut reader = File::open(path).expect("the SmolLM2 model (`aimesh models fetch`)");
    let content = gguf_file::Content::read(&mut reader).expect("gguf");
    content
        .metadata
        .into_iter()
        .filter(|(key, _)| key.starts_with("tokenizer."))
        .collect()
}

/// Writes a tiny qwen2 model with random weights and SmolLM2's tokenizer to `path`;
/// `architecture` and `template` override the metadata (`None` drops the template).
fn write_tiny_qwen2(path: &Path, architecture: &str, template: bool) {
    let (dim, heads, kv_heads, hidden, layers) = (32usize, 4usize, 2usize, 64usize, 2usize);
    let head_dim = dim / heads;
    let mut metadata = smollm_tokenizer_metadata();
    if !template {
        metadata.remove("tokenizer.chat_template");
    }
    let vocab = match metadata.get("tokenizer.ggml.tokens") {
        Some(gguf_file::Value::Array(tokens)) => tokens.len(),
        _ => panic!("no tokens"),
    };
    use gguf_file::Value as V;
    metadata.insert(
        "general.architecture".into(),
        V::String(architecture.into()),
    );
    metadata.insert("general.name".into(), V::String("tiny qwen2 (test)".into()));
    for (key, value) in [
        ("context_length", V::U32(2048)),
        ("embedding_length", V::U32(dim as u32)),
        ("block_count", V::U32(layers as u32)),
        ("feed_forward_length", V::U32(hidden as u32)),
        ("attention.head_count", V::U32(heads as u32)),
        ("attention.head_count_kv", V::U32(kv_heads as u32)),
        ("attention.layer_norm_rms_epsilon", V::F32(1e-6)),
        ("rope.freq_base", V::F32(10_000.0)),
    ] {
        metadata.insert(format!("{architecture}.{key}"), value);
    }

    let mut rng = StdRng::seed_from_u64(7);
    let mut random = |shape: &[usize], scale: f32| {
        let count = shape.iter().product();
        let values: Vec<f32> = (0..count).map(|_| rng.gen_range(-scale..scale)).collect();
        let tensor = Tensor::from_vec(values, shape, &Device::Cpu).expect("tensor");
        QTensor::quantize(&tensor, GgmlDType::F32).expect("f32")
    };
    let ones = |size: usize| {
        let tensor = Tensor::ones(size, DType::F32, &Device::Cpu).expect("tensor");
        QTensor::quantize(&tensor, GgmlDType::F32).expect("f32")
    };
    let mut tensors = vec![
        ("token_embd.weight".to_owned(), random(&[vocab, dim], 1.0)),
        ("output_norm.weight".to_owned(), ones(dim)),
    ];
    let kv = kv_heads * head_dim;
    for layer in 0..layers {
        let name = |part: &str| format!("blk.{layer}.{part}");
        tensors.extend([
            (name("attn_norm.weight"), ones(dim)),
            (name("ffn_norm.weight"), ones(dim)),
            (name("attn_q.weight"), random(&[dim, dim], 0.3)),
            (name("attn_k.weight"), random(&[kv, dim], 0.3)),
            (name("attn_v.weight"), random(&[kv, dim], 0.3)),
            (name("attn_q.bias"), random(&[dim], 0.1)),
            (name("attn_k.bias"), random(&[kv], 0.1)),
            (name("attn_v.bias"), random(&[kv], 0.1)),
            (name("attn_output.weight"), random(&[dim, dim], 0.3)),
            (name("ffn_gate.weight"), random(&[hidden, dim], 0.3)),
            (name("ffn_up.weight"), random(&[hidden, dim], 0.3)),
            (name("ffn_down.weight"), random(&[dim, hidden], 0.3)),
        ]);
    }
    let metadata: Vec<(&str, &V)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut file = File::create(path).expect("create");
    gguf_file::write(&mut file, &metadata, &tensors).expect("write");
}

#[test]
fn a_qwen2_model_is_served_with_its_prompt_fed_in_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny-qwen2.gguf");
    write_tiny_qwen2(&path, "qwen2", true);
    let model = GgufChat::load_file(&path, GgufChatOptions::default()).expect("loads");
    assert_eq!(model.name(), "tiny-qwen2");
    assert_eq!(model.context_length(), 2048);
    assert!(
        model
            .summary()
            .contains("tiny qwen2 (test) (qwen2, 2 layers"),
        "{}",
        model.summary()
    );

    // A prompt longer than one prefill chunk: the engine runs it in two passes.
    let question = "Tell me about the weather in the mountains today. ".repeat(60);
    let messages = vec![ChatMessage::user(question)];
    let prompt = model.render_prompt(&messages).expect("renders");
    let ids = model.tokenizer().encode_prompt(&prompt).expect("encodes");
    assert!(ids.len() > PREFILL_CHUNK, "{} tokens", ids.len());
    let params = GenerationParams {
        max_tokens: 12,
        ignore_eos: true,
        ..GenerationParams::default()
    };
    let (text, tokens) = reply(&model, messages, params);
    assert_eq!(tokens, 12);

    let mut reader = File::open(&path).expect("the model file");
    let content = gguf_file::Content::read(&mut reader).expect("gguf");
    let candle = std::cell::RefCell::new(
        quantized_qwen2::ModelWeights::from_gguf(content, &mut reader, &Device::Cpu)
            .expect("candle's qwen2"),
    );
    let expected = reference(
        run(|input, position| candle.borrow_mut().forward(input, position)),
        &ids,
        12,
        &[],
    );
    assert_eq!(text, model.tokenizer().decode(&expected).expect("decodes"));
}

#[test]
fn unsupported_files_are_refused_at_load_saying_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mamba = dir.path().join("mamba.gguf");
    write_tiny_qwen2(&mamba, "mamba", true);
    let error = GgufChat::load_file(&mamba, GgufChatOptions::default()).expect_err("refused");
    assert!(matches!(error, ModelError::Invalid { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("\"mamba\""), "{message}");
    assert!(message.contains(&ARCHITECTURES.join(", ")), "{message}");

    // A base model's file has no chat template: refused, unless one is given.
    let base = dir.path().join("base.gguf");
    write_tiny_qwen2(&base, "qwen2", false);
    let error = GgufChat::load_file(&base, GgufChatOptions::default()).expect_err("refused");
    assert!(
        error.to_string().contains("AIMESH_CHAT_TEMPLATE"),
        "{error}"
    );
    let template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}";
    let model = GgufChat::load_file(
        &base,
        GgufChatOptions {
            template: Some(template.into()),
            ..GgufChatOptions::default()
        },
    )
    .expect("loads with a template");
    assert_eq!(
        model
            .render_prompt(&[ChatMessage::user("Hi")])
            .expect("renders"),
        "user: Hi\n"
    );

    let missing = GgufChat::load_file(&dir.path().join("absent.gguf"), GgufChatOptions::default())
        .expect_err("refused");
    assert!(matches!(missing, ModelError::Io { .. }), "{missing}");
}
