//! Text analysis built on sentence embeddings, plus a lexicon sentiment scorer. Every result
//! names the engine that produced it:
//!
//! - [`Analyzer::summarize`] (`<embedder>-centroid`): extractive summary; the sentences
//!   nearest the document's centroid, with maximal marginal relevance against repeats, in
//!   their original order.
//! - [`Analyzer::keywords`] (`<embedder>-keybert`): KeyBERT-style key phrases; stopword-free
//!   runs of one to three words, ranked by similarity to the document with maximal marginal
//!   relevance for diversity.
//! - [`Analyzer::sentiment`] ([`sentiment::ENGINE`], `lexicon`): VADER-style valence lexicon
//!   with negation, boosters and emphasis; no model.
//! - [`Analyzer::classify`] (`<embedder>-zero-shot`): zero-shot classification; similarity of
//!   the text to "This text is about {label}." for each label the caller gives, as softmax
//!   probabilities.
//! - [`study`]: study notes, questions with quoted answers, cloze quizzes and short-answer
//!   grading, all built from the text's own sentences (see that module).

pub mod sentiment;
pub mod study;
pub mod text;

use std::sync::Arc;

pub use self::sentiment::{Sentiment, SentimentLabel};
use crate::{
    embed::{Embedder, centroid, dot},
    engine::EngineError,
};

/// Longest text accepted, in bytes.
pub const MAX_TEXT_BYTES: usize = 200_000;
/// Most labels one classification takes.
pub const MAX_LABELS: usize = 64;
/// Most sentences of a text that are embedded for a summary or keywords (the first ones).
pub const MAX_SENTENCES: usize = 1_000;
/// Most candidate phrases embedded for keywords (the most frequent ones).
pub const MAX_CANDIDATES: usize = 500;
/// The template a label is put in for zero-shot classification.
pub const LABEL_TEMPLATE: &str = "This text is about {label}.";
/// Scale of similarities before the softmax of zero-shot classification (an inverse
/// temperature): cosine similarities of sentence embeddings differ by tenths.
pub const CLASSIFY_SCALE: f32 = 20.0;
/// Texts per embedding request when a text is embedded in parts.
const EMBED_CHUNK: usize = 64;
/// MMR trade-off for summaries (1 = relevance only).
const SUMMARY_LAMBDA: f32 = 0.7;
/// MMR trade-off for keywords.
const KEYWORD_LAMBDA: f32 = 0.6;

/// Text analyses on top of an [`Embedder`].
#[derive(Clone)]
pub struct Analyzer {
    embedder: Arc<dyn Embedder>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("embedder", &self.embedder.name())
            .finish()
    }
}

/// An extractive summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The chosen sentences, in the order of the text.
    pub sentences: Vec<SummarySentence>,
    /// How many sentences the text has.
    pub total_sentences: usize,
    /// The engine that produced it, e.g. `minilm-centroid`.
    pub engine: String,
}

/// A sentence of a [`Summary`].
#[derive(Debug, Clone, PartialEq)]
pub struct SummarySentence {
    /// Position among the text's sentences, from 0.
    pub index: usize,
    /// The sentence.
    pub text: String,
    /// Its cosine similarity to the document's centroid.
    pub score: f32,
}

/// Key phrases of a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Keywords {
    /// The phrases in the order picked (most relevant first, then diversity counts).
    pub keywords: Vec<Keyword>,
    /// The engine that produced them, e.g. `minilm-keybert`.
    pub engine: String,
}

/// A key phrase.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyword {
    /// The phrase, lowercase.
    pub phrase: String,
    /// Its cosine similarity to the document.
    pub score: f32,
}

/// A zero-shot classification.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// Every label with its score, best first.
    pub labels: Vec<LabelScore>,
    /// The engine that produced it, e.g. `minilm-zero-shot`.
    pub engine: String,
}

/// A label's score.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScore {
    /// The label as given.
    pub label: String,
    /// Softmax probability over the labels (they sum to 1).
    pub score: f32,
    /// Cosine similarity of the text to the label's template sentence.
    pub similarity: f32,
}

impl Analyzer {
    /// An analyzer using `embedder`.
    pub fn new(embedder: Arc<dyn Embedder>) -> Self {
        Self { embedder }
    }

    /// Picks up to `max_sentences` sentences of `text` that best represent it. A text of no
    /// more sentences comes back whole.
    pub async fn summarize(
        &self,
        text: &str,
        max_sentences: usize,
    ) -> Result<Summary, EngineError> {
        check_text(text)?;
        if max_sentences == 0 {
            return Err(EngineError::invalid("max_sentences", "must be at least 1"));
        }
        let mut sentences = text::sentences(text);
        let total_sentences = sentences.len();
        sentences.truncate(MAX_SENTENCES);
        if sentences.is_empty() {
            return Err(EngineError::invalid("text", "has no sentence"));
        }
        let vectors = self.embed_many(sentences.clone()).await?;
        let center = centroid(&vectors).unwrap_or_default();
        let relevance: Vec<f32> = vectors.iter().map(|v| dot(v, &center)).collect();
        let mut picked = text::mmr(&relevance, &vectors, max_sentences, SUMMARY_LAMBDA);
        picked.sort_unstable();
        Ok(Summary {
            sentences: picked
                .into_iter()
                .map(|index| SummarySentence {
                    index,
                    text: sentences[index].clone(),
                    score: relevance[index],
                })
                .collect(),
            total_sentences,
            engine: format!("{}-centroid", self.embedder.name()),
        })
    }

    /// Finds up to `max_keywords` key phrases of `text`.
    pub async fn keywords(&self, text: &str, max_keywords: usize) -> Result<Keywords, EngineError> {
        check_text(text)?;
        if max_keywords == 0 {
            return Err(EngineError::invalid("max_keywords", "must be at least 1"));
        }
        let candidates: Vec<String> = text::candidate_phrases(text, 3, MAX_CANDIDATES)
            .into_iter()
            .map(|(phrase, _)| phrase)
            .collect();
        if candidates.is_empty() {
            return Err(EngineError::invalid("text", "has no content words"));
        }
        // The document: the centroid of its sentences, so a long text is not cut to the
        // model's input length.
        let mut sentences = text::sentences(text);
        sentences.truncate(MAX_SENTENCES);
        let document = centroid(&self.embed_many(sentences).await?).unwrap_or_default();
        let vectors = self.embed_many(candidates.clone()).await?;
        let relevance: Vec<f32> = vectors.iter().map(|v| dot(v, &document)).collect();
        let picked = text::mmr(&relevance, &vectors, max_keywords, KEYWORD_LAMBDA);
        Ok(Keywords {
            keywords: picked
                .into_iter()
                .map(|i| Keyword {
                    phrase: candidates[i].clone(),
                    score: relevance[i],
                })
                .collect(),
            engine: format!("{}-keybert", self.embedder.name()),
        })
    }

    /// Rates the sentiment of `text` with the lexicon (see [`sentiment`]).
    pub fn sentiment(&self, text: &str) -> Result<Sentiment, EngineError> {
        check_text(text)?;
        Ok(sentiment::analyze(text))
    }

    /// Scores `text` against each of `labels` (at most [`MAX_LABELS`], none empty): the
    /// similarity of the text to [`LABEL_TEMPLATE`] filled with the label, as softmax
    /// probabilities scaled by [`CLASSIFY_SCALE`], best first.
    pub async fn classify(
        &self,
        text: &str,
        labels: &[String],
    ) -> Result<Classification, EngineError> {
        check_text(text)?;
        if labels.is_empty() {
            return Err(EngineError::invalid("labels", "no label given"));
        }
        if labels.len() > MAX_LABELS {
            return Err(EngineError::invalid(
                "labels",
                format!("{} labels, at most {MAX_LABELS}", labels.len()),
            ));
        }
        if let Some(i) = labels.iter().position(|l| l.trim().is_empty()) {
            return Err(EngineError::invalid(
                "labels",
                format!("label {i} is empty"),
            ));
        }
        let mut inputs = Vec::with_capacity(labels.len() + 1);
        inputs.push(text.to_owned());
        inputs.extend(
            labels
                .iter()
                .map(|label| LABEL_TEMPLATE.replace("{label}", label.trim())),
        );
        let vectors = self.embed_many(inputs).await?;
        let (document, label_vectors) = vectors
            .split_first()
            .ok_or_else(|| EngineError::failed(self.embedder.name(), "no embedding returned"))?;
        let similarities: Vec<f32> = label_vectors.iter().map(|v| dot(v, document)).collect();
        let probabilities = text::softmax(&similarities, CLASSIFY_SCALE);
        let mut scored: Vec<LabelScore> = labels
            .iter()
            .zip(similarities.iter().zip(probabilities))
            .map(|(label, (&similarity, score))| LabelScore {
                label: label.clone(),
                score,
                similarity,
            })
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(Classification {
            labels: scored,
            engine: format!("{}-zero-shot", self.embedder.name()),
        })
    }

    /// Embeds any number of texts, [`EMBED_CHUNK`] per request, all requests at once so the
    /// engine batches them.
    async fn embed_many(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EngineError> {
        let requests = texts
            .chunks(EMBED_CHUNK)
            .map(|chunk| self.embedder.embed(chunk.to_vec()));
        let parts = futures::future::try_join_all(requests).await?;
        Ok(parts.into_iter().flatten().collect())
    }
}

/// Refuses empty or oversized text.
fn check_text(text: &str) -> Result<(), EngineError> {
    if text.trim().is_empty() {
        return Err(EngineError::invalid("text", "is empty"));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(EngineError::invalid(
            "text",
            format!("{} bytes, at most {MAX_TEXT_BYTES}", text.len()),
        ));
    }
    Ok(())
}
