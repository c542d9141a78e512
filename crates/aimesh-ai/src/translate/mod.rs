//! Machine translation: the [`Translator`] trait, the engines that implement it, and the
//! [`Translators`] registry that picks one for a language pair.
//!
//! Engines:
//!
//! - [`Apertium`]: rule-based, run as a subprocess; its pairs are the installed Apertium modes.
//! - [`Marian`]: neural (opus-mt models) on candle. A user installs a model by putting its
//!   directory in a models directory:
//!
//!   ```text
//!   <models dir>/opus-mt-en-es/
//!     config.json        Hugging Face Marian config
//!     model.safetensors  weights
//!     source.spm         SentencePiece (unigram) model of the source language,
//!     vocab.json         with the piece -> id vocabulary;
//!                        or instead of both, a tokenizer.json with the model's ids
//!     aimesh.json        optional: {"source": "en", "target": "es"}; without it the
//!                        directory name opus-mt-<source>-<target> gives the pair
//!   ```
//!
//!   [`Marian::discover`] loads every such directory (skipping broken ones with a logged
//!   reason); see the [`marian`] module for details.

mod apertium;
pub mod detect;
pub mod marian;
pub mod segment;

use std::sync::Arc;

use futures::future::BoxFuture;

pub use self::apertium::Apertium;
pub use self::marian::{Marian, MarianLoadError, MarianOptions};

/// A language pair, as BCP-47 tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LanguagePair {
    /// Source language.
    pub source: String,
    /// Target language.
    pub target: String,
}

/// Why a translation failed.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The engine does not offer the pair.
    #[error("{engine} cannot translate {source_language} to {target_language}")]
    UnsupportedPair {
        /// Engine.
        engine: &'static str,
        /// Source tag.
        source_language: String,
        /// Target tag.
        target_language: String,
    },
    /// The engine failed (crashed, timed out, produced garbage).
    #[error("{engine} failed: {message}")]
    Engine {
        /// Engine.
        engine: &'static str,
        /// What happened.
        message: String,
    },
    /// The engine has as much work waiting as it accepts; retry later (callers answer
    /// `RESOURCE_EXHAUSTED`).
    #[error("{engine} is busy: its queue of {queued} requests is full")]
    Busy {
        /// Engine.
        engine: &'static str,
        /// How many requests wait (the queue's capacity).
        queued: usize,
    },
}

/// A machine translation engine.
pub trait Translator: Send + Sync + 'static {
    /// The engine's name, e.g. `apertium`.
    fn name(&self) -> &'static str;
    /// The pairs it translates.
    fn pairs(&self) -> &[LanguagePair];
    /// Translates one segment of text from `pair.source` to `pair.target`.
    fn translate<'a>(
        &'a self,
        pair: &'a LanguagePair,
        text: &'a str,
    ) -> BoxFuture<'a, Result<String, TranslateError>>;
}

/// The engines available in this process.
#[derive(Clone, Default)]
pub struct Translators {
    engines: Vec<Arc<dyn Translator>>,
}

impl std::fmt::Debug for Translators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.engines.iter().map(|e| (e.name(), e.pairs().len())))
            .finish()
    }
}

impl Translators {
    /// Creates a registry of the given engines, in order of preference.
    pub fn new(engines: Vec<Arc<dyn Translator>>) -> Self {
        Self { engines }
    }

    /// Returns the engines.
    pub fn engines(&self) -> &[Arc<dyn Translator>] {
        &self.engines
    }

    /// Finds an engine (the named one, or the first) that translates `source` to `target`,
    /// and the pair as that engine names it. Tags match exactly, or by their primary language
    /// (`en-US` uses an `en` pair).
    pub fn find(
        &self,
        source: &str,
        target: &str,
        engine: Option<&str>,
    ) -> Option<(Arc<dyn Translator>, LanguagePair)> {
        let primary = |tag: &str| tag.split('-').next().unwrap_or(tag).to_ascii_lowercase();
        for translator in &self.engines {
            if engine.is_some_and(|name| name != translator.name()) {
                continue;
            }
            let exact = translator
                .pairs()
                .iter()
                .find(|pair| pair.source == source && pair.target == target);
            let loose = || {
                translator.pairs().iter().find(|pair| {
                    primary(&pair.source) == primary(source)
                        && primary(&pair.target) == primary(target)
                })
            };
            if let Some(pair) = exact.or_else(loose) {
                return Some((translator.clone(), pair.clone()));
            }
        }
        None
    }

    /// Returns the engine called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Translator>> {
        self.engines.iter().find(|e| e.name() == name).cloned()
    }
}
