//! Property-based fuzzing of every parser with a fixed, small budget: arbitrary bytes behind each
//! format's magic number, and random mutations (overwrites, truncation, insertions) of valid
//! documents. Extraction must end in a value or an error, never a panic, and whatever it
//! returns must be consistent and chunkable. Exploring further:
//! `PROPTEST_CASES=20000 PROPTEST_RNG_SEED=<n> cargo test -p aimesh-processing --test fuzz`.

#![allow(clippy::unwrap_used)]

mod common;

use std::{sync::LazyLock, time::Duration};

use aimesh_processing::{ChunkOptions, Extractor, Limits, OcrSettings, chunk};
use common::{PdfPage, docx, page_break, paragraph, pdf};
use proptest::{
    prelude::*,
    test_runner::{Config, RngSeed},
};

fn extractor() -> Extractor {
    Extractor::new(
        Limits {
            max_input_bytes: 1 << 20,
            max_text_bytes: 1 << 20,
            max_decompressed_bytes: 8 << 20,
            time_budget: Duration::from_secs(10),
            ..Limits::default()
        },
        // Pages without text would otherwise each run Tesseract.
        OcrSettings {
            enabled: false,
            ..OcrSettings::default()
        },
    )
}

/// Extracts and checks what came back; panics (a failure) only on an inconsistent result.
fn check(bytes: &[u8]) {
    let extractor = extractor();
    let Ok(extracted) = extractor.extract(bytes) else {
        return;
    };
    assert_eq!(extracted.page_count, extracted.pages.len());
    let total: usize = extracted.pages.iter().map(|p| p.text.len()).sum();
    assert!(total <= extractor.limits.max_text_bytes);
    for (page, number) in extracted.pages.iter().zip(1u32..) {
        assert_eq!(page.number, number);
        for heading in &page.headings {
            assert!(page.text.get(heading.start..heading.end).is_some());
        }
    }
    for c in chunk(&extracted, &ChunkOptions::default()) {
        let page = &extracted.pages[c.page as usize - 1];
        assert_eq!(&page.text[c.start..c.end], c.text);
    }
}

static VALID_PDF: LazyLock<Vec<u8>> = LazyLock::new(|| {
    pdf(
        &[
            PdfPage::Text(
                &["Fuzzing starts from a valid page.", "With two lines."],
                12,
            ),
            PdfPage::Text(&["And a second page."], 12),
        ],
        true,
    )
});

static VALID_PDF_WITH_FORMS: LazyLock<Vec<u8>> = LazyLock::new(|| common::forms_pdf(3, false));

static VALID_PDF_WITH_IMAGE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    pdf(
        &[
            PdfPage::Image(8, 8, &[128; 64]),
            PdfPage::Text(&["Text after an image."], 12),
        ],
        true,
    )
});

static VALID_DOCX: LazyLock<Vec<u8>> = LazyLock::new(|| {
    docx(
        &[
            paragraph(Some("Heading1"), "Title"),
            paragraph(None, "Body text &amp; more."),
            page_break(),
            paragraph(None, "Page two."),
        ]
        .concat(),
    )
});

const VALID_HTML: &str = "<!doctype html><html><head><style>x{}</style></head><body><h1>T</h1>\
                          <p>One <b>two</b></p><script>s()</script><ul><li>a<li>b</ul></body></html>";

const VALID_MARKDOWN: &str = "# Title\n\nText under it.\n\n## Next\n\n```\n# code\n```\n";

/// Overwrites, a truncation and an insertion applied to a valid document.
fn mutated(valid: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..16),
        any::<prop::sample::Index>(),
        prop::option::of((
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..64),
        )),
        any::<bool>(),
    )
        .prop_map(move |(writes, cut, insert, truncate)| {
            let mut bytes = valid.to_vec();
            for (at, byte) in writes {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            if let Some((at, chunk)) = insert {
                let at = at.index(bytes.len());
                bytes.splice(at..at, chunk);
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len()).max(1));
            }
            bytes
        })
}

/// Arbitrary bytes behind a magic number.
fn behind(magic: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..2048).prop_map(move |tail| {
        let mut bytes = magic.to_vec();
        bytes.extend(tail);
        bytes
    })
}

/// `cases` runs per property from a fixed seed, so CI is deterministic; `PROPTEST_CASES` and
/// `PROPTEST_RNG_SEED` override both to explore further.
fn config(cases: u32) -> Config {
    let mut config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(20_261_202);
    }
    config
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        check(&bytes);
    }

    #[test]
    fn arbitrary_text(text in "\\PC{0,2000}") {
        check(text.as_bytes());
    }

    #[test]
    fn pdf_header_then_garbage(bytes in behind(b"%PDF-1.7\n")) {
        check(&bytes);
    }

    #[test]
    fn mutated_pdf(bytes in mutated(&VALID_PDF)) {
        check(&bytes);
    }

    #[test]
    fn mutated_pdf_with_forms_and_images(
        bytes in prop_oneof![
            mutated(&VALID_PDF_WITH_FORMS),
            mutated(&VALID_PDF_WITH_IMAGE),
        ]
    ) {
        check(&bytes);
    }

    #[test]
    fn zip_header_then_garbage(bytes in behind(b"PK\x03\x04")) {
        check(&bytes);
    }

    #[test]
    fn mutated_docx(bytes in mutated(&VALID_DOCX)) {
        check(&bytes);
    }

    #[test]
    fn mutated_html(bytes in mutated(VALID_HTML.as_bytes())) {
        check(&bytes);
    }

    #[test]
    fn mutated_markdown(bytes in mutated(VALID_MARKDOWN.as_bytes())) {
        check(&bytes);
    }

    #[test]
    fn image_headers_then_garbage(
        bytes in prop_oneof![behind(b"\x89PNG\r\n\x1a\n"), behind(b"\xff\xd8\xff\xe0")]
    ) {
        check(&bytes);
    }
}
