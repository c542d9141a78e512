//! DOCX: the paragraphs of `word/document.xml`, read from the ZIP archive within zip-bomb limits
//! (entry count, total declared size, compression ratio, and a hard cap on the bytes actually
//! inflated) and parsed as a stream of XML events (no tree is built; nesting depth is bounded).
//! Pages end at explicit page breaks; paragraphs with a heading style or outline level are
//! headings.

use std::io::{Cursor, Read};

use quick_xml::{Reader, escape::resolve_xml_entity, events::Event};
use zip::ZipArchive;

use super::{Budget, Engine, Extracted, Format, Heading, Limits, Page};
use crate::extract_error::{ExtractError, ExtractResult};

const DOCUMENT_PART: &str = "word/document.xml";

/// Entries above this size must not compress better than the ratio limit.
const RATIO_CHECK_MIN_BYTES: u64 = 1 << 20;

/// Whether the bytes are a ZIP archive.
pub(super) fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// Whether the ZIP archive has a main document part.
pub(super) fn has_document_part(bytes: &[u8]) -> bool {
    ZipArchive::new(Cursor::new(bytes))
        .ok()
        .and_then(|archive| archive.index_for_name(DOCUMENT_PART))
        .is_some()
}

fn malformed(reason: impl Into<String>) -> ExtractError {
    ExtractError::Malformed {
        format: Format::Docx,
        reason: reason.into(),
    }
}

/// Extracts the text of a DOCX document.
pub(super) fn extract(bytes: &[u8], limits: &Limits, budget: &Budget) -> ExtractResult<Extracted> {
    let xml = read_document_part(bytes, limits)?;
    budget.check("docx extraction")?;
    let pages = parse_document(&xml, limits, budget)?;
    Ok(Extracted {
        format: Format::Docx,
        page_count: pages.len(),
        pages,
        engine: Engine::Docx,
    })
}

/// Checks the archive against the zip-bomb limits and inflates `word/document.xml`.
fn read_document_part(bytes: &[u8], limits: &Limits) -> ExtractResult<String> {
    let mut archive = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| malformed(format!("unreadable zip archive: {e}")))?;
    if archive.len() > limits.max_zip_entries {
        return Err(ExtractError::TooManyEntries {
            entries: archive.len(),
            limit: limits.max_zip_entries,
        });
    }
    let mut declared_total = 0u64;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_raw(index)
            .map_err(|e| malformed(format!("unreadable zip entry: {e}")))?;
        declared_total = declared_total.saturating_add(entry.size());
        if entry.size() > RATIO_CHECK_MIN_BYTES {
            let ratio = entry.size() / entry.compressed_size().max(1);
            if ratio > limits.max_compression_ratio {
                return Err(ExtractError::CompressionRatio {
                    entry: entry
                        .name()
                        .map(|n| n.chars().take(200).collect())
                        .unwrap_or_default(),
                    ratio,
                    limit: limits.max_compression_ratio,
                });
            }
        }
    }
    if declared_total > limits.max_decompressed_bytes {
        return Err(ExtractError::DecompressedTooLarge {
            what: "docx archive".to_owned(),
            limit: limits.max_decompressed_bytes,
        });
    }
    let entry = archive
        .by_name(DOCUMENT_PART)
        .map_err(|e| malformed(format!("{DOCUMENT_PART}: {e}")))?;
    // Declared sizes can lie: the bytes actually inflated are capped too.
    let limit = limits
        .max_decompressed_bytes
        .min(limits.max_input_bytes as u64 * limits.max_compression_ratio);
    let mut xml = Vec::new();
    entry
        .take(limit + 1)
        .read_to_end(&mut xml)
        .map_err(|e| malformed(format!("{DOCUMENT_PART}: {e}")))?;
    if xml.len() as u64 > limit {
        return Err(ExtractError::DecompressedTooLarge {
            what: format!("docx entry {DOCUMENT_PART}"),
            limit,
        });
    }
    String::from_utf8(xml).map_err(|_| malformed(format!("{DOCUMENT_PART} is not utf-8")))
}

/// Text of the page being read.
#[derive(Default)]
struct PageText {
    text: String,
    headings: Vec<Heading>,
}

/// Walks the XML events of the main document part.
fn parse_document(xml: &str, limits: &Limits, budget: &Budget) -> ExtractResult<Vec<Page>> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    let mut done: Vec<PageText> = Vec::new();
    let mut page = PageText::default();
    // Text length of the finished pages.
    let mut done_text = 0usize;
    let mut depth = 0usize;
    let mut in_text = false;
    // Heading level of the current paragraph and where it started in the page text.
    let mut heading_level: Option<u8> = None;
    let mut paragraph_start = 0usize;
    let mut events = 0u64;
    loop {
        events += 1;
        if events.is_multiple_of(4096) {
            budget.check("docx extraction")?;
        }
        let event = reader.read_event().map_err(|e| {
            malformed(format!(
                "{DOCUMENT_PART} at byte {}: {e}",
                reader.buffer_position()
            ))
        })?;
        match event {
            Event::Start(element) => {
                depth += 1;
                if depth > limits.max_depth {
                    return Err(ExtractError::TooDeep {
                        format: Format::Docx,
                        limit: limits.max_depth,
                    });
                }
                match element.local_name().as_ref() {
                    "p" => {
                        heading_level = None;
                        paragraph_start = page.text.len();
                    }
                    "t" => in_text = true,
                    _ => {}
                }
            }
            Event::Empty(element) => match element.local_name().as_ref() {
                "tab" => page.text.push('\t'),
                "cr" => page.text.push('\n'),
                "br" => {
                    let is_page_break = element.attributes().flatten().any(|a| {
                        a.key.local_name().as_ref() == "type" && a.value.as_ref() == "page"
                    });
                    if is_page_break {
                        done_text += page.text.len();
                        done.push(std::mem::take(&mut page));
                        if done.len() >= limits.max_pages {
                            return Err(ExtractError::TooManyPages {
                                format: Format::Docx,
                                limit: limits.max_pages,
                            });
                        }
                        paragraph_start = 0;
                    } else {
                        page.text.push('\n');
                    }
                }
                "pStyle" | "outlineLvl" => {
                    let value = element
                        .attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == "val")
                        .map(|a| a.value.into_owned());
                    if let Some(level) =
                        value.and_then(|v| style_heading_level(element.local_name().as_ref(), &v))
                    {
                        heading_level = Some(level);
                    }
                }
                _ => {}
            },
            Event::Text(text) if in_text => push_text(&mut page, &text.into_inner()),
            Event::CData(text) if in_text => push_text(&mut page, &text.into_inner()),
            Event::GeneralRef(reference) if in_text => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => resolve_xml_entity(&reference)
                        .unwrap_or_default()
                        .to_owned(),
                };
                push_text(&mut page, &resolved);
            }
            Event::End(element) => {
                depth = depth.saturating_sub(1);
                match element.local_name().as_ref() {
                    "t" => in_text = false,
                    "tc" => page.text.push('\t'),
                    "tr" => page.text.push('\n'),
                    "p" => end_paragraph(&mut page, heading_level.take(), paragraph_start),
                    _ => {}
                }
                if done_text + page.text.len() > limits.max_text_bytes {
                    return Err(ExtractError::TextTooLarge {
                        limit: limits.max_text_bytes,
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    done.push(page);
    Ok(done
        .into_iter()
        .zip(1u32..)
        .map(|(page, number)| Page {
            number,
            text: page.text.trim_end().to_owned(),
            headings: page.headings,
            engine: Engine::Docx,
        })
        .collect())
}

fn push_text(page: &mut PageText, text: &str) {
    page.text.push_str(text);
}

/// Closes a paragraph with a blank line, recording it as a heading when its style says so.
fn end_paragraph(page: &mut PageText, heading_level: Option<u8>, start: usize) {
    let start = start.min(page.text.len());
    if let Some(level) = heading_level {
        let body = &page.text[start..];
        let title = body.trim();
        if !title.is_empty() {
            let begin = start + (body.len() - body.trim_start().len());
            page.headings.push(Heading {
                level,
                title: title.to_owned(),
                start: begin,
                end: begin + title.len(),
            });
        }
    }
    let len = page.text.trim_end_matches([' ', '\t']).len();
    page.text.truncate(len);
    if !page.text.is_empty() && !page.text.ends_with("\n\n") {
        page.text.push_str(if page.text.ends_with('\n') {
            "\n"
        } else {
            "\n\n"
        });
    }
}

/// `Heading1`..`Heading9` and `Title` styles, and outline levels 0-5, are headings.
fn style_heading_level(kind: &str, value: &str) -> Option<u8> {
    if kind == "outlineLvl" {
        let level: u8 = value.parse().ok()?;
        return (level < 6).then_some(level + 1);
    }
    if value.eq_ignore_ascii_case("title") {
        return Some(1);
    }
    let digits = value
        .strip_prefix("Heading")
        .or_else(|| value.strip_prefix("heading"))?;
    let level: u8 = digits.parse().ok()?;
    (1..=6).contains(&level).then_some(level)
}
