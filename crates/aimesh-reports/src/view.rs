//! The content of a report, formatted once and shared by the HTML and PDF renderers: a
//! summary, the chart and a few tables. Long tables are cut at [`MAX_TABLE_ROWS`] rows with a
//! note saying so.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::{analysis::Analysis, chart, error::ReportsResult};

/// Most rows a table shows.
pub const MAX_TABLE_ROWS: usize = 5_000;

/// The title of every report.
pub(crate) const TITLE: &str = "Learning activity report";

/// One line of the summary.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Field {
    pub(crate) label: &'static str,
    pub(crate) value: String,
}

/// What a column holds, which decides its alignment and wrapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// Free text, wrapped as needed.
    Text,
    /// Numbers, aligned right.
    Number,
    /// Times, kept on one line in the HTML page.
    Time,
}

/// A table column.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Column {
    pub(crate) name: &'static str,
    /// Share of the table's width in the PDF.
    pub(crate) width: f32,
    pub(crate) kind: Kind,
}

/// A titled table.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Table {
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    /// A sentence shown under the title, e.g. that rows were left out.
    pub(crate) note: Option<String>,
    pub(crate) columns: Vec<Column>,
    pub(crate) rows: Vec<Vec<String>>,
}

/// The content of a report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReportView {
    pub(crate) title: &'static str,
    pub(crate) student_id: String,
    pub(crate) summary: Vec<Field>,
    pub(crate) chart_title: String,
    /// The chart as an SVG document (plotters escapes its text); handed to the template apart.
    #[serde(skip)]
    pub(crate) chart_svg: String,
    pub(crate) chart_width: u32,
    pub(crate) chart_height: u32,
    pub(crate) tables: Vec<Table>,
}

impl ReportView {
    /// Formats an analysis.
    pub(crate) fn new(analysis: &Analysis<'_>) -> ReportsResult<Self> {
        let chart_svg = chart::events_per_unit_svg(&analysis.units)?;
        let charted = analysis.units.len().min(chart::CHART_MAX_UNITS);
        let chart_title = if charted < analysis.units.len() {
            format!(
                "Events per unit (the {charted} busiest of {} units)",
                number(analysis.units.len())
            )
        } else {
            "Events per unit".to_owned()
        };
        Ok(Self {
            title: TITLE,
            student_id: analysis.student_id.to_owned(),
            summary: summary(analysis),
            chart_title,
            chart_svg,
            chart_width: chart::CHART_WIDTH,
            chart_height: chart::chart_height(charted),
            tables: vec![
                visits_table(analysis),
                units_table(analysis),
                types_table(analysis),
                gaps_table(analysis),
            ],
        })
    }
}

fn summary(analysis: &Analysis<'_>) -> Vec<Field> {
    let untimed = analysis.total_events - analysis.timed_events;
    let mut events = number(analysis.total_events);
    if untimed > 0 {
        events.push_str(&format!(" ({} without a time)", number(untimed)));
    }
    let none = || "—".to_owned();
    vec![
        Field {
            label: "Student",
            value: analysis.student_id.to_owned(),
        },
        Field {
            label: "Namespace",
            value: analysis.namespace.map_or_else(none, ToOwned::to_owned),
        },
        Field {
            label: "Events",
            value: events,
        },
        Field {
            label: "Units",
            value: number(analysis.units.len()),
        },
        Field {
            label: "Visits",
            value: number(analysis.visits.len()),
        },
        Field {
            label: "First event",
            value: analysis.first.map_or_else(none, time),
        },
        Field {
            label: "Last event",
            value: analysis.last.map_or_else(none, time),
        },
        Field {
            label: "Time span",
            value: analysis.span().map_or_else(none, duration),
        },
        Field {
            label: "Long pauses",
            value: format!(
                "{} of at least {}",
                number(analysis.gaps_over_threshold),
                duration(analysis.gap_threshold)
            ),
        },
    ]
}

fn visits_table(analysis: &Analysis<'_>) -> Table {
    let rows = analysis
        .visits
        .iter()
        .take(MAX_TABLE_ROWS)
        .enumerate()
        .map(|(i, visit)| {
            vec![
                number(i + 1),
                visit.unit.to_owned(),
                number(visit.events),
                visit.first.map_or_else(String::new, time),
                visit.last.map_or_else(String::new, time),
            ]
        })
        .collect();
    Table {
        id: "visits",
        title: "Units in order",
        note: cut_note(analysis.visits.len(), "visits"),
        columns: vec![
            column("#", 0.08, Kind::Number),
            column("Unit", 0.4, Kind::Text),
            column("Events", 0.1, Kind::Number),
            column("First event", 0.21, Kind::Time),
            column("Last event", 0.21, Kind::Time),
        ],
        rows,
    }
}

fn units_table(analysis: &Analysis<'_>) -> Table {
    let rows = analysis
        .units
        .iter()
        .take(MAX_TABLE_ROWS)
        .map(|unit| {
            vec![
                unit.unit.to_owned(),
                number(unit.events),
                number(unit.visits),
                share(unit.events, analysis.total_events),
            ]
        })
        .collect();
    Table {
        id: "units",
        title: "Events per unit",
        note: cut_note(analysis.units.len(), "units"),
        columns: vec![
            column("Unit", 0.55, Kind::Text),
            column("Events", 0.15, Kind::Number),
            column("Visits", 0.15, Kind::Number),
            column("Share", 0.15, Kind::Number),
        ],
        rows,
    }
}

fn types_table(analysis: &Analysis<'_>) -> Table {
    let rows = analysis
        .types
        .iter()
        .take(MAX_TABLE_ROWS)
        .map(|count| {
            vec![
                count.event_type.unwrap_or("(no type)").to_owned(),
                number(count.events),
                share(count.events, analysis.total_events),
            ]
        })
        .collect();
    Table {
        id: "types",
        title: "Events per type",
        note: cut_note(analysis.types.len(), "types"),
        columns: vec![
            column("Type", 0.6, Kind::Text),
            column("Events", 0.2, Kind::Number),
            column("Share", 0.2, Kind::Number),
        ],
        rows,
    }
}

fn gaps_table(analysis: &Analysis<'_>) -> Table {
    let rows = analysis
        .gaps
        .iter()
        .map(|gap| {
            vec![
                duration(gap.duration()),
                time(gap.from),
                time(gap.to),
                gap.from_unit.to_owned(),
                gap.to_unit.to_owned(),
            ]
        })
        .collect();
    let note = if analysis.gaps.is_empty() {
        Some("There are fewer than two events with a time, so no pauses.".to_owned())
    } else if analysis.gaps_over_threshold > analysis.gaps.len() {
        Some(format!(
            "The {} longest of the {} pauses of at least {} between consecutive events.",
            number(analysis.gaps.len()),
            number(analysis.gaps_over_threshold),
            duration(analysis.gap_threshold)
        ))
    } else {
        Some(format!(
            "The longest pauses between consecutive events, and every pause of at least {}.",
            duration(analysis.gap_threshold)
        ))
    };
    Table {
        id: "pauses",
        title: "Longest pauses",
        note,
        columns: vec![
            column("Pause", 0.1, Kind::Number),
            column("From", 0.21, Kind::Time),
            column("To", 0.21, Kind::Time),
            column("Unit before", 0.24, Kind::Text),
            column("Unit after", 0.24, Kind::Text),
        ],
        rows,
    }
}

fn column(name: &'static str, width: f32, kind: Kind) -> Column {
    Column { name, width, kind }
}

fn cut_note(total: usize, what: &str) -> Option<String> {
    (total > MAX_TABLE_ROWS).then(|| {
        format!(
            "Showing the first {} of {} {what}.",
            number(MAX_TABLE_ROWS),
            number(total)
        )
    })
}

/// Formats a time in UTC, to the second (the report says once that times are UTC).
pub(crate) fn time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Formats a duration in its two largest units, e.g. `2d 3h` or `4m 10s`.
pub(crate) fn duration(delta: TimeDelta) -> String {
    let seconds = delta.num_seconds().max(0);
    let (days, hours, minutes, secs) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
    );
    if days > 0 {
        if hours > 0 {
            format!("{days}d {hours}h")
        } else {
            format!("{days}d")
        }
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

/// Formats a count with thousands separators, e.g. `100,000`.
pub(crate) fn number(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Formats `part` as a percentage of `total`, to one decimal.
fn share(part: usize, total: usize) -> String {
    if total == 0 {
        return "—".to_owned();
    }
    format!("{:.1}%", part as f64 * 100.0 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(number(0), "0");
        assert_eq!(number(999), "999");
        assert_eq!(number(1_000), "1,000");
        assert_eq!(number(100_000), "100,000");
        assert_eq!(number(1_234_567), "1,234,567");
    }

    #[test]
    fn durations_keep_their_two_largest_units() {
        assert_eq!(duration(TimeDelta::seconds(42)), "42s");
        assert_eq!(duration(TimeDelta::seconds(250)), "4m 10s");
        assert_eq!(duration(TimeDelta::seconds(3 * 3600 + 125)), "3h 2m");
        assert_eq!(duration(TimeDelta::days(2) + TimeDelta::hours(5)), "2d 5h");
        assert_eq!(duration(TimeDelta::days(1)), "1d");
    }
}
