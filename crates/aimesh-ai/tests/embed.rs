//! The embeddings engine and the analyses built on it, on the real all-MiniLM-L6-v2 model
//! (`AIMESH_MODELS_DIR`).

#![allow(clippy::unwrap_used)]

use std::{
    fs,
    path::Path,
    sync::{Arc, OnceLock},
    time::Duration,
};

use aimesh_ai::{
    analysis::{Analyzer, SentimentLabel},
    embed::{EmbedOptions, Embedder, FeedForward, MODEL_ID, MiniLm, cosine, dot},
    engine::EngineError,
    models::{self, ModelError},
};

/// One engine shared by the tests that need no special options (its thread outlives each
/// test's runtime).
fn shared() -> Arc<MiniLm> {
    static ENGINE: OnceLock<Arc<MiniLm>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            Arc::new(MiniLm::load(&models::dir_for_tests(), EmbedOptions::default()).unwrap())
        })
        .clone()
}

fn owned(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| (*t).to_owned()).collect()
}

async fn embed(engine: &MiniLm, texts: &[&str]) -> Vec<Vec<f32>> {
    engine.embed(owned(texts)).await.unwrap()
}

#[tokio::test]
async fn similarities_match_sentence_transformers() {
    let engine = shared();
    assert_eq!(engine.name(), "minilm");
    assert_eq!(engine.dimensions(), 384);
    let v = embed(
        &engine,
        &[
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The stock market crashed today.",
        ],
    )
    .await;
    for vector in &v {
        assert_eq!(vector.len(), 384);
        assert!((dot(vector, vector) - 1.0).abs() < 1e-5, "unit length");
    }
    // sentence-transformers gives 0.7553 and 0.0088 for these pairs.
    let related = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[0], &v[2]);
    assert!((related - 0.7553).abs() < 0.005, "{related}");
    assert!((unrelated - 0.0088).abs() < 0.005, "{unrelated}");
}

#[tokio::test]
async fn paraphrases_rank_above_unrelated_sentences() {
    let engine = shared();
    let pairs = [
        (
            "How do I reset my password?",
            "I forgot my password and need to change it.",
        ),
        (
            "The cat is sleeping on the sofa.",
            "A kitten naps on the couch.",
        ),
        (
            "Interest rates were raised by the central bank.",
            "The central bank increased borrowing costs.",
        ),
        (
            "It is going to rain tomorrow.",
            "Tomorrow's forecast says there will be showers.",
        ),
    ];
    let mut texts = Vec::new();
    for (a, b) in pairs {
        texts.push(a);
        texts.push(b);
    }
    let v = embed(&engine, &texts).await;
    for i in 0..pairs.len() {
        let own = cosine(&v[2 * i], &v[2 * i + 1]);
        for j in (0..pairs.len()).filter(|&j| j != i) {
            let other = cosine(&v[2 * i], &v[2 * j + 1]);
            assert!(
                own > other + 0.2,
                "{:?}: paraphrase {own} vs unrelated {other}",
                pairs[i].0
            );
        }
    }
}

#[tokio::test]
async fn long_texts_are_truncated_not_refused() {
    let engine = shared();
    let long = "word ".repeat(2000);
    let v = engine.embed(vec![long, "short".into()]).await.unwrap();
    assert_eq!(v.len(), 2);
    assert!((dot(&v[0], &v[0]) - 1.0).abs() < 1e-5);
}

/// Batching changes no embedding beyond rounding: with f32 feed-forward layers each value
/// stays within 1e-4; with 8-bit ones, where a value that rounds the other way in a pass of
/// another shape moves its block's 8-bit product, each embedding stays within a cosine of
/// 0.9999 (measured: most are identical, a few differ by up to 0.0015 in a value).
#[tokio::test]
async fn batched_and_single_embeddings_agree() {
    for feed_forward in [FeedForward::F32, FeedForward::Q8_0] {
        // An engine of its own, so nothing else batches with the single requests.
        let engine = Arc::new(
            MiniLm::load(
                &models::dir_for_tests(),
                EmbedOptions {
                    max_batch: 16,
                    max_wait: Duration::from_millis(5),
                    feed_forward,
                    ..EmbedOptions::default()
                },
            )
            .unwrap(),
        );
        let texts: Vec<String> = (0..40)
            .map(|i| {
                let extra = " and then some more words".repeat(i % 7);
                format!("Sentence number {i} talks about topic {}{extra}.", i % 5)
            })
            .collect();
        let mut single = Vec::new();
        for text in &texts {
            single.push(engine.embed(vec![text.clone()]).await.unwrap().remove(0));
        }
        // Many concurrent one-text requests, batched by the engine with padding.
        let concurrent =
            futures::future::try_join_all(texts.iter().map(|t| engine.embed(vec![t.clone()])))
                .await
                .unwrap();
        // One request holding them all (split into passes of 16, sorted by length).
        let whole = engine.embed(texts.clone()).await.unwrap();
        for (i, expected) in single.iter().enumerate() {
            for got in [&concurrent[i][0], &whole[i]] {
                let worst = expected
                    .iter()
                    .zip(got)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                let similarity = dot(expected, got);
                match feed_forward {
                    FeedForward::F32 => assert!(worst < 1e-4, "text {i}: differs by {worst}"),
                    FeedForward::Q8_0 => assert!(
                        similarity > 0.9999,
                        "text {i}: cosine {similarity}, differs by {worst}"
                    ),
                }
            }
        }
    }
}

/// 8-bit feed-forward layers (on whatever kernels this CPU has) keep sentences' embeddings
/// within a hair of f32's, and their similarities where sentence-transformers puts them.
#[tokio::test]
async fn eight_bit_feed_forward_keeps_the_embeddings() {
    let load = |feed_forward| {
        MiniLm::load(
            &models::dir_for_tests(),
            EmbedOptions {
                feed_forward,
                ..EmbedOptions::default()
            },
        )
        .unwrap()
    };
    let texts = owned(&[
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The stock market crashed today.",
        "How do I reset my password?",
        "Interest rates were raised by the central bank.",
        "Tomorrow's forecast says there will be showers.",
        "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
        "ok",
        "The committee will review every application received before the end of March and \
         publish its decisions, with the reasons for each, on the first Monday of May.",
    ]);
    let exact = load(FeedForward::F32).embed(texts.clone()).await.unwrap();
    let eight_bit = load(FeedForward::Q8_0).embed(texts).await.unwrap();
    for (i, (a, b)) in exact.iter().zip(&eight_bit).enumerate() {
        // Measured: 0.9993 for "ok" (three tokens), 0.9998 to 0.9999 for the others.
        let similarity = dot(a, b);
        assert!(similarity > 0.999, "text {i}: cosine {similarity}");
    }
    // sentence-transformers gives 0.7553 and 0.0088 for these pairs.
    let related = cosine(&eight_bit[0], &eight_bit[1]);
    let unrelated = cosine(&eight_bit[0], &eight_bit[2]);
    assert!((related - 0.7553).abs() < 0.005, "{related}");
    assert!((unrelated - 0.0088).abs() < 0.005, "{unrelated}");
}

#[tokio::test]
async fn a_full_queue_answers_busy() {
    let engine = MiniLm::load(
        &models::dir_for_tests(),
        EmbedOptions {
            queue_capacity: 1,
            max_batch: 1,
            max_wait: Duration::ZERO,
            ..EmbedOptions::default()
        },
    )
    .unwrap();
    let text =
        "A fairly long sentence that keeps the inference thread busy for a while. ".repeat(8);
    // embed() queues at once, before its future is polled.
    let calls: Vec<_> = (0..64).map(|_| engine.embed(vec![text.clone()])).collect();
    let results = futures::future::join_all(calls).await;
    let busy = results
        .iter()
        .filter(|r| matches!(r, Err(EngineError::Busy { queued: 1, .. })))
        .count();
    let answered = results.iter().filter(|r| r.is_ok()).count();
    assert!(busy > 0, "no request was refused");
    assert!(answered > 0, "no request was answered");
    assert_eq!(busy + answered, 64, "{results:?}");
}

#[tokio::test]
async fn invalid_requests_name_the_field() {
    let engine = shared();
    let too_many = vec!["x".to_owned(); EmbedOptions::default().max_texts + 1];
    for texts in [vec![], owned(&["fine", "  "]), too_many] {
        let error = engine.embed(texts).await.unwrap_err();
        assert!(
            matches!(error, EngineError::InvalidInput { field: "texts", .. }),
            "{error}"
        );
    }
}

fn copy_model(to: &Path) {
    let from = models::spec(MODEL_ID)
        .unwrap()
        .dir(&models::dir_for_tests());
    let dir = to.join(MODEL_ID);
    fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    for file in models::spec(MODEL_ID).unwrap().files {
        fs::copy(from.join(file.name), dir.join(file.name)).unwrap();
    }
}

#[test]
fn corrupt_model_files_are_refused() {
    let models_dir = tempfile::tempdir().unwrap();
    copy_model(models_dir.path());
    let dir = models_dir.path().join(MODEL_ID);
    let load = || MiniLm::load(models_dir.path(), EmbedOptions::default());

    // A flipped byte in config.json.
    let config = dir.join("config.json");
    let original = fs::read(&config).unwrap();
    let mut flipped = original.clone();
    flipped[10] ^= 0x01;
    fs::write(&config, &flipped).unwrap();
    let error = load().unwrap_err();
    assert!(matches!(error, ModelError::Checksum { .. }), "{error}");
    assert!(error.to_string().contains("config.json"), "{error}");
    fs::write(&config, &original).unwrap();

    // Truncated weights.
    let weights = dir.join("model.safetensors");
    let file = fs::OpenOptions::new().write(true).open(&weights).unwrap();
    file.set_len(1_000_000).unwrap();
    drop(file);
    let error = load().unwrap_err();
    assert!(
        matches!(
            error,
            ModelError::Size {
                actual: 1_000_000,
                ..
            }
        ),
        "{error}"
    );

    // A missing tokenizer.
    fs::remove_file(dir.join("tokenizer.json")).unwrap();
    fs::copy(
        models::spec(MODEL_ID)
            .unwrap()
            .dir(&models::dir_for_tests())
            .join("model.safetensors"),
        &weights,
    )
    .unwrap();
    let error = load().unwrap_err();
    assert!(matches!(error, ModelError::Missing { .. }), "{error}");
    assert!(error.to_string().contains("tokenizer.json"), "{error}");
}

fn analyzer() -> Analyzer {
    Analyzer::new(shared())
}

const ARTICLE: &str = "\
Photosynthesis is the process by which green plants turn light into chemical energy. \
Inside the chloroplasts, chlorophyll absorbs sunlight and uses it to split water molecules. \
The energy captured from light is used to convert carbon dioxide into glucose. \
Oxygen is released into the atmosphere as a by-product of photosynthesis. \
My cousin bought a red bicycle at the weekend market. \
Without photosynthesis, plants could not grow and most life on Earth would not have food. \
Scientists study photosynthesis to design better crops and artificial leaves.";

#[tokio::test]
async fn summaries_keep_central_sentences_in_order() {
    let summary = analyzer().summarize(ARTICLE, 3).await.unwrap();
    assert_eq!(summary.engine, "minilm-centroid");
    assert_eq!(summary.total_sentences, 7);
    assert_eq!(summary.sentences.len(), 3);
    let indices: Vec<usize> = summary.sentences.iter().map(|s| s.index).collect();
    assert!(indices.windows(2).all(|w| w[0] < w[1]), "{indices:?}");
    assert!(
        !indices.contains(&4),
        "the off-topic sentence was picked: {summary:?}"
    );
    assert!(
        summary
            .sentences
            .iter()
            .any(|s| s.text.contains("photosynthesis")),
        "{summary:?}"
    );
    // Asking for more sentences than there are returns them all.
    let all = analyzer().summarize(ARTICLE, 50).await.unwrap();
    assert_eq!(all.sentences.len(), 7);
    let error = analyzer().summarize("   ", 3).await.unwrap_err();
    assert!(matches!(
        error,
        EngineError::InvalidInput { field: "text", .. }
    ));
}

#[tokio::test]
async fn keywords_name_the_topic() {
    let keywords = analyzer().keywords(ARTICLE, 5).await.unwrap();
    assert_eq!(keywords.engine, "minilm-keybert");
    assert_eq!(keywords.keywords.len(), 5);
    let phrases: Vec<&str> = keywords
        .keywords
        .iter()
        .map(|k| k.phrase.as_str())
        .collect();
    assert!(phrases[0].contains("photosynthesis"), "{phrases:?}");
    assert!(
        !phrases.iter().any(|p| p.contains("bicycle")),
        "{phrases:?}"
    );
    for phrase in &phrases {
        assert!(phrase.split(' ').count() <= 3, "{phrase}");
        assert!(
            !phrase
                .split(' ')
                .any(aimesh_ai::analysis::text::is_stopword),
            "{phrase}"
        );
    }
    // Diversity: not all five are variants of the top phrase.
    assert!(
        phrases
            .iter()
            .filter(|p| p.contains("photosynthesis"))
            .count()
            < 5,
        "{phrases:?}"
    );
}

#[tokio::test]
async fn sentiment_labels_clear_sentences() {
    let analyzer = analyzer();
    for (text, expected) in [
        (
            "I absolutely love this place, the staff were friendly and helpful!",
            SentimentLabel::Positive,
        ),
        (
            "What a wonderful surprise, thank you so much.",
            SentimentLabel::Positive,
        ),
        (
            "The product broke after two days and support was useless.",
            SentimentLabel::Negative,
        ),
        (
            "I am not happy with the slow and unreliable service.",
            SentimentLabel::Negative,
        ),
        (
            "The train leaves from platform four at nine o'clock.",
            SentimentLabel::Neutral,
        ),
        (
            "The report contains three tables and a summary.",
            SentimentLabel::Neutral,
        ),
    ] {
        let sentiment = analyzer.sentiment(text).unwrap();
        assert_eq!(sentiment.label, expected, "{text}: {sentiment:?}");
        assert_eq!(sentiment.engine, "lexicon");
    }
}

#[tokio::test]
async fn zero_shot_classification_ranks_the_right_label_first() {
    let analyzer = analyzer();
    let labels = owned(&["sports", "politics", "cooking", "technology"]);
    for (text, expected) in [
        (
            "The striker scored twice and the team won the championship final.",
            "sports",
        ),
        (
            "Parliament passed the new election law after a heated vote.",
            "politics",
        ),
        (
            "Whisk the eggs with sugar, then bake the cake for forty minutes.",
            "cooking",
        ),
        (
            "The new smartphone has a faster processor and a better camera.",
            "technology",
        ),
    ] {
        let result = analyzer.classify(text, &labels).await.unwrap();
        assert_eq!(result.engine, "minilm-zero-shot");
        assert_eq!(result.labels[0].label, expected, "{text}: {result:?}");
        let total: f32 = result.labels.iter().map(|l| l.score).sum();
        assert!((total - 1.0).abs() < 1e-4);
        assert!(result.labels.windows(2).all(|w| w[0].score >= w[1].score));
    }
    let error = analyzer.classify("text", &[]).await.unwrap_err();
    assert!(matches!(
        error,
        EngineError::InvalidInput {
            field: "labels",
            ..
        }
    ));
}
