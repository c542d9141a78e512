//! The chart of a report: events per unit as a horizontal bar chart, drawn by plotters into
//! SVG. The same SVG is inlined into the HTML page and drawn into the PDF.

use plotters::{
    coord::ranged1d::{IntoSegmentedCoord, SegmentValue},
    prelude::*,
};

use crate::{
    analysis::UnitCount,
    error::{ReportsError, ReportsResult},
};

/// Most units the chart shows; the rest are listed in the tables only.
pub const CHART_MAX_UNITS: usize = 15;
/// Width of the chart, in SVG user units (pixels).
pub(crate) const CHART_WIDTH: u32 = 720;
/// Longest unit label drawn, in characters.
const LABEL_MAX_CHARS: usize = 30;
/// Height of one bar's row, in pixels.
const ROW_HEIGHT: u32 = 24;
/// Space around the bars for the axis and its labels, in pixels.
const FRAME_HEIGHT: u32 = 50;

/// Returns the chart's height for `bars` bars.
pub(crate) fn chart_height(bars: usize) -> u32 {
    // at most CHART_MAX_UNITS bars, so the product is small; at least two rows (see below)
    FRAME_HEIGHT + ROW_HEIGHT * bars.clamp(2, CHART_MAX_UNITS) as u32
}

/// Draws the events of the busiest units (`units` is sorted busiest first) as an SVG document.
pub(crate) fn events_per_unit_svg(units: &[UnitCount<'_>]) -> ReportsResult<String> {
    let shown = &units[..units.len().min(CHART_MAX_UNITS)];
    let labels: Vec<String> = shown.iter().map(|unit| shorten(unit.unit)).collect();
    let max = shown
        .iter()
        .map(|unit| unit.events)
        .max()
        .unwrap_or(1)
        .max(1);
    // headroom so the longest bar does not touch the edge
    let x_end = max as u64 + max as u64 / 10 + 1;
    let bars = shown.len();
    // Rows, top to bottom the busiest unit first. plotters cannot map a one-value axis, so
    // a lone bar gets an empty row below it.
    let rows = bars.max(2);

    let mut svg = String::new();
    {
        let backend = SVGBackend::with_string(&mut svg, (CHART_WIDTH, chart_height(bars)));
        let root = backend.into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(230)
            // plotters' integer ranges include their end: rows 0..=rows-1
            .build_cartesian_2d(0u64..x_end, (0..rows - 1).into_segmented())
            .map_err(chart_error)?;

        // Row 0 is at the bottom: the busiest unit gets the top row.
        let label_of = |value: &SegmentValue<usize>| match value {
            SegmentValue::CenterOf(row) => labels
                .get(rows.saturating_sub(row + 1))
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(215, 220, 226))
            .y_labels(rows)
            .y_label_formatter(&label_of)
            .x_labels(6)
            .label_style(("sans-serif", 16).into_font().color(&RGBColor(40, 44, 52)))
            .axis_style(RGBColor(120, 128, 140))
            .draw()
            .map_err(chart_error)?;

        chart
            .draw_series(
                Histogram::horizontal(&chart)
                    .style(RGBColor(52, 110, 190).filled())
                    .margin(4)
                    .data(
                        shown
                            .iter()
                            .enumerate()
                            .map(|(i, unit)| (rows - 1 - i, unit.events as u64)),
                    ),
            )
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Shortens a label to [`LABEL_MAX_CHARS`] characters, marking the cut with an ellipsis.
fn shorten(label: &str) -> String {
    if label.chars().count() <= LABEL_MAX_CHARS {
        label.to_owned()
    } else {
        let mut short: String = label.chars().take(LABEL_MAX_CHARS - 1).collect();
        short.push('…');
        short
    }
}

fn chart_error<E: std::fmt::Debug>(error: E) -> ReportsError {
    ReportsError::Internal(format!("chart drawing failed: {error:?}"))
}
