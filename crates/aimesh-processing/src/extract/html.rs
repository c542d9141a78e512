//! HTML: the visible text of a document parsed by html5ever (through `scraper`), with scripts,
//! styles and other non-text elements dropped, block elements on their own lines and `h1`-`h6`
//! recorded as headings.

use ego_tree::iter::Edge;
use scraper::{Html, Node};

use super::{Engine, Extracted, Format, Heading, Limits};
use crate::error::{ExtractError, ExtractResult};

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

/// Extracts the visible text of an HTML document.
pub(super) fn extract(source: &str, limits: &Limits) -> ExtractResult<Extracted> {
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
        assert_eq!(
            &page.text[page.headings[1].start..page.headings[1].end],
            "Sub"
        );
    }
}
