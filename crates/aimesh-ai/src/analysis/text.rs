//! Plain-text helpers of the analyses: sentence splitting, words, stopwords, candidate key
//! phrases, and maximal marginal relevance selection.

use std::collections::HashMap;

use crate::embed::dot;

/// Abbreviations whose period does not end a sentence (lowercase, without the period).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "inc", "ltd",
    "co", "corp", "no", "fig", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
    "oct", "nov", "dec", "approx", "dept", "est", "gen", "gov", "mt", "u.s", "u.k",
];

/// Splits text into sentences: at `.`, `!` or `?` (possibly repeated, possibly followed by
/// closing quotes or brackets) before whitespace and a capital letter, digit or opening
/// quote, except after common abbreviations and initials; and always at blank lines. Single
/// line breaks inside a paragraph count as spaces. Sentences come back trimmed, none empty.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for paragraph in paragraphs(text) {
        let chars: Vec<char> = paragraph.chars().collect();
        let mut start = 0;
        let mut i = 0;
        while i < chars.len() {
            if matches!(chars[i], '.' | '!' | '?') {
                let mut end = i + 1;
                while end < chars.len()
                    && matches!(
                        chars[end],
                        '.' | '!' | '?' | '"' | '\'' | ')' | ']' | '”' | '’'
                    )
                {
                    end += 1;
                }
                let next = chars[end..].iter().position(|c| !c.is_whitespace());
                let breaks = match next {
                    None => true,
                    Some(0) => false,
                    Some(gap) => {
                        let c = chars[end + gap];
                        (c.is_uppercase() || c.is_ascii_digit() || matches!(c, '"' | '“' | '('))
                            && !(chars[i] == '.' && ends_with_abbreviation(&chars[start..i]))
                    }
                };
                if breaks {
                    push_sentence(&mut out, &chars[start..end]);
                    start = end;
                }
                i = end;
            } else {
                i += 1;
            }
        }
        push_sentence(&mut out, &chars[start..]);
    }
    out
}

/// Paragraphs: text between blank lines, with their line breaks made spaces.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(line.trim());
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn push_sentence(out: &mut Vec<String>, chars: &[char]) {
    let sentence: String = chars.iter().collect();
    let sentence = sentence.split_whitespace().collect::<Vec<_>>().join(" ");
    if sentence.chars().any(char::is_alphanumeric) {
        out.push(sentence);
    }
}

/// Whether the text before a period ends with an abbreviation or an initial ("J.").
fn ends_with_abbreviation(before: &[char]) -> bool {
    let word: String = before
        .iter()
        .rev()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '(' | '"' | '“'))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let word = word.to_lowercase();
    let single_letter = word.chars().count() == 1 && word.chars().all(char::is_alphabetic);
    single_letter || ABBREVIATIONS.contains(&word.as_str())
}

/// The words of `text` in order, as written: runs of letters and digits, keeping inner
/// apostrophes and hyphens ("don't", "state-of-the-art").
pub fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let bytes: Vec<(usize, char)> = text.char_indices().collect();
    for (n, &(i, c)) in bytes.iter().enumerate() {
        let inner_joiner = matches!(c, '\'' | '’' | '-')
            && start.is_some()
            && bytes
                .get(n + 1)
                .is_some_and(|(_, next)| next.is_alphanumeric());
        if c.is_alphanumeric() || inner_joiner {
            if start.is_none() {
                start = Some(i);
            }
        } else if let Some(s) = start.take() {
            out.push(&text[s..i]);
        }
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

/// Common English function words, skipped as key phrases.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "aren't",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "cannot",
    "could",
    "couldn't",
    "did",
    "didn't",
    "do",
    "does",
    "doesn't",
    "doing",
    "don't",
    "down",
    "during",
    "each",
    "either",
    "else",
    "even",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "get",
    "gets",
    "got",
    "had",
    "hadn't",
    "has",
    "hasn't",
    "have",
    "haven't",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "i",
    "if",
    "in",
    "into",
    "is",
    "isn't",
    "it",
    "it's",
    "its",
    "itself",
    "just",
    "least",
    "less",
    "let",
    "like",
    "made",
    "make",
    "makes",
    "many",
    "may",
    "me",
    "might",
    "more",
    "most",
    "much",
    "must",
    "my",
    "myself",
    "neither",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "often",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "others",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "per",
    "quite",
    "rather",
    "really",
    "said",
    "same",
    "say",
    "says",
    "she",
    "should",
    "shouldn't",
    "since",
    "so",
    "some",
    "such",
    "than",
    "that",
    "that's",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "there's",
    "these",
    "they",
    "this",
    "those",
    "though",
    "through",
    "thus",
    "to",
    "too",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "used",
    "using",
    "very",
    "via",
    "was",
    "wasn't",
    "we",
    "well",
    "were",
    "weren't",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "won't",
    "would",
    "wouldn't",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "new",
    "two",
    "three",
    "first",
    "second",
    "year",
    "years",
    "day",
    "days",
    "time",
    "way",
    "thing",
    "things",
    "lot",
    "lots",
    "able",
    "across",
    "along",
    "already",
    "although",
    "among",
    "around",
    "back",
    "become",
    "becomes",
    "came",
    "come",
    "comes",
    "done",
    "enough",
    "far",
    "go",
    "goes",
    "going",
    "gone",
    "know",
    "known",
    "last",
    "later",
    "likely",
    "looks",
    "mostly",
    "near",
    "nearly",
    "next",
    "onto",
    "perhaps",
    "put",
    "see",
    "seen",
    "seem",
    "seems",
    "several",
    "still",
    "take",
    "takes",
    "took",
    "toward",
    "towards",
    "unless",
    "whereas",
    "whatever",
    "whenever",
    "wherever",
    "whole",
    "yes",
];

/// Whether `word` (any case) is a stopword.
pub fn is_stopword(word: &str) -> bool {
    let lower = word.to_lowercase().replace('’', "'");
    STOPWORDS.contains(&lower.as_str())
}

/// Candidate key phrases of `text`: runs of one to `max_words` consecutive words inside a
/// sentence, not across punctuation, containing no stopword, no word shorter than two characters and not only
/// digits, lowercased, with how often each occurs, in order of first occurrence. At most
/// `limit` are kept, the most frequent first (ties by first occurrence), returned in that
/// order.
pub fn candidate_phrases(text: &str, max_words: usize, limit: usize) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
    let mut next_seen = 0;
    let sentences = sentences(text);
    // Phrases do not cross punctuation inside a sentence either.
    let fragments = sentences.iter().flat_map(|sentence| {
        sentence.split([',', ';', ':', '(', ')', '[', ']', '"', '“', '”', '—', '–'])
    });
    for fragment in fragments {
        // Split the fragment into runs of content words.
        let mut run: Vec<String> = Vec::new();
        let mut runs = Vec::new();
        for word in words(fragment) {
            let usable = word.chars().count() >= 2
                && !word.chars().all(|c| c.is_ascii_digit())
                && !is_stopword(word);
            if usable {
                run.push(word.to_lowercase());
            } else if !run.is_empty() {
                runs.push(std::mem::take(&mut run));
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        for run in runs {
            for n in 1..=max_words.max(1) {
                for gram in run.windows(n) {
                    let entry = counts.entry(gram.join(" ")).or_insert_with(|| {
                        next_seen += 1;
                        (0, next_seen)
                    });
                    entry.0 += 1;
                }
            }
        }
    }
    let mut ranked: Vec<(String, usize, usize)> = counts
        .into_iter()
        .map(|(phrase, (count, seen))| (phrase, count, seen))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    ranked.truncate(limit);
    ranked
        .into_iter()
        .map(|(phrase, count, _)| (phrase, count))
        .collect()
}

/// Maximal marginal relevance: picks up to `k` items, each time the one maximising
/// `lambda × relevance − (1 − lambda) × its highest similarity to those already picked`
/// (similarity = dot product of the unit-length `vectors`). `lambda = 1` ranks by relevance
/// alone. Returns indices in the order picked.
pub fn mmr(relevance: &[f32], vectors: &[Vec<f32>], k: usize, lambda: f32) -> Vec<usize> {
    let mut picked: Vec<usize> = Vec::new();
    let mut redundancy = vec![f32::NEG_INFINITY; relevance.len()];
    while picked.len() < k.min(relevance.len()) {
        let best = (0..relevance.len())
            .filter(|i| !picked.contains(i))
            .map(|i| {
                let penalty = if picked.is_empty() {
                    0.0
                } else {
                    redundancy[i]
                };
                (i, lambda * relevance[i] - (1.0 - lambda) * penalty)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
        let Some((best, _)) = best else { break };
        picked.push(best);
        for (i, r) in redundancy.iter_mut().enumerate() {
            *r = r.max(dot(&vectors[i], &vectors[best]));
        }
    }
    picked
}

/// Softmax of `values × scale`.
pub fn softmax(values: &[f32], scale: f32) -> Vec<f32> {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = values.iter().map(|v| ((v - max) * scale).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_terminators_but_not_abbreviations() {
        let text = "Dr. Smith arrived at 5 p.m. on Monday. He said: \"Hello!\" Then he left?\n\
                    Yes, e.g. twice.\n\nA new paragraph without a period\nSecond line. 3 cats sat.";
        assert_eq!(
            sentences(text),
            vec![
                "Dr. Smith arrived at 5 p.m. on Monday.",
                "He said: \"Hello!\"",
                "Then he left?",
                "Yes, e.g. twice.",
                "A new paragraph without a period Second line.",
                "3 cats sat.",
            ]
        );
        assert!(sentences("  \n ... \n").is_empty());
        assert_eq!(
            sentences("J. R. R. Tolkien wrote books."),
            vec!["J. R. R. Tolkien wrote books."]
        );
    }

    #[test]
    fn words_keep_inner_apostrophes_and_hyphens() {
        assert_eq!(
            words("Don't stop state-of-the-art work -- 'now' 42!"),
            vec!["Don't", "stop", "state-of-the-art", "work", "now", "42"]
        );
    }

    #[test]
    fn candidate_phrases_skip_stopwords_and_count() {
        let phrases = candidate_phrases(
            "Neural networks learn features. The neural networks, trained on data, win.",
            3,
            100,
        );
        let get = |p: &str| phrases.iter().find(|(q, _)| q == p).map(|(_, n)| *n);
        assert_eq!(get("neural networks"), Some(2));
        assert_eq!(get("neural networks learn"), Some(1));
        assert_eq!(get("learn features"), Some(1));
        assert_eq!(get("the neural"), None);
        assert_eq!(get("networks are"), None);
        assert_eq!(get("networks trained"), None);
        assert_eq!(get("trained"), Some(1));
        // Most frequent first.
        assert!(phrases[0].1 == 2, "{phrases:?}");
        assert_eq!(candidate_phrases("a b c", 3, 10), vec![]);
        assert_eq!(
            candidate_phrases("one two three alpha beta gamma", 3, 2).len(),
            2
        );
    }

    #[test]
    fn mmr_trades_relevance_for_diversity() {
        // Items 0 and 1 are near duplicates; 2 is different and a little less relevant.
        let vectors = vec![vec![1.0, 0.0], vec![0.99, 0.141], vec![0.0, 1.0]];
        let relevance = [0.9, 0.89, 0.7];
        assert_eq!(mmr(&relevance, &vectors, 2, 1.0), vec![0, 1]);
        assert_eq!(mmr(&relevance, &vectors, 2, 0.5), vec![0, 2]);
        assert_eq!(mmr(&relevance, &vectors, 5, 0.5).len(), 3);
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[0.1, 0.5, 0.2], 10.0);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[2] && p[2] > p[0]);
    }
}
