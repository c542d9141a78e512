//! SentencePiece BPE as GGUF files carry it (`tokenizer.ggml.model = "llama"`): the vocabulary
//! with one score per piece and no merge list. Encoding starts from the characters of the text
//! (spaces written as `▁`) and repeatedly joins the adjacent pair whose joined piece is in the
//! vocabulary with the highest score, leftmost first on a tie, until no pair joins; a character
//! outside the vocabulary falls back to its UTF-8 bytes as `<0xXX>` pieces. This is how
//! SentencePiece's BPE mode encodes, and the segmentation llama.cpp gives such files.

use std::{
    cmp::Ordering,
    collections::{BinaryHeap, HashMap},
};

/// The piece standing for a space.
const SPACE: char = '\u{2581}';

/// A SentencePiece BPE vocabulary.
#[derive(Debug)]
pub(super) struct SentencePiece {
    ids: HashMap<String, u32>,
    scores: Vec<f32>,
    /// The `<0xXX>` piece of each byte, when the vocabulary has it.
    bytes: Vec<Option<u32>>,
    unknown: Option<u32>,
}

impl SentencePiece {
    /// The vocabulary of `pieces` with their `scores` (same length).
    pub(super) fn new(
        pieces: &[&String],
        scores: Vec<f32>,
        unknown: Option<u32>,
    ) -> Result<Self, String> {
        if scores.len() != pieces.len() {
            return Err(format!(
                "{} scores for {} tokens",
                scores.len(),
                pieces.len()
            ));
        }
        let mut ids = HashMap::with_capacity(pieces.len());
        for (id, piece) in pieces.iter().enumerate() {
            // Some vocabularies list a piece twice; the first id is the one encoding gives.
            ids.entry(piece.to_string()).or_insert(id as u32);
        }
        let bytes = (0..=255u8)
            .map(|byte| ids.get(&format!("<0x{byte:02X}>")).copied())
            .collect();
        Ok(Self {
            ids,
            scores,
            bytes,
            unknown,
        })
    }

    /// The id of a piece as the vocabulary writes it.
    pub(super) fn id(&self, piece: &str) -> Option<u32> {
        self.ids.get(piece).copied()
    }

    /// The byte a `<0xXX>` piece stands for.
    pub(super) fn byte_of(piece: &str) -> Option<u8> {
        let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
        (hex.len() == 2)
            .then(|| u8::from_str_radix(hex, 16).ok())
            .flatten()
    }

    /// The bytes a normal piece stands for: its text with `▁` as a space.
    pub(super) fn piece_bytes(piece: &str) -> Vec<u8> {
        piece.replace(SPACE, " ").into_bytes()
    }

    /// Appends the ids of `text` (no special tokens in it) to `out`; `space_prefix` writes a
    /// space before it, as models trained with SentencePiece's dummy prefix expect.
    pub(super) fn encode_into(&self, text: &str, space_prefix: bool, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let mut normalized = String::with_capacity(text.len() + 3);
        if space_prefix {
            normalized.push(SPACE);
        }
        normalized.extend(text.chars().map(|c| if c == ' ' { SPACE } else { c }));
        let text = normalized.as_str();

        let mut symbols: Vec<Symbol> = text
            .char_indices()
            .map(|(start, c)| Symbol {
                start,
                len: c.len_utf8(),
                prev: None,
                next: None,
            })
            .collect();
        let count = symbols.len();
        for (i, symbol) in symbols.iter_mut().enumerate() {
            symbol.prev = i.checked_sub(1);
            symbol.next = (i + 1 < count).then_some(i + 1);
        }
        let mut queue = BinaryHeap::new();
        for left in 1..count {
            self.push_pair(text, &symbols, left - 1, left, &mut queue);
        }
        while let Some(pair) = queue.pop() {
            let (left, right) = (&symbols[pair.left], &symbols[pair.right]);
            // A pair made stale by an earlier join (either side changed) is skipped.
            if left.len == 0 || right.len == 0 || left.len + right.len != pair.len {
                continue;
            }
            let (right_len, right_next) = (right.len, right.next);
            symbols[pair.left].len += right_len;
            symbols[pair.left].next = right_next;
            symbols[pair.right].len = 0;
            if let Some(next) = right_next {
                symbols[next].prev = Some(pair.left);
            }
            if let Some(prev) = symbols[pair.left].prev {
                self.push_pair(text, &symbols, prev, pair.left, &mut queue);
            }
            if let Some(next) = right_next {
                self.push_pair(text, &symbols, pair.left, next, &mut queue);
            }
        }
        let mut next = Some(0);
        while let Some(i) = next {
            let symbol = &symbols[i];
            let piece = &text[symbol.start..symbol.start + symbol.len];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    let bytes: Option<Vec<u32>> = piece
                        .bytes()
                        .map(|byte| self.bytes[byte as usize])
                        .collect();
                    match bytes {
                        Some(bytes) => out.extend(bytes),
                        None => out.extend(self.unknown),
                    }
                }
            }
            next = symbol.next;
        }
    }

    fn push_pair(
        &self,
        text: &str,
        symbols: &[Symbol],
        left: usize,
        right: usize,
        queue: &mut BinaryHeap<Pair>,
    ) {
        let start = symbols[left].start;
        let len = symbols[left].len + symbols[right].len;
        if let Some(&id) = self.ids.get(&text[start..start + len]) {
            queue.push(Pair {
                score: self.scores[id as usize],
                left,
                right,
                len,
            });
        }
    }
}

/// A run of the text: one character at first, then the pieces joined from them.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    /// Bytes; 0 once joined into the symbol on its left.
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Two adjacent symbols whose join is a piece of the vocabulary.
#[derive(Debug)]
struct Pair {
    score: f32,
    left: usize,
    right: usize,
    /// Bytes of the joined piece, to tell a stale pair.
    len: usize,
}

impl Ord for Pair {
    /// The higher score first, then the leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pair {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pair {}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary(pieces: &[(&str, f32)]) -> SentencePiece {
        let owned: Vec<String> = pieces.iter().map(|(p, _)| (*p).to_owned()).collect();
        let refs: Vec<&String> = owned.iter().collect();
        SentencePiece::new(&refs, pieces.iter().map(|(_, s)| *s).collect(), Some(0))
            .expect("vocabulary")
    }

    fn encode(spm: &SentencePiece, text: &str, prefix: bool) -> Vec<u32> {
        let mut ids = Vec::new();
        spm.encode_into(text, prefix, &mut ids);
        ids
    }

    #[test]
    fn the_best_scored_pairs_join_first() {
        let spm = vocabulary(&[
            ("<unk>", 0.0),
            ("a", -1.0),
            ("b", -1.0),
            ("c", -1.0),
            ("ab", -3.0),
            ("bc", -2.0),
            ("▁", -1.0),
            ("▁a", -5.0),
            ("▁ab", -6.0),
        ]);
        // "bc" outscores "ab", and "a"+"bc" is not a piece: a, bc.
        assert_eq!(encode(&spm, "abc", false), vec![1, 5]);
        // With the space prefix, "ab" (-3) joins before "▁a" (-5), then "▁"+"ab" does.
        assert_eq!(encode(&spm, "ab", true), vec![8]);
        // A space is ▁, and "▁a" is a piece.
        assert_eq!(encode(&spm, "b a", false), vec![2, 7]);
    }

    #[test]
    fn ties_join_leftmost_and_unknown_characters_fall_back_to_bytes() {
        let mut pieces = vec![("<unk>", 0.0), ("a", -1.0), ("aa", -2.0)];
        let names: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
        pieces.extend(names.iter().map(|n| (n.as_str(), 0.0)));
        let spm = vocabulary(&pieces);
        assert_eq!(encode(&spm, "aaa", false), vec![2, 1]);
        // é is two bytes, C3 A9, neither a piece itself.
        assert_eq!(encode(&spm, "é", false), vec![3 + 0xC3, 3 + 0xA9]);
        assert_eq!(SentencePiece::byte_of("<0xA9>"), Some(0xA9));
        assert_eq!(SentencePiece::byte_of("<0xA>"), None);
        assert_eq!(SentencePiece::piece_bytes("▁the"), b" the");
        // Without byte pieces, an unknown character is one <unk>.
        let bare = vocabulary(&[("<unk>", 0.0), ("a", -1.0)]);
        assert_eq!(encode(&bare, "aé", false), vec![1, 0]);
    }
}
