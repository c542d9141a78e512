//! Sentence embeddings: the [`Embedder`] trait and [`MiniLm`], all-MiniLM-L6-v2 on candle
//! behind a dynamic batcher.
//!
//! An embedding is a unit-length vector, so the cosine similarity of two texts is the dot
//! product of their embeddings ([`cosine`]).

mod bert;
mod minilm;

use futures::future::BoxFuture;

pub use self::bert::FeedForward;
pub use self::minilm::{EmbedOptions, EmbedStats, MAX_TOKENS, MODEL_ID, MiniLm};
use crate::engine::EngineError;

/// A sentence-embedding engine. Object-safe: services hold an `Arc<dyn Embedder>`.
pub trait Embedder: Send + Sync + 'static {
    /// Returns whether the engine is serving: false while its inference thread restarts
    /// after a panic, and once it has stopped for good.
    fn is_alive(&self) -> bool {
        true
    }

    /// The engine's name, e.g. `minilm`.
    fn name(&self) -> &'static str;
    /// The length of every embedding it returns.
    fn dimensions(&self) -> usize;
    /// Embeds `texts`, returning one unit-length vector per text, in order. An empty list,
    /// an empty (or all-whitespace) text or more texts than the engine takes at once is
    /// refused with [`EngineError::InvalidInput`] naming the field `texts`.
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EngineError>>;
}

/// Dot product of two vectors: the cosine similarity of two unit-length embeddings.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Cosine similarity of two vectors of any length (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let norms = (dot(a, a) * dot(b, b)).sqrt();
    if norms > 0.0 { dot(a, b) / norms } else { 0.0 }
}

/// Scales `vector` to unit length in place (all zeros stay zeros).
pub fn normalize(vector: &mut [f32]) {
    let norm = dot(vector, vector).sqrt();
    if norm > 1e-12 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The unit-length mean of `vectors` (their centroid's direction), or `None` for none.
pub fn centroid(vectors: &[Vec<f32>]) -> Option<Vec<f32>> {
    let first = vectors.first()?;
    let mut sum = vec![0.0f32; first.len()];
    for vector in vectors {
        sum.iter_mut().zip(vector).for_each(|(s, x)| *s += x);
    }
    normalize(&mut sum);
    Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_and_centroid_of_simple_vectors() {
        assert!((cosine(&[1.0, 0.0], &[0.0, 2.0])).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let c = centroid(&[vec![1.0, 0.0], vec![0.0, 1.0]]).expect("some");
        assert!((c[0] - c[1]).abs() < 1e-6 && (dot(&c, &c) - 1.0).abs() < 1e-6);
        assert!(centroid(&[]).is_none());
    }
}
