//! The fonts embedded in every PDF, and their metrics for line layout.
//!
//! DejaVu Sans (regular and bold, version 2.37) ships inside the crate (`fonts/`, with its
//! Bitstream Vera licence), so rendering needs no font installed. Missing glyphs (scripts
//! DejaVu Sans lacks) show as the font's fallback box.

use std::sync::Arc;

use skrifa::{
    FontRef, GlyphId, MetadataProvider,
    instance::{LocationRef, Size},
    metrics::GlyphMetrics,
};

use crate::error::{ReportsError, ReportsResult};

/// DejaVu Sans, the body font.
pub(crate) static REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
/// DejaVu Sans Bold, for titles and table headers.
pub(crate) static BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");
/// The family name both fonts declare.
pub(crate) const FAMILY: &str = "DejaVu Sans";

/// One font: what krilla embeds, and its advance widths for measuring text.
#[derive(Clone)]
pub(crate) struct Face {
    pub(crate) pdf: krilla::text::Font,
    charmap: skrifa::charmap::Charmap<'static>,
    metrics: GlyphMetrics<'static>,
}

impl Face {
    fn new(data: &'static [u8]) -> ReportsResult<Self> {
        let font = FontRef::new(data).map_err(|error| font_error(&error))?;
        let pdf = krilla::text::Font::new(data.into(), 0)
            .ok_or_else(|| ReportsError::Internal("font not readable by the pdf writer".into()))?;
        Ok(Self {
            pdf,
            charmap: font.charmap(),
            // at 1 unit per em, advances are fractions of the font size
            metrics: font.glyph_metrics(Size::new(1.0), LocationRef::default()),
        })
    }

    /// Returns the width of `text` set at `size` points, ignoring kerning.
    pub(crate) fn width(&self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.char_width(c)).sum::<f32>() * size
    }

    /// Returns the width of one character at 1 point.
    pub(crate) fn char_width(&self, c: char) -> f32 {
        let glyph = self.charmap.map(c).unwrap_or(GlyphId::NOTDEF);
        self.metrics.advance_width(glyph).unwrap_or(0.0)
    }
}

/// The regular and bold faces.
#[derive(Clone)]
pub(crate) struct Fonts {
    pub(crate) regular: Face,
    pub(crate) bold: Face,
    /// The same fonts for the SVG chart's text.
    pub(crate) svg_fontdb: Arc<usvg::fontdb::Database>,
}

impl Fonts {
    /// Loads the embedded fonts.
    pub(crate) fn load() -> ReportsResult<Self> {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_source(usvg::fontdb::Source::Binary(Arc::new(REGULAR)));
        db.load_font_source(usvg::fontdb::Source::Binary(Arc::new(BOLD)));
        db.set_sans_serif_family(FAMILY);
        Ok(Self {
            regular: Face::new(REGULAR)?,
            bold: Face::new(BOLD)?,
            svg_fontdb: Arc::new(db),
        })
    }
}

fn font_error(error: &dyn std::fmt::Display) -> ReportsError {
    ReportsError::Internal(format!("embedded font unreadable: {error}"))
}
