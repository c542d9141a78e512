//! Intent detection by zero-shot similarity over sentence embeddings: each intent is
//! described by a handful of example requests; a message's intent is the one whose closest
//! examples are closest to it (the mean of its top [`TOP_K`] cosine similarities), and the
//! confidence is that intent's share of a softmax over the intents' scores.
//!
//! The examples below are not the labelled set the accuracy is measured on
//! (`tests/fixtures/intents.tsv`), so the figure is an honest one.

use std::sync::Arc;

use aimesh_ai::{
    embed::{Embedder, dot},
    engine::EngineError,
};
use tokio::sync::OnceCell;

use crate::domain::Intent;

/// Examples averaged per intent.
const TOP_K: usize = 3;
/// Softmax temperature of the confidence.
const TEMPERATURE: f32 = 0.05;

/// Example requests of each intent.
pub const EXAMPLES: &[(Intent, &str)] = &[
    (Intent::Chat, "hello, how are you today?"),
    (Intent::Chat, "tell me a joke"),
    (Intent::Chat, "what is the capital of France?"),
    (Intent::Chat, "explain how photosynthesis works"),
    (Intent::Chat, "can you help me write an email to my boss"),
    (Intent::Chat, "thanks, that was helpful"),
    (Intent::Chat, "what do you think about learning Rust?"),
    (Intent::Chat, "give me three ideas for a birthday party"),
    (Intent::Chat, "translate good morning into Spanish"),
    (Intent::Chat, "how do I cook rice?"),
    (Intent::Chat, "who are you?"),
    (Intent::Chat, "write a short poem about autumn"),
    (
        Intent::Chat,
        "how many planets are there in the solar system?",
    ),
    (Intent::Chat, "why do cats purr?"),
    (Intent::Chat, "when did the second world war end?"),
    (
        Intent::Chat,
        "what is the difference between weather and climate?",
    ),
    (Intent::Chat, "suggest a name for my new puppy"),
    (Intent::Chat, "tell me an interesting fact about whales"),
    (Intent::Chat, "why is the ocean salty?"),
    (Intent::Chat, "how tall is mount everest?"),
    (
        Intent::Documents,
        "according to my documents, what is the deadline?",
    ),
    (
        Intent::Documents,
        "what does the uploaded report say about revenue?",
    ),
    (Intent::Documents, "search my files for the contract terms"),
    (Intent::Documents, "summarize the PDF I uploaded"),
    (
        Intent::Documents,
        "in my notes, what did the lecture say about enzymes?",
    ),
    (
        Intent::Documents,
        "find in my documents where the warranty is mentioned",
    ),
    (
        Intent::Documents,
        "what does chapter 2 of my textbook explain?",
    ),
    (
        Intent::Documents,
        "based on the document, who signed the agreement?",
    ),
    (Intent::Documents, "look up the meeting minutes I uploaded"),
    (
        Intent::Documents,
        "which page of my paper talks about the method?",
    ),
    (Intent::Documents, "quote the part of my file about refunds"),
    (
        Intent::Documents,
        "what are the key points of my uploaded slides?",
    ),
    (
        Intent::GenerateImage,
        "create an image of a sunset over the mountains",
    ),
    (Intent::GenerateImage, "draw a cat wearing a hat"),
    (
        Intent::GenerateImage,
        "generate a picture of a futuristic city at night",
    ),
    (Intent::GenerateImage, "make me a logo for a coffee shop"),
    (
        Intent::GenerateImage,
        "paint a watercolor landscape with a river",
    ),
    (Intent::GenerateImage, "I want an illustration of a dragon"),
    (
        Intent::GenerateImage,
        "render a 3d photo of a red sports car",
    ),
    (Intent::GenerateImage, "design a poster with flowers"),
    (
        Intent::GenerateImage,
        "show me a photo-realistic portrait of an astronaut",
    ),
    (
        Intent::GenerateImage,
        "sketch a cozy cabin in the snowy woods",
    ),
    (
        Intent::GenerateImage,
        "produce an image of a beach with palm trees",
    ),
    (
        Intent::GenerateImage,
        "generate artwork of a robot reading a book",
    ),
    (Intent::EditImage, "make the last image brighter"),
    (Intent::EditImage, "enhance my photo"),
    (Intent::EditImage, "sharpen that picture"),
    (Intent::EditImage, "remove the background from the image"),
    (Intent::EditImage, "upscale the previous image"),
    (Intent::EditImage, "improve the quality of this photo"),
    (Intent::EditImage, "apply a sepia filter to the picture"),
    (
        Intent::EditImage,
        "increase the contrast of the image you made",
    ),
    (Intent::EditImage, "make the photo black and white"),
    (Intent::EditImage, "fix the blurry picture from before"),
    (Intent::EditImage, "edit the image to look more vivid"),
    (Intent::EditImage, "retouch my earlier photo"),
];

/// The examples' embeddings, by intent.
type Embedded = Vec<(Intent, Vec<f32>)>;

/// A decided intent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detected {
    /// The intent.
    pub intent: Intent,
    /// Its confidence, 0 to 1.
    pub confidence: f32,
}

/// Decides intents with an embeddings engine.
#[derive(Clone)]
pub struct IntentClassifier {
    embedder: Arc<dyn Embedder>,
    examples: Arc<OnceCell<Embedded>>,
}

impl IntentClassifier {
    /// A classifier over `embedder`; the examples are embedded on first use.
    pub fn new(embedder: Arc<dyn Embedder>) -> Self {
        Self {
            embedder,
            examples: Arc::new(OnceCell::new()),
        }
    }

    /// The embeddings engine's name.
    pub fn engine(&self) -> &'static str {
        self.embedder.name()
    }

    async fn examples(&self) -> Result<&[(Intent, Vec<f32>)], EngineError> {
        let examples = self
            .examples
            .get_or_try_init(|| async {
                let texts = EXAMPLES
                    .iter()
                    .map(|(_, text)| (*text).to_owned())
                    .collect();
                let vectors = self.embedder.embed(texts).await?;
                Ok::<_, EngineError>(
                    EXAMPLES
                        .iter()
                        .map(|(intent, _)| *intent)
                        .zip(vectors)
                        .collect(),
                )
            })
            .await?;
        Ok(examples.as_slice())
    }

    /// Decides the intent of `text`.
    pub async fn classify(&self, text: &str) -> Result<Detected, EngineError> {
        let mut many = self.classify_many(vec![text.to_owned()]).await?;
        many.pop()
            .ok_or_else(|| EngineError::failed("intent", "the engine returned no vector"))
    }

    /// Decides the intents of several texts at once.
    pub async fn classify_many(&self, texts: Vec<String>) -> Result<Vec<Detected>, EngineError> {
        let examples = self.examples().await?;
        let vectors = self.embedder.embed(texts).await?;
        Ok(vectors
            .iter()
            .map(|vector| decide(examples, vector))
            .collect())
    }
}

fn decide(examples: &[(Intent, Vec<f32>)], vector: &[f32]) -> Detected {
    let scores: Vec<(Intent, f32)> = Intent::ALL
        .iter()
        .map(|&intent| {
            let mut similarities: Vec<f32> = examples
                .iter()
                .filter(|(of, _)| *of == intent)
                .map(|(_, example)| dot(example, vector))
                .collect();
            similarities.sort_by(|a, b| b.total_cmp(a));
            let top = &similarities[..similarities.len().min(TOP_K)];
            let score = top.iter().sum::<f32>() / top.len().max(1) as f32;
            (intent, score)
        })
        .collect();
    let best = scores
        .iter()
        .copied()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((Intent::Chat, 0.0));
    let total: f32 = scores
        .iter()
        .map(|(_, score)| ((score - best.1) / TEMPERATURE).exp())
        .sum();
    Detected {
        intent: best.0,
        confidence: 1.0 / total.max(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_intent_has_examples() {
        for intent in Intent::ALL {
            let count = EXAMPLES.iter().filter(|(of, _)| *of == intent).count();
            assert!(count >= TOP_K, "{intent}: {count} examples");
        }
    }

    #[test]
    fn the_closest_intent_wins_with_a_bounded_confidence() {
        let examples = vec![
            (Intent::Chat, vec![1.0, 0.0]),
            (Intent::Documents, vec![0.0, 1.0]),
        ];
        let detected = decide(&examples, &[0.9, 0.1]);
        assert_eq!(detected.intent, Intent::Chat);
        assert!(detected.confidence > 0.5 && detected.confidence <= 1.0);
    }
}
