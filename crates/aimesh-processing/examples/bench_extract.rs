//! PDF text extraction throughput, side by side with poppler's `pdftotext` on the same generated
//! documents (A4 pages of Helvetica text, Flate-compressed), in pages per second.
//!
//! Run: `cargo run --release -p aimesh-processing --example bench_extract [min-seconds]`
//! (needs `pdftotext`: `. scripts/tools.sh poppler`).

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use aimesh_processing::{Extractor, Limits, OcrSettings};
use common::{PdfPage, pdf};

const WORDS: &[&str] = &[
    "extraction",
    "document",
    "service",
    "page",
    "text",
    "layer",
    "embedding",
    "search",
    "semantic",
    "chunk",
    "upload",
    "format",
    "mesh",
    "budget",
    "limit",
    "parser",
];

/// 45 lines of about 11 words each, different on every page.
fn page_lines(page: usize) -> Vec<String> {
    (0..45)
        .map(|line| {
            (0..11)
                .map(|w| WORDS[(page * 7 + line * 3 + w * 5) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn document(pages: usize) -> Vec<u8> {
    let lines: Vec<Vec<String>> = (0..pages).map(page_lines).collect();
    let refs: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.iter().map(String::as_str).collect())
        .collect();
    let pages: Vec<PdfPage<'_>> = refs.iter().map(|l| PdfPage::Text(l, 10)).collect();
    pdf(&pages, true)
}

/// Runs `f` until `min` has passed (at least 3 times) and returns the median run time and the
/// last result.
fn measure<T>(min: Duration, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::new();
    let start = Instant::now();
    let mut last;
    loop {
        let t = Instant::now();
        last = f();
        times.push(t.elapsed());
        if times.len() >= 3 && start.elapsed() >= min {
            break;
        }
    }
    times.sort();
    (times[times.len() / 2], last)
}

fn main() {
    let min = Duration::from_secs_f64(
        std::env::args()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    );
    let extractor = Extractor::new(
        Limits::default(),
        OcrSettings {
            enabled: false,
            ..OcrSettings::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    println!(
        "{:>6} {:>9} {:>16} {:>16} {:>7} {:>12} {:>12}",
        "pages",
        "pdf KiB",
        "aimesh pages/s",
        "pdftotext pg/s",
        "ratio",
        "aimesh words",
        "pdftotext w"
    );
    for pages in [1, 10, 100, 500] {
        let bytes = document(pages);
        let path = dir.path().join(format!("doc{pages}.pdf"));
        let out = dir.path().join(format!("doc{pages}.txt"));
        common::write(&path, &bytes);

        let (ours, extracted) = measure(min, || extractor.extract(&bytes).unwrap());
        assert_eq!(extracted.page_count, pages);
        let our_words = extracted.text().split_whitespace().count();

        let (theirs, ()) = measure(min, || {
            let status = Command::new("pdftotext")
                .arg(&path)
                .arg(&out)
                .status()
                .expect("pdftotext runs (install poppler-utils: . scripts/tools.sh poppler)");
            assert!(status.success());
        });
        let their_words = std::fs::read_to_string(&out)
            .unwrap()
            .split_whitespace()
            .count();

        let rate = |d: Duration| pages as f64 / d.as_secs_f64();
        println!(
            "{:>6} {:>9.1} {:>16.0} {:>16.0} {:>7.2} {:>12} {:>12}",
            pages,
            bytes.len() as f64 / 1024.0,
            rate(ours),
            rate(theirs),
            rate(ours) / rate(theirs),
            our_words,
            their_words,
        );
    }
}
