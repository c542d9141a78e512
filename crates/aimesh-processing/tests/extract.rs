//! Extraction of real documents built by the tests, and of hostile ones.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aimesh_processing::{
    ChunkOptions, Engine, ExtractError, Extractor, Format, Limits, OcrSettings, chunk,
};
use common::{PdfPage, docx, page_break, paragraph, pdf};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn extractor() -> Extractor {
    Extractor::default()
}

fn small_limits() -> Limits {
    Limits {
        max_decompressed_bytes: 1 << 20,
        ..Limits::default()
    }
}

/// Lower-cased words of OCR output, for tolerant comparisons.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

// === text formats ===

#[test]
fn plain_text_utf8_utf16_and_latin1() {
    let e = extractor();
    let utf8 = e
        .extract("Grüße aus Köln.\nZweite Zeile.".as_bytes())
        .unwrap();
    assert_eq!(utf8.format, Format::PlainText);
    assert_eq!(utf8.engine, Engine::Text);
    assert_eq!(utf8.page_count, 1);
    assert_eq!(utf8.pages[0].text, "Grüße aus Köln.\nZweite Zeile.");

    let mut utf16 = vec![0xFE, 0xFF];
    for unit in "Grüße aus Köln.".encode_utf16() {
        utf16.extend_from_slice(&unit.to_be_bytes());
    }
    assert_eq!(e.extract(&utf16).unwrap().pages[0].text, "Grüße aus Köln.");

    let latin1 = b"Gr\xfc\xdfe aus K\xf6ln.";
    assert_eq!(e.extract(latin1).unwrap().pages[0].text, "Grüße aus Köln.");
}

#[test]
fn text_mentioning_a_pdf_header_is_still_text() {
    let source = "# PDF notes\n\nA file starts with %PDF-1.7 and ends with %%EOF.\n";
    let extracted = extractor().extract(source.as_bytes()).unwrap();
    assert_eq!(extracted.format, Format::Markdown);
    // Junk before the header at the start of a line is accepted, as PDF readers do.
    let mut junk = b"X-Mailer: scan\r\n".to_vec();
    junk.extend(pdf(&[PdfPage::Text(&["behind junk"], 12)], false));
    assert_eq!(
        extractor().extract(&junk).unwrap().pages[0].text,
        "behind junk"
    );
}

#[test]
fn markdown_keeps_text_and_finds_headings() {
    let source = "# Guide\n\nIntro text.\n\n## Install\n\nRun the installer.\n";
    let extracted = extractor().extract(source.as_bytes()).unwrap();
    assert_eq!(extracted.format, Format::Markdown);
    let page = &extracted.pages[0];
    assert_eq!(page.text, source);
    let titles: Vec<_> = page.headings.iter().map(|h| h.title.as_str()).collect();
    assert_eq!(titles, ["Guide", "Install"]);
    let chunks = chunk(&extracted, &ChunkOptions::default());
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[1].heading.as_deref(), Some("Install"));
    assert_eq!(chunks[1].text, "## Install\n\nRun the installer.");
}

#[test]
fn html_text_without_scripts_and_styles() {
    let source = "<!doctype html><html><head><title>Ignored</title>\
                  <script>var secret = 1;</script></head><body>\
                  <h1>Report</h1><style>.x{}</style><p>Revenue grew &amp; costs fell.</p>\
                  <noscript>enable js</noscript><table><tr><td>a</td><td>b</td></tr></table>\
                  </body></html>";
    let extracted = extractor().extract(source.as_bytes()).unwrap();
    assert_eq!(extracted.format, Format::Html);
    let text = &extracted.pages[0].text;
    assert_eq!(text, "Report\n\nRevenue grew & costs fell.\n\na b");
    assert_eq!(extracted.pages[0].headings[0].title, "Report");
}

// === PDF ===

#[test]
fn pdf_text_layer_per_page() {
    for compress in [false, true] {
        let bytes = pdf(
            &[
                PdfPage::Text(&["The first page speaks of apples.", "Second line."], 12),
                PdfPage::Text(&["Page two is about bananas."], 12),
                PdfPage::Text(&["Cherries close the third page."], 12),
            ],
            compress,
        );
        let extracted = extractor().extract(&bytes).unwrap();
        assert_eq!(extracted.format, Format::Pdf);
        assert_eq!(extracted.engine, Engine::PdfText);
        assert_eq!(extracted.page_count, 3);
        let texts: Vec<_> = extracted.pages.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "The first page speaks of apples.\nSecond line.",
                "Page two is about bananas.",
                "Cherries close the third page.",
            ],
            "compressed: {compress}"
        );
        assert_eq!(
            extracted.pages.iter().map(|p| p.number).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let chunks = chunk(&extracted, &ChunkOptions::default());
        assert_eq!(chunks.iter().map(|c| c.page).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(chunks[0].text, extracted.pages[0].text);
    }
}

#[test]
fn a_page_the_pdf_parser_fails_on_does_not_lose_the_others() {
    let ocr = OcrSettings {
        enabled: false,
        ..OcrSettings::default()
    };
    let extracted = Extractor::new(Limits::default(), ocr)
        .extract(&common::pdf_with_broken_middle_page())
        .unwrap();
    let texts: Vec<_> = extracted.pages.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(texts, ["First page.", "", "Third page."]);
}

#[test]
fn scanned_pdf_goes_through_ocr() {
    common::require_ocr_tools();
    let (w, h, pixels) = common::scanned_page_pixels(&["Invoice number 4711", "Total due today"]);
    let bytes = pdf(
        &[
            PdfPage::Text(&["A typed cover page."], 12),
            PdfPage::Image(w, h, &pixels),
        ],
        true,
    );
    let extracted = extractor().extract(&bytes).unwrap();
    assert_eq!(extracted.page_count, 2);
    assert_eq!(extracted.engine, Engine::PdfTextAndTesseract);
    assert_eq!(extracted.pages[0].engine, Engine::PdfText);
    assert_eq!(extracted.pages[0].text, "A typed cover page.");
    assert_eq!(extracted.pages[1].engine, Engine::Tesseract);
    let ocr = words(&extracted.pages[1].text);
    for expected in ["invoice", "number", "4711", "total", "due", "today"] {
        assert!(
            ocr.contains(&expected.to_owned()),
            "{expected} missing from {ocr:?}"
        );
    }
}

#[test]
fn image_only_pdf_is_all_tesseract() {
    common::require_ocr_tools();
    let (w, h, pixels) = common::scanned_page_pixels(&["Quarterly report summary"]);
    let bytes = pdf(&[PdfPage::Image(w, h, &pixels)], true);
    let extracted = extractor().extract(&bytes).unwrap();
    assert_eq!(extracted.engine, Engine::Tesseract);
    let ocr = words(&extracted.pages[0].text);
    assert!(ocr.contains(&"quarterly".to_owned()), "{ocr:?}");
}

#[test]
fn scanned_pdf_without_ocr_is_an_error() {
    let bytes = pdf(&[PdfPage::Blank, PdfPage::Blank], false);
    let ocr = OcrSettings {
        enabled: false,
        ..OcrSettings::default()
    };
    let error = Extractor::new(Limits::default(), ocr)
        .extract(&bytes)
        .unwrap_err();
    assert!(
        matches!(error, ExtractError::OcrDisabled { pages: 2 }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "2 pages have no text layer and ocr is disabled"
    );
}

#[test]
fn missing_ocr_tool_says_how_to_install() {
    let bytes = pdf(&[PdfPage::Blank], false);
    let ocr = OcrSettings {
        pdftoppm: "/nonexistent/pdftoppm".into(),
        ..OcrSettings::default()
    };
    let error = Extractor::new(Limits::default(), ocr)
        .extract(&bytes)
        .unwrap_err();
    assert!(matches!(error, ExtractError::ToolMissing { .. }), "{error}");
    assert!(error.to_string().contains("poppler-utils"), "{error}");
}

// === images ===

#[test]
fn png_and_jpeg_through_ocr() {
    common::require_ocr_tools();
    let source = pdf(&[PdfPage::Text(&["Meeting notes for Tuesday"], 24)], false);
    for format in ["png", "jpeg"] {
        let image = common::rasterise(&source, format, 150);
        let extracted = extractor().extract(&image).unwrap();
        assert_eq!(extracted.format.as_str(), format);
        assert_eq!(extracted.engine, Engine::Tesseract);
        let ocr = words(&extracted.pages[0].text);
        for expected in ["meeting", "notes", "tuesday"] {
            assert!(ocr.contains(&expected.to_owned()), "{format}: {ocr:?}");
        }
    }
}

/// A PNG signature and an IHDR chunk claiming these dimensions (no pixel data).
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    png.extend_from_slice(&width.to_be_bytes());
    png.extend_from_slice(&height.to_be_bytes());
    png.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0, 0]);
    png
}

#[test]
fn image_declaring_huge_dimensions_is_refused_before_ocr() {
    let error = extractor()
        .extract(&png_header(100_000, 100_000))
        .unwrap_err();
    assert!(
        matches!(error, ExtractError::ImageTooLarge { .. }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "image is 100000x100000 pixels, over the limit of 50000000 pixels"
    );
}

/// An OCR program that is a shell script (a stuck or runaway tool).
#[cfg(unix)]
fn script_tool(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[cfg(unix)]
#[test]
fn stuck_or_runaway_ocr_tools_are_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let png = png_header(10, 10);

    let stuck = OcrSettings {
        tesseract: script_tool(dir.path(), "stuck", "exec sleep 600"),
        tool_timeout: Duration::from_millis(300),
        ..OcrSettings::default()
    };
    let error = Extractor::new(Limits::default(), stuck)
        .extract(&png)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "tesseract exceeded the time limit of 300ms"
    );

    // Tesseract writes its text to `<second argument>.txt`.
    let runaway = OcrSettings {
        tesseract: script_tool(
            dir.path(),
            "runaway",
            "head -c 3000000 /dev/zero > \"$2.txt\"",
        ),
        ..OcrSettings::default()
    };
    let error = Extractor::new(Limits::default(), runaway)
        .extract(&png)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "tesseract output exceeds the limit of 1048576 bytes"
    );

    let failing = OcrSettings {
        tesseract: script_tool(
            dir.path(),
            "failing",
            "echo 'cannot read image' >&2; exit 3",
        ),
        ..OcrSettings::default()
    };
    let error = Extractor::new(Limits::default(), failing)
        .extract(&png)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "tesseract failed: exit status: 3: cannot read image"
    );
}

// === DOCX ===

#[test]
fn docx_paragraphs_headings_and_page_breaks() {
    let body = [
        paragraph(Some("Title"), "Annual Plan"),
        paragraph(None, "Goals for the year &amp; beyond."),
        paragraph(Some("Heading2"), "Budget"),
        paragraph(None, "Spend less."),
        page_break(),
        paragraph(None, "Second page text."),
    ]
    .concat();
    let extracted = extractor().extract(&docx(&body)).unwrap();
    assert_eq!(extracted.format, Format::Docx);
    assert_eq!(extracted.engine, Engine::Docx);
    assert_eq!(extracted.page_count, 2);
    let first = &extracted.pages[0];
    assert_eq!(
        first.text,
        "Annual Plan\n\nGoals for the year & beyond.\n\nBudget\n\nSpend less."
    );
    let headings: Vec<_> = first
        .headings
        .iter()
        .map(|h| (h.level, h.title.as_str()))
        .collect();
    assert_eq!(headings, [(1, "Annual Plan"), (2, "Budget")]);
    assert_eq!(
        &first.text[first.headings[1].start..first.headings[1].end],
        "Budget"
    );
    assert_eq!(extracted.pages[1].text, "Second page text.");
    assert_eq!(extracted.pages[1].number, 2);
}

#[test]
fn zip_without_document_part_is_unsupported() {
    let bytes = common::zip_entries(&[("notes.txt", b"hello")]);
    let error = extractor().extract(&bytes).unwrap_err();
    assert!(matches!(error, ExtractError::Unsupported { .. }), "{error}");
}

// === hostile inputs ===

#[test]
fn docx_zip_bomb_hits_the_compression_ratio_limit() {
    let xml = format!(
        "<w:document xmlns:w=\"w\"><w:body>{}</w:body></w:document>",
        " ".repeat(20 << 20)
    );
    let bytes = common::zip_entries(&[("word/document.xml", xml.as_bytes())]);
    assert!(bytes.len() < 100_000);
    let error = extractor().extract(&bytes).unwrap_err();
    assert!(
        matches!(error, ExtractError::CompressionRatio { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with("docx entry word/document.xml has a compression ratio of")
    );
}

#[test]
fn docx_over_the_decompressed_size_limit() {
    // Text that compresses only about 3:1, above the 1 MiB limit in total.
    let mut rng = StdRng::seed_from_u64(7);
    let text: String = (0..(2 << 20))
        .map(|_| rng.gen_range(b'a'..=b'z') as char)
        .collect();
    let body = paragraph(None, &text);
    let error = Extractor::new(small_limits(), OcrSettings::default())
        .extract(&docx(&body))
        .unwrap_err();
    assert!(
        matches!(error, ExtractError::DecompressedTooLarge { .. }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "docx archive: decompressed size exceeds the limit of 1048576 bytes"
    );
}

#[test]
fn docx_with_too_many_entries() {
    let names: Vec<String> = (0..60).map(|i| format!("word/media/{i}.bin")).collect();
    let mut entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    entries.push(("word/document.xml", b"<w:document/>"));
    let limits = Limits {
        max_zip_entries: 50,
        ..Limits::default()
    };
    let error = Extractor::new(limits, OcrSettings::default())
        .extract(&common::zip_entries(&entries))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "docx archive has 61 entries, over the limit of 50"
    );
}

#[test]
fn deeply_nested_docx() {
    let nested = format!("{}{}", "<w:r>".repeat(10_000), "</w:r>".repeat(10_000));
    let error = extractor().extract(&docx(&nested)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "docx document nests elements deeper than 512 levels"
    );
}

#[test]
fn deeply_nested_html() {
    let html = format!("<html><body>{}deep</body></html>", "<div>".repeat(100_000));
    let error = extractor().extract(html.as_bytes()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "html document nests elements deeper than 512 levels"
    );
}

#[test]
fn truncated_pdf_is_an_error() {
    let bytes = pdf(
        &[
            PdfPage::Text(&["one"], 12),
            PdfPage::Text(&["two"], 12),
            PdfPage::Text(&["three"], 12),
        ],
        true,
    );
    for cut in [bytes.len() / 2, 40, 9] {
        let error = extractor().extract(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(
                error,
                ExtractError::Malformed {
                    format: Format::Pdf,
                    ..
                }
            ),
            "cut at {cut}: {error}"
        );
    }
}

#[test]
fn pdf_declaring_ten_thousand_pages_hits_the_page_limit() {
    let bytes = empty_pages();
    let error = extractor().extract(&bytes).unwrap_err();
    assert_eq!(
        error.to_string(),
        "pdf document has more than 2000 pages (the page limit)"
    );
}

fn empty_pages() -> Vec<u8> {
    common::empty_pages_pdf(10_000)
}

#[test]
fn blank_pages_over_the_ocr_page_limit() {
    let bytes = common::empty_pages_pdf(120);
    let error = extractor().extract(&bytes).unwrap_err();
    assert_eq!(
        error.to_string(),
        "120 pages have no text layer and need ocr, over the limit of 50 ocr pages"
    );
}

#[test]
fn pdf_flate_bomb_hits_the_decompressed_size_limit() {
    let bytes = common::flate_bomb_pdf(16 << 20);
    assert!(bytes.len() < 100_000);
    let error = Extractor::new(small_limits(), OcrSettings::default())
        .extract(&bytes)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "pdf streams: decompressed size exceeds the limit of 1048576 bytes"
    );
}

#[test]
fn nested_form_xobjects_are_read_and_recursive_ones_refused() {
    let extracted = extractor().extract(&common::forms_pdf(3, false)).unwrap();
    assert_eq!(extracted.pages[0].text, "form 0\nform 1\nform 2");

    // pdf-extract would recurse until the stack overflows, which aborts the process.
    for bytes in [common::forms_pdf(3, true), common::forms_pdf(40, false)] {
        let error = extractor().extract(&bytes).unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed pdf document: form xobjects invoke each other recursively or deeper \
             than 16 levels"
        );
    }
}

#[test]
fn pdf_cross_reference_stream_bomb_is_refused_before_loading() {
    let bytes = common::xref_bomb_pdf(16 << 20);
    let error = Extractor::new(small_limits(), OcrSettings::default())
        .extract(&bytes)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "pdf cross-reference stream: decompressed size exceeds the limit of 1048576 bytes"
    );
}

#[test]
fn deeply_nested_pdf_objects_do_not_overflow_the_stack() {
    common::require_ocr_tools();
    for depth in [1_000, 100_000] {
        // lopdf skips the over-deep objects; its content parser refuses the page's stream and
        // pdf-extract panics on that (caught): the page is then read by OCR, as poppler
        // renders it.
        let extracted = extractor()
            .extract(&common::deeply_nested_pdf(depth))
            .unwrap();
        assert_eq!(extracted.pages[0].engine, Engine::Tesseract);
        assert_eq!(words(&extracted.pages[0].text), ["nested"]);
    }
}

#[test]
fn page_tree_loops_are_refused() {
    // pdf-extract would look for the media box up the `Parent` chain forever.
    let error = extractor().extract(&common::self_parent_pdf()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "malformed pdf document: the page tree loops or is deeper than 64 levels"
    );
}

#[test]
fn random_bytes_are_refused_listing_supported_types() {
    let mut rng = StdRng::seed_from_u64(42);
    for _ in 0..20 {
        let bytes: Vec<u8> = (0..4096).map(|_| rng.r#gen()).collect();
        let error = extractor().extract(&bytes).unwrap_err();
        assert!(matches!(error, ExtractError::Unsupported { .. }), "{error}");
        assert!(
            error.to_string().contains("supported types: plain text"),
            "{error}"
        );
    }
    // A GIF is an image type, but not a supported one.
    let error = extractor()
        .extract(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "unsupported document type (image/gif); supported types: plain text (utf-8, utf-16 \
         with bom, latin-1), markdown, html, pdf, docx, png, jpeg"
    );
}

#[test]
fn empty_oversized_and_out_of_time() {
    assert!(matches!(extractor().extract(b""), Err(ExtractError::Empty)));
    let limits = Limits {
        max_input_bytes: 10,
        ..Limits::default()
    };
    let error = Extractor::new(limits, OcrSettings::default())
        .extract(b"eleven bytes")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "document is 12 bytes, over the limit of 10 bytes"
    );

    let limits = Limits {
        time_budget: Duration::ZERO,
        ..Limits::default()
    };
    let bytes = pdf(&[PdfPage::Text(&["late"], 12)], false);
    let error = Extractor::new(limits, OcrSettings::default())
        .extract(&bytes)
        .unwrap_err();
    assert!(matches!(error, ExtractError::TimedOut { .. }), "{error}");
}
