//! Splitting of extracted text into chunks for embedding: a few hundred words each, cut on
//! sentence and paragraph boundaries, never across a page or a heading, consecutive chunks of a
//! section sharing a small overlap. Each chunk knows its page, its offsets in the page text and
//! the heading it falls under.

use unicode_segmentation::UnicodeSegmentation;

use crate::extract::{Extracted, Heading};

/// Chunk sizes, in words (Unicode word segments).
#[derive(Debug, Clone)]
pub struct ChunkOptions {
    /// A chunk grows to at most this many words (a single longer sentence is cut at words).
    pub max_words: usize,
    /// Once a chunk has this many words it ends at the next paragraph end.
    pub min_words: usize,
    /// Words of the end of a chunk repeated at the start of the next one of the same section
    /// (whole sentences only).
    pub overlap_words: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        Self {
            max_words: 350,
            min_words: 200,
            overlap_words: 40,
        }
    }
}

/// A piece of a page's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the document's chunk sequence, from 0.
    pub index: usize,
    /// The page the chunk is on, from 1.
    pub page: u32,
    /// The text: exactly `page.text[start..end]`.
    pub text: String,
    /// Byte offset of the start in the page text.
    pub start: usize,
    /// Byte offset of the end in the page text.
    pub end: usize,
    /// Character (Unicode scalar) offset of the start in the page text.
    pub char_start: usize,
    /// Character offset of the end in the page text.
    pub char_end: usize,
    /// Title of the nearest heading before the chunk, on this page or an earlier one.
    pub heading: Option<String>,
    /// Words in the chunk.
    pub words: usize,
}

/// A sentence (or line, or part of an over-long sentence) within a page.
#[derive(Debug, Clone, Copy)]
struct Unit {
    start: usize,
    end: usize,
    words: usize,
    /// Whether a paragraph (or the section) ends after it.
    para_end: bool,
}

/// Splits the pages of a document into chunks.
pub fn chunk(extracted: &Extracted, options: &ChunkOptions) -> Vec<Chunk> {
    let max_words = options.max_words.max(1);
    let min_words = options.min_words.min(max_words);
    let mut chunks = Vec::new();
    let mut heading: Option<String> = None;
    for page in &extracted.pages {
        let text = page.text.as_str();
        let mut starts = CharCursor::default();
        let mut ends = CharCursor::default();
        for (range, section_heading) in sections(text, &page.headings) {
            if let Some(title) = section_heading {
                heading = Some(title.to_owned());
            }
            let units = units(text, range, max_words);
            let mut i = 0;
            while i < units.len() {
                let mut j = i;
                let mut words = 0;
                while j < units.len() {
                    if words > 0 && words + units[j].words > max_words {
                        break;
                    }
                    words += units[j].words;
                    j += 1;
                    if words >= min_words && units[j - 1].para_end {
                        break;
                    }
                }
                let (start, end) = (units[i].start, units[j - 1].end);
                chunks.push(Chunk {
                    index: chunks.len(),
                    page: page.number,
                    text: text[start..end].to_owned(),
                    start,
                    end,
                    char_start: starts.advance(text, start),
                    char_end: ends.advance(text, end),
                    heading: heading.clone(),
                    words,
                });
                if j >= units.len() {
                    break;
                }
                // Step back over whole sentences that fit the overlap, always moving forward.
                let mut k = j;
                let mut overlap = 0;
                while k > i + 1 && overlap + units[k - 1].words <= options.overlap_words {
                    overlap += units[k - 1].words;
                    k -= 1;
                }
                i = k;
            }
        }
    }
    chunks
}

/// Byte ranges of the page's sections: the text before the first heading, then one per heading
/// (from the heading to the next), each with its heading's title.
fn sections<'a>(
    text: &str,
    headings: &'a [Heading],
) -> Vec<(std::ops::Range<usize>, Option<&'a str>)> {
    let mut bounds: Vec<(usize, Option<&str>)> = vec![(0, None)];
    for heading in headings {
        let start = heading.start;
        if start <= text.len() && text.is_char_boundary(start) {
            match bounds.last_mut() {
                Some(last) if last.0 >= start => {
                    if last.0 == start {
                        last.1 = Some(heading.title.as_str());
                    }
                }
                _ => bounds.push((start, Some(heading.title.as_str()))),
            }
        }
    }
    let mut sections = Vec::with_capacity(bounds.len());
    for (n, &(start, title)) in bounds.iter().enumerate() {
        let end = bounds.get(n + 1).map_or(text.len(), |b| b.0);
        sections.push((start..end, title));
    }
    sections
}

/// Sentences (Unicode sentence boundaries, which also end at line breaks) of a section, with
/// over-long ones cut at word boundaries.
fn units(text: &str, range: std::ops::Range<usize>, max_words: usize) -> Vec<Unit> {
    let section = &text[range.clone()];
    let mut units: Vec<Unit> = Vec::new();
    for (offset, sentence) in section.split_sentence_bound_indices() {
        let trimmed = sentence.trim();
        if trimmed.is_empty() {
            continue;
        }
        let start = range.start + offset + (sentence.len() - sentence.trim_start().len());
        let end = start + trimmed.len();
        let words = trimmed.unicode_words().count();
        if words <= max_words {
            units.push(Unit {
                start,
                end,
                words,
                para_end: false,
            });
            continue;
        }
        // Cut the sentence every `max_words` words.
        let mut piece_start = start;
        let mut piece_words = 0;
        let mut last_end = start;
        for (at, token) in trimmed.split_word_bound_indices() {
            if token.chars().any(char::is_alphanumeric) {
                if piece_words == max_words {
                    units.push(Unit {
                        start: piece_start,
                        end: last_end,
                        words: piece_words,
                        para_end: false,
                    });
                    piece_start = start + at;
                    piece_words = 0;
                }
                piece_words += 1;
            }
            if !token.trim().is_empty() {
                last_end = start + at + token.len();
            }
        }
        units.push(Unit {
            start: piece_start,
            end: end.max(piece_start),
            words: piece_words,
            para_end: false,
        });
    }
    for n in 0..units.len() {
        units[n].para_end = match units.get(n + 1) {
            Some(next) => text[units[n].end..next.start].matches('\n').count() >= 2,
            None => true,
        };
    }
    units
}

/// Converts increasing byte offsets to character offsets without rescanning.
#[derive(Default)]
struct CharCursor {
    byte: usize,
    chars: usize,
}

impl CharCursor {
    fn advance(&mut self, text: &str, byte: usize) -> usize {
        if byte < self.byte {
            self.byte = 0;
            self.chars = 0;
        }
        self.chars += text[self.byte..byte].chars().count();
        self.byte = byte;
        self.chars
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::extract::{Engine, Format, Page};

    fn doc(pages: Vec<(String, Vec<Heading>)>) -> Extracted {
        let pages: Vec<Page> = pages
            .into_iter()
            .zip(1u32..)
            .map(|((text, headings), number)| Page {
                number,
                text,
                headings,
                engine: Engine::Text,
            })
            .collect();
        Extracted {
            format: Format::Markdown,
            page_count: pages.len(),
            pages,
            engine: Engine::Text,
        }
    }

    fn sentence(n: usize) -> String {
        format!("Sentence number {n} has exactly eight words here.")
    }

    #[test]
    fn chunks_respect_sizes_offsets_and_overlap() {
        // 3 paragraphs of 20 sentences (160 words each).
        let text = (0..3)
            .map(|p| {
                (0..20)
                    .map(|s| sentence(p * 20 + s))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        let extracted = doc(vec![(text.clone(), Vec::new())]);
        let options = ChunkOptions {
            max_words: 200,
            min_words: 100,
            overlap_words: 16,
        };
        let chunks = chunk(&extracted, &options);
        assert_eq!(chunks.len(), 3, "{chunks:#?}");
        for c in &chunks {
            assert!(c.words <= 200);
            assert_eq!(&text[c.start..c.end], c.text);
            assert_eq!(text[..c.start].chars().count(), c.char_start);
            assert_eq!(text[..c.end].chars().count(), c.char_end);
            assert!(c.text.ends_with('.'));
        }
        // Paragraph ends are preferred cut points once min_words is reached.
        assert!(chunks[0].text.ends_with(&sentence(19)));
        // The next chunk repeats the last two sentences (16 words).
        assert!(chunks[1].text.starts_with(&sentence(18)));
        assert!(chunks[1].text.ends_with(&sentence(39)));
    }

    #[test]
    fn headings_split_sections_and_label_chunks() {
        let text = "# Intro\n\nHello there. General words.\n\n## Details\n\nMore text here.";
        let headings = vec![
            Heading {
                level: 1,
                title: "Intro".into(),
                start: 0,
                end: 7,
            },
            Heading {
                level: 2,
                title: "Details".into(),
                start: text.find("## Details").unwrap(),
                end: text.find("## Details").unwrap() + 10,
            },
        ];
        let extracted = doc(vec![
            (text.to_owned(), headings),
            ("Page two text.".to_owned(), Vec::new()),
        ]);
        let chunks = chunk(&extracted, &ChunkOptions::default());
        assert_eq!(chunks.len(), 3, "{chunks:#?}");
        assert_eq!(chunks[0].heading.as_deref(), Some("Intro"));
        assert!(chunks[0].text.starts_with("# Intro"));
        assert!(chunks[0].text.ends_with("General words."));
        assert_eq!(chunks[1].heading.as_deref(), Some("Details"));
        assert_eq!(chunks[2].page, 2);
        assert_eq!(chunks[2].heading.as_deref(), Some("Details"));
        assert_eq!(chunks[2].index, 2);
    }

    #[test]
    fn long_sentences_are_cut_and_multibyte_offsets_hold() {
        let text = "données ".repeat(1000);
        let extracted = doc(vec![(text.clone(), Vec::new())]);
        let chunks = chunk(&extracted, &ChunkOptions::default());
        assert!(chunks.len() >= 3);
        for c in &chunks {
            assert!(c.words <= 350);
            assert_eq!(&text[c.start..c.end], c.text);
            assert_eq!(text[..c.start].chars().count(), c.char_start);
        }
        assert_eq!(chunks.iter().map(|c| c.words).sum::<usize>(), 1000);
    }
}
