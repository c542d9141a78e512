//! Errors of document extraction: each says what is wrong with the document and, where one was
//! hit, which limit.

use std::time::Duration;

use crate::extract::Format;

/// The document types extraction accepts, as listed in [`ExtractError::Unsupported`].
pub const SUPPORTED_TYPES: &str = "plain text (utf-8, utf-16 with bom, latin-1), markdown, html, \
                                   pdf, docx, png, jpeg";

/// Why a document could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The document has no bytes.
    #[error("document is empty")]
    Empty,
    /// The document is larger than [`crate::Limits::max_input_bytes`].
    #[error("document is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Size of the document.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not one of the supported types.
    #[error("unsupported document type ({detected}); supported types: {SUPPORTED_TYPES}")]
    Unsupported {
        /// What the bytes look like.
        detected: String,
    },
    /// The document is corrupt or not what its header claims.
    #[error("malformed {format} document: {reason}")]
    Malformed {
        /// The sniffed format.
        format: Format,
        /// What is wrong.
        reason: String,
    },
    /// A third-party parser panicked on the document.
    #[error("the {format} parser failed on this document (it is malformed or unsupported)")]
    ParserPanicked {
        /// The sniffed format.
        format: Format,
    },
    /// The PDF is encrypted with a user password.
    #[error("pdf is encrypted and cannot be opened without a password")]
    Encrypted,
    /// The document has more pages than [`crate::Limits::max_pages`].
    #[error("{format} document has more than {limit} pages (the page limit)")]
    TooManyPages {
        /// The sniffed format.
        format: Format,
        /// The limit.
        limit: usize,
    },
    /// More pages need OCR than [`OcrSettings::max_pages`](crate::OcrSettings::max_pages).
    #[error("{pages} pages have no text layer and need ocr, over the limit of {limit} ocr pages")]
    TooManyOcrPages {
        /// Pages without a text layer.
        pages: usize,
        /// The limit.
        limit: usize,
    },
    /// Pages without a text layer need OCR but OCR is disabled.
    #[error("{pages} pages have no text layer and ocr is disabled")]
    OcrDisabled {
        /// Pages without a text layer.
        pages: usize,
    },
    /// The extracted text is longer than [`crate::Limits::max_text_bytes`].
    #[error("extracted text exceeds the limit of {limit} bytes")]
    TextTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A compressed part of the document inflates beyond its limit.
    #[error("{what}: decompressed size exceeds the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The part, e.g. `docx entry word/document.xml` or `pdf streams`.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A DOCX archive has more entries than [`crate::Limits::max_zip_entries`].
    #[error("docx archive has {entries} entries, over the limit of {limit}")]
    TooManyEntries {
        /// Entries in the archive.
        entries: usize,
        /// The limit.
        limit: usize,
    },
    /// A DOCX archive entry compresses better than a real document can (a zip bomb).
    #[error("docx entry {entry} has a compression ratio of {ratio}:1, over the limit of {limit}:1")]
    CompressionRatio {
        /// The entry name.
        entry: String,
        /// Its ratio of uncompressed to compressed size.
        ratio: u64,
        /// The limit.
        limit: u64,
    },
    /// Markup nests deeper than [`crate::Limits::max_depth`].
    #[error("{format} document nests elements deeper than {limit} levels")]
    TooDeep {
        /// The sniffed format.
        format: Format,
        /// The limit.
        limit: usize,
    },
    /// An image has more pixels than [`crate::Limits::max_image_pixels`].
    #[error("image is {width}x{height} pixels, over the limit of {limit} pixels")]
    ImageTooLarge {
        /// Width in pixels.
        width: u64,
        /// Height in pixels.
        height: u64,
        /// The limit.
        limit: u64,
    },
    /// Extraction ran out of its time budget.
    #[error("{stage} exceeded the time limit of {limit:?}")]
    TimedOut {
        /// What was running, e.g. `pdf text extraction` or `tesseract`.
        stage: &'static str,
        /// The limit.
        limit: Duration,
    },
    /// An external tool needed for this document is not installed.
    #[error("{tool} is not installed or not runnable; install {install}")]
    ToolMissing {
        /// The program.
        tool: String,
        /// How to install it.
        install: &'static str,
    },
    /// An external tool failed.
    #[error("{tool} failed: {message}")]
    ToolFailed {
        /// The program.
        tool: &'static str,
        /// Its exit status and the start of its error output.
        message: String,
    },
    /// An external tool wrote more output than allowed.
    #[error("{tool} output exceeds the limit of {limit} bytes")]
    ToolOutputTooLarge {
        /// The program.
        tool: &'static str,
        /// The limit.
        limit: u64,
    },
    /// A temporary file for an external tool could not be written or read.
    #[error("temporary file error: {0}")]
    Io(#[from] std::io::Error),
}

/// The result of an extraction step.
pub type ExtractResult<T> = Result<T, ExtractError>;
