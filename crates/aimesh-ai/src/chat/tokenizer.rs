//! The tokenizer of a GGUF chat model, built from the file's metadata, of either kind GGUF
//! files carry:
//! - GPT-2 style byte-level BPE (`tokenizer.ggml.model = "gpt2"`: SmolLM2, Qwen2, Llama 3)
//!   from `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`, on the `tokenizers` crate.
//!   Pre-tokenization follows the file's `tokenizer.ggml.pre`: `smollm` (like StarCoder's
//!   tokenizer, which SmolLM2 reuses) splits every digit on its own, `qwen2` and `gpt-2` do
//!   not; then the GPT-2 split, without adding a prefix space.
//! - SentencePiece BPE (`tokenizer.ggml.model = "llama"`: Gemma, Llama 2, Mistral) from the
//!   tokens and their `tokenizer.ggml.scores` ([`SentencePiece`]), with byte fallback.
//!
//! Control tokens (`<|im_start|>`, `<start_of_turn>`...) and user-defined tokens are matched
//! whole wherever they appear in encoded text; the control tokens are the template's markup,
//! which [`GgufTokenizer::control_token_in`] finds in a message to refuse it.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use candle_core::quantized::gguf_file::Value;
use tokenizers::{
    AddedToken, Tokenizer,
    decoders::byte_level::ByteLevel as ByteLevelDecoder,
    models::bpe::{BPE, Vocab},
    pre_tokenizers::{
        PreTokenizerWrapper, byte_level::ByteLevel, digits::Digits, sequence::Sequence,
    },
};

use super::spm::SentencePiece;
use crate::engine::EngineError;

/// GGUF token type of control tokens (`<|im_start|>`...).
const TOKEN_TYPE_CONTROL: i64 = 3;
/// GGUF token type of user-defined tokens, also matched whole.
const TOKEN_TYPE_USER_DEFINED: i64 = 4;
/// GGUF token type of SentencePiece's byte tokens (`<0x0A>`).
const TOKEN_TYPE_BYTE: i64 = 6;
/// The name under which tokenizer failures are reported.
const ENGINE: &str = "tokenizer";

/// A chat model's tokenizer read from GGUF metadata.
#[derive(Debug)]
pub struct GgufTokenizer {
    segmenter: Segmenter,
    /// The bytes each token stands for, to decode a stream token by token.
    token_bytes: Vec<Vec<u8>>,
    tokens: Vec<String>,
    /// The control tokens, found in messages to refuse them.
    control: Option<AhoCorasick>,
    /// The texts of the patterns of `control`.
    control_tokens: Vec<String>,
    bos: Option<u32>,
    eos: u32,
    add_bos: bool,
}

/// How text is split into tokens.
#[derive(Debug)]
enum Segmenter {
    /// Byte-level BPE; the special tokens are added to the tokenizer.
    ByteBpe(Box<Tokenizer>),
    /// SentencePiece BPE, with the special tokens split out first.
    SentencePiece {
        model: SentencePiece,
        /// Control and user-defined tokens, longest match first.
        specials: Option<AhoCorasick>,
        /// The id of each pattern of `specials`.
        special_ids: Vec<u32>,
        /// Writes a space before the text and after each special token.
        space_prefix: bool,
    },
}

impl GgufTokenizer {
    /// Builds the tokenizer from a GGUF file's metadata.
    pub fn from_metadata(metadata: &HashMap<String, Value>) -> Result<Self, String> {
        let model = metadata
            .get("tokenizer.ggml.model")
            .and_then(|value| value.to_string().ok())
            .ok_or("no tokenizer.ggml.model in the metadata")?;
        let tokens = string_array(metadata, "tokenizer.ggml.tokens")?;
        let types = match metadata.get("tokenizer.ggml.token_type") {
            Some(Value::Array(types)) => types
                .iter()
                .map(integer)
                .collect::<Option<Vec<_>>>()
                .ok_or("tokenizer.ggml.token_type holds a non-integer")?,
            _ => Vec::new(),
        };
        let id = |key: &str| -> Result<Option<u32>, String> {
            match metadata.get(key) {
                None => Ok(None),
                Some(value) => integer(value)
                    .and_then(|id| u32::try_from(id).ok())
                    .filter(|&id| (id as usize) < tokens.len())
                    .map(Some)
                    .ok_or_else(|| format!("{key} is not a token id")),
            }
        };
        let flag = |key: &str| metadata.get(key).and_then(|value| value.to_bool().ok());
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let eos = id("tokenizer.ggml.eos_token_id")?.ok_or("no tokenizer.ggml.eos_token_id")?;
        let of_type = |wanted: &[i64]| -> Vec<(u32, &String)> {
            types
                .iter()
                .zip(&tokens)
                .enumerate()
                .filter(|(_, (kind, token))| wanted.contains(kind) && !token.is_empty())
                .map(|(id, (_, token))| (id as u32, *token))
                .collect()
        };
        let specials = of_type(&[TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED]);
        let control_tokens: Vec<String> = of_type(&[TOKEN_TYPE_CONTROL])
            .into_iter()
            .map(|(_, token)| token.clone())
            .collect();
        let control = automaton(&control_tokens)?;

        let (segmenter, token_bytes, add_bos) = match model.as_str() {
            "gpt2" => {
                let inner = byte_bpe(metadata, &tokens, &specials)?;
                let chars = unicode_to_byte();
                let token_bytes = tokens
                    .iter()
                    .map(|token| {
                        let mut bytes = Vec::with_capacity(token.len());
                        for c in token.chars() {
                            match chars.get(&c) {
                                Some(&byte) => bytes.push(byte),
                                None => {
                                    bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes())
                                }
                            }
                        }
                        bytes
                    })
                    .collect();
                let add_bos = flag("tokenizer.ggml.add_bos_token").unwrap_or(false);
                (Segmenter::ByteBpe(Box::new(inner)), token_bytes, add_bos)
            }
            "llama" => {
                let scores = match metadata.get("tokenizer.ggml.scores") {
                    Some(Value::Array(scores)) => scores
                        .iter()
                        .map(|score| score.to_f32().ok())
                        .collect::<Option<Vec<_>>>()
                        .ok_or("tokenizer.ggml.scores holds a non-f32")?,
                    _ => return Err("no tokenizer.ggml.scores in the metadata".into()),
                };
                let unknown = id("tokenizer.ggml.unknown_token_id")?;
                let model = SentencePiece::new(&tokens, scores, unknown)?;
                let token_bytes = tokens
                    .iter()
                    .enumerate()
                    .map(|(id, token)| {
                        let kind = types.get(id).copied();
                        match SentencePiece::byte_of(token) {
                            Some(byte) if kind == Some(TOKEN_TYPE_BYTE) => vec![byte],
                            _ if kind == Some(TOKEN_TYPE_CONTROL) => token.as_bytes().to_vec(),
                            _ => SentencePiece::piece_bytes(token),
                        }
                    })
                    .collect();
                let patterns: Vec<&String> = specials.iter().map(|(_, token)| *token).collect();
                let segmenter = Segmenter::SentencePiece {
                    model,
                    specials: automaton(&patterns)?,
                    special_ids: specials.iter().map(|(id, _)| *id).collect(),
                    space_prefix: flag("tokenizer.ggml.add_space_prefix").unwrap_or(true),
                };
                let add_bos = flag("tokenizer.ggml.add_bos_token").unwrap_or(true);
                (segmenter, token_bytes, add_bos)
            }
            other => {
                return Err(format!(
                    "tokenizer.ggml.model is {other:?}: supported are byte-level BPE (\"gpt2\") \
                     and SentencePiece BPE (\"llama\")"
                ));
            }
        };
        Ok(Self {
            segmenter,
            token_bytes,
            tokens: tokens.into_iter().cloned().collect(),
            control,
            control_tokens,
            bos,
            eos,
            add_bos: add_bos && bos.is_some(),
        })
    }

    /// The ids of `text`; special tokens written in it (`<|im_start|>`) become their ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        match &self.segmenter {
            Segmenter::ByteBpe(inner) => inner
                .encode_fast(text, false)
                .map(|encoding| encoding.get_ids().to_vec())
                .map_err(|error| EngineError::failed(ENGINE, error)),
            Segmenter::SentencePiece {
                model,
                specials,
                special_ids,
                space_prefix,
            } => {
                let mut ids = Vec::with_capacity(text.len() / 3 + 1);
                let mut after_special = true;
                let mut rest = 0;
                for found in specials
                    .iter()
                    .flat_map(|specials| specials.find_iter(text))
                {
                    let before = &text[rest..found.start()];
                    model.encode_into(before, *space_prefix && after_special, &mut ids);
                    ids.push(special_ids[found.pattern().as_usize()]);
                    after_special = true;
                    rest = found.end();
                }
                model.encode_into(&text[rest..], *space_prefix && after_special, &mut ids);
                Ok(ids)
            }
        }
    }

    /// The ids of a rendered prompt: [`GgufTokenizer::encode`], with the beginning-of-sequence
    /// token first when the model wants one and the template did not write it.
    pub fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>, EngineError> {
        let mut ids = self.encode(prompt)?;
        if let Some(bos) = self.bos.filter(|_| self.add_bos)
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    /// The text of `ids`, special tokens included; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String, EngineError> {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id).iter().copied())
            .collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The first control token (`<|im_start|>`...) written in `text`, if any: text that
    /// would turn into template markup when encoded.
    pub fn control_token_in<'a>(&'a self, text: &str) -> Option<&'a str> {
        let found = self.control.as_ref()?.find(text)?;
        Some(self.control_tokens[found.pattern().as_usize()].as_str())
    }

    /// The id of a token given as it appears in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        match &self.segmenter {
            Segmenter::ByteBpe(inner) => inner.token_to_id(token),
            Segmenter::SentencePiece { model, .. } => model.id(token),
        }
    }

    /// The token `id` as it appears in the vocabulary.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// How many tokens the vocabulary has.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The beginning-of-sequence token, when the model has one.
    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token.
    pub fn eos_token_id(&self) -> u32 {
        self.eos
    }

    /// The bytes token `id` stands for (empty for an unknown id).
    pub(crate) fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// Builds the byte-level BPE of a `gpt2` tokenizer, `specials` matched whole.
fn byte_bpe(
    metadata: &HashMap<String, Value>,
    tokens: &[&String],
    specials: &[(u32, &String)],
) -> Result<Tokenizer, String> {
    let pre = metadata
        .get("tokenizer.ggml.pre")
        .and_then(|value| value.to_string().ok())
        .map(String::as_str)
        .unwrap_or("default");
    let individual_digits = match pre {
        "smollm" | "starcoder" | "refact" => true,
        "default" | "gpt-2" | "gpt2" | "qwen2" => false,
        other => {
            return Err(format!(
                "tokenizer.ggml.pre is {other:?}: supported are smollm, starcoder, refact, \
                 qwen2, gpt-2 and default"
            ));
        }
    };
    let merges = string_array(metadata, "tokenizer.ggml.merges")?;
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.to_string(), id as u32))
        .collect();
    if vocab.len() != tokens.len() {
        return Err("tokenizer.ggml.tokens holds duplicates".into());
    }
    let merges = merges
        .iter()
        .map(|merge| {
            merge
                .split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| format!("merge {merge:?} is not two tokens"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|error| format!("bad BPE vocabulary or merges: {error}"))?;
    let mut inner = Tokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(individual_digits)),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
    ])));
    inner.with_decoder(Some(ByteLevelDecoder::default()));
    let special: Vec<AddedToken> = specials
        .iter()
        .map(|(_, token)| AddedToken::from(token.to_string(), true))
        .collect();
    inner
        .add_special_tokens(special)
        .map_err(|error| format!("cannot add the special tokens: {error}"))?;
    Ok(inner)
}

/// A leftmost-longest matcher of `patterns`; `None` when there are none.
fn automaton(patterns: &[impl AsRef<str>]) -> Result<Option<AhoCorasick>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(patterns.iter().map(AsRef::as_ref))
        .map(Some)
        .map_err(|error| format!("cannot match the special tokens: {error}"))
}

fn string_array<'a>(
    metadata: &'a HashMap<String, Value>,
    key: &str,
) -> Result<Vec<&'a String>, String> {
    match metadata.get(key) {
        Some(Value::Array(values)) => values
            .iter()
            .map(|value| value.to_string().ok())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("{key} holds a non-string")),
        Some(_) => Err(format!("{key} is not an array")),
        None => Err(format!("no {key} in the metadata")),
    }
}

fn integer(value: &Value) -> Option<i64> {
    Some(match *value {
        Value::U8(v) => v.into(),
        Value::I8(v) => v.into(),
        Value::U16(v) => v.into(),
        Value::I16(v) => v.into(),
        Value::U32(v) => v.into(),
        Value::I32(v) => v.into(),
        Value::U64(v) => i64::try_from(v).ok()?,
        Value::I64(v) => v,
        _ => return None,
    })
}

/// The inverse of GPT-2's byte-to-character table: printable Latin-1 bytes stand for
/// themselves, the others for the characters from U+0100 on, in byte order.
fn unicode_to_byte() -> HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 256u32;
    let mut table = HashMap::with_capacity(256);
    for byte in 0..=255u8 {
        let c = if printable(byte) {
            char::from(byte)
        } else {
            let c = char::from_u32(next).unwrap_or(char::REPLACEMENT_CHARACTER);
            next += 1;
            c
        };
        table.insert(c, byte);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_table_covers_every_byte_once() {
        let table = unicode_to_byte();
        assert_eq!(table.len(), 256);
        assert_eq!(table.get(&'Ġ'), Some(&b' '));
        assert_eq!(table.get(&'Ċ'), Some(&b'\n'));
        assert_eq!(table.get(&'a'), Some(&b'a'));
    }
}
