//! Document text extraction. The format is sniffed from the bytes (magic numbers and structure),
//! never from a file name; each format has its own module, and pages without a text layer go
//! through OCR ([`ocr`]).

mod docx;
mod html;
mod ocr;
mod pdf;
mod text;

use std::{
    fmt,
    panic::{AssertUnwindSafe, catch_unwind},
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::extract_error::{ExtractError, ExtractResult};

/// A document format, as sniffed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Plain text (UTF-8, UTF-16 with a byte-order mark, or Latin-1).
    PlainText,
    /// Markdown, kept as text with its headings recognised.
    Markdown,
    /// HTML, reduced to its visible text.
    Html,
    /// PDF: its text layer, and OCR for pages without one.
    Pdf,
    /// Office Open XML word-processing document.
    Docx,
    /// PNG image, through OCR.
    Png,
    /// JPEG image, through OCR.
    Jpeg,
}

impl Format {
    /// The short lowercase name, e.g. `pdf`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlainText => "text",
            Self::Markdown => "markdown",
            Self::Html => "html",
            Self::Pdf => "pdf",
            Self::Docx => "docx",
            Self::Png => "png",
            Self::Jpeg => "jpeg",
        }
    }

    /// The media type.
    pub fn mime_type(self) -> &'static str {
        match self {
            Self::PlainText => "text/plain",
            Self::Markdown => "text/markdown",
            Self::Html => "text/html",
            Self::Pdf => "application/pdf",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What produced a page's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// Decoded text (plain text and Markdown).
    Text,
    /// The HTML parser.
    Html,
    /// The DOCX reader.
    Docx,
    /// The PDF text layer.
    PdfText,
    /// Tesseract OCR (images and PDF pages without a text layer).
    Tesseract,
    /// A PDF whose pages came partly from its text layer and partly from Tesseract.
    PdfTextAndTesseract,
}

impl Engine {
    /// The short lowercase name, e.g. `pdf-text`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Html => "html",
            Self::Docx => "docx",
            Self::PdfText => "pdf-text",
            Self::Tesseract => "tesseract",
            Self::PdfTextAndTesseract => "pdf-text+tesseract",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A heading found in a page's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heading {
    /// Level, 1 (top) to 6.
    pub level: u8,
    /// The heading's text, without markup.
    pub title: String,
    /// Byte offset in the page text where the heading starts.
    pub start: usize,
    /// Byte offset in the page text where the heading ends.
    pub end: usize,
}

/// One page of extracted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Page number, from 1.
    pub number: u32,
    /// The text.
    pub text: String,
    /// Headings in `text`, in order (Markdown, HTML and DOCX headings).
    pub headings: Vec<Heading>,
    /// What produced the text.
    pub engine: Engine,
}

/// The text of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The sniffed format.
    pub format: Format,
    /// The pages, in order. Formats without pages have one; DOCX pages end at explicit page
    /// breaks.
    pub pages: Vec<Page>,
    /// Number of pages in the document.
    pub page_count: usize,
    /// What produced the text.
    pub engine: Engine,
}

impl Extracted {
    /// The whole text, pages separated by a blank line.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for page in &self.pages {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&page.text);
        }
        text
    }

    fn single(format: Format, engine: Engine, text: String, headings: Vec<Heading>) -> Self {
        Self {
            format,
            pages: vec![Page {
                number: 1,
                text,
                headings,
                engine,
            }],
            page_count: 1,
            engine,
        }
    }
}

/// Bounds on the work and memory one extraction may use.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted document.
    pub max_input_bytes: usize,
    /// Most pages a PDF (or DOCX) may have.
    pub max_pages: usize,
    /// Most text extraction may produce, all pages together.
    pub max_text_bytes: usize,
    /// Wall time for the whole extraction, OCR included.
    pub time_budget: Duration,
    /// Most bytes the compressed streams of a PDF, or the read entries of a DOCX, may inflate
    /// to, all together.
    pub max_decompressed_bytes: u64,
    /// Most entries a DOCX archive may have.
    pub max_zip_entries: usize,
    /// Highest ratio of uncompressed to compressed size of a DOCX entry larger than 1 MiB.
    pub max_compression_ratio: u64,
    /// Deepest element nesting in HTML and DOCX XML.
    pub max_depth: usize,
    /// Most pixels an image given to OCR may have.
    pub max_image_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input_bytes: 64 << 20,
            max_pages: 2_000,
            max_text_bytes: 32 << 20,
            time_budget: Duration::from_secs(300),
            max_decompressed_bytes: 256 << 20,
            max_zip_entries: 5_000,
            max_compression_ratio: 200,
            max_depth: 512,
            max_image_pixels: 50_000_000,
        }
    }
}

/// How images and PDF pages without a text layer are read: Tesseract, with poppler's `pdftoppm`
/// rasterising PDF pages.
#[derive(Debug, Clone)]
pub struct OcrSettings {
    /// Whether OCR runs at all. Without it, images and PDF pages without a text layer are an
    /// error.
    pub enabled: bool,
    /// The Tesseract program.
    pub tesseract: PathBuf,
    /// The `pdftoppm` program.
    pub pdftoppm: PathBuf,
    /// Tesseract languages, e.g. `eng` or `eng+deu`.
    pub languages: String,
    /// Most PDF pages one document may send to OCR.
    pub max_pages: usize,
    /// Length in pixels of the long side of a rasterised PDF page (about 200 dpi for A4 at
    /// 2400), whatever size the page declares.
    pub raster_long_side: u32,
    /// Wall time for one tool run.
    pub tool_timeout: Duration,
    /// Most text one OCR run may produce.
    pub max_output_bytes: u64,
}

impl Default for OcrSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            tesseract: "tesseract".into(),
            pdftoppm: "pdftoppm".into(),
            languages: "eng".into(),
            max_pages: 50,
            raster_long_side: 2400,
            tool_timeout: Duration::from_secs(60),
            max_output_bytes: 1 << 20,
        }
    }
}

/// Extracts text from documents within [`Limits`].
#[derive(Debug, Clone, Default)]
pub struct Extractor {
    /// The bounds.
    pub limits: Limits,
    /// OCR.
    pub ocr: OcrSettings,
}

impl Extractor {
    /// Creates an extractor with these limits and OCR settings.
    pub fn new(limits: Limits, ocr: OcrSettings) -> Self {
        Self { limits, ocr }
    }

    /// Sniffs the format of `bytes` and extracts its text. Blocks (parsing, OCR subprocesses):
    /// run it on a blocking thread.
    pub fn extract(&self, bytes: &[u8]) -> ExtractResult<Extracted> {
        if bytes.is_empty() {
            return Err(ExtractError::Empty);
        }
        if bytes.len() > self.limits.max_input_bytes {
            return Err(ExtractError::TooLarge {
                size: bytes.len(),
                limit: self.limits.max_input_bytes,
            });
        }
        let budget = Budget::new(self.limits.time_budget);
        let extracted = match sniff(bytes)? {
            Sniffed::Pdf => pdf::extract(bytes, self, &budget)?,
            Sniffed::Docx => docx::extract(bytes, &self.limits, &budget)?,
            Sniffed::Image(format) => ocr::extract_image(bytes, format, self, &budget)?,
            Sniffed::Text => {
                let decoded = text::decode(bytes)?;
                text::extract_decoded(decoded, &self.limits)?
            }
        };
        check_text_size(extracted.pages.iter().map(|p| p.text.len()), &self.limits)?;
        Ok(extracted)
    }
}

/// What the bytes are, before text decoding tells plain text, Markdown and HTML apart.
enum Sniffed {
    Pdf,
    Docx,
    Image(Format),
    Text,
}

/// Tells the format from magic numbers and, for ZIP archives, from the entries.
fn sniff(bytes: &[u8]) -> ExtractResult<Sniffed> {
    if is_pdf(bytes) {
        return Ok(Sniffed::Pdf);
    }
    match infer::get(bytes).map(|kind| kind.mime_type()) {
        Some("image/png") => Ok(Sniffed::Image(Format::Png)),
        Some("image/jpeg") => Ok(Sniffed::Image(Format::Jpeg)),
        // infer takes `%PDF` anywhere in the first kilobyte: text that mentions it is text.
        Some("application/pdf") if !text::looks_binary(bytes) => Ok(Sniffed::Text),
        Some("application/pdf") => Err(ExtractError::Malformed {
            format: Format::Pdf,
            reason: "no %PDF-x.y header at the start of a line in the first 1024 bytes".to_owned(),
        }),
        Some(mime) if docx::is_zip(bytes) => {
            if docx::has_document_part(bytes) {
                Ok(Sniffed::Docx)
            } else {
                Err(ExtractError::Unsupported {
                    detected: format!("{mime} without word/document.xml"),
                })
            }
        }
        // Markup and scripts are text; anything else infer names is a binary type.
        Some(mime) if mime.starts_with("text/") => Ok(Sniffed::Text),
        Some(mime) => Err(ExtractError::Unsupported {
            detected: mime.to_owned(),
        }),
        None if text::looks_binary(bytes) => Err(ExtractError::Unsupported {
            detected: "binary data".to_owned(),
        }),
        None => Ok(Sniffed::Text),
    }
}

/// A PDF header (`%PDF-1.7`) at the start of a line in the first kilobyte: readers accept some
/// junk before it.
fn is_pdf(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024 + 8)];
    head.windows(8).enumerate().any(|(at, w)| {
        w.starts_with(b"%PDF-")
            && w[5].is_ascii_digit()
            && w[6] == b'.'
            && w[7].is_ascii_digit()
            && (at == 0 || matches!(head[at - 1], b'\n' | b'\r'))
            && at <= 1024
    })
}

/// Fails when the text of all pages together is over the limit.
fn check_text_size(sizes: impl Iterator<Item = usize>, limits: &Limits) -> ExtractResult<()> {
    if sizes.sum::<usize>() > limits.max_text_bytes {
        return Err(ExtractError::TextTooLarge {
            limit: limits.max_text_bytes,
        });
    }
    Ok(())
}

/// Runs a third-party parser, turning a panic into [`ExtractError::ParserPanicked`].
fn guarded<T>(format: Format, f: impl FnOnce() -> T) -> ExtractResult<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
        tracing::warn!(%format, "document parser panicked");
        ExtractError::ParserPanicked { format }
    })
}

/// The wall-time budget of one extraction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    deadline: Instant,
    limit: Duration,
}

impl Budget {
    fn new(limit: Duration) -> Self {
        Self {
            deadline: Instant::now() + limit,
            limit,
        }
    }

    /// Fails once the budget is spent.
    fn check(&self, stage: &'static str) -> ExtractResult<()> {
        if self.expired() {
            return Err(self.timed_out(stage));
        }
        Ok(())
    }

    fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    fn timed_out(&self, stage: &'static str) -> ExtractError {
        ExtractError::TimedOut {
            stage,
            limit: self.limit,
        }
    }

    /// Time left, at most `cap`.
    fn remaining(&self, cap: Duration) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .min(cap)
    }
}
