//! Study material built from a text's own sentences and sentence embeddings; no text is
//! invented, every output is a sentence of the text or a phrase of it put in a question form:
//!
//! - [`Analyzer::study_notes`] (`<embedder>-notes`): per section (the text's own headings, or
//!   groups of paragraphs) its key points — the sentences nearest the section's centroid,
//!   with maximal marginal relevance — and key terms, plus an overview of the whole text.
//! - [`Analyzer::questions`] (`<embedder>-extractive-qa`): questions a reader would ask, each
//!   answered by a quoted sentence: "What is X?" from a defining sentence ("X is a ..."),
//!   "When was X built?" from a passive one with a date, "What happened in 1969?" from a
//!   dated one, else "What does the text say about <key phrase>?"; follow-ups ask about the
//!   key phrases of the answer that other sentences explain.
//! - [`Analyzer::quiz`] (`<embedder>-cloze`): cloze questions on the most useful sentences,
//!   the blank being a key phrase, a name or a number of the sentence; multiple-choice
//!   distractors are other phrases of the text of the same shape (a name for a name, a number
//!   for a number, a phrase of as many words), ranked by embedding similarity to the answer;
//!   a false statement swaps the answer for the nearest distractor.
//! - [`Analyzer::grade_short_answer`] (`<embedder>-grader`): an answer is right when it means
//!   the same as the reference (embedding similarity) or names its key terms.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{
    Analyzer, MAX_CANDIDATES, MAX_SENTENCES, check_text,
    text::{self, candidate_phrases, is_stopword, mmr},
};
use crate::{
    embed::{centroid, dot},
    engine::EngineError,
};

/// Most sections study notes have; more headings than this are merged into their neighbours.
pub const MAX_SECTIONS: usize = 24;
/// Sections made of paragraphs when the text has no headings.
const PARAGRAPH_SECTIONS: usize = 6;
/// Most words a heading line has.
const HEADING_MAX_WORDS: usize = 12;
/// Key points per section.
const KEY_POINTS: usize = 3;
/// Key terms per section.
const SECTION_TERMS: usize = 4;
/// Key terms of the whole text.
const DOCUMENT_TERMS: usize = 8;
/// Sentences of the overview.
const OVERVIEW_SENTENCES: usize = 3;
/// Candidate phrases per section embedded for its key terms.
const SECTION_CANDIDATES: usize = 60;
/// Key phrases considered when asking questions.
const QUESTION_PHRASES: usize = 60;
/// Fewest and most words of a sentence a quiz question is made from.
const QUIZ_MIN_WORDS: usize = 6;
const QUIZ_MAX_WORDS: usize = 50;
/// Similarity above which a short answer means the same as the reference.
pub const SHORT_ANSWER_SIMILARITY: f32 = 0.8;
/// Similarity above which a short answer naming half the key terms is right.
pub const SHORT_ANSWER_PARTIAL_SIMILARITY: f32 = 0.5;

/// Pronouns and determiners a defined subject cannot start with.
const VAGUE_SUBJECTS: &[&str] = &[
    "it", "this", "that", "there", "these", "those", "they", "he", "she", "we", "i", "you", "such",
    "its", "their", "his", "her", "here", "which", "who", "what", "one", "some", "many", "most",
    "each", "both", "all", "our", "by", "in", "on", "at", "for", "from", "with", "during", "after",
    "before", "since", "until", "of", "to", "as", "because", "when", "while", "where", "although",
    "if", "once", "unlike", "like", "within", "without",
];
/// Words a noun-phrase predicate starts with ("X is a ...", "X was the ...").
const DEFINING_STARTS: &[&str] = &[
    "a",
    "an",
    "the",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "among",
    "about",
    "approximately",
    "roughly",
    "nearly",
    "almost",
];
/// Irregular past participles of passive sentences ("was built in ...").
const PARTICIPLES: &[&str] = &[
    "built", "made", "born", "found", "written", "given", "seen", "taken", "known", "done", "held",
    "begun", "won", "led", "sold", "brought", "thought", "taught", "caught", "bought", "hidden",
    "driven", "grown", "shown", "drawn", "chosen", "frozen", "spoken", "broken", "stolen", "sent",
    "spent", "lost", "kept", "left", "met", "paid", "set", "put", "run", "cut", "hit", "laid",
    "told", "sold", "shot", "struck", "thrown", "worn", "torn", "sworn", "sung",
];

/// A part of a text: under one of its headings, or a group of paragraphs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// The text's heading of the section, if it has one.
    pub heading: Option<String>,
    /// The section's prose, paragraphs separated by blank lines.
    pub text: String,
}

/// Study notes of a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyNotes {
    /// The sentences that best represent the whole text, in its order.
    pub overview: Vec<String>,
    /// The sections, in order.
    pub sections: Vec<NotesSection>,
    /// Key terms of the whole text, best first.
    pub key_terms: Vec<String>,
    /// The engine that wrote them, e.g. `minilm-notes`.
    pub engine: String,
}

/// A section of [`StudyNotes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotesSection {
    /// The text's heading, or the section's leading key term.
    pub heading: String,
    /// Its key points: sentences of the section, in order.
    pub key_points: Vec<String>,
    /// Its key terms, best first.
    pub key_terms: Vec<String>,
}

/// A question with its answer quoted from the text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaPair {
    /// The question.
    pub question: String,
    /// The answer, taken from the passage.
    pub answer: String,
    /// The sentence that grounds the answer.
    pub passage: String,
    /// Its position among the text's sentences ([`prose_sentences`]), from 0.
    pub sentence_index: usize,
    /// Questions to ask next, each answered by another sentence of the text.
    pub follow_ups: Vec<String>,
}

/// Questions and answers on a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaSet {
    /// The pairs, most central first.
    pub pairs: Vec<QaPair>,
    /// The engine, e.g. `minilm-extractive-qa`.
    pub engine: String,
}

/// The kind of a quiz question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum QuestionKind {
    /// Four options, one right.
    MultipleChoice,
    /// A statement, true or false.
    TrueFalse,
    /// A free-text answer.
    ShortAnswer,
}

/// How hard a quiz is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Level {
    /// The most central sentences; distractors less like the answer.
    Easy,
    /// Central and varied sentences; distractors close to the answer.
    Medium,
    /// Sentences further from the gist; the closest distractors.
    Hard,
}

/// A generated quiz question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuizQuestion {
    /// Its kind.
    pub kind: QuestionKind,
    /// The question.
    pub prompt: String,
    /// The options (multiple choice: four; true/false: "True", "False").
    pub options: Vec<String>,
    /// The right answer (an option, or the reference of a short answer).
    pub answer: String,
    /// The sentence it comes from.
    pub sentence: String,
    /// That sentence's position among the text's sentences ([`prose_sentences`]), from 0.
    pub sentence_index: usize,
}

/// A generated quiz.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuizDraft {
    /// The questions.
    pub questions: Vec<QuizQuestion>,
    /// The engine, e.g. `minilm-cloze`.
    pub engine: String,
}

/// The grading of a short answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ShortGrade {
    /// Whether the answer is right.
    pub correct: bool,
    /// Cosine similarity of the answer to the reference.
    pub similarity: f32,
    /// Share of the reference's key terms the answer names, 0 to 1.
    pub overlap: f32,
    /// Why it was graded so.
    pub feedback: String,
}

/// Splits a text into sections. A heading is a line of at most twelve words that does not
/// end like a sentence (Markdown `#` marks are dropped), alone in its paragraph or first in
/// it. A text without headings is cut into at most six groups of paragraphs. Sections
/// without prose are dropped; more than [`MAX_SECTIONS`] are merged into their neighbours.
pub fn sections(text: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    let mut headings = 0;
    let mut current = Section {
        heading: None,
        text: String::new(),
    };
    for paragraph in paragraphs(text) {
        let mut lines = paragraph.iter().map(|l| l.trim()).peekable();
        // A short first line is a heading when it stands alone, is marked, or is followed by
        // a line that starts a sentence and does not end like a line wrapped mid-sentence.
        let next_starts_sentence = paragraph
            .get(1)
            .and_then(|l| l.trim().chars().next())
            .is_none_or(|c| c.is_uppercase() || c.is_ascii_digit());
        if let Some(first) = lines.peek().copied()
            && let Some(heading) = heading(first)
            && (paragraph.len() == 1
                || first.starts_with('#')
                || (next_starts_sentence
                    && !text::words(first).last().is_some_and(|w| is_stopword(w))))
        {
            lines.next();
            if !current.text.trim().is_empty() || current.heading.is_some() {
                sections.push(std::mem::take(&mut current));
            }
            current.heading = Some(heading);
            headings += 1;
        }
        let body: Vec<&str> = lines.collect();
        if !body.is_empty() {
            if !current.text.is_empty() {
                current.text.push_str("\n\n");
            }
            current.text.push_str(&body.join("\n"));
        }
    }
    sections.push(current);
    sections.retain(|s| !text::sentences(&s.text).is_empty());
    if headings == 0 {
        // One run of paragraphs: cut it into groups.
        let paragraphs: Vec<String> = sections
            .iter()
            .flat_map(|s| s.text.split("\n\n").map(str::to_owned).collect::<Vec<_>>())
            .collect();
        let size = paragraphs.len().div_ceil(PARAGRAPH_SECTIONS).max(1);
        return paragraphs
            .chunks(size)
            .map(|group| Section {
                heading: None,
                text: group.join("\n\n"),
            })
            .collect();
    }
    while sections.len() > MAX_SECTIONS {
        // Merge the shortest section into the one before it (or after, for the first).
        let (shortest, _) = sections
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.text.len())
            .unwrap_or((0, &sections[0]));
        let merged = sections.remove(shortest);
        let into = shortest.saturating_sub(1).min(sections.len() - 1);
        let target = &mut sections[into];
        if shortest == 0 {
            target.text = format!("{}\n\n{}", merged.text, target.text);
            target.heading = merged.heading.or(target.heading.take());
        } else {
            target.text = format!("{}\n\n{}", target.text, merged.text);
        }
    }
    sections
}

/// The text's prose: its sections without their headings, separated by blank lines.
pub fn prose(text: &str) -> String {
    sections(text)
        .into_iter()
        .map(|s| s.text)
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The text's sentences without its headings, in order: the sentences every index of this
/// module counts.
pub fn prose_sentences(text: &str) -> Vec<String> {
    sections(text)
        .iter()
        .flat_map(|s| text::sentences(&s.text))
        .collect()
}

/// Paragraphs as lists of lines.
fn paragraphs(text: &str) -> Vec<Vec<&str>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The heading a line is, if it is one.
fn heading(line: &str) -> Option<String> {
    let marked = line.starts_with('#');
    let line = line.trim_start_matches('#').trim();
    let words = text::words(line).len();
    if words == 0 || words > HEADING_MAX_WORDS {
        return None;
    }
    let last = line.chars().last()?;
    if matches!(last, '.' | '!' | '?' | ',' | ';' | ':' | '"' | '”') && !marked {
        return None;
    }
    let first = line.chars().next()?;
    if !(marked || first.is_uppercase() || first.is_ascii_digit()) {
        return None;
    }
    Some(line.to_owned())
}

/// Whether a phrase reads as a noun phrase as far as its words tell: no past-tense verb or
/// participle ("engineers raised", "called chloroplasts" are not).
fn noun_like(phrase: &str) -> bool {
    text::words(phrase).iter().all(|w| {
        let w = w.to_lowercase();
        let past = w.len() > 3 && w.ends_with("ed");
        !(past || PARTICIPLES.contains(&w.as_str()))
    })
}

/// Capitalises the first letter.
fn capitalize(phrase: &str) -> String {
    let mut chars = phrase.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Byte offset of `word`, a slice of `sentence`, in it.
fn offset_in(sentence: &str, word: &str) -> usize {
    (word.as_ptr() as usize).saturating_sub(sentence.as_ptr() as usize)
}

/// Finds `phrase` (lowercase) in `sentence` at word boundaries, ignoring case; returns the
/// byte range.
fn find_phrase(sentence: &str, phrase: &str) -> Option<(usize, usize)> {
    let lower = sentence.to_lowercase();
    if lower.len() != sentence.len() {
        // Case folding changed byte lengths: offsets would not carry over.
        return None;
    }
    let mut from = 0;
    while let Some(at) = lower[from..].find(phrase) {
        let start = from + at;
        let end = start + phrase.len();
        let before = lower[..start].chars().next_back();
        let after = lower[end..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric() && c != '-');
        if boundary(before) && boundary(after) {
            return Some((start, end));
        }
        from = start + phrase.len().max(1);
        if from >= lower.len() {
            break;
        }
    }
    None
}

/// A stable hash (FNV-1a) for deterministic choices.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A question built from one sentence.
#[derive(Debug, Clone, PartialEq)]
struct Asked {
    question: String,
    answer: String,
    /// What the question is about, lowercase.
    subject: String,
}

/// The question a sentence answers, when its form gives one: a definition, a passive with a
/// date or an agent, or a date.
fn ask(sentence: &str) -> Option<Asked> {
    let words = text::words(sentence);
    let body = sentence.trim_end_matches(['.', '!', '?', ' ']);
    if let Some(c) = (1..words.len().min(9)).find(|&i| {
        matches!(
            words[i].to_lowercase().as_str(),
            "is" | "are" | "was" | "were"
        )
    }) {
        let subject_words = &words[..c];
        let vague = VAGUE_SUBJECTS.contains(&subject_words[0].to_lowercase().as_str())
            || subject_words
                .iter()
                .any(|w| matches!(w.to_lowercase().as_str(), "which" | "who" | "that"));
        let copula = words[c].to_lowercase();
        let cop_end = offset_in(sentence, words[c]) + words[c].len();
        let subject = sentence[..offset_in(sentence, words[c])]
            .trim()
            .trim_end_matches(',')
            .to_owned();
        let predicate = body.get(cop_end..).unwrap_or_default().trim().to_owned();
        let subject_ok = !vague
            && subject_words.len() <= 7
            && !subject.contains([',', ';', ':', '('])
            && !predicate.is_empty();
        if subject_ok {
            let first = subject_words[0];
            let subject_q = if is_stopword(first) {
                let mut chars = subject.chars();
                chars
                    .next()
                    .map(|c| c.to_lowercase().chain(chars).collect())
                    .unwrap_or_default()
            } else {
                subject.clone()
            };
            let pred_words = text::words(&predicate);
            let head = pred_words
                .first()
                .map(|w| w.to_lowercase())
                .unwrap_or_default();
            if DEFINING_STARTS.contains(&head.as_str())
                || head.chars().next().is_some_and(|c| c.is_ascii_digit())
            {
                return Some(Asked {
                    question: format!("What {copula} {subject_q}?"),
                    answer: capitalize(&predicate),
                    subject: subject.to_lowercase(),
                });
            }
            let passive =
                (head.len() > 3 && head.ends_with("ed")) || PARTICIPLES.contains(&head.as_str());
            // Offsets found in the lowercase copy hold only if case folding kept the lengths.
            if passive && predicate.to_lowercase().len() == predicate.len() {
                // "X was built in 1889 by Y": ask when, or by whom.
                let lower = predicate.to_lowercase();
                if let Some(at) = lower.find(" in ").filter(|&at| {
                    text::words(&predicate[at..])
                        .get(1)
                        .is_some_and(|w| w.chars().any(|c| c.is_ascii_digit()))
                }) {
                    return Some(Asked {
                        question: format!("When {copula} {subject_q} {}?", predicate[..at].trim()),
                        answer: capitalize(predicate[at..].trim()),
                        subject: subject.to_lowercase(),
                    });
                }
                if let Some(at) = lower.find(" by ") {
                    let agent = predicate[at + 4..].trim();
                    let named = agent
                        .split_whitespace()
                        .next()
                        .is_some_and(|w| w.starts_with(char::is_uppercase) && !is_stopword(w));
                    let asked = if named { "By whom" } else { "By what" };
                    return Some(Asked {
                        question: format!(
                            "{asked} {copula} {subject_q} {}?",
                            predicate[..at].trim()
                        ),
                        answer: capitalize(predicate[at + 4..].trim()),
                        subject: subject.to_lowercase(),
                    });
                }
            }
        }
    }
    let year = words
        .iter()
        .find(|w| w.len() == 4 && w.parse::<u32>().is_ok_and(|y| (1000..=2100).contains(&y)))?;
    Some(Asked {
        question: format!("What happened in {year}?"),
        answer: capitalize(body),
        subject: (*year).to_owned(),
    })
}

/// A phrase that may be blanked out of a sentence.
#[derive(Debug, Clone)]
struct Span {
    /// Byte range in the sentence.
    start: usize,
    end: usize,
    /// The phrase, lowercase: its key in the pool.
    key: String,
}

/// The shape of a phrase: distractors have the answer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Shape {
    /// Has a digit.
    Number,
    /// Every word capitalised, and never written in lowercase in the text.
    Name,
    /// Anything else.
    Common,
}

/// A phrase of the text that can be an answer or a distractor.
#[derive(Debug, Clone)]
struct PoolPhrase {
    /// As first written in the text.
    display: String,
    shape: Shape,
    words: usize,
    relevance: f32,
    vector: Vec<f32>,
}

impl Analyzer {
    /// Writes study notes of `text`: an overview, key points and key terms per section.
    pub async fn study_notes(&self, text: &str) -> Result<StudyNotes, EngineError> {
        check_text(text)?;
        let sections = sections(text);
        let mut section_sentences: Vec<Vec<String>> =
            sections.iter().map(|s| text::sentences(&s.text)).collect();
        let mut all: Vec<(usize, String)> = Vec::new();
        for (i, sentences) in section_sentences.iter_mut().enumerate() {
            let room = MAX_SENTENCES.saturating_sub(all.len());
            sentences.truncate(room);
            all.extend(sentences.iter().map(|s| (i, s.clone())));
        }
        if all.is_empty() {
            return Err(EngineError::invalid("text", "has no sentence"));
        }
        let vectors = self
            .embed_many(all.iter().map(|(_, s)| s.clone()).collect())
            .await?;
        let center = centroid(&vectors).unwrap_or_default();
        let relevance: Vec<f32> = vectors.iter().map(|v| dot(v, &center)).collect();
        let mut overview = mmr(&relevance, &vectors, OVERVIEW_SENTENCES, 0.7);
        overview.sort_unstable();

        // Every section's candidate phrases, embedded in one go.
        let candidates: Vec<Vec<String>> = sections
            .iter()
            .map(|s| {
                candidate_phrases(&s.text, 3, SECTION_CANDIDATES)
                    .into_iter()
                    .map(|(p, _)| p)
                    .collect()
            })
            .collect();
        let flat: Vec<String> = candidates.iter().flatten().cloned().collect();
        let phrase_vectors = self.embed_many(flat).await?;
        let mut next_phrase = 0;
        let mut notes_sections = Vec::with_capacity(sections.len());
        for (i, section) in sections.iter().enumerate() {
            let members: Vec<usize> = (0..all.len()).filter(|&k| all[k].0 == i).collect();
            let phrases = &candidates[i];
            let pvectors = &phrase_vectors[next_phrase..next_phrase + phrases.len()];
            next_phrase += phrases.len();
            if members.is_empty() {
                continue;
            }
            let member_vectors: Vec<Vec<f32>> =
                members.iter().map(|&k| vectors[k].clone()).collect();
            let section_center = centroid(&member_vectors).unwrap_or_default();
            let member_relevance: Vec<f32> = member_vectors
                .iter()
                .map(|v| dot(v, &section_center))
                .collect();
            let mut points = mmr(&member_relevance, &member_vectors, KEY_POINTS, 0.7);
            points.sort_unstable();
            let phrase_relevance: Vec<f32> =
                pvectors.iter().map(|v| dot(v, &section_center)).collect();
            let terms: Vec<String> = mmr(&phrase_relevance, pvectors, SECTION_TERMS, 0.6)
                .into_iter()
                .map(|k| phrases[k].clone())
                .collect();
            let heading = section
                .heading
                .clone()
                .or_else(|| terms.first().map(|t| capitalize(t)))
                .unwrap_or_else(|| format!("Part {}", i + 1));
            notes_sections.push(NotesSection {
                heading,
                key_points: points
                    .into_iter()
                    .map(|k| all[members[k]].1.clone())
                    .collect(),
                key_terms: terms,
            });
        }
        let body: String = sections
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join("\n\n");
        let key_terms = self
            .keywords(&body, DOCUMENT_TERMS)
            .await?
            .keywords
            .into_iter()
            .map(|k| k.phrase)
            .collect();
        Ok(StudyNotes {
            overview: overview.into_iter().map(|k| all[k].1.clone()).collect(),
            sections: notes_sections,
            key_terms,
            engine: format!("{}-notes", self.embedder.name()),
        })
    }

    /// Asks up to `max_pairs` questions a reader would ask of `text`, each answered by a
    /// quoted sentence, with follow-ups (see the module docs).
    pub async fn questions(&self, text: &str, max_pairs: usize) -> Result<QaSet, EngineError> {
        check_text(text)?;
        if max_pairs == 0 {
            return Err(EngineError::invalid("max_pairs", "must be at least 1"));
        }
        let mut sentences = prose_sentences(text);
        sentences.truncate(MAX_SENTENCES);
        if sentences.is_empty() {
            return Err(EngineError::invalid("text", "has no sentence"));
        }
        let vectors = self.embed_many(sentences.clone()).await?;
        let center = centroid(&vectors).unwrap_or_default();
        let relevance: Vec<f32> = vectors.iter().map(|v| dot(v, &center)).collect();
        // Subjects of questions: phrases of one or two words without a past-tense verb.
        let phrases: Vec<(String, f32)> = self
            .key_phrases(&sentences.join(" "), &center)
            .await?
            .into_iter()
            .filter(|(p, _)| text::words(p).len() <= 2 && noun_like(p))
            .collect();
        let order = mmr(&relevance, &vectors, sentences.len(), 0.7);
        let asked: Vec<Option<Asked>> = sentences
            .iter()
            .enumerate()
            .map(|(i, s)| {
                ask(s).or_else(|| {
                    // The sentence's most relevant key phrase.
                    phrases
                        .iter()
                        .find_map(|(p, _)| find_phrase(s, p).map(|at| (p, at)))
                        .map(|(p, (start, end))| Asked {
                            question: format!("What does the text say about {}?", &s[start..end]),
                            answer: s.clone(),
                            subject: p.clone(),
                        })
                        .filter(|_| text::words(&sentences[i]).len() >= 4)
                })
            })
            .collect();
        let mut pairs: Vec<QaPair> = Vec::new();
        let mut questions_seen: HashSet<String> = HashSet::new();
        let mut subjects_seen: HashSet<String> = HashSet::new();
        for &i in &order {
            if pairs.len() >= max_pairs {
                break;
            }
            let Some(asked) = &asked[i] else { continue };
            if !questions_seen.insert(asked.question.to_lowercase())
                || !subjects_seen.insert(asked.subject.clone())
            {
                continue;
            }
            pairs.push(QaPair {
                question: asked.question.clone(),
                answer: asked.answer.clone(),
                passage: sentences[i].clone(),
                sentence_index: i,
                follow_ups: Vec::new(),
            });
        }
        // Follow-ups: the answer's key phrases that another sentence explains.
        for pair in &mut pairs {
            let own = pair.sentence_index;
            let subject = asked[own]
                .as_ref()
                .map(|a| a.subject.clone())
                .unwrap_or_default();
            for (phrase, _) in &phrases {
                if pair.follow_ups.len() >= 2 {
                    break;
                }
                if subject.contains(phrase.as_str())
                    || phrase.contains(subject.as_str())
                    || find_phrase(&pair.passage, phrase).is_none()
                {
                    continue;
                }
                // The other sentence most central to the text that mentions the phrase.
                let other = (0..sentences.len())
                    .filter(|&j| j != own && find_phrase(&sentences[j], phrase).is_some())
                    .max_by(|&a, &b| relevance[a].total_cmp(&relevance[b]));
                let Some(other) = other else { continue };
                let question = match &asked[other] {
                    Some(a) if a.subject.contains(phrase.as_str()) => a.question.clone(),
                    _ => {
                        let written = find_phrase(&sentences[other], phrase)
                            .map_or(phrase.as_str(), |(start, end)| {
                                &sentences[other][start..end]
                            });
                        format!("What does the text say about {written}?")
                    }
                };
                if question != pair.question && !pair.follow_ups.contains(&question) {
                    pair.follow_ups.push(question);
                }
            }
        }
        Ok(QaSet {
            pairs,
            engine: format!("{}-extractive-qa", self.embedder.name()),
        })
    }

    /// The text's candidate phrases with their similarity to `center`, best first.
    async fn key_phrases(
        &self,
        text: &str,
        center: &[f32],
    ) -> Result<Vec<(String, f32)>, EngineError> {
        let candidates: Vec<String> = candidate_phrases(text, 3, MAX_CANDIDATES)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        let vectors = self.embed_many(candidates.clone()).await?;
        let mut scored: Vec<(String, f32)> = candidates
            .into_iter()
            .zip(vectors.iter().map(|v| dot(v, center)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(QUESTION_PHRASES);
        Ok(scored)
    }

    /// Writes up to `count` quiz questions on `text`, their kinds taken in turn from
    /// `kinds`, one per sentence and per answer (see the module docs). Fewer come back when
    /// the text has too few usable sentences.
    pub async fn quiz(
        &self,
        text: &str,
        count: usize,
        level: Level,
        kinds: &[QuestionKind],
    ) -> Result<QuizDraft, EngineError> {
        check_text(text)?;
        if count == 0 {
            return Err(EngineError::invalid("num_questions", "must be at least 1"));
        }
        if kinds.is_empty() {
            return Err(EngineError::invalid("quiz_type", "no kind of question"));
        }
        let mut sentences = prose_sentences(text);
        sentences.truncate(MAX_SENTENCES);
        if sentences.is_empty() {
            return Err(EngineError::invalid("text", "has no sentence"));
        }
        let vectors = self.embed_many(sentences.clone()).await?;
        let center = centroid(&vectors).unwrap_or_default();
        let relevance: Vec<f32> = vectors.iter().map(|v| dot(v, &center)).collect();
        let body = sentences.join(" ");

        // The pool: key phrases and numbers of the text, with their shapes.
        let mut spans: Vec<Vec<Span>> = vec![Vec::new(); sentences.len()];
        let mut first_written: HashMap<String, String> = HashMap::new();
        let candidates: Vec<String> = candidate_phrases(&body, 3, MAX_CANDIDATES)
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| noun_like(p))
            .collect();
        for (i, sentence) in sentences.iter().enumerate() {
            for phrase in &candidates {
                if let Some((start, end)) = find_phrase(sentence, phrase) {
                    first_written
                        .entry(phrase.clone())
                        .or_insert_with(|| sentence[start..end].to_owned());
                    spans[i].push(Span {
                        start,
                        end,
                        key: phrase.clone(),
                    });
                }
            }
            for word in text::words(sentence) {
                let start = offset_in(sentence, word);
                if word.chars().any(|c| c.is_ascii_digit())
                    && !part_of_number(sentence, start, start + word.len())
                {
                    let key = word.to_lowercase();
                    first_written
                        .entry(key.clone())
                        .or_insert_with(|| word.to_owned());
                    spans[i].push(Span {
                        start,
                        end: start + word.len(),
                        key,
                    });
                }
            }
        }
        let keys: Vec<String> = first_written.keys().cloned().collect();
        let key_vectors = self.embed_many(keys.clone()).await?;
        let pool: HashMap<String, PoolPhrase> = keys
            .into_iter()
            .zip(key_vectors)
            .map(|(key, vector)| {
                let display = first_written[&key].clone();
                let shape = if display.chars().any(|c| c.is_ascii_digit()) {
                    Shape::Number
                } else if text::words(&display)
                    .iter()
                    .all(|w| w.chars().next().is_some_and(char::is_uppercase))
                    && !written_lowercase(&body, &key)
                {
                    Shape::Name
                } else {
                    Shape::Common
                };
                let phrase = PoolPhrase {
                    words: text::words(&display).len(),
                    relevance: dot(&vector, &center),
                    display,
                    shape,
                    vector,
                };
                (key, phrase)
            })
            .collect();

        let order: Vec<usize> = match level {
            Level::Easy => {
                let mut order: Vec<usize> = (0..sentences.len()).collect();
                order.sort_by(|&a, &b| relevance[b].total_cmp(&relevance[a]));
                order
            }
            Level::Medium => mmr(&relevance, &vectors, sentences.len(), 0.7),
            Level::Hard => mmr(&relevance, &vectors, sentences.len(), 0.3),
        };
        let mut questions: Vec<QuizQuestion> = Vec::new();
        let mut used_answers: HashSet<String> = HashSet::new();
        let mut used_prompts: HashSet<String> = HashSet::new();
        for i in order {
            if questions.len() >= count {
                break;
            }
            let sentence = &sentences[i];
            let words = text::words(sentence).len();
            if !(QUIZ_MIN_WORDS..=QUIZ_MAX_WORDS).contains(&words) || sentence.ends_with('?') {
                continue;
            }
            let kind = kinds[questions.len() % kinds.len()];
            // The sentence's best blank: a relevant phrase, names and numbers first, longer
            // phrases before their parts.
            let mut options: Vec<&Span> = spans[i]
                .iter()
                .filter(|s| !used_answers.contains(&s.key))
                .filter(|s| text::words(&sentence[s.start..s.end]).len() * 2 <= words)
                .collect();
            options.sort_by(|a, b| {
                let score = |s: &Span| {
                    let p = &pool[&s.key];
                    p.relevance
                        + match p.shape {
                            Shape::Name | Shape::Number => 0.1,
                            Shape::Common => 0.0,
                        }
                        + 0.03 * p.words as f32
                };
                score(b).total_cmp(&score(a))
            });
            let made = options.iter().find_map(|span| {
                let answer = &pool[&span.key];
                let distractors = distractors(&pool, &span.key, answer, sentence, level);
                let written = &sentence[span.start..span.end];
                let blanked = format!("{}_____{}", &sentence[..span.start], &sentence[span.end..]);
                let question = match kind {
                    QuestionKind::MultipleChoice => {
                        if distractors.len() < 3 {
                            return None;
                        }
                        let mut options: Vec<String> = distractors[..3].to_vec();
                        let at = (stable_hash(sentence) % 4) as usize;
                        options.insert(at, written.to_owned());
                        QuizQuestion {
                            kind,
                            prompt: format!("Fill in the blank: {blanked}"),
                            options,
                            answer: written.to_owned(),
                            sentence: sentence.clone(),
                            sentence_index: i,
                        }
                    }
                    QuestionKind::TrueFalse => {
                        let truthful = stable_hash(sentence).is_multiple_of(2);
                        let statement = if truthful {
                            sentence.clone()
                        } else {
                            let swap = distractors.first()?;
                            format!("{}{swap}{}", &sentence[..span.start], &sentence[span.end..])
                        };
                        QuizQuestion {
                            kind,
                            prompt: format!("True or false: {statement}"),
                            options: vec!["True".into(), "False".into()],
                            answer: if truthful { "True" } else { "False" }.into(),
                            sentence: sentence.clone(),
                            sentence_index: i,
                        }
                    }
                    QuestionKind::ShortAnswer => match ask(sentence) {
                        Some(asked) if !asked.question.starts_with("What happened") => {
                            QuizQuestion {
                                kind,
                                prompt: asked.question,
                                options: Vec::new(),
                                answer: asked.answer,
                                sentence: sentence.clone(),
                                sentence_index: i,
                            }
                        }
                        _ => QuizQuestion {
                            kind,
                            prompt: format!("Fill in the blank: {blanked}"),
                            options: Vec::new(),
                            answer: written.to_owned(),
                            sentence: sentence.clone(),
                            sentence_index: i,
                        },
                    },
                };
                Some((span.key.clone(), question))
            });
            let Some((key, question)) = made else {
                continue;
            };
            if !used_prompts.insert(question.prompt.to_lowercase()) {
                continue;
            }
            used_answers.insert(key);
            questions.push(question);
        }
        Ok(QuizDraft {
            questions,
            engine: format!("{}-cloze", self.embedder.name()),
        })
    }

    /// Grades a free-text `answer` against the `reference`: right when it means the same
    /// (similarity at least [`SHORT_ANSWER_SIMILARITY`]), names every key term of the
    /// reference, or names half of them at similarity [`SHORT_ANSWER_PARTIAL_SIMILARITY`].
    pub async fn grade_short_answer(
        &self,
        answer: &str,
        reference: &str,
    ) -> Result<ShortGrade, EngineError> {
        let answer = answer.trim();
        if answer.is_empty() {
            return Ok(ShortGrade {
                correct: false,
                similarity: 0.0,
                overlap: 0.0,
                feedback: format!("no answer given; the answer is \"{reference}\""),
            });
        }
        let vectors = self
            .embed_many(vec![answer.to_owned(), reference.to_owned()])
            .await?;
        let similarity = match vectors.as_slice() {
            [a, b] => dot(a, b),
            _ => {
                return Err(EngineError::failed(
                    self.embedder.name(),
                    "no embedding returned",
                ));
            }
        };
        let terms = key_terms(reference);
        let given = key_terms(answer);
        let named: Vec<&String> = terms
            .iter()
            .filter(|t| given.iter().any(|g| same_term(g, t)))
            .collect();
        let overlap = if terms.is_empty() {
            0.0
        } else {
            named.len() as f32 / terms.len() as f32
        };
        let correct = similarity >= SHORT_ANSWER_SIMILARITY
            || (!terms.is_empty() && named.len() == terms.len())
            || (overlap >= 0.5 && similarity >= SHORT_ANSWER_PARTIAL_SIMILARITY);
        let missing: Vec<&String> = terms.iter().filter(|t| !named.contains(t)).collect();
        let feedback = if correct {
            format!(
                "right: your answer matches \"{reference}\" (similarity {similarity:.2}, {} of {} key terms)",
                named.len(),
                terms.len()
            )
        } else if named.is_empty() {
            format!(
                "wrong: the answer is \"{reference}\" (similarity {similarity:.2}, no key term named)"
            )
        } else {
            format!(
                "partly: you named {} of {} key terms; missing: {}; the answer is \"{reference}\"",
                named.len(),
                terms.len(),
                missing
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Ok(ShortGrade {
            correct,
            similarity,
            overlap,
            feedback,
        })
    }
}

/// Whether the digits at `start..end` are a piece of a longer number ("384" of "384,400",
/// "4" of "4.5"), which is no answer on its own.
fn part_of_number(sentence: &str, start: usize, end: usize) -> bool {
    let mut before = sentence[..start].chars().rev();
    let mut after = sentence[end..].chars();
    let joined = |mark: Option<char>, digit: Option<char>| {
        mark.is_some_and(|c| c == ',' || c == '.') && digit.is_some_and(|c| c.is_ascii_digit())
    };
    joined(before.next(), before.next()) || joined(after.next(), after.next())
}

/// Whether `key` is written in lowercase somewhere in `body` (not a name then).
fn written_lowercase(body: &str, key: &str) -> bool {
    let mut from = 0;
    while let Some(at) = body[from..].find(key) {
        let start = from + at;
        let before = body[..start].chars().next_back();
        if before.is_none_or(|c| !c.is_alphanumeric()) {
            return true;
        }
        from = start + key.len().max(1);
        if from >= body.len() {
            break;
        }
    }
    false
}

/// The distractors of `answer`: phrases of the pool of its shape and about its length that
/// share no word with it and are not in its sentence, by similarity to it; the difficulty
/// picks how close. Numbers the text lacks are made by shifting the answer.
fn distractors(
    pool: &HashMap<String, PoolPhrase>,
    key: &str,
    answer: &PoolPhrase,
    sentence: &str,
    level: Level,
) -> Vec<String> {
    let answer_words: HashSet<String> = text::words(key).iter().map(|w| w.to_lowercase()).collect();
    let sentence_lower = sentence.to_lowercase();
    let mut ranked: Vec<(&String, &PoolPhrase, f32)> = pool
        .iter()
        .filter(|(other, p)| {
            other.as_str() != key
                && p.shape == answer.shape
                && (p.shape != Shape::Common || plural(other) == plural(key))
                && p.words.abs_diff(answer.words) <= 1
                && !sentence_lower.contains(other.as_str())
                && text::words(other).iter().all(|w| {
                    let w = w.to_lowercase();
                    !answer_words.iter().any(|a| same_term(a, &w))
                })
        })
        .map(|(other, p)| (other, p, dot(&p.vector, &answer.vector)))
        .collect();
    ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(b.0)));
    // No two distractors sharing a word.
    let mut picked_words: HashSet<String> = HashSet::new();
    let mut distinct: Vec<String> = Vec::new();
    for (other, p, _) in ranked {
        let words: Vec<String> = text::words(other)
            .iter()
            .map(|w| w.to_lowercase())
            .collect();
        if words
            .iter()
            .any(|w| picked_words.iter().any(|p| same_term(p, w)))
        {
            continue;
        }
        picked_words.extend(words);
        let display = if answer.shape == Shape::Name || p.shape == Shape::Number {
            p.display.clone()
        } else {
            other.clone()
        };
        distinct.push(display);
    }
    if answer.shape == Shape::Number && distinct.len() < 3 {
        distinct.extend(shifted_numbers(
            &answer.display,
            3 - distinct.len(),
            &distinct,
        ));
    }
    let skip = match level {
        Level::Hard => 0,
        Level::Medium => usize::from(distinct.len() >= 4),
        Level::Easy => distinct.len().saturating_sub(3).min(distinct.len() / 2),
    };
    distinct.into_iter().skip(skip).take(3).collect()
}

/// Whether a phrase's last word looks plural (so a distractor agrees with the sentence).
fn plural(phrase: &str) -> bool {
    phrase.ends_with('s') && !phrase.ends_with("ss")
}

/// Numbers near `number` (a plain integer): years by decades, counts by quarters.
fn shifted_numbers(number: &str, wanted: usize, taken: &[String]) -> Vec<String> {
    let Ok(value) = number.parse::<i64>() else {
        return Vec::new();
    };
    let step = if (1000..=2100).contains(&value) {
        10
    } else {
        (value.abs() / 4).max(1)
    };
    [step, -step, 2 * step, -2 * step, 3 * step]
        .into_iter()
        .map(|d| value + d)
        .filter(|v| *v > 0)
        .map(|v| v.to_string())
        .filter(|v| v != number && !taken.contains(v))
        .take(wanted)
        .collect()
}

/// The key terms of a short text: its words that are not stopwords, lowercase.
fn key_terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = text::words(text)
        .into_iter()
        .filter(|w| !is_stopword(w) && w.chars().count() >= 2)
        .map(str::to_lowercase)
        .collect();
    terms.dedup();
    terms
}

/// Whether two terms are the same word, allowing for endings ("planets" and "planet").
fn same_term(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let stem = |w: &str| w.chars().take(5).collect::<String>();
    a.chars().count() >= 5 && b.chars().count() >= 5 && stem(a) == stem(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARTICLE: &str = "# The Moon\n\nThe Moon is the only natural satellite of Earth. \
It formed about 4.5 billion years ago.\n\n## Exploration\n\nThe first crewed landing was made \
in 1969 by Apollo 11. Neil Armstrong was the first person to walk on its surface.\n";

    #[test]
    fn sections_follow_headings_and_drop_them_from_the_prose() {
        let sections = sections(ARTICLE);
        assert_eq!(sections.len(), 2, "{sections:?}");
        assert_eq!(sections[0].heading.as_deref(), Some("The Moon"));
        assert_eq!(sections[1].heading.as_deref(), Some("Exploration"));
        assert!(sections[1].text.starts_with("The first crewed landing"));
        let prose = prose_sentences(ARTICLE);
        assert_eq!(prose.len(), 4);
        assert_eq!(prose[0], "The Moon is the only natural satellite of Earth.");
    }

    #[test]
    fn a_text_without_headings_is_cut_into_groups_of_paragraphs() {
        let text = (1..=12)
            .map(|i| format!("Paragraph number {i} says something."))
            .collect::<Vec<_>>()
            .join("\n\n");
        let sections = sections(&text);
        assert_eq!(sections.len(), PARAGRAPH_SECTIONS);
        assert!(sections.iter().all(|s| s.heading.is_none()));
    }

    #[test]
    fn sentence_forms_give_questions() {
        let defined = ask("The Moon is the only natural satellite of Earth.").unwrap();
        assert_eq!(defined.question, "What is the Moon?");
        assert_eq!(defined.answer, "The only natural satellite of Earth");
        let when = ask("The Eiffel Tower was built in 1889 for the World's Fair.").unwrap();
        assert_eq!(when.question, "When was the Eiffel Tower built?");
        assert_eq!(when.answer, "In 1889 for the World's Fair");
        let by = ask("Penicillin was discovered by Alexander Fleming.").unwrap();
        assert_eq!(by.question, "By whom was Penicillin discovered?");
        assert_eq!(by.answer, "Alexander Fleming");
        let dated = ask("Apollo 11 landed on the Moon in 1969.").unwrap();
        assert_eq!(dated.question, "What happened in 1969?");
        assert!(ask("It is very large.").is_none());
        assert!(ask("Water boils quickly at high altitude.").is_none());
    }

    #[test]
    fn phrases_are_found_at_word_boundaries_only() {
        assert_eq!(find_phrase("The Moon rose.", "moon"), Some((4, 8)));
        assert_eq!(find_phrase("Moonlight shone.", "moon"), None);
    }

    #[test]
    fn pieces_of_numbers_are_not_answers() {
        let sentence = "It is 384,400 km away, 4.5 billion years old, since 1969.";
        let at = |w: &str| sentence.find(w).unwrap();
        assert!(part_of_number(sentence, at("384"), at("384") + 3));
        assert!(part_of_number(sentence, at("400"), at("400") + 3));
        assert!(part_of_number(sentence, at("4.5"), at("4.5") + 1));
        assert!(!part_of_number(sentence, at("1969"), at("1969") + 4));
    }

    #[test]
    fn numbers_are_shifted_for_missing_distractors() {
        assert_eq!(
            shifted_numbers("1969", 3, &["1979".into()]),
            vec!["1959", "1989", "1949"]
        );
        assert_eq!(shifted_numbers("8", 2, &[]), vec!["10", "6"]);
        assert!(shifted_numbers("4.5", 2, &[]).is_empty());
    }

    #[test]
    fn key_terms_allow_for_endings() {
        assert!(same_term("planets", "planet"));
        assert!(!same_term("moon", "mood"));
        assert_eq!(
            key_terms("The largest planet of the system"),
            vec!["largest", "planet", "system"]
        );
    }
}
