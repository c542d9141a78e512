//! The PDF rendering: the same content as the HTML page, laid out on A4 pages with krilla.
//!
//! Layout runs first and yields every page's drawing operations, so the footer can say
//! "page N of M"; then krilla writes the pages with DejaVu Sans embedded (subset) as real,
//! selectable text. Tables continue across pages, repeating their header row. The chart is
//! the report's SVG, drawn by krilla-svg with its text kept as text. Bookmarks lead to the
//! sections.

use krilla::{
    Document,
    color::rgb,
    destination::XyzDestination,
    geom::{PathBuilder, Point, Rect, Size, Transform},
    metadata::Metadata,
    num::NormalizedF32,
    outline::{Outline, OutlineNode},
    page::PageSettings,
    paint::{Fill, Stroke},
    surface::Surface,
    text::TextDirection,
};
use krilla_svg::{SurfaceExt, SvgSettings};

use crate::{
    error::{ReportsError, ReportsResult},
    fonts::{Face, Fonts},
    view::{Kind, ReportView, Table},
};

const PAGE_WIDTH: f32 = 595.28;
const PAGE_HEIGHT: f32 = 841.89;
const MARGIN_X: f32 = 48.0;
const MARGIN_TOP: f32 = 48.0;
/// Bottom of the content area; the footer sits below it.
const CONTENT_BOTTOM: f32 = PAGE_HEIGHT - 64.0;
const FOOTER_BASELINE: f32 = PAGE_HEIGHT - 36.0;
const CONTENT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN_X;

const TITLE_SIZE: f32 = 20.0;
const HEADING_SIZE: f32 = 13.5;
const BODY_SIZE: f32 = 10.0;
const TABLE_SIZE: f32 = 8.5;
const NOTE_SIZE: f32 = 8.5;
const FOOTER_SIZE: f32 = 8.0;
/// Line height as a multiple of the font size.
const LEADING: f32 = 1.3;
/// Padding inside table cells.
const CELL_PAD: f32 = 4.0;

const INK: Rgb = Rgb(31, 37, 48);
const MUTED: Rgb = Rgb(90, 99, 114);
const ACCENT: Rgb = Rgb(52, 110, 190);
const HEADER_FILL: Rgb = Rgb(238, 242, 248);
const STRIPE_FILL: Rgb = Rgb(248, 250, 252);
const RULE: Rgb = Rgb(221, 226, 234);

#[derive(Debug, Clone, Copy)]
struct Rgb(u8, u8, u8);

/// A drawing operation; `y` grows downwards from the page's top edge.
#[derive(Debug)]
enum Op {
    Text {
        x: f32,
        baseline: f32,
        size: f32,
        bold: bool,
        color: Rgb,
        text: String,
    },
    Rect {
        x: f32,
        y: f32,
        width: f32,
        height: f32,
        color: Rgb,
    },
    Line {
        x1: f32,
        x2: f32,
        y: f32,
        width: f32,
        color: Rgb,
    },
    Chart {
        x: f32,
        y: f32,
        width: f32,
        height: f32,
    },
}

/// Renders a report's content as a PDF document.
pub(crate) fn render(fonts: &Fonts, view: &ReportView) -> ReportsResult<Vec<u8>> {
    let chart = usvg::Tree::from_str(
        &view.chart_svg,
        &usvg::Options {
            fontdb: fonts.svg_fontdb.clone(),
            font_family: crate::fonts::FAMILY.to_owned(),
            ..usvg::Options::default()
        },
    )
    .map_err(|error| ReportsError::Internal(format!("chart svg unreadable: {error}")))?;

    let mut layout = Layout::new(fonts);
    layout.report(view);
    let (pages, sections) = layout.finish();

    let page_size = Size::from_wh(PAGE_WIDTH, PAGE_HEIGHT)
        .ok_or_else(|| ReportsError::Internal("bad page size".into()))?;
    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title(format!("{} for student {}", view.title, view.student_id))
            .creator("aimesh reports".to_owned())
            .language("en".to_owned()),
    );
    // bookmarks to the sections, for long reports
    let mut outline = Outline::new();
    for section in sections {
        outline.push_child(OutlineNode::new(
            section.title,
            XyzDestination::new(section.page, Point::from_xy(0.0, section.y)),
        ));
    }
    document.set_outline(outline);
    let total = pages.len();
    let footer_left = footer_label(fonts, view);
    for (index, ops) in pages.into_iter().enumerate() {
        let mut page = document.start_page_with(PageSettings::new(page_size));
        let mut surface = page.surface();
        for op in &ops {
            draw(&mut surface, fonts, &chart, op);
        }
        for op in footer(fonts, &footer_left, index + 1, total) {
            draw(&mut surface, fonts, &chart, &op);
        }
        surface.finish();
        page.finish();
    }
    document
        .finish()
        .map_err(|error| ReportsError::Internal(format!("pdf writing failed: {error}")))
}

/// The footer's left text: the title and student, cut to fit half the width.
fn footer_label(fonts: &Fonts, view: &ReportView) -> String {
    let label = format!("{} · student {}", view.title, view.student_id);
    truncate(&fonts.regular, &label, FOOTER_SIZE, CONTENT_WIDTH * 0.6)
}

fn footer(fonts: &Fonts, left: &str, number: usize, total: usize) -> Vec<Op> {
    let right = format!("page {number} of {total}");
    let right_width = fonts.regular.width(&right, FOOTER_SIZE);
    vec![
        Op::Line {
            x1: MARGIN_X,
            x2: PAGE_WIDTH - MARGIN_X,
            y: FOOTER_BASELINE - 12.0,
            width: 0.5,
            color: RULE,
        },
        text_op(MARGIN_X, FOOTER_BASELINE, FOOTER_SIZE, false, MUTED, left),
        text_op(
            PAGE_WIDTH - MARGIN_X - right_width,
            FOOTER_BASELINE,
            FOOTER_SIZE,
            false,
            MUTED,
            &right,
        ),
    ]
}

fn text_op(x: f32, baseline: f32, size: f32, bold: bool, color: Rgb, text: &str) -> Op {
    Op::Text {
        x,
        baseline,
        size,
        bold,
        color,
        text: text.to_owned(),
    }
}

fn draw(surface: &mut Surface<'_>, fonts: &Fonts, chart: &usvg::Tree, op: &Op) {
    match op {
        Op::Text {
            x,
            baseline,
            size,
            bold,
            color,
            text,
        } => {
            surface.set_fill(Some(fill(*color)));
            surface.set_stroke(None);
            let face = if *bold { &fonts.bold } else { &fonts.regular };
            surface.draw_text(
                Point::from_xy(*x, *baseline),
                face.pdf.clone(),
                *size,
                text,
                false,
                TextDirection::Auto,
            );
        }
        Op::Rect {
            x,
            y,
            width,
            height,
            color,
        } => {
            if let Some(path) = Rect::from_xywh(*x, *y, *width, *height).and_then(|rect| {
                let mut builder = PathBuilder::new();
                builder.push_rect(rect);
                builder.finish()
            }) {
                surface.set_fill(Some(fill(*color)));
                surface.set_stroke(None);
                surface.draw_path(&path);
            }
        }
        Op::Line {
            x1,
            x2,
            y,
            width,
            color,
        } => {
            let mut builder = PathBuilder::new();
            builder.move_to(*x1, *y);
            builder.line_to(*x2, *y);
            if let Some(path) = builder.finish() {
                surface.set_fill(None);
                surface.set_stroke(Some(Stroke {
                    paint: rgb::Color::new(color.0, color.1, color.2).into(),
                    width: *width,
                    ..Stroke::default()
                }));
                surface.draw_path(&path);
                surface.set_stroke(None);
            }
        }
        Op::Chart {
            x,
            y,
            width,
            height,
        } => {
            if let Some(size) = Size::from_wh(*width, *height) {
                surface.push_transform(&Transform::from_translate(*x, *y));
                surface.draw_svg(chart, size, SvgSettings::default());
                surface.pop();
            }
        }
    }
}

fn fill(color: Rgb) -> Fill {
    Fill {
        paint: rgb::Color::new(color.0, color.1, color.2).into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }
}

// === impl Layout ===

/// Places content on pages, top to bottom.
struct Layout<'f> {
    fonts: &'f Fonts,
    pages: Vec<Vec<Op>>,
    /// Where the next block starts on the current page.
    y: f32,
    /// The sections, for the bookmarks.
    sections: Vec<Section>,
}

/// Where a section starts.
struct Section {
    title: String,
    page: usize,
    y: f32,
}

impl<'f> Layout<'f> {
    fn new(fonts: &'f Fonts) -> Self {
        Self {
            fonts,
            pages: vec![Vec::new()],
            y: MARGIN_TOP,
            sections: Vec::new(),
        }
    }

    fn finish(self) -> (Vec<Vec<Op>>, Vec<Section>) {
        (self.pages, self.sections)
    }

    fn push(&mut self, op: Op) {
        if let Some(page) = self.pages.last_mut() {
            page.push(op);
        }
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN_TOP;
    }

    /// Starts a new page unless `height` more points fit on this one.
    fn ensure(&mut self, height: f32) {
        if self.y + height > CONTENT_BOTTOM && self.y > MARGIN_TOP {
            self.new_page();
        }
    }

    /// Adds text at the left margin, wrapped to `width` points, breaking pages between lines.
    fn paragraph(&mut self, text: &str, size: f32, bold: bool, color: Rgb, width: f32) {
        let face = self.face(bold);
        for line in wrap(face, text, size, width) {
            self.ensure(size * LEADING);
            self.y += size * LEADING;
            let baseline = self.y - size * 0.3;
            self.push(text_op(MARGIN_X, baseline, size, bold, color, &line));
        }
    }

    fn face(&self, bold: bool) -> &'f Face {
        if bold {
            &self.fonts.bold
        } else {
            &self.fonts.regular
        }
    }

    fn report(&mut self, view: &ReportView) {
        self.paragraph(view.title, TITLE_SIZE, true, INK, CONTENT_WIDTH);
        self.y += 2.0;
        self.paragraph(
            &format!("Student {}. Times are in UTC.", view.student_id),
            BODY_SIZE,
            false,
            MUTED,
            CONTENT_WIDTH,
        );
        self.y += 6.0;
        self.push(Op::Rect {
            x: MARGIN_X,
            y: self.y,
            width: CONTENT_WIDTH,
            height: 2.0,
            color: ACCENT,
        });
        self.y += 10.0;

        self.heading("Summary", 60.0);
        self.summary(view);

        let height = CONTENT_WIDTH * view.chart_height as f32 / view.chart_width as f32;
        self.heading(&view.chart_title, height + 8.0);
        self.ensure(height);
        self.push(Op::Chart {
            x: MARGIN_X,
            y: self.y,
            width: CONTENT_WIDTH,
            height,
        });
        self.y += height;

        for table in &view.tables {
            self.table(table);
        }
    }

    /// Adds a section heading, on a new page unless `keep` more points fit under it.
    fn heading(&mut self, text: &str, keep: f32) {
        self.y += 14.0;
        self.ensure(HEADING_SIZE * LEADING + keep);
        self.sections.push(Section {
            title: text.to_owned(),
            page: self.pages.len() - 1,
            y: self.y,
        });
        self.paragraph(text, HEADING_SIZE, true, INK, CONTENT_WIDTH);
        self.y += 4.0;
    }

    fn summary(&mut self, view: &ReportView) {
        let label_width = 110.0;
        let value_width = CONTENT_WIDTH - label_width;
        for field in &view.summary {
            let lines = wrap(&self.fonts.bold, &field.value, BODY_SIZE, value_width);
            let line_height = BODY_SIZE * LEADING;
            self.ensure(line_height * lines.len() as f32);
            let top = self.y;
            self.push(text_op(
                MARGIN_X,
                top + line_height - BODY_SIZE * 0.3,
                BODY_SIZE,
                false,
                MUTED,
                field.label,
            ));
            for (i, line) in lines.iter().enumerate() {
                let baseline = top + line_height * (i + 1) as f32 - BODY_SIZE * 0.3;
                self.push(text_op(
                    MARGIN_X + label_width,
                    baseline,
                    BODY_SIZE,
                    true,
                    INK,
                    line,
                ));
            }
            self.y += line_height * lines.len() as f32 + 1.5;
        }
    }

    fn table(&mut self, table: &Table) {
        let widths: Vec<f32> = table
            .columns
            .iter()
            .map(|column| column.width * CONTENT_WIDTH)
            .collect();
        let header_height = TABLE_SIZE * LEADING + 2.0 * CELL_PAD;
        self.heading(table.title, 2.0 * header_height + 16.0);
        if let Some(note) = &table.note {
            self.paragraph(note, NOTE_SIZE, false, MUTED, CONTENT_WIDTH);
            self.y += 4.0;
        }
        if table.rows.is_empty() {
            return;
        }
        self.table_header(table, &widths);
        for (index, row) in table.rows.iter().enumerate() {
            let cells: Vec<Vec<String>> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| {
                    wrap(
                        &self.fonts.regular,
                        cell,
                        TABLE_SIZE,
                        width - 2.0 * CELL_PAD,
                    )
                })
                .collect();
            let lines = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
            let height = lines as f32 * TABLE_SIZE * LEADING + 2.0 * CELL_PAD;
            if self.y + height > CONTENT_BOTTOM {
                self.new_page();
                self.paragraph(
                    &format!("{} (continued)", table.title),
                    NOTE_SIZE,
                    true,
                    MUTED,
                    CONTENT_WIDTH,
                );
                self.y += 4.0;
                self.table_header(table, &widths);
            }
            if index % 2 == 1 {
                self.push(Op::Rect {
                    x: MARGIN_X,
                    y: self.y,
                    width: CONTENT_WIDTH,
                    height,
                    color: STRIPE_FILL,
                });
            }
            self.cells(table, &widths, &cells, false);
            self.y += height;
            self.push(Op::Line {
                x1: MARGIN_X,
                x2: MARGIN_X + CONTENT_WIDTH,
                y: self.y,
                width: 0.4,
                color: RULE,
            });
        }
    }

    fn table_header(&mut self, table: &Table, widths: &[f32]) {
        let height = TABLE_SIZE * LEADING + 2.0 * CELL_PAD;
        self.push(Op::Rect {
            x: MARGIN_X,
            y: self.y,
            width: CONTENT_WIDTH,
            height,
            color: HEADER_FILL,
        });
        let names: Vec<Vec<String>> = table
            .columns
            .iter()
            .map(|column| vec![column.name.to_owned()])
            .collect();
        self.cells(table, widths, &names, true);
        self.y += height;
    }

    /// Draws one row's wrapped cells at the current position.
    fn cells(&mut self, table: &Table, widths: &[f32], cells: &[Vec<String>], bold: bool) {
        let face = self.face(bold);
        let mut x = MARGIN_X;
        for ((lines, width), column) in cells.iter().zip(widths).zip(&table.columns) {
            for (i, line) in lines.iter().enumerate() {
                let baseline =
                    self.y + CELL_PAD + TABLE_SIZE * LEADING * (i + 1) as f32 - TABLE_SIZE * 0.3;
                let left = if column.kind == Kind::Number {
                    x + width - CELL_PAD - face.width(line, TABLE_SIZE)
                } else {
                    x + CELL_PAD
                };
                self.push(text_op(left, baseline, TABLE_SIZE, bold, INK, line));
            }
            x += width;
        }
    }
}

/// Breaks `text` into lines no wider than `width` at `size`: at spaces where it can, inside a
/// word where one word alone is too wide. Always returns at least one line.
fn wrap(face: &Face, text: &str, size: f32, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_width = 0.0;
    let space = face.char_width(' ') * size;
    for word in text.split_whitespace() {
        let word_width = face.width(word, size);
        let gap = if line.is_empty() { 0.0 } else { space };
        if line_width + gap + word_width <= width {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
            line_width += gap + word_width;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
            line_width = 0.0;
        }
        if word_width <= width {
            line.push_str(word);
            line_width = word_width;
            continue;
        }
        for c in word.chars() {
            let c_width = face.char_width(c) * size;
            if line_width + c_width > width && !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                line_width = 0.0;
            }
            line.push(c);
            line_width += c_width;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// Cuts `text` to fit `width` at `size`, marking the cut with an ellipsis.
fn truncate(face: &Face, text: &str, size: f32, width: f32) -> String {
    if face.width(text, size) <= width {
        return text.to_owned();
    }
    let budget = width - face.char_width('…') * size;
    let mut out = String::new();
    let mut used = 0.0;
    for c in text.chars() {
        let c_width = face.char_width(c) * size;
        if used + c_width > budget {
            break;
        }
        out.push(c);
        used += c_width;
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn wrapping_keeps_every_character_and_respects_the_width() {
        let fonts = Fonts::load().unwrap();
        let text = "a unit with a rather long name and averyveryveryveryveryverylongwordinside it";
        let lines = wrap(&fonts.regular, text, 10.0, 80.0);
        assert!(lines.len() > 3, "{lines:?}");
        for line in &lines {
            assert!(fonts.regular.width(line, 10.0) <= 80.0, "{line:?} too wide");
        }
        let joined: String = lines.concat().split_whitespace().collect();
        let expected: String = text.split_whitespace().collect();
        assert_eq!(joined, expected);
        assert_eq!(wrap(&fonts.regular, "", 10.0, 80.0), vec![String::new()]);
    }

    #[test]
    fn truncation_fits_and_marks_the_cut() {
        let fonts = Fonts::load().unwrap();
        let text = "x".repeat(500);
        let short = truncate(&fonts.regular, &text, 8.0, 100.0);
        assert!(short.ends_with('…'));
        assert!(fonts.regular.width(&short, 8.0) <= 100.0);
        assert_eq!(truncate(&fonts.regular, "short", 8.0, 100.0), "short");
    }
}
