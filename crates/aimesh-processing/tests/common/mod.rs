//! Documents built deterministically for the tests and the benchmark: PDFs written with lopdf,
//! DOCX archives written with zip, and images rasterised from PDF pages by poppler's pdftoppm.

#![allow(dead_code, clippy::unwrap_used, unreachable_pub, missing_docs)]

use std::{io::Write, path::Path, process::Command};

use lopdf::{
    Dictionary, Document, Object, ObjectId, Stream,
    content::{Content, Operation},
    dictionary,
};

/// Fails the test with how to install the OCR tools when they are missing.
pub fn require_ocr_tools() {
    for (tool, arg) in [("tesseract", "--version"), ("pdftoppm", "-v")] {
        let ok = Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "{tool} is not installed: this test runs the real OCR tools; install them with \
             `. scripts/tools.sh tesseract poppler` (Debian packages tesseract-ocr, \
             tesseract-ocr-eng, poppler-utils)"
        );
    }
}

/// A page of a generated PDF.
pub enum PdfPage<'a> {
    /// Lines of text in Helvetica at this size.
    Text(&'a [&'a str], i64),
    /// A greyscale image covering the page (width, height, 8-bit pixels), no text layer.
    Image(u32, u32, &'a [u8]),
    /// Nothing at all.
    Blank,
}

/// Writes an A4 PDF with these pages; streams are Flate-compressed when `compress`.
pub fn pdf(pages: &[PdfPage<'_>], compress: bool) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
    });
    let mut kids: Vec<Object> = Vec::new();
    for page in pages {
        let mut resources = Dictionary::new();
        resources.set("Font", dictionary! { "F1" => font_id });
        let operations = match page {
            PdfPage::Text(lines, size) => {
                let mut ops = vec![
                    Operation::new("BT", vec![]),
                    Operation::new("Tf", vec!["F1".into(), (*size).into()]),
                    Operation::new("TL", vec![(*size * 3 / 2).into()]),
                    Operation::new("Td", vec![50.into(), 780.into()]),
                ];
                for line in lines.iter() {
                    ops.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
                    ops.push(Operation::new("T*", vec![]));
                }
                ops.push(Operation::new("ET", vec![]));
                ops
            }
            PdfPage::Image(width, height, pixels) => {
                let image_id = doc.add_object(Stream::new(
                    dictionary! {
                        "Type" => "XObject",
                        "Subtype" => "Image",
                        "Width" => *width as i64,
                        "Height" => *height as i64,
                        "ColorSpace" => "DeviceGray",
                        "BitsPerComponent" => 8,
                    },
                    pixels.to_vec(),
                ));
                resources.set("XObject", dictionary! { "Im1" => image_id });
                vec![
                    Operation::new("q", vec![]),
                    Operation::new(
                        "cm",
                        vec![
                            595.into(),
                            0.into(),
                            0.into(),
                            842.into(),
                            0.into(),
                            0.into(),
                        ],
                    ),
                    Operation::new("Do", vec!["Im1".into()]),
                    Operation::new("Q", vec![]),
                ]
            }
            PdfPage::Blank => vec![],
        };
        let content = Content { operations }.encode().unwrap();
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
            "Resources" => resources,
        });
        kids.push(page_id.into());
    }
    finish(doc, pages_id, kids, compress)
}

/// A PDF declaring `count` pages that all share one empty content stream.
pub fn empty_pages_pdf(count: usize) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let content_id = doc.add_object(Stream::new(dictionary! {}, Vec::new()));
    let kids = (0..count)
        .map(|_| {
            doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "Contents" => content_id,
            })
            .into()
        })
        .collect();
    finish(doc, pages_id, kids, false)
}

/// A one-page PDF drawing a chain of `chain` form XObjects, each writing `form <n>` and
/// drawing the next; with `cyclic` the last one draws the first again.
pub fn forms_pdf(chain: usize, cyclic: bool) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
    });
    let ids: Vec<ObjectId> = (0..chain).map(|_| doc.new_object_id()).collect();
    for (n, id) in ids.iter().enumerate() {
        let next = match ids.get(n + 1) {
            Some(next) => Some(*next),
            None if cyclic => Some(ids[0]),
            None => None,
        };
        let mut ops = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("Td", vec![50.into(), (780 - 14 * n as i64).into()]),
            Operation::new("Tj", vec![Object::string_literal(format!("form {n}"))]),
            Operation::new("ET", vec![]),
        ];
        let mut xobjects = Dictionary::new();
        if let Some(next) = next {
            ops.push(Operation::new("Do", vec!["Fm".into()]));
            xobjects.set("Fm", next);
        }
        let content = Content { operations: ops }.encode().unwrap();
        let form = Stream::new(
            dictionary! {
                "Type" => "XObject",
                "Subtype" => "Form",
                "BBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
                "Resources" => dictionary! {
                    "Font" => dictionary! { "F1" => font_id },
                    "XObject" => xobjects,
                },
            },
            content,
        );
        doc.objects.insert(*id, Object::Stream(form));
    }
    let content = Content {
        operations: vec![Operation::new("Do", vec!["Fm".into()])],
    }
    .encode()
    .unwrap();
    let content_id = doc.add_object(Stream::new(dictionary! {}, content));
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => content_id,
        "Resources" => dictionary! { "XObject" => dictionary! { "Fm" => ids[0] } },
    });
    finish(doc, pages_id, vec![page_id.into()], true)
}

/// A one-page PDF whose page has no resources nor media box and whose `Parent` is itself.
pub fn self_parent_pdf() -> Vec<u8> {
    let mut doc = Document::load_mem(&pdf(&[PdfPage::Text(&["loop"], 12)], false)).unwrap();
    let page = *doc.get_pages().get(&1).unwrap();
    let dict = doc.get_object_mut(page).unwrap().as_dict_mut().unwrap();
    dict.remove(b"Resources");
    dict.set("Parent", page);
    let pages_id = doc
        .catalog()
        .unwrap()
        .get(b"Pages")
        .unwrap()
        .as_reference()
        .unwrap();
    doc.get_object_mut(pages_id)
        .unwrap()
        .as_dict_mut()
        .unwrap()
        .remove(b"MediaBox");
    save(&mut doc)
}

/// Three text pages; the middle one has no media box anywhere up its tree (pdf-extract panics
/// on such a page).
pub fn pdf_with_broken_middle_page() -> Vec<u8> {
    let bytes = pdf(
        &[
            PdfPage::Text(&["First page."], 12),
            PdfPage::Text(&["Broken page."], 12),
            PdfPage::Text(&["Third page."], 12),
        ],
        true,
    );
    let mut doc = Document::load_mem(&bytes).unwrap();
    let pages = doc.get_pages();
    let pages_id = doc
        .catalog()
        .unwrap()
        .get(b"Pages")
        .unwrap()
        .as_reference()
        .unwrap();
    doc.get_object_mut(pages_id)
        .unwrap()
        .as_dict_mut()
        .unwrap()
        .remove(b"MediaBox");
    for number in [1, 3] {
        let page = doc
            .get_object_mut(pages[&number])
            .unwrap()
            .as_dict_mut()
            .unwrap();
        page.set("MediaBox", vec![0.into(), 0.into(), 595.into(), 842.into()]);
    }
    save(&mut doc)
}

/// A one-page text PDF with `depth` nested arrays in its content stream, and, in an incremental
/// update, an array and a dictionary nested `depth` deep.
pub fn deeply_nested_pdf(depth: usize) -> Vec<u8> {
    let bytes = pdf(&[PdfPage::Text(&["nested"], 12)], false);
    let mut doc = Document::load_mem(&bytes).unwrap();
    let page = *doc.get_pages().get(&1).unwrap();
    let nested = format!("{}1{} pop ", "[".repeat(depth), "]".repeat(depth));
    let content = doc.get_page_content(page).unwrap();
    let content = [nested.as_bytes(), &content].concat();
    let content_id = doc.add_object(Stream::new(dictionary! {}, content));
    doc.get_object_mut(page)
        .unwrap()
        .as_dict_mut()
        .unwrap()
        .set("Contents", content_id);
    let root = doc.trailer.get(b"Root").unwrap().as_reference().unwrap();
    let mut saved = save(&mut doc);
    // Objects nested deeper than any writer would, appended as an incremental update.
    let prev = {
        let text = String::from_utf8_lossy(&saved);
        let at = text.rfind("startxref").unwrap() + "startxref".len();
        text[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };
    let deep_array = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let deep_dict = format!("{}{}", "<</A ".repeat(depth), ">>".repeat(depth));
    let mut offsets = Vec::new();
    for (id, body) in [(900, deep_array), (901, deep_dict)] {
        saved.push(b'\n');
        offsets.push(saved.len());
        saved.extend_from_slice(format!("{id} 0 obj\n{body}\nendobj\n").as_bytes());
    }
    let xref = saved.len();
    saved.extend_from_slice(
        format!(
            "xref\n900 2\n{:010} 00000 n \n{:010} 00000 n \ntrailer\n<< /Size 902 /Root {} {} R \
             /Prev {prev} /Deep 900 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            offsets[0], offsets[1], root.0, root.1
        )
        .as_bytes(),
    );
    saved
}

/// A PDF whose cross-reference stream inflates to `inflated` zero bytes.
pub fn xref_bomb_pdf(inflated: usize) -> Vec<u8> {
    let mut stream = Stream::new(dictionary! {}, vec![0u8; inflated]);
    stream.compress().unwrap();
    let mut bytes = format!(
        "%PDF-1.5\n1 0 obj\n<< /Type /XRef /Size 2 /W [1 1 1] /Filter /FlateDecode /Length {} >>\n\
         stream\n",
        stream.content.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&stream.content);
    bytes.extend_from_slice(b"\nendstream\nendobj\nstartxref\n9\n%%EOF\n");
    bytes
}

/// A one-page text PDF with an extra stream of `inflated` zero bytes, Flate-compressed.
pub fn flate_bomb_pdf(inflated: usize) -> Vec<u8> {
    let mut doc = Document::load_mem(&pdf(&[PdfPage::Text(&["bomb"], 12)], false)).unwrap();
    let mut stream = Stream::new(dictionary! {}, vec![0u8; inflated]);
    stream.compress().unwrap();
    let id: ObjectId = doc.add_object(stream);
    doc.trailer.set("Bomb", id);
    save(&mut doc)
}

fn finish(mut doc: Document, pages_id: ObjectId, kids: Vec<Object>, compress: bool) -> Vec<u8> {
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    if compress {
        doc.compress();
    }
    save(&mut doc)
}

fn save(doc: &mut Document) -> Vec<u8> {
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

/// Rasterises page 1 of a PDF with pdftoppm: `png`, `jpeg` or `pgm` (`-gray`).
pub fn rasterise(pdf: &[u8], format: &str, dpi: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pdf");
    std::fs::write(&input, pdf).unwrap();
    let out = dir.path().join("out");
    let flag = if format == "pgm" {
        "-gray"
    } else {
        &format!("-{format}")
    };
    let status = Command::new("pdftoppm")
        .args([flag, "-singlefile", "-r", &dpi.to_string()])
        .arg(&input)
        .arg(&out)
        .status()
        .expect("pdftoppm runs (install poppler-utils)");
    assert!(status.success());
    let ext = if format == "jpeg" { "jpg" } else { format };
    std::fs::read(out.with_extension(ext)).unwrap()
}

/// Parses a binary greyscale PGM (P5) into (width, height, pixels).
pub fn parse_pgm(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(std::str::from_utf8(&bytes[start..at]).unwrap().to_owned());
    }
    assert_eq!(fields[0], "P5");
    let (width, height): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let pixels = bytes[at + 1..].to_vec();
    assert_eq!(pixels.len(), (width * height) as usize);
    (width, height, pixels)
}

/// A scanned page: the text rendered by poppler, embedded as an image without a text layer.
pub fn scanned_page_pixels(lines: &[&str]) -> (u32, u32, Vec<u8>) {
    let source = pdf(&[PdfPage::Text(lines, 20)], false);
    parse_pgm(&rasterise(&source, "pgm", 150))
}

/// A DOCX archive whose `word/document.xml` has this `<w:body>` content.
pub fn docx(body: &str) -> Vec<u8> {
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
         <w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\">\
         <w:body>{body}</w:body></w:document>"
    );
    zip_entries(&[
        ("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
        ("_rels/.rels", RELS.as_bytes()),
        ("word/document.xml", document.as_bytes()),
    ])
}

/// A paragraph, with a style when given.
pub fn paragraph(style: Option<&str>, text: &str) -> String {
    let props = style
        .map(|s| format!("<w:pPr><w:pStyle w:val=\"{s}\"/></w:pPr>"))
        .unwrap_or_default();
    format!("<w:p>{props}<w:r><w:t xml:space=\"preserve\">{text}</w:t></w:r></w:p>")
}

/// A paragraph holding only a page break.
pub fn page_break() -> String {
    "<w:p><w:r><w:br w:type=\"page\"/></w:r></w:p>".to_owned()
}

/// A ZIP archive (deflated) with these entries.
pub fn zip_entries(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

const CONTENT_TYPES: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
<Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
<Default Extension=\"xml\" ContentType=\"application/xml\"/>\
<Override PartName=\"/word/document.xml\" \
ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/>\
</Types>";

const RELS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
<Relationship Id=\"rId1\" \
Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" \
Target=\"word/document.xml\"/></Relationships>";

/// Writes bytes to a file (for tools in the benchmark).
pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}
