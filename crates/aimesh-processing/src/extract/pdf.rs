//! PDF: the text layer of each page through `pdf-extract` (on `lopdf`), and OCR for pages
//! without one.
//!
//! Guards, in order: cross-reference streams are measured in the raw bytes (lopdf inflates them
//! before anything else); every other compressed stream is inflated by this module, within one
//! decompressed-size budget per document, from lopdf's load filter, so neither parser ever
//! inflates an unbounded stream, and image data is dropped there (text never needs it); form
//! XObjects that invoke each other in a cycle or too deep, and page trees whose `Parent` links
//! loop, are refused (pdf-extract would recurse until the stack overflows, which cannot be
//! caught); the page count is checked before any page is read; text output is capped and checks
//! the time budget as it is written; parser panics are caught, and when the one-pass read of all
//! pages fails, pages are read one by one so that a bad page goes to OCR like a scanned one and
//! the others keep their text.

use std::{
    cell::{Cell, RefCell},
    fmt,
    io::{self, Read, Write},
    rc::Rc,
};

use lopdf::{Document, LoadOptions, Object, ObjectId, Stream};
use pdf_extract::{ConvertToFmt, MediaBox, OutputDev, OutputError, PlainTextOutput, Transform};

use super::{Budget, Engine, Extracted, Extractor, Format, Page, guarded, ocr};
use crate::extract_error::{ExtractError, ExtractResult};

/// Dictionary key the load filter sets on a stream it refused to inflate.
const OVER_LIMIT: &str = "AimeshInflateLimit";

/// Per-stream cap when the filter runs on another thread than the extraction (it does not
/// while `lopdf`'s parallel loading is off, as it is here).
const FALLBACK_STREAM_CAP: u64 = 64 << 20;

/// Worst-case expansion of a filter chain this module does not inflate itself.
const WORST_RATIO: u64 = 1400;

thread_local! {
    /// Bytes the streams of the document being loaded may still inflate to.
    static INFLATE_BUDGET: Cell<Option<u64>> = const { Cell::new(None) };
}

fn malformed(reason: impl fmt::Display) -> ExtractError {
    let reason = reason.to_string();
    let mut chars = reason.chars();
    let reason = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unreadable".to_owned(),
    };
    ExtractError::Malformed {
        format: Format::Pdf,
        reason,
    }
}

/// Extracts the text of a PDF document.
pub(super) fn extract(
    bytes: &[u8],
    extractor: &Extractor,
    budget: &Budget,
) -> ExtractResult<Extracted> {
    let limits = &extractor.limits;
    let doc = load(bytes, limits.max_decompressed_bytes)?;
    budget.check("pdf loading")?;

    guarded(Format::Pdf, || check_form_nesting(&doc))??;

    let pages: Vec<ObjectId> = guarded(Format::Pdf, || {
        doc.page_iter().take(limits.max_pages + 1).collect()
    })?;
    if pages.len() > limits.max_pages {
        return Err(ExtractError::TooManyPages {
            format: Format::Pdf,
            limit: limits.max_pages,
        });
    }
    if pages.is_empty() {
        return Err(malformed("the document has no pages"));
    }

    for &page in &pages {
        check_parent_chain(&doc, page)?;
    }

    let mut texts: Vec<Option<String>> = match text_in_one_pass(&doc, pages.len(), limits, budget)?
    {
        Some(texts) => texts.into_iter().map(Some).collect(),
        None => text_page_by_page(&doc, pages.len(), limits, budget)?,
    };
    let mut text_bytes: usize = texts.iter().flatten().map(String::len).sum();
    let unreadable = texts.iter().filter(|t| t.is_none()).count();
    if unreadable == texts.len() && !extractor.ocr.enabled {
        return Err(malformed("no page has a readable text layer"));
    }
    drop(doc);

    let scanned: Vec<usize> = texts
        .iter()
        .enumerate()
        .filter(|(_, t)| t.as_deref().is_none_or(|t| t.trim().is_empty()))
        .map(|(i, _)| i)
        .collect();
    let mut ocr_pages = vec![false; texts.len()];
    if !scanned.is_empty() {
        if !extractor.ocr.enabled {
            if scanned.len() == texts.len() {
                return Err(ExtractError::OcrDisabled {
                    pages: scanned.len(),
                });
            }
        } else {
            if scanned.len() > extractor.ocr.max_pages {
                return Err(ExtractError::TooManyOcrPages {
                    pages: scanned.len(),
                    limit: extractor.ocr.max_pages,
                });
            }
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("document.pdf");
            std::fs::write(&path, bytes)?;
            for &index in &scanned {
                budget.check("ocr")?;
                let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
                let text = ocr::pdf_page(&extractor.ocr, &path, number, budget)?;
                text_bytes += text.len();
                if text_bytes > limits.max_text_bytes {
                    return Err(ExtractError::TextTooLarge {
                        limit: limits.max_text_bytes,
                    });
                }
                texts[index] = Some(text);
                ocr_pages[index] = true;
            }
        }
    }

    let ocr_count = ocr_pages.iter().filter(|&&o| o).count();
    let engine = match ocr_count {
        0 => Engine::PdfText,
        n if n == texts.len() => Engine::Tesseract,
        _ => Engine::PdfTextAndTesseract,
    };
    let pages: Vec<Page> = texts
        .into_iter()
        .zip(ocr_pages)
        .zip(1u32..)
        .map(|((text, ocr), number)| Page {
            number,
            text: text.unwrap_or_default(),
            headings: Vec::new(),
            engine: if ocr {
                Engine::Tesseract
            } else {
                Engine::PdfText
            },
        })
        .collect();
    Ok(Extracted {
        format: Format::Pdf,
        page_count: pages.len(),
        pages,
        engine,
    })
}

/// Refuses cross-reference streams that inflate beyond `limit` bytes. lopdf inflates them
/// while it reads the cross-reference table, before its load filter sees any object, so they
/// are found in the raw bytes (`/XRef` then the next `stream` keyword) and measured here.
fn check_xref_streams(bytes: &[u8], limit: u64) -> ExtractResult<()> {
    let mut at = 0;
    while let Some(found) = find(&bytes[at..], b"/XRef") {
        at += found + 5;
        // The stream data follows its dictionary, which is short.
        let window = &bytes[at..bytes.len().min(at + 4096)];
        let Some(keyword) = find(window, b"stream") else {
            continue;
        };
        let mut data = at + keyword + 6;
        if bytes.get(data) == Some(&b'\r') {
            data += 1;
        }
        if bytes.get(data) == Some(&b'\n') {
            data += 1;
        }
        let Some(tail) = bytes.get(data..) else { break };
        let mut sink = CountingSink { written: 0, limit };
        let _ = io::copy(
            &mut flate2::read::ZlibDecoder::new(tail).take(limit + 1),
            &mut sink,
        );
        if sink.written > limit {
            return Err(ExtractError::DecompressedTooLarge {
                what: "pdf cross-reference stream".to_owned(),
                limit,
            });
        }
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Loads the document with every compressed stream inflated within `max_inflated` bytes.
fn load(bytes: &[u8], max_inflated: u64) -> ExtractResult<Document> {
    check_xref_streams(bytes, max_inflated)?;
    INFLATE_BUDGET.with(|b| b.set(Some(max_inflated)));
    let options = LoadOptions {
        filter: Some(bound_object),
        ..LoadOptions::default()
    };
    let loaded = guarded(Format::Pdf, || {
        Document::load_mem_with_options(bytes, options)
    });
    INFLATE_BUDGET.with(|b| b.set(None));
    let mut doc = match loaded? {
        Ok(doc) => doc,
        Err(lopdf::Error::Decryption(_)) => return Err(ExtractError::Encrypted),
        Err(error) => return Err(malformed(error)),
    };
    let over_limit = doc.objects.values().any(
        |object| matches!(object, Object::Stream(stream) if stream.dict.has(OVER_LIMIT.as_bytes())),
    );
    if over_limit {
        return Err(ExtractError::DecompressedTooLarge {
            what: "pdf streams".to_owned(),
            limit: max_inflated,
        });
    }
    if doc.is_encrypted() {
        let decrypted = guarded(Format::Pdf, || doc.decrypt(""))?;
        if decrypted.is_err() {
            return Err(ExtractError::Encrypted);
        }
    }
    Ok(doc)
}

/// Reads the text of every page in one pass over the document (asked for one page,
/// pdf-extract walks the page tree again each time). `None` when a page fails: the caller then
/// reads page by page, so that one bad page does not lose the others.
fn text_in_one_pass(
    doc: &Document,
    page_count: usize,
    limits: &super::Limits,
    budget: &Budget,
) -> ExtractResult<Option<Vec<String>>> {
    let sink = Rc::new(RefCell::new(CappedText::new(
        limits.max_text_bytes,
        limits.max_text_bytes,
        *budget,
    )));
    let mut splitter = PageSplitter {
        inner: PlainTextOutput::new(SharedText(Rc::clone(&sink))),
        sink: Rc::clone(&sink),
        pages: Vec::with_capacity(page_count),
    };
    let result = guarded(Format::Pdf, || pdf_extract::output_doc(doc, &mut splitter));
    if let Some(stop) = sink.borrow_mut().stop.take() {
        return Err(stop);
    }
    match result {
        Ok(Ok(())) if splitter.pages.len() == page_count => Ok(Some(splitter.pages)),
        Ok(Err(error)) => {
            tracing::debug!(%error, "pdf text unreadable in one pass, reading page by page");
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Reads the text of each page on its own; `None` for a page whose text cannot be read.
fn text_page_by_page(
    doc: &Document,
    page_count: usize,
    limits: &super::Limits,
    budget: &Budget,
) -> ExtractResult<Vec<Option<String>>> {
    let mut texts = Vec::with_capacity(page_count);
    let mut text_bytes = 0usize;
    for number in (1..).take(page_count) {
        budget.check("pdf text extraction")?;
        let mut sink = CappedText::new(
            limits.max_text_bytes.saturating_sub(text_bytes),
            limits.max_text_bytes,
            *budget,
        );
        let result = guarded(Format::Pdf, || {
            let mut output = PlainTextOutput::new(&mut sink);
            pdf_extract::output_doc_page(doc, &mut output, number)
        });
        if let Some(stop) = sink.stop.take() {
            return Err(stop);
        }
        match result {
            Ok(Ok(())) => {
                let text = tidy(&sink.text);
                text_bytes += text.len();
                texts.push(Some(text));
            }
            Ok(Err(error)) => {
                tracing::debug!(page = number, %error, "pdf page text unreadable");
                texts.push(None);
            }
            Err(_) => texts.push(None),
        }
    }
    Ok(texts)
}

/// Cuts the text pdf-extract writes for a whole document at page ends.
struct PageSplitter {
    inner: PlainTextOutput<SharedText>,
    sink: Rc<RefCell<CappedText>>,
    pages: Vec<String>,
}

impl OutputDev for PageSplitter {
    fn begin_page(
        &mut self,
        page_num: u32,
        media_box: &MediaBox,
        art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        {
            let mut sink = self.sink.borrow_mut();
            if sink.budget.expired() {
                sink.stop = Some(sink.budget.timed_out("pdf text extraction"));
                return Err(OutputError::FormatError(fmt::Error));
            }
        }
        self.inner.begin_page(page_num, media_box, art_box)
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        self.inner.end_page()?;
        let text = std::mem::take(&mut self.sink.borrow_mut().text);
        self.pages.push(tidy(&text));
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        spacing: f64,
        font_size: f64,
        char: &str,
    ) -> Result<(), OutputError> {
        self.inner
            .output_character(trm, width, spacing, font_size, char)
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        self.inner.begin_word()
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        self.inner.end_word()
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        self.inner.end_line()
    }
}

/// The capped text shared between [`PageSplitter`] and the output it wraps.
struct SharedText(Rc<RefCell<CappedText>>);

impl fmt::Write for SharedText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.borrow_mut().write_str(s)
    }
}

impl ConvertToFmt for SharedText {
    type Writer = SharedText;

    fn convert(self) -> Self::Writer {
        self
    }
}

/// How deep form XObjects may invoke one another (pdf-extract follows them recursively).
const MAX_FORM_DEPTH: usize = 16;

/// Refuses documents whose form XObjects invoke one another in a cycle or deeper than
/// [`MAX_FORM_DEPTH`]: pdf-extract follows `Do` recursively without a limit, and a stack
/// overflow cannot be caught.
///
/// The call graph is over-approximated: a form with its own resources calls the forms its `Do`
/// operators name there; a form without (which inherits its caller's) may call any form of that
/// name anywhere in the document.
fn check_form_nesting(doc: &Document) -> ExtractResult<()> {
    use std::collections::{BTreeMap, BTreeSet};

    let forms: BTreeMap<ObjectId, &Stream> = doc
        .objects
        .iter()
        .filter_map(|(id, object)| match object {
            Object::Stream(stream)
                if stream
                    .dict
                    .get(b"Subtype")
                    .and_then(Object::as_name)
                    .is_ok_and(|s| s == b"Form") =>
            {
                Some((*id, stream))
            }
            _ => None,
        })
        .collect();
    if forms.is_empty() {
        return Ok(());
    }
    // Every XObject resource dictionary of the document, for forms that inherit resources.
    let xobject_dicts: Vec<&lopdf::Dictionary> = doc
        .objects
        .values()
        .filter_map(|object| match object {
            Object::Dictionary(dict) => Some(dict),
            Object::Stream(stream) => Some(&stream.dict),
            _ => None,
        })
        .filter_map(|dict| deref_dict(doc, dict.get(b"XObject").ok()?))
        .collect();
    let mut calls: BTreeMap<ObjectId, BTreeSet<ObjectId>> = BTreeMap::new();
    for (&id, stream) in &forms {
        let content = match stream.filters() {
            Ok(f) if !f.is_empty() => stream.decompressed_content().unwrap_or_default(),
            _ => stream.content.clone(),
        };
        let Ok(content) = lopdf::content::Content::decode(&content) else {
            continue;
        };
        let names: BTreeSet<&[u8]> = content
            .operations
            .iter()
            .filter(|op| op.operator == "Do")
            .filter_map(|op| op.operands.first()?.as_name().ok())
            .collect();
        if names.is_empty() {
            continue;
        }
        let own = stream
            .dict
            .get(b"Resources")
            .ok()
            .and_then(|r| deref_dict(doc, r))
            .and_then(|r| deref_dict(doc, r.get(b"XObject").ok()?));
        let dicts: Vec<&lopdf::Dictionary> = match own {
            Some(dict) => vec![dict],
            None => xobject_dicts.clone(),
        };
        let targets = calls.entry(id).or_default();
        for name in names {
            for dict in &dicts {
                if let Ok(Object::Reference(target)) = dict.get(name)
                    && forms.contains_key(target)
                {
                    targets.insert(*target);
                }
            }
        }
    }
    // Depth-first search without recursion: a cycle or a long chain is refused. `height` is
    // the longest chain from a finished form down.
    let too_deep = || {
        malformed(format!(
            "form xobjects invoke each other recursively or deeper than {MAX_FORM_DEPTH} levels"
        ))
    };
    let children = |id: &ObjectId| -> Vec<ObjectId> {
        calls
            .get(id)
            .map(|t| t.iter().copied().collect())
            .unwrap_or_default()
    };
    let mut height: BTreeMap<ObjectId, usize> = BTreeMap::new();
    for root in calls.keys() {
        if height.contains_key(root) {
            continue;
        }
        let mut path: Vec<ObjectId> = vec![*root];
        let mut stack: Vec<Vec<ObjectId>> = vec![children(root)];
        while let Some(pending) = stack.last_mut() {
            match pending.pop() {
                Some(next) => {
                    if path.contains(&next) {
                        return Err(too_deep());
                    }
                    if let Some(h) = height.get(&next) {
                        if path.len() + h > MAX_FORM_DEPTH {
                            return Err(too_deep());
                        }
                        continue;
                    }
                    if path.len() + 1 > MAX_FORM_DEPTH {
                        return Err(too_deep());
                    }
                    path.push(next);
                    stack.push(children(&next));
                }
                None => {
                    stack.pop();
                    if let Some(finished) = path.pop() {
                        let below = children(&finished)
                            .iter()
                            .filter_map(|c| height.get(c))
                            .max()
                            .copied()
                            .unwrap_or(0);
                        height.insert(finished, below + 1);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Longest chain of `Parent` links from a page to the root of the page tree.
const MAX_TREE_DEPTH: usize = 64;

/// Refuses a page whose `Parent` links loop or run deeper than [`MAX_TREE_DEPTH`]: pdf-extract
/// looks up inherited attributes by recursing up the chain.
fn check_parent_chain(doc: &Document, page: ObjectId) -> ExtractResult<()> {
    let mut seen = vec![page];
    let mut current = page;
    loop {
        let parent = doc
            .get_dictionary(current)
            .ok()
            .and_then(|dict| dict.get(b"Parent").ok())
            .and_then(|parent| parent.as_reference().ok());
        let Some(parent) = parent else {
            return Ok(());
        };
        if seen.contains(&parent) || seen.len() >= MAX_TREE_DEPTH {
            return Err(malformed(format!(
                "the page tree loops or is deeper than {MAX_TREE_DEPTH} levels"
            )));
        }
        seen.push(parent);
        current = parent;
    }
}

/// A dictionary, directly or through one reference.
fn deref_dict<'a>(doc: &'a Document, object: &'a Object) -> Option<&'a lopdf::Dictionary> {
    match object {
        Object::Dictionary(dict) => Some(dict),
        Object::Reference(id) => doc.get_object(*id).ok()?.as_dict().ok(),
        _ => None,
    }
}

/// `lopdf`'s load filter: inflates compressed streams within the budget.
///
/// lopdf keeps the object it passed in for top-level objects and the returned one for objects
/// inside object streams (which are never streams): streams are changed in place, other objects
/// returned as they are.
fn bound_object(id: ObjectId, object: &mut Object) -> Option<(ObjectId, Object)> {
    match object {
        Object::Stream(stream) => {
            bound_stream(stream);
            Some((id, Object::Null))
        }
        other => Some((id, other.clone())),
    }
}

fn bound_stream(stream: &mut Stream) {
    let is_image = stream
        .dict
        .get(b"Subtype")
        .and_then(Object::as_name)
        .is_ok_and(|s| s == b"Image");
    let filters: Vec<Vec<u8>> = match stream.filters() {
        Ok(filters) => filters.into_iter().map(<[u8]>::to_vec).collect(),
        Err(_) => Vec::new(),
    };
    // Image data is never needed for text (OCR rasterises the original file), but pdf-extract
    // inflates an image's data when a page draws it: it is dropped here.
    if is_image {
        stream.set_plain_content(Vec::new());
        return;
    }
    if filters.is_empty() {
        return;
    }
    let remaining = INFLATE_BUDGET
        .with(Cell::get)
        .unwrap_or(FALLBACK_STREAM_CAP);
    let has_params = stream.dict.has(b"DecodeParms");
    let inflated = match filters.as_slice() {
        [f] if f == b"FlateDecode" => inflate(&stream.content, remaining),
        [f] if f == b"LZWDecode" => lzw_size(&stream.content, remaining).map(|_| None),
        _ => {
            // Other chains are left to lopdf; their worst case must fit the budget.
            let worst = (stream.content.len() as u64).saturating_mul(WORST_RATIO);
            if worst > remaining { Err(()) } else { Ok(None) }
        }
    };
    match inflated {
        Ok(Some(plain)) => {
            spend(plain.len() as u64);
            // Predictors (DecodeParms) are applied by lopdf; then only the size is checked here.
            if !has_params {
                stream.set_plain_content(plain);
            }
        }
        Ok(None) => {}
        Err(()) => {
            stream.content.clear();
            stream.dict.remove(b"Filter");
            stream.dict.remove(b"DecodeParms");
            stream.dict.set(OVER_LIMIT, true);
        }
    }
}

fn spend(bytes: u64) {
    INFLATE_BUDGET.with(|b| {
        if let Some(remaining) = b.get() {
            b.set(Some(remaining.saturating_sub(bytes)));
        }
    });
}

/// Inflates a zlib stream (raw deflate as a fallback, as lopdf does) up to `limit` bytes.
/// `Err` when over the limit; `Ok(None)` when undecodable (left to lopdf to report).
fn inflate(data: &[u8], limit: u64) -> Result<Option<Vec<u8>>, ()> {
    let mut out = Vec::new();
    let zlib = flate2::read::ZlibDecoder::new(data)
        .take(limit + 1)
        .read_to_end(&mut out);
    if zlib.is_err() && out.is_empty() && data.len() > 2 {
        let _ = flate2::read::DeflateDecoder::new(&data[2..])
            .take(limit + 1)
            .read_to_end(&mut out);
    }
    if out.len() as u64 > limit {
        return Err(());
    }
    Ok(Some(out))
}

/// Measures an LZW stream, failing when it inflates beyond `limit` bytes.
fn lzw_size(data: &[u8], limit: u64) -> Result<u64, ()> {
    let mut sink = CountingSink { written: 0, limit };
    let mut decoder = weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
    let _ = decoder.into_stream(&mut sink).decode_all(data);
    if sink.written > limit {
        return Err(());
    }
    spend(sink.written);
    Ok(sink.written)
}

struct CountingSink {
    written: u64,
    limit: u64,
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len() as u64;
        if self.written > self.limit {
            return Err(io::Error::other("inflate limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Trims the whitespace `pdf-extract` puts around lines and pages.
fn tidy(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim().to_owned()
}

/// Page text as `pdf-extract` writes it, stopped at the text cap or the time budget.
struct CappedText {
    text: String,
    /// Bytes written so far, also those taken out of `text`.
    written: usize,
    /// Bytes that may still be written.
    cap: usize,
    /// The text limit of the document, for the error.
    limit: usize,
    budget: Budget,
    writes: u32,
    stop: Option<ExtractError>,
}

impl CappedText {
    fn new(cap: usize, limit: usize, budget: Budget) -> Self {
        Self {
            text: String::new(),
            written: 0,
            cap,
            limit,
            budget,
            writes: 0,
            stop: None,
        }
    }
}

impl fmt::Write for CappedText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.stop.is_some() {
            return Err(fmt::Error);
        }
        self.writes = self.writes.wrapping_add(1);
        if self.writes.is_multiple_of(256) && self.budget.expired() {
            self.stop = Some(self.budget.timed_out("pdf text extraction"));
            return Err(fmt::Error);
        }
        if self.written + s.len() > self.cap {
            self.stop = Some(ExtractError::TextTooLarge { limit: self.limit });
            return Err(fmt::Error);
        }
        self.written += s.len();
        self.text.push_str(s);
        Ok(())
    }
}

impl<'a> ConvertToFmt for &'a mut CappedText {
    type Writer = &'a mut CappedText;

    fn convert(self) -> Self::Writer {
        self
    }
}
