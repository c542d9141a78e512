//! Text documents: decoding (UTF-8, UTF-16 with a byte-order mark, Latin-1 otherwise) and telling
//! plain text, Markdown and HTML apart.

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use super::{Engine, Extracted, Format, Heading, Limits, html};
use crate::extract_error::{ExtractError, ExtractResult};

/// Whether bytes without a byte-order mark are binary rather than text: NUL bytes or many
/// control characters in the first 8 KiB.
pub(super) fn looks_binary(bytes: &[u8]) -> bool {
    if Encoding::for_bom(bytes).is_some() {
        return false;
    }
    let head = &bytes[..bytes.len().min(8192)];
    let control = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c))
        .count();
    head.contains(&0) || control * 20 > head.len()
}

/// Decodes text: by its byte-order mark, else as UTF-8 when valid, else as Latin-1 (read as
/// windows-1252, its superset on the web).
pub(super) fn decode(bytes: &[u8]) -> ExtractResult<String> {
    let encoding = match Encoding::for_bom(bytes) {
        Some((encoding, _)) => encoding,
        None if std::str::from_utf8(bytes).is_ok() => UTF_8,
        None => WINDOWS_1252,
    };
    // Strips the BOM; malformed sequences become U+FFFD rather than failing.
    let (text, _, _) = encoding.decode(bytes);
    if text.contains('\0') {
        return Err(ExtractError::Unsupported {
            detected: format!("binary data ({} with nul characters)", encoding.name()),
        });
    }
    Ok(text.into_owned())
}

/// Classifies decoded text and extracts it.
pub(super) fn extract_decoded(text: String, limits: &Limits) -> ExtractResult<Extracted> {
    if looks_like_html(&text) {
        return html::extract(&text, limits);
    }
    let headings = markdown_headings(&text);
    if headings.is_empty() && !has_markdown_blocks(&text) {
        return Ok(Extracted::single(
            Format::PlainText,
            Engine::Text,
            text,
            Vec::new(),
        ));
    }
    Ok(Extracted::single(
        Format::Markdown,
        Engine::Text,
        text,
        headings,
    ))
}

/// HTML starts (after a BOM, blanks and comments) with a doctype or an `<html>`, `<head>` or
/// `<body>` element, or is a fragment that names one of them early on.
fn looks_like_html(text: &str) -> bool {
    let start = text.trim_start();
    let head: String = start.chars().take(1024).collect::<String>().to_lowercase();
    head.starts_with("<!doctype html")
        || head.starts_with("<html")
        || (head.starts_with('<')
            && ["<html", "<head>", "<body"]
                .iter()
                .any(|t| head.contains(t)))
}

/// Fenced code blocks or several list or quote lines mark Markdown without headings.
fn has_markdown_blocks(text: &str) -> bool {
    let mut marks = 0;
    for line in text.lines().take(2000) {
        let line = line.trim_start();
        if line.starts_with("```") || line.starts_with("~~~") {
            return true;
        }
        if line.starts_with("- [") || line.starts_with("> ") || line.contains("](") {
            marks += 1;
        }
    }
    marks >= 2
}

/// ATX and setext headings, as pulldown-cmark reads them (so `#` lines inside code blocks are
/// not headings).
fn markdown_headings(text: &str) -> Vec<Heading> {
    let mut headings = Vec::new();
    let mut current: Option<Heading> = None;
    for (event, range) in Parser::new_ext(text, Options::empty()).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                current = Some(Heading {
                    level: level as u8,
                    title: String::new(),
                    start: range.start,
                    end: range.end,
                });
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(heading) = current.as_mut() {
                    heading.title.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(mut heading) = current.take() {
                    heading.end = range.end.max(heading.start);
                    // The range of a heading includes its line break.
                    while heading.end > heading.start
                        && text.as_bytes()[heading.end - 1].is_ascii_whitespace()
                    {
                        heading.end -= 1;
                    }
                    heading.title = heading.title.trim().to_owned();
                    headings.push(heading);
                }
            }
            _ => {}
        }
    }
    headings
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn decodes_utf16_with_bom() {
        let mut bytes = vec![0xFF, 0xFE];
        for unit in "héllo wörld".encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        assert!(!looks_binary(&bytes));
        assert_eq!(decode(&bytes).unwrap(), "héllo wörld");
    }

    #[test]
    fn falls_back_to_latin1() {
        let bytes = b"caf\xe9 cr\xe8me";
        assert_eq!(decode(bytes).unwrap(), "café crème");
    }

    #[test]
    fn markdown_headings_skip_code_blocks() {
        let text = "# Title\n\nsome text\n\n```\n# not a heading\n```\n\nSub\n---\n";
        let headings = markdown_headings(text);
        assert_eq!(headings.len(), 2);
        assert_eq!(headings[0].title, "Title");
        assert_eq!(&text[headings[0].start..headings[0].end], "# Title");
        assert_eq!(headings[1].level, 2);
        assert_eq!(headings[1].title, "Sub");
    }
}
