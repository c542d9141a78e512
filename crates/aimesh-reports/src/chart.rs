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
    // at most CHART_MAX_UNITS bars, so the product is small
    FRAME_HEIGHT + ROW_HEIGHT * bars.clamp(1, CHART_MAX_UNITS) as u32
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
    let x_end = (max as u64 + max as u64 / 10 + 1) as f64;
    let bars = shown.len();

    let mut svg = String::new();
    {
        let backend = SVGBackend::with_string(&mut svg, (CHART_WIDTH, chart_height(bars)));
        let root = backend.into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(230)
            // plotters' integer ranges include their end: rows 0..=bars-1
            .build_cartesian_2d(0f64..x_end, (0..bars.saturating_sub(1)).into_segmented())
            .map_err(chart_error)?;

        // Bars are drawn bottom-up: the busiest unit gets the top row.
        let label_of = |value: &SegmentValue<usize>| match value {
            SegmentValue::CenterOf(row) if *row < bars => labels[bars - 1 - row].clone(),
            _ => String::new(),
        };
        let count_label = |value: &f64| format!("{value:.0}");
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(215, 220, 226))
            .y_labels(bars.max(1))
            .y_label_formatter(&label_of)
            .x_labels(6)
            .x_label_formatter(&count_label)
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
                            .map(|(i, unit)| (bars - 1 - i, unit.events as f64)),
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
