//! Splitting text into segments a translator takes one at a time, so a long text reports
//! progress and can be cancelled between segments. Joining the translated segments with the
//! separators kept here restores the text's layout.

/// Longest segment, in bytes; longer sentences are kept whole but not merged with others.
pub const TARGET_SEGMENT_BYTES: usize = 600;

/// A piece of text to translate, and the whitespace that followed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Text to translate.
    pub text: String,
    /// Whitespace to put after its translation.
    pub separator: String,
}

/// Splits text into sentence-aligned segments of up to about [`TARGET_SEGMENT_BYTES`],
/// breaking at paragraph boundaries always.
pub fn split(text: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        // The next sentence: up to and including a terminator followed by whitespace, or a
        // line break.
        let mut end = rest.len();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\n' {
                end = i;
                break;
            }
            if matches!(c, '.' | '!' | '?' | '。' | '！' | '？')
                && chars.peek().is_none_or(|(_, next)| next.is_whitespace())
            {
                end = i + c.len_utf8();
                break;
            }
        }
        let (sentence, after) = rest.split_at(end);
        let ws_len = after.len() - after.trim_start().len();
        let (separator, next) = after.split_at(ws_len);
        let paragraph_break = separator.contains('\n');
        if !current.is_empty() && current.len() + sentence.len() > TARGET_SEGMENT_BYTES {
            segments.push(Segment {
                text: std::mem::take(&mut current),
                separator: " ".into(),
            });
        }
        current.push_str(sentence);
        if paragraph_break || next.is_empty() {
            if !current.trim().is_empty() {
                segments.push(Segment {
                    text: std::mem::take(&mut current),
                    separator: separator.to_owned(),
                });
            } else if let Some(last) = segments.last_mut() {
                last.separator.push_str(&current);
                last.separator.push_str(separator);
                current.clear();
            }
        } else {
            current.push_str(separator);
        }
        rest = next;
    }
    if !current.trim().is_empty() {
        segments.push(Segment {
            text: current,
            separator: String::new(),
        });
    }
    segments
}

/// Joins translated segments with the separators of the originals.
pub fn join<'a>(parts: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (text, separator) in parts {
        out.push_str(text.trim_end());
        out.push_str(separator);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_paragraphs_and_merges_short_sentences() {
        let text = "Hello world. How are you?\n\nFine, thanks! Bye.";
        let segments = split(text);
        assert_eq!(
            segments,
            vec![
                Segment {
                    text: "Hello world. How are you?".into(),
                    separator: "\n\n".into()
                },
                Segment {
                    text: "Fine, thanks! Bye.".into(),
                    separator: String::new()
                },
            ]
        );
        let rejoined = join(
            segments
                .iter()
                .map(|s| (s.text.as_str(), s.separator.as_str())),
        );
        assert_eq!(rejoined, text);
    }

    #[test]
    fn long_texts_split_at_sentences() {
        let sentence = "This sentence is about fifty characters long, ok. ";
        let text = sentence.repeat(40);
        let segments = split(&text);
        assert!(segments.len() >= 3, "{} segments", segments.len());
        assert!(
            segments
                .iter()
                .all(|s| s.text.len() <= TARGET_SEGMENT_BYTES)
        );
        let rejoined = join(
            segments
                .iter()
                .map(|s| (s.text.as_str(), s.separator.as_str())),
        );
        assert_eq!(rejoined, text, "layout survives a round trip");
    }

    #[test]
    fn decimals_and_empty_lines_do_not_break_segments() {
        let segments = split("Pi is 3.14 roughly.\n\n\n");
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].text, "Pi is 3.14 roughly.");
    }
}
