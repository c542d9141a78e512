//! The real loading path on a tiny, randomly initialised Marian model written to a temporary
//! directory (no opus-mt weights can be fetched here).

#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, path::Path};

use candle_core::{DType, Device, Tensor};
use candle_nn::{Activation, VarBuilder, VarMap};
use candle_transformers::models::marian::{Config, MTModel};
use futures::FutureExt;
use prost::Message;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;

use super::{
    spm::{self, ModelProto, NormalizerSpec, Piece, SentencePiece, TrainerSpec},
    *,
};

const VOCAB: usize = 40;
const EOS_ID: u32 = 0;
const UNK_ID: u32 = 1;
const PAD_ID: u32 = 39;
const MAX_POSITIONS: usize = 64;

/// Ids 2..=38: 37 words.
const WORDS: [&str; 37] = [
    "the", "cat", "dog", "sat", "on", "mat", "a", "big", "small", "red", "blue", "house", "tree",
    "runs", "jumps", "over", "under", "and", "or", "is", "was", "green", "old", "new", "car",
    "road", "sun", "moon", "day", "night", "bird", "sings", "fish", "swims", "we", "you", "s",
];

fn tiny_config() -> Config {
    Config {
        vocab_size: VOCAB,
        decoder_vocab_size: Some(VOCAB),
        max_position_embeddings: MAX_POSITIONS,
        encoder_layers: 1,
        encoder_ffn_dim: 32,
        encoder_attention_heads: 2,
        decoder_layers: 1,
        decoder_ffn_dim: 32,
        decoder_attention_heads: 2,
        use_cache: true,
        is_encoder_decoder: true,
        activation_function: Activation::Swish,
        d_model: 16,
        decoder_start_token_id: PAD_ID,
        scale_embedding: true,
        pad_token_id: PAD_ID,
        eos_token_id: EOS_ID,
        forced_eos_token_id: EOS_ID,
        share_encoder_decoder_embeddings: true,
    }
}

/// `config.json` as Hugging Face writes it for the tiny model, with `d_model` overridable.
fn config_json(d_model: usize) -> serde_json::Value {
    json!({
        "architectures": ["MarianMTModel"],
        "model_type": "marian",
        "activation_function": "swish",
        "vocab_size": VOCAB,
        "decoder_vocab_size": VOCAB,
        "max_position_embeddings": MAX_POSITIONS,
        "d_model": d_model,
        "encoder_layers": 1,
        "encoder_ffn_dim": 32,
        "encoder_attention_heads": 2,
        "decoder_layers": 1,
        "decoder_ffn_dim": 32,
        "decoder_attention_heads": 2,
        "scale_embedding": true,
        "pad_token_id": PAD_ID,
        "eos_token_id": EOS_ID,
        "decoder_start_token_id": PAD_ID,
        "forced_eos_token_id": EOS_ID,
        "share_encoder_decoder_embeddings": true,
        "static_position_embeddings": true,
        "bad_words_ids": [[PAD_ID]],
        "num_beams": 4,
    })
}

/// Creates every variable of the model, fills each from a seeded generator (in name order)
/// and saves them.
fn write_weights(path: &Path, seed: u64) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    MTModel::new(&tiny_config(), vb).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    {
        let vars = varmap.data().lock().unwrap();
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            let var = &vars[name];
            let values: Vec<f32> = (0..var.elem_count())
                .map(|_| rng.gen_range(-0.5f32..0.5))
                .collect();
            let tensor = Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap();
            var.set(&tensor).unwrap();
        }
    }
    varmap.save(path).unwrap();
}

/// A word-level `tokenizer.json`: `</s>` 0, `<unk>` 1, the words, `<pad>` 39.
fn write_tokenizer_json(path: &Path) {
    let mut vocab = serde_json::Map::new();
    vocab.insert("</s>".into(), json!(EOS_ID));
    vocab.insert("<unk>".into(), json!(UNK_ID));
    for (id, word) in (2u32..).zip(WORDS) {
        vocab.insert(word.into(), json!(id));
    }
    vocab.insert("<pad>".into(), json!(PAD_ID));
    let special = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(EOS_ID, "</s>"), special(UNK_ID, "<unk>"), special(PAD_ID, "<pad>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    });
    fs::write(path, serde_json::to_vec_pretty(&tokenizer).unwrap()).unwrap();
}

/// A unigram SentencePiece model whose pieces are `▁<word>` (and a lone `s`), and the
/// `vocab.json` numbering them like the word-level tokenizer.
fn write_sentencepiece(dir: &Path) {
    let piece = |text: &str, score: f32, kind: i32| Piece {
        piece: Some(text.to_owned()),
        score: Some(score),
        kind: Some(kind),
    };
    let mut pieces = vec![
        piece("<unk>", 0.0, spm::PIECE_UNKNOWN),
        piece("<s>", 0.0, spm::PIECE_CONTROL),
        piece("</s>", 0.0, spm::PIECE_CONTROL),
    ];
    let mut vocab = HashMap::from([
        ("</s>".to_owned(), EOS_ID),
        ("<unk>".to_owned(), UNK_ID),
        ("<pad>".to_owned(), PAD_ID),
    ]);
    for (id, word) in (2u32..).zip(WORDS) {
        let text = if word == "s" {
            "s".to_owned()
        } else {
            format!("▁{word}")
        };
        pieces.push(piece(&text, -(id as f32) / 10.0, spm::PIECE_NORMAL));
        vocab.insert(text, id);
    }
    let model = ModelProto {
        pieces,
        trainer_spec: Some(TrainerSpec {
            model_type: Some(1),
        }),
        normalizer_spec: Some(NormalizerSpec {
            name: Some("identity".into()),
            precompiled_charsmap: None,
            add_dummy_prefix: Some(true),
        }),
    };
    fs::write(dir.join("source.spm"), model.encode_to_vec()).unwrap();
    fs::write(dir.join("target.spm"), model.encode_to_vec()).unwrap();
    fs::write(dir.join("vocab.json"), serde_json::to_vec(&vocab).unwrap()).unwrap();
}

/// A complete model directory with a `tokenizer.json`.
fn write_model(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&config_json(16)).unwrap(),
    )
    .unwrap();
    write_weights(&dir.join("model.safetensors"), 7);
    write_tokenizer_json(&dir.join("tokenizer.json"));
}

fn pair(source: &str, target: &str) -> LanguagePair {
    LanguagePair {
        source: source.into(),
        target: target.into(),
    }
}

const SENTENCE: &str = "the big red dog jumps over the old car";

#[tokio::test]
async fn discovers_and_translates_deterministically() {
    let models = tempfile::tempdir().unwrap();
    write_model(&models.path().join("opus-mt-en-es"));
    fs::create_dir(models.path().join("not-a-model")).unwrap();
    fs::write(models.path().join("README"), "models live here").unwrap();

    let marian = Marian::discover(models.path()).unwrap();
    assert_eq!(marian.name(), "marian");
    assert_eq!(marian.pairs(), [pair("en", "es")]);

    let first = marian.translate(&pair("en", "es"), SENTENCE).await.unwrap();
    let second = marian.translate(&pair("en", "es"), SENTENCE).await.unwrap();
    assert_eq!(first, second, "greedy decoding is deterministic");
    assert!(
        first
            .split(' ')
            .all(|word| WORDS.contains(&word) || word.is_empty()),
        "{first:?} is made of vocabulary words"
    );
    // A different sentence in between leaves no state behind (the caches are reset).
    marian.translate(&pair("en", "es"), "we sat").await.unwrap();
    let third = marian.translate(&pair("en", "es"), SENTENCE).await.unwrap();
    assert_eq!(first, third);
    assert_eq!(marian.translate(&pair("en", "es"), "  ").await.unwrap(), "");

    let unsupported = marian.translate(&pair("es", "en"), SENTENCE).await;
    assert!(matches!(
        unsupported,
        Err(TranslateError::UnsupportedPair { .. })
    ));
}

#[test]
fn the_length_cap_stops_a_model_that_never_ends() {
    let models = tempfile::tempdir().unwrap();
    let dir = models.path().join("opus-mt-en-es");
    write_model(&dir);
    let mut engine = ModelDir::inspect(&dir).unwrap().load_engine().unwrap();
    let input = [2, 3, 4, EOS_ID];
    let output = engine.generate(&input, 24, &|| false).unwrap();
    assert!(!output.is_empty() && output.len() <= 24, "{output:?}");
    if !output.contains(&EOS_ID) {
        assert_eq!(output.len(), 24, "stopped only by the cap");
    }
    assert!(!output.contains(&PAD_ID), "padding is never generated");
    // Through `translate`: 2 × 10 input tokens + 16 = 36 at most, within 63 positions.
    let text = engine.translate(SENTENCE, &|| false).unwrap();
    assert!(text.split_whitespace().count() <= 36, "{text:?}");
    // A caller that went away stops the decoding.
    assert!(engine.translate(SENTENCE, &|| true).is_err());
    // Too long for the model's positions.
    let long = vec!["the"; MAX_POSITIONS].join(" ");
    let error = engine.translate(&long, &|| false).unwrap_err();
    assert!(error.contains("at most 64"), "{error}");
}

#[tokio::test]
async fn sentencepiece_models_load_and_translate() {
    let models = tempfile::tempdir().unwrap();
    let dir = models.path().join("tiny-spm");
    fs::create_dir(&dir).unwrap();
    fs::write(
        dir.join("config.json"),
        serde_json::to_vec(&config_json(16)).unwrap(),
    )
    .unwrap();
    write_weights(&dir.join("model.safetensors"), 11);
    write_sentencepiece(&dir);
    fs::write(
        dir.join("aimesh.json"),
        r#"{"source": "en", "target": "de-AT", "target_token": "▁we"}"#,
    )
    .unwrap();

    let spm = SentencePiece::new(
        &fs::read(dir.join("source.spm")).unwrap(),
        &fs::read(dir.join("vocab.json")).unwrap(),
        UNK,
    )
    .unwrap();
    let id = |word: &str| 2 + WORDS.iter().position(|w| *w == word).unwrap() as u32;
    let ids = spm.encode("  the   cats\tsat  ").unwrap();
    assert_eq!(ids, [id("the"), id("cat"), id("s"), id("sat")]);
    assert_eq!(spm.encode("the zebra").unwrap(), [id("the"), UNK_ID]);
    assert_eq!(spm.decode(&ids, &[EOS_ID]), "the cats sat");
    assert_eq!(
        spm.decode(&[id("dog"), UNK_ID, EOS_ID, PAD_ID], &[EOS_ID, PAD_ID]),
        "dog"
    );

    let marian = Marian::load(&dir).unwrap();
    assert_eq!(marian.pairs(), [pair("en", "de-AT")]);
    let first = marian
        .translate(&pair("en", "de-AT"), SENTENCE)
        .await
        .unwrap();
    let second = marian
        .translate(&pair("en", "de-AT"), SENTENCE)
        .await
        .unwrap();
    assert_eq!(first, second);
}

#[test]
fn broken_models_are_refused_with_a_reason() {
    let models = tempfile::tempdir().unwrap();
    let good = models.path().join("opus-mt-en-es");
    write_model(&good);
    let copy = |name: &str| {
        let dir = models.path().join(name);
        fs::create_dir(&dir).unwrap();
        for file in ["config.json", "model.safetensors", "tokenizer.json"] {
            fs::copy(good.join(file), dir.join(file)).unwrap();
        }
        dir
    };
    let error = |dir: &Path| Marian::load(dir).unwrap_err().to_string();

    let dir = copy("opus-mt-en-fr");
    fs::remove_file(dir.join("model.safetensors")).unwrap();
    let message = error(&dir);
    assert!(message.contains("missing model.safetensors"), "{message}");

    let dir = copy("opus-mt-en-it");
    fs::write(
        dir.join("model.safetensors"),
        b"\x10\0\0\0\0\0\0\0{not json at all",
    )
    .unwrap();
    let message = error(&dir);
    assert!(
        message.contains("bad weights") && message.contains("not a readable safetensors file"),
        "{message}"
    );

    let dir = copy("opus-mt-en-pt");
    fs::write(
        dir.join("config.json"),
        serde_json::to_vec(&config_json(32)).unwrap(),
    )
    .unwrap();
    let message = error(&dir);
    assert!(
        message.contains("bad weights") && message.contains("shape mismatch"),
        "{message}"
    );

    let dir = copy("opus-mt-en-ro");
    let mut config = config_json(16);
    config["encoder_layers"] = json!(2);
    fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let message = error(&dir);
    assert!(
        message.contains("bad weights") && message.contains("model.encoder.layers.1."),
        "{message}"
    );

    let dir = copy("opus-mt-en-ca");
    let mut config = config_json(16);
    config["decoder_vocab_size"] = json!(50);
    fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let message = error(&dir);
    assert!(
        message.contains("bad config") && message.contains("decoder_vocab_size"),
        "{message}"
    );

    let dir = copy("opus-mt-en-gl");
    fs::write(dir.join("config.json"), "{\"vocab_size\": 40}").unwrap();
    let message = error(&dir);
    assert!(
        message.contains("bad config") && message.contains("missing field"),
        "{message}"
    );

    let dir = copy("opus-mt-en-eu");
    let mut config = config_json(16);
    config["eos_token_id"] = json!(5);
    config["forced_eos_token_id"] = json!(5);
    fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let message = error(&dir);
    assert!(
        message.contains("bad tokenizer") && message.contains("eos_token_id 5"),
        "{message}"
    );

    let dir = copy("opus-mt-en-ROMANCE");
    let message = error(&dir);
    assert!(
        message.contains("cannot tell the language pair"),
        "{message}"
    );

    let dir = copy("opus-mt-en-nl");
    fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let message = error(&dir);
    assert!(message.contains("missing a tokenizer"), "{message}");

    // Discovery keeps the good model and skips every broken one.
    let marian = Marian::discover(models.path()).unwrap();
    assert_eq!(marian.pairs(), [pair("en", "es")]);
    assert!(Marian::discover(models.path().join("nowhere")).is_none());
}

#[tokio::test]
async fn a_full_queue_answers_busy() {
    let models = tempfile::tempdir().unwrap();
    let dir = models.path().join("opus-mt-en-es");
    write_model(&dir);
    let marian = Marian::load_with(&dir, &MarianOptions { queue_capacity: 1 }).unwrap();
    let en_es = pair("en", "es");
    let long = [SENTENCE; 2].join(" ");
    let expected = marian.translate(&en_es, &long).await.unwrap();
    // Each request is queued when first polled: one runs, one waits, the rest find the
    // queue full (a translation takes far longer than queueing eight requests).
    let mut requests: Vec<_> = (0..8).map(|_| marian.translate(&en_es, &long)).collect();
    let mut busy = 0;
    let mut waiting = Vec::new();
    for mut request in requests.drain(..) {
        match request.as_mut().now_or_never() {
            Some(Err(TranslateError::Busy { engine, queued })) => {
                assert_eq!((engine, queued), ("marian", 1));
                busy += 1;
            }
            Some(other) => panic!("answered at once: {other:?}"),
            None => waiting.push(request),
        }
    }
    assert!(busy >= 1, "no request was refused");
    assert!(!waiting.is_empty());
    for request in waiting {
        assert_eq!(request.await.unwrap(), expected);
    }
    let message = TranslateError::Busy {
        engine: "marian",
        queued: 1,
    }
    .to_string();
    assert_eq!(message, "marian is busy: its queue of 1 requests is full");
}

#[test]
fn pairs_come_from_the_name_or_aimesh_json() {
    assert_eq!(pair_from_name("opus-mt-en-es"), Some(pair("en", "es")));
    assert_eq!(
        pair_from_name("opus-mt-tc-big-fr-en"),
        Some(pair("fr", "en"))
    );
    assert_eq!(pair_from_name("opus-mt-eng-deu"), Some(pair("eng", "deu")));
    assert_eq!(pair_from_name("opus-mt-en-ROMANCE"), None);
    assert_eq!(pair_from_name("opus-mt-en"), None);
    assert_eq!(pair_from_name("marian-en-es"), None);
    assert!(is_language_tag("en"));
    assert!(is_language_tag("zh-Hant-TW"));
    assert!(!is_language_tag("e"));
    assert!(!is_language_tag("en_US"));
    assert!(!is_language_tag(""));

    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("aimesh.json"), r#"{"source": "en"}"#).unwrap();
    let message = read_pair(dir.path(), "x").unwrap_err().to_string();
    assert!(
        message.contains("aimesh.json") && message.contains("target"),
        "{message}"
    );
    fs::write(
        dir.path().join("aimesh.json"),
        r#"{"source": "en", "target": "es", "sorce": "x"}"#,
    )
    .unwrap();
    let message = read_pair(dir.path(), "x").unwrap_err().to_string();
    assert!(message.contains("unknown field"), "{message}");
}

#[test]
fn hugging_face_configs_map_onto_candle() {
    let hf: HfConfig = serde_json::from_value(config_json(16)).unwrap();
    let config = hf.to_marian().unwrap();
    let expected = tiny_config();
    assert_eq!(
        format!("{config:?}"),
        format!("{expected:?}"),
        "every field maps"
    );

    // Optional fields default as in Hugging Face's MarianConfig.
    let mut minimal = config_json(16);
    let object = minimal.as_object_mut().unwrap();
    for field in [
        "decoder_vocab_size",
        "decoder_start_token_id",
        "forced_eos_token_id",
        "share_encoder_decoder_embeddings",
        "activation_function",
        "max_position_embeddings",
    ] {
        object.remove(field);
    }
    let config = serde_json::from_value::<HfConfig>(minimal)
        .unwrap()
        .to_marian()
        .unwrap();
    assert_eq!(config.decoder_start_token_id, PAD_ID);
    assert_eq!(config.forced_eos_token_id, EOS_ID);
    assert_eq!(config.max_position_embeddings, 1024);
    assert_eq!(config.activation_function, Activation::Gelu);

    let mut odd = config_json(16);
    odd["decoder_attention_heads"] = json!(3);
    let error = serde_json::from_value::<HfConfig>(odd)
        .unwrap()
        .to_marian()
        .unwrap_err();
    assert!(error.contains("not divisible"), "{error}");
}
