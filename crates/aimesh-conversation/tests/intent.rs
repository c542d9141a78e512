//! Intent detection measured on a labelled set of 64 messages (`fixtures/intents.tsv`, 16 per
//! intent) with the real all-MiniLM-L6-v2 model (`AIMESH_MODELS_DIR`). The accuracy per
//! intent is printed (`cargo test -p aimesh-conversation --test intent -- --nocapture`); the
//! thresholds sit below the measured figures, so a regression fails.

#![allow(clippy::unwrap_used)]

use std::{collections::BTreeMap, sync::Arc};

use aimesh_ai::{
    embed::{EmbedOptions, MiniLm},
    models,
};
use aimesh_conversation::{domain::Intent, intent::IntentClassifier};

/// Least overall accuracy.
const MIN_ACCURACY: f64 = 0.90;
/// Least accuracy of any one intent.
const MIN_PER_INTENT: f64 = 0.80;

fn labelled() -> Vec<(Intent, String)> {
    include_str!("fixtures/intents.tsv")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (label, text) = line.split_once('\t').unwrap();
            (Intent::parse(label).unwrap(), text.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn intents_are_detected_on_the_labelled_set() {
    let set = labelled();
    assert!(set.len() >= 60, "{} labelled messages", set.len());
    let embedder = MiniLm::load(&models::dir_for_tests(), EmbedOptions::default()).unwrap();
    let classifier = IntentClassifier::new(Arc::new(embedder));
    let detected = classifier
        .classify_many(set.iter().map(|(_, text)| text.clone()).collect())
        .await
        .unwrap();
    let mut per_intent: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut right = 0;
    for ((expected, text), got) in set.iter().zip(&detected) {
        let entry = per_intent.entry(expected.as_str()).or_default();
        entry.1 += 1;
        if got.intent == *expected {
            entry.0 += 1;
            right += 1;
        } else {
            println!(
                "miss: {text:?} expected {expected}, got {} ({:.2})",
                got.intent, got.confidence
            );
        }
        assert!((0.0..=1.0).contains(&got.confidence));
    }
    let accuracy = right as f64 / set.len() as f64;
    println!("intent accuracy: {right}/{} = {accuracy:.3}", set.len());
    for (intent, (hits, total)) in &per_intent {
        let share = *hits as f64 / *total as f64;
        println!("  {intent:<15} {hits}/{total} = {share:.3}");
        assert!(
            share >= MIN_PER_INTENT,
            "{intent}: {share:.3} below {MIN_PER_INTENT}"
        );
    }
    assert!(
        accuracy >= MIN_ACCURACY,
        "accuracy {accuracy:.3} below {MIN_ACCURACY}"
    );
}
