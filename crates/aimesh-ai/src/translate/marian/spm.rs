//! SentencePiece tokenization as opus-mt models ship it: a `source.spm` unigram model that cuts
//! the source text into pieces, and a `vocab.json` that numbers the pieces of both languages.
//!
//! The tokenizers crate cannot open `.spm` files, so the protobuf is read here (only the fields
//! tokenization needs) and turned into an equivalent tokenizers pipeline: the model's
//! precompiled normalisation, whitespace collapsed, `▁` word boundaries, unigram segmentation.
//! Decoding needs no model: SentencePiece decoding of a unigram model without byte fallback
//! joins the pieces and turns `▁` into spaces, so `target.spm` is not read.

use std::collections::HashMap;

use prost::Message;
use tokenizers::{
    Tokenizer,
    models::unigram::Unigram,
    normalizers::precompiled::Precompiled,
    pre_tokenizers::metaspace::{Metaspace, PrependScheme},
};

/// SentencePiece's word-boundary mark.
const BOUNDARY: char = '▁';

/// `ModelProto` of SentencePiece's `sentencepiece_model.proto`, the fields read here.
#[derive(Clone, PartialEq, Message)]
pub(super) struct ModelProto {
    /// The pieces, in id order.
    #[prost(message, repeated, tag = "1")]
    pub(super) pieces: Vec<Piece>,
    /// How the model was trained (its algorithm).
    #[prost(message, optional, tag = "2")]
    pub(super) trainer_spec: Option<TrainerSpec>,
    /// How text is normalised before segmentation.
    #[prost(message, optional, tag = "3")]
    pub(super) normalizer_spec: Option<NormalizerSpec>,
}

/// `ModelProto.SentencePiece`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct Piece {
    /// The piece's text.
    #[prost(string, optional, tag = "1")]
    pub(super) piece: Option<String>,
    /// Its log probability.
    #[prost(float, optional, tag = "2")]
    pub(super) score: Option<f32>,
    /// Its kind: see the `PIECE_*` constants.
    #[prost(int32, optional, tag = "3")]
    pub(super) kind: Option<i32>,
}

/// `TrainerSpec`, the field read here.
#[derive(Clone, PartialEq, Message)]
pub(super) struct TrainerSpec {
    /// 1 unigram (the default), 2 BPE, 3 word, 4 char.
    #[prost(int32, optional, tag = "3")]
    pub(super) model_type: Option<i32>,
}

/// `NormalizerSpec`, the fields read here.
#[derive(Clone, PartialEq, Message)]
pub(super) struct NormalizerSpec {
    /// The rule's name, e.g. `nmt_nfkc`.
    #[prost(string, optional, tag = "1")]
    pub(super) name: Option<String>,
    /// The compiled normalisation rules (empty for `identity`).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(super) precompiled_charsmap: Option<Vec<u8>>,
    /// Whether a `▁` goes before the first word (default true).
    #[prost(bool, optional, tag = "3")]
    pub(super) add_dummy_prefix: Option<bool>,
}

pub(super) const PIECE_NORMAL: i32 = 1;
pub(super) const PIECE_UNKNOWN: i32 = 2;
pub(super) const PIECE_CONTROL: i32 = 3;
pub(super) const PIECE_UNUSED: i32 = 5;
const MODEL_UNIGRAM: i32 = 1;

/// A source-side SentencePiece tokenizer and the shared piece numbering.
pub(super) struct SentencePiece {
    source: Tokenizer,
    /// Piece -> model id (`vocab.json`).
    ids: HashMap<String, u32>,
    /// Model id -> piece.
    pieces: HashMap<u32, String>,
    unk_id: u32,
}

impl SentencePiece {
    /// Builds the tokenizer from the bytes of `source.spm` and of `vocab.json`. `unk` is the
    /// unknown piece's name, which `vocab.json` must number.
    pub(super) fn new(spm: &[u8], vocab_json: &[u8], unk: &str) -> Result<Self, String> {
        let proto = ModelProto::decode(spm)
            .map_err(|e| format!("source.spm is not a SentencePiece model: {e}"))?;
        let model_type = proto
            .trainer_spec
            .as_ref()
            .and_then(|spec| spec.model_type)
            .unwrap_or(MODEL_UNIGRAM);
        if model_type != MODEL_UNIGRAM {
            return Err(format!(
                "source.spm is a SentencePiece model of type {model_type}, not unigram (1); \
                 only unigram models (what opus-mt ships) are read: provide a tokenizer.json \
                 instead"
            ));
        }
        // Control and unused pieces never come out of text segmentation; the unknown piece
        // stays because the unigram model needs it for characters it cannot cover.
        let mut vocab = Vec::with_capacity(proto.pieces.len());
        let mut unk_index = None;
        for piece in &proto.pieces {
            let kind = piece.kind.unwrap_or(PIECE_NORMAL);
            let Some(text) = piece.piece.clone().filter(|text| !text.is_empty()) else {
                continue;
            };
            match kind {
                PIECE_CONTROL | PIECE_UNUSED => continue,
                PIECE_UNKNOWN => unk_index = Some(vocab.len()),
                _ => {}
            }
            vocab.push((text, f64::from(piece.score.unwrap_or(0.0))));
        }
        if vocab.is_empty() {
            return Err("source.spm holds no pieces".into());
        }
        let unk_index = unk_index.ok_or("source.spm has no unknown piece")?;
        let unigram =
            Unigram::from(vocab, Some(unk_index), false).map_err(|e| format!("source.spm: {e}"))?;
        let mut source = Tokenizer::new(unigram);
        let normalizer = proto.normalizer_spec.unwrap_or_default();
        let charsmap = normalizer.precompiled_charsmap.unwrap_or_default();
        if !charsmap.is_empty() {
            let precompiled = Precompiled::from(&charsmap).map_err(|e| {
                format!(
                    "source.spm: unreadable normalisation rules ({}): {e}",
                    normalizer.name.as_deref().unwrap_or("unnamed")
                )
            })?;
            source
                .with_normalizer(Some(precompiled))
                .map_err(|e| format!("source.spm: {e}"))?;
        }
        let prepend = if normalizer.add_dummy_prefix.unwrap_or(true) {
            PrependScheme::Always
        } else {
            PrependScheme::Never
        };
        source.with_pre_tokenizer(Some(Metaspace::new(BOUNDARY, prepend, true)));

        let ids: HashMap<String, u32> = serde_json::from_slice(vocab_json)
            .map_err(|e| format!("vocab.json is not a JSON object of piece -> id: {e}"))?;
        let unk_id = *ids
            .get(unk)
            .ok_or_else(|| format!("vocab.json does not number the unknown piece {unk}"))?;
        let pieces = ids.iter().map(|(piece, &id)| (id, piece.clone())).collect();
        Ok(Self {
            source,
            ids,
            pieces,
            unk_id,
        })
    }

    /// The id of `piece`, if the vocabulary has it.
    pub(super) fn id(&self, piece: &str) -> Option<u32> {
        self.ids.get(piece).copied()
    }

    /// The largest id the vocabulary uses.
    pub(super) fn max_id(&self) -> Option<u32> {
        self.ids.values().copied().max()
    }

    /// Cuts `text` into pieces and numbers them; pieces missing from `vocab.json` become the
    /// unknown id. Whitespace runs count as one space, as SentencePiece's default
    /// normalisation does; no end-of-sentence id is added.
    pub(super) fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let encoding = self
            .source
            .encode(text.as_str(), false)
            .map_err(|e| format!("tokenization failed: {e}"))?;
        Ok(encoding
            .get_tokens()
            .iter()
            .map(|piece| self.id(piece).unwrap_or(self.unk_id))
            .collect())
    }

    /// Joins the pieces of `ids` into text, leaving out ids in `skip`, the unknown id (as
    /// Marian's tokenizer does) and ids the vocabulary lacks.
    pub(super) fn decode(&self, ids: &[u32], skip: &[u32]) -> String {
        let joined: String = ids
            .iter()
            .filter(|&&id| id != self.unk_id && !skip.contains(&id))
            .filter_map(|id| self.pieces.get(id))
            .map(String::as_str)
            .collect();
        joined.replace(BOUNDARY, " ").trim().to_owned()
    }
}
