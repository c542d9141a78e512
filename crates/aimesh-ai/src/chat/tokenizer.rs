//! The tokenizer of a GGUF chat model, built from the file's metadata: a GPT-2 style
//! byte-level BPE (`tokenizer.ggml.model = "gpt2"`) from `tokenizer.ggml.tokens` and
//! `tokenizer.ggml.merges`, with the control tokens (`<|im_start|>`, `<|im_end|>`...) matched
//! whole as special tokens.
//!
//! Pre-tokenization follows the file's `tokenizer.ggml.pre`: `smollm` (like StarCoder's
//! tokenizer, which SmolLM2 reuses) splits every digit on its own, then applies the GPT-2
//! split without adding a prefix space.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tokenizers::{
    AddedToken, Tokenizer,
    decoders::byte_level::ByteLevel as ByteLevelDecoder,
    models::bpe::{BPE, Vocab},
    pre_tokenizers::{
        PreTokenizerWrapper, byte_level::ByteLevel, digits::Digits, sequence::Sequence,
    },
};

use crate::engine::EngineError;

/// GGUF token type of control tokens (`<|im_start|>`...).
const TOKEN_TYPE_CONTROL: i64 = 3;
/// GGUF token type of user-defined tokens, also matched whole.
const TOKEN_TYPE_USER_DEFINED: i64 = 4;
/// The name under which tokenizer failures are reported.
const ENGINE: &str = "tokenizer";

/// A byte-level BPE tokenizer read from GGUF metadata.
#[derive(Debug)]
pub struct GgufTokenizer {
    inner: Tokenizer,
    /// The bytes each token stands for, to decode a stream token by token.
    token_bytes: Vec<Vec<u8>>,
    tokens: Vec<String>,
    /// The control tokens' texts, matched whole wherever they appear in encoded text.
    specials: Vec<String>,
    bos: Option<u32>,
    eos: u32,
}

impl GgufTokenizer {
    /// Builds the tokenizer from a GGUF file's metadata.
    pub fn from_metadata(metadata: &HashMap<String, Value>) -> Result<Self, String> {
        let model = metadata
            .get("tokenizer.ggml.model")
            .and_then(|value| value.to_string().ok())
            .ok_or("no tokenizer.ggml.model in the metadata")?;
        if model != "gpt2" {
            return Err(format!(
                "tokenizer.ggml.model is {model:?}: only byte-level BPE (\"gpt2\") is supported"
            ));
        }
        let pre = metadata
            .get("tokenizer.ggml.pre")
            .and_then(|value| value.to_string().ok())
            .map(String::as_str)
            .unwrap_or("default");
        let individual_digits = match pre {
            "smollm" | "starcoder" | "refact" => true,
            "default" | "gpt-2" | "gpt2" => false,
            other => {
                return Err(format!(
                    "tokenizer.ggml.pre is {other:?}: supported are smollm, starcoder, refact, \
                     gpt-2 and default"
                ));
            }
        };
        let tokens = string_array(metadata, "tokenizer.ggml.tokens")?;
        let merges = string_array(metadata, "tokenizer.ggml.merges")?;
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
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let eos = id("tokenizer.ggml.eos_token_id")?.ok_or("no tokenizer.ggml.eos_token_id")?;

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
        let specials: Vec<String> = types
            .iter()
            .zip(&tokens)
            .filter(|(kind, _)| matches!(**kind, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED))
            .map(|(_, token)| token.to_string())
            .collect();
        let special: Vec<AddedToken> = specials
            .iter()
            .map(|token| AddedToken::from(token.clone(), true))
            .collect();
        inner
            .add_special_tokens(special)
            .map_err(|error| format!("cannot add the special tokens: {error}"))?;

        let chars = unicode_to_byte();
        let token_bytes = tokens
            .iter()
            .map(|token| {
                let mut bytes = Vec::with_capacity(token.len());
                for c in token.chars() {
                    match chars.get(&c) {
                        Some(&byte) => bytes.push(byte),
                        None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                bytes
            })
            .collect();
        Ok(Self {
            inner,
            token_bytes,
            tokens: tokens.into_iter().cloned().collect(),
            specials,
            bos,
            eos,
        })
    }

    /// The ids of `text`; special tokens written in it (`<|im_start|>`) become their ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.inner
            .encode_fast(text, false)
            .map(|encoding| encoding.get_ids().to_vec())
            .map_err(|error| EngineError::failed(ENGINE, error))
    }

    /// The text of `ids`, special tokens included; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String, EngineError> {
        self.inner
            .decode(ids, false)
            .map_err(|error| EngineError::failed(ENGINE, error))
    }

    /// The first control token (`<|im_start|>`...) written in `text`, if any: text that
    /// would turn into template markup when encoded.
    pub fn control_token_in<'a>(&'a self, text: &str) -> Option<&'a str> {
        self.specials
            .iter()
            .find(|token| !token.is_empty() && text.contains(token.as_str()))
            .map(String::as_str)
    }

    /// The id of a token given as it appears in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
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
