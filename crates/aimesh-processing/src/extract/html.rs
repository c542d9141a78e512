//! HTML: the visible text of a document parsed by html5ever (through `scraper`), with scripts,
//! styles and other non-text elements dropped, block elements on their own lines and `h1`-`h6`
//! recorded as headings.

use ego_tree::iter::Edge;
use scraper::{Html, Node};

use super::{Engine, Extracted, Format, Heading, Limits};
use crate::extract_error::{ExtractError, ExtractResult};

/// Elements whose content is not visible text.
const HIDDEN: &[&str] = &[
    "head", "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "canvas",
    "select", "button",
];

/// Elements that start and end a paragraph.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "dd",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tr",
    "ul",
    "caption",
];

/// Elements without content.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr", "param", "keygen",
];

/// Elements whose end tag may be left out (the parser closes them by itself).
const OPTIONAL_END: &[&str] = &[
    "html", "head", "body", "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "tbody",
    "thead", "tfoot", "colgroup", "caption", "rb", "rt", "rp", "rtc",
];

/// Elements whose content is raw text up to their end tag.
const RAW_TEXT: &[&str] = &[
    "script", "style", "textarea", "title", "xmp", "iframe", "noembed",
];

/// Extracts the visible text of an HTML document.
pub(super) fn extract(source: &str, limits: &Limits) -> ExtractResult<Extracted> {
    // The HTML tree builder does work proportional to the depth of open elements for each
    // tag, so a deeply nested document is refused before it is parsed.
    if tag_depth_exceeds(source, limits.max_depth) {
        return Err(ExtractError::TooDeep {
            format: Format::Html,
            limit: limits.max_depth,
        });
    }
    let document = Html::parse_document(source);
    let mut out = Output::default();
    let mut depth = 0usize;
    // Depth inside hidden elements and inside `pre`.
    let mut hidden = 0usize;
    let mut pre = 0usize;
    let mut heading: Option<(u8, usize)> = None;
    let mut headings = Vec::new();
    for edge in document.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(element) => {
                    depth += 1;
                    if depth > limits.max_depth {
                        return Err(ExtractError::TooDeep {
                            format: Format::Html,
                            limit: limits.max_depth,
                        });
                    }
                    let name = element.name();
                    if HIDDEN.contains(&name) {
                        hidden += 1;
                    }
                    if hidden > 0 {
                        continue;
                    }
                    match name {
                        "br" => out.line_break(),
                        "pre" => {
                            pre += 1;
                            out.paragraph_break();
                        }
                        "td" | "th" => out.space(),
                        _ if BLOCKS.contains(&name) => out.paragraph_break(),
                        _ => {}
                    }
                    if let Some(level) = heading_level(name) {
                        heading = Some((level, out.text.len()));
                    }
                }
                Node::Text(text) if hidden == 0 => {
                    if pre > 0 {
                        out.push_verbatim(text);
                    } else {
                        out.push_collapsed(text);
                    }
                    if out.text.len() > limits.max_text_bytes {
                        return Err(ExtractError::TextTooLarge {
                            limit: limits.max_text_bytes,
                        });
                    }
                }
                _ => {}
            },
            Edge::Close(node) => {
                if let Node::Element(element) = node.value() {
                    depth -= 1;
                    let name = element.name();
                    if HIDDEN.contains(&name) {
                        hidden -= 1;
                        continue;
                    }
                    if hidden > 0 {
                        continue;
                    }
                    if heading_level(name).is_some()
                        && let Some((level, start)) = heading.take()
                    {
                        out.trim_end();
                        // The heading may have opened on whitespace that is now trimmed.
                        let start = start.min(out.text.len());
                        let title = out.text[start..].trim().to_owned();
                        let start = out.text.len() - out.text[start..].trim_start().len();
                        if !title.is_empty() {
                            headings.push(Heading {
                                level,
                                title,
                                start,
                                end: out.text.len(),
                            });
                        }
                    }
                    if name == "pre" {
                        pre -= 1;
                    }
                    if BLOCKS.contains(&name) {
                        out.paragraph_break();
                    }
                }
            }
        }
    }
    out.trim_end();
    Ok(Extracted::single(
        Format::Html,
        Engine::Html,
        out.text,
        headings,
    ))
}

/// Scans the tags (without building anything) and tells whether open elements that need an
/// end tag nest deeper than `limit`. Elements with optional end tags and void elements are not
/// counted, so this is an estimate from below of the depth the parser builds.
fn tag_depth_exceeds(source: &str, limit: usize) -> bool {
    let bytes = source.as_bytes();
    let lower = |b: u8| b.to_ascii_lowercase();
    let mut depth = 0usize;
    let mut at = 0usize;
    while let Some(offset) = bytes[at..].iter().position(|&b| b == b'<') {
        at += offset + 1;
        let Some(&next) = bytes.get(at) else { break };
        if bytes[at..].starts_with(b"!--") {
            at = find(bytes, at + 3, b"-->").map_or(bytes.len(), |end| end + 3);
            continue;
        }
        let closing = next == b'/';
        let name_start = if closing { at + 1 } else { at };
        let name_end = bytes[name_start..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .map_or(bytes.len(), |n| name_start + n);
        if name_end == name_start || !bytes[name_start].is_ascii_alphabetic() {
            continue;
        }
        let name: String = bytes[name_start..name_end]
            .iter()
            .map(|&b| lower(b) as char)
            .collect();
        let tag_end = bytes[name_end..]
            .iter()
            .position(|&b| b == b'>')
            .map_or(bytes.len(), |n| name_end + n);
        let self_closing = tag_end > 0 && bytes.get(tag_end - 1) == Some(&b'/');
        at = (tag_end + 1).min(bytes.len());
        let counted = !VOID.contains(&name.as_str()) && !OPTIONAL_END.contains(&name.as_str());
        if closing {
            if counted {
                depth = depth.saturating_sub(1);
            }
            continue;
        }
        if RAW_TEXT.contains(&name.as_str()) {
            // Skip to the end tag: its content is not markup.
            let end_tag = format!("</{name}");
            at = find_ignore_case(bytes, at, end_tag.as_bytes()).unwrap_or(bytes.len());
            continue;
        }
        if counted && !self_closing {
            depth += 1;
            if depth > limit {
                return true;
            }
        }
    }
    false
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|n| from + n)
}

fn find_ignore_case(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|n| from + n)
}

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

/// Text with whitespace collapsed the way a browser renders it.
#[derive(Default)]
struct Output {
    text: String,
    /// Whether a space is owed before the next word.
    pending_space: bool,
}

impl Output {
    fn push_collapsed(&mut self, text: &str) {
        let mut words = text.split_whitespace().peekable();
        if text.starts_with(char::is_whitespace) {
            self.pending_space = true;
        }
        while let Some(word) = words.next() {
            if self.pending_space && !self.text.is_empty() && !self.text.ends_with(['\n', ' ']) {
                self.text.push(' ');
            }
            self.text.push_str(word);
            self.pending_space = words.peek().is_some();
        }
        if text.ends_with(char::is_whitespace) {
            self.pending_space = true;
        }
    }

    fn push_verbatim(&mut self, text: &str) {
        self.text.push_str(text);
        self.pending_space = false;
    }

    fn space(&mut self) {
        self.pending_space = true;
    }

    fn line_break(&mut self) {
        self.trim_trailing_spaces();
        self.text.push('\n');
        self.pending_space = false;
    }

    /// Ends the current paragraph with a blank line (once).
    fn paragraph_break(&mut self) {
        self.trim_trailing_spaces();
        self.pending_space = false;
        if self.text.is_empty() || self.text.ends_with("\n\n") {
            return;
        }
        if self.text.ends_with('\n') {
            self.text.push('\n');
        } else {
            self.text.push_str("\n\n");
        }
    }

    fn trim_trailing_spaces(&mut self) {
        let len = self.text.trim_end_matches([' ', '\t']).len();
        self.text.truncate(len);
    }

    fn trim_end(&mut self) {
        let len = self.text.trim_end().len();
        self.text.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn drops_scripts_and_styles_and_records_headings() {
        let html = "<!DOCTYPE html><html><head><title>t</title><style>p{color:red}</style>\
                    </head><body><h1>Main  title</h1><p>First <b>bold</b> para.</p>\
                    <script>alert('x')</script><p>Second<br>line</p><h2>Sub</h2>\
                    <ul><li>one</li><li>two</li></ul></body></html>";
        let extracted = extract(html, &Limits::default()).unwrap();
        let page = &extracted.pages[0];
        assert_eq!(
            page.text,
            "Main title\n\nFirst bold para.\n\nSecond\nline\n\nSub\n\none\n\ntwo"
        );
        assert_eq!(page.headings.len(), 2);
        assert_eq!(page.headings[0].title, "Main title");
        assert_eq!(
            &page.text[page.headings[0].start..page.headings[0].end],
            "Main title"
        );
        assert_eq!(page.headings[1].level, 2);

        // A heading opened right after a paragraph break, the break then trimmed.
        let extracted = extract("<p>x</p><h2> </h2><h1><h2>y</h2></h1>", &Limits::default());
        assert_eq!(extracted.unwrap().pages[0].text, "x\n\ny");
        assert_eq!(
            &page.text[page.headings[1].start..page.headings[1].end],
            "Sub"
        );
    }
}
