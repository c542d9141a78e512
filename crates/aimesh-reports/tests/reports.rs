//! End-to-end tests of the reports core: validation, analysis, and both renderings read back.

#![allow(clippy::unwrap_used)]

use aimesh_reports::{
    Analysis, AnalysisOptions, Event, Format, MAX_TABLE_ROWS, Renderer, ReportRequest,
    ReportsError, domain::MAX_EVENTS,
};

const HOSTILE: &str = "<script>alert(1)</script>";

fn event(unit: &str, event_type: &str, created_time: &str) -> Event {
    Event {
        unit: unit.to_owned(),
        event_type: event_type.to_owned(),
        created_time: created_time.to_owned(),
    }
}

fn request(student_id: &str, events: Vec<Event>, format: Format) -> ReportRequest {
    ReportRequest {
        student_id: student_id.to_owned(),
        namespace: "math-101".to_owned(),
        events,
        format,
    }
}

/// A student's week: sent out of order, with a repeat visit and two long pauses.
fn week() -> Vec<Event> {
    vec![
        event("Fractions: adding", "viewed", "2025-03-03T10:00:00Z"),
        event("Welcome", "viewed", "2025-03-01T09:00:00Z"),
        event("Welcome", "completed", "2025-03-01T09:05:00Z"),
        event("Fractions: intro", "viewed", "2025-03-01T09:10:00+01:00"),
        event("Fractions: intro", "quiz_submitted", "2025-03-01T09:30:00Z"),
        event("Fractions: adding", "viewed", "2025-03-01T09:45:00Z"),
        event("Fractions: intro", "viewed", "2025-03-01T10:00:00Z"),
        event("Decimals", "viewed", "2025-03-06T18:00:00Z"),
        event("Decimals", "", ""),
    ]
}

fn violations(error: ReportsError) -> Vec<String> {
    error
        .field_violations()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Removes all whitespace: text extractors space glyph runs their own way.
fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn pdf_text(bytes: &[u8]) -> String {
    squeeze(&pdf_extract::extract_text_from_mem(bytes).unwrap())
}

#[test]
fn the_renderer_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Renderer>();
}

// === validation ===

#[test]
fn validation_names_every_bad_field_with_its_index() {
    let long_type = "t".repeat(65);
    let error = request(
        "  ",
        vec![
            event("Welcome", "viewed", "2025-03-01T09:00:00Z"),
            event("", "viewed", "2025-03-01T09:05:00Z"),
            event("Intro", &long_type, "yesterday"),
            event("Intro\u{7}", "viewed", "2025-03-01 09:05"),
        ],
        Format::Html,
    )
    .validate()
    .unwrap_err();
    assert!(matches!(error, ReportsError::InvalidArgument(_)));
    assert_eq!(
        violations(error),
        vec![
            "student_id: must not be empty",
            "events[1].unit: must not be empty",
            "events[2].event_type: must be at most 64 characters",
            "events[2].created_time: must be an RFC 3339 time, e.g. 2025-03-01T09:30:00Z",
            "events[3].unit: must not contain control characters",
            "events[3].created_time: must be an RFC 3339 time, e.g. 2025-03-01T09:30:00Z",
        ]
    );
}

#[test]
fn validation_limits_lengths_and_counts() {
    let error = ReportRequest {
        student_id: "s".repeat(129),
        namespace: "n".repeat(129),
        events: vec![event(&"u".repeat(201), "", "")],
        format: Format::Pdf,
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        violations(error),
        vec![
            "student_id: must be at most 128 characters",
            "namespace: must be at most 128 characters",
            "events[0].unit: must be at most 200 characters",
        ]
    );

    let error = request("s1", vec![], Format::Html).validate().unwrap_err();
    assert_eq!(
        violations(error),
        vec!["events: must list at least one event"]
    );

    let too_many = vec![event("u", "", ""); MAX_EVENTS + 1];
    let error = request("s1", too_many, Format::Html)
        .validate()
        .unwrap_err();
    assert_eq!(
        violations(error),
        vec!["events: must list at most 100000 events, got 100001"]
    );
}

#[test]
fn validation_lists_at_most_twenty_violations_and_counts_the_rest() {
    let bad = vec![event("", "", "not a time"); 1_000];
    let listed = violations(request("s1", bad, Format::Html).validate().unwrap_err());
    assert_eq!(listed.len(), 21);
    assert_eq!(listed[0], "events[0].unit: must not be empty");
    assert!(listed[19].starts_with("events[9].created_time: "));
    assert_eq!(listed[20], "events: 1980 more invalid fields not listed");
}

#[test]
fn validation_trims_and_keeps_optional_fields_optional() {
    let valid = request(" s1 ", week(), Format::Pdf).validate().unwrap();
    assert_eq!(valid.student_id, "s1");
    assert_eq!(valid.namespace.as_deref(), Some("math-101"));
    assert_eq!(valid.events.len(), 9);
    assert_eq!(valid.events[8].event_type, None);
    assert_eq!(valid.events[8].created_time, None);
    // offsets are normalised to UTC
    assert_eq!(
        valid.events[3].created_time.unwrap().to_rfc3339(),
        "2025-03-01T08:10:00+00:00"
    );
}

// === analysis ===

#[test]
fn analysis_orders_by_time_collapses_visits_and_finds_pauses() {
    let valid = request("s1", week(), Format::Html).validate().unwrap();
    let analysis = Analysis::new(&valid, &AnalysisOptions::default());

    let visits: Vec<(&str, usize)> = analysis
        .visits
        .iter()
        .map(|visit| (visit.unit, visit.events))
        .collect();
    assert_eq!(
        visits,
        vec![
            ("Fractions: intro", 1), // 08:10 UTC, before "Welcome" at 09:00
            ("Welcome", 2),
            ("Fractions: intro", 1),
            ("Fractions: adding", 1),
            ("Fractions: intro", 1),
            ("Fractions: adding", 1),
            ("Decimals", 2), // the untimed event comes last
        ]
    );
    assert_eq!(analysis.total_events, 9);
    assert_eq!(analysis.timed_events, 8);
    assert_eq!(
        analysis.first.unwrap().to_rfc3339(),
        "2025-03-01T08:10:00+00:00"
    );
    assert_eq!(
        analysis.last.unwrap().to_rfc3339(),
        "2025-03-06T18:00:00+00:00"
    );

    let units: Vec<(&str, usize, usize)> = analysis
        .units
        .iter()
        .map(|unit| (unit.unit, unit.events, unit.visits))
        .collect();
    assert_eq!(
        units,
        vec![
            ("Fractions: intro", 3, 3),
            ("Decimals", 2, 1),
            ("Fractions: adding", 2, 2),
            ("Welcome", 2, 1),
        ]
    );
    let types: Vec<(Option<&str>, usize)> = analysis
        .types
        .iter()
        .map(|count| (count.event_type, count.events))
        .collect();
    assert_eq!(
        types,
        vec![
            (Some("viewed"), 6),
            (None, 1),
            (Some("completed"), 1),
            (Some("quiz_submitted"), 1),
        ]
    );

    // two pauses of a day or more; five listed (the top five), longest first
    assert_eq!(analysis.gaps_over_threshold, 2);
    assert_eq!(analysis.gaps.len(), 5);
    let first = &analysis.gaps[0];
    assert_eq!(
        (first.from_unit, first.to_unit),
        ("Fractions: adding", "Decimals")
    );
    assert_eq!(first.duration().num_hours(), 3 * 24 + 8);
    assert_eq!(analysis.gaps[1].duration().num_hours(), 2 * 24);
    assert!(
        analysis
            .gaps
            .windows(2)
            .all(|pair| pair[0].duration() >= pair[1].duration())
    );
}

#[test]
fn analysis_lists_every_pause_over_the_threshold_up_to_the_cap() {
    // 80 events an hour apart with a two-day pause after every tenth
    let mut time = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap();
    let events = (0..80)
        .map(|i| {
            time += if i % 10 == 0 {
                chrono::TimeDelta::days(2)
            } else {
                chrono::TimeDelta::hours(1)
            };
            event(&format!("unit {}", i % 3), "viewed", &time.to_rfc3339())
        })
        .collect();
    let valid = request("s1", events, Format::Html).validate().unwrap();
    let options = AnalysisOptions {
        max_gaps: 6,
        ..AnalysisOptions::default()
    };
    let analysis = Analysis::new(&valid, &options);
    assert_eq!(analysis.gaps_over_threshold, 7);
    assert_eq!(analysis.gaps.len(), 6);
    let all = Analysis::new(&valid, &AnalysisOptions::default());
    assert_eq!(all.gaps.len(), 7);
    assert!(all.gaps.iter().all(|gap| gap.duration().num_days() == 2));
}

// === HTML ===

#[test]
fn html_escapes_hostile_input_everywhere() {
    let mut events = week();
    events.push(event(HOSTILE, HOSTILE, "2025-03-07T10:00:00Z"));
    events.push(event("\"><img src=x onerror=alert(2)>", "", ""));
    let mut hostile = request(HOSTILE, events, Format::Html);
    hostile.namespace = "ns'\"&<b>".to_owned();
    let rendered = Renderer::new().unwrap().render(hostile).unwrap();
    assert_eq!(rendered.format, Format::Html);
    let html = String::from_utf8(rendered.bytes).unwrap();

    assert!(!html.contains("<script"), "a script tag got through");
    assert!(!html.contains("<img"), "an img tag got through");
    assert!(!html.contains("<b>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
    // the chart's labels (plotters' SVG) escape too
    let chart = &html[html.find("<svg").unwrap()..html.find("</svg>").unwrap()];
    assert!(chart.contains("&lt;script&gt;alert(1)"), "{chart}");
    assert_eq!(
        chart.matches("fill=\"#346EBE\"").count(),
        6,
        "one bar per unit"
    );
}

#[test]
fn html_is_a_self_contained_page_with_chart_and_tables() {
    let renderer = Renderer::new().unwrap();
    let html = String::from_utf8(
        renderer
            .render(request("student-42", week(), Format::Html))
            .unwrap()
            .bytes,
    )
    .unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<style>"));
    assert!(html.contains("<svg"));
    for external in ["src=\"http", "href=\"http", "<link", "@import", "url("] {
        assert!(!html.contains(external), "page loads {external}");
    }
    for heading in [
        "Units in order",
        "Events per unit",
        "Events per type",
        "Longest pauses",
    ] {
        assert!(html.contains(heading), "no {heading} section");
    }
    // the visits table lists the units in time order
    let visits = &html[html.find("id=\"visits\"").unwrap()..html.find("id=\"units\"").unwrap()];
    let mut at = 0;
    for unit in [
        "Fractions: intro",
        "Welcome",
        "Fractions: intro",
        "Fractions: adding",
        "Fractions: intro",
        "Fractions: adding",
        "Decimals",
    ] {
        at += visits[at..]
            .find(&format!("<td class=\"text\">{unit}</td>"))
            .unwrap()
            + 1;
    }
    assert!(html.contains("3d 8h"), "longest pause missing");
}

#[test]
fn a_single_event_renders_in_both_formats() {
    let renderer = Renderer::new().unwrap();
    for format in [Format::Html, Format::Pdf] {
        let events = vec![event("Only unit", "", "")];
        let rendered = renderer.render(request("s1", events, format)).unwrap();
        assert!(!rendered.bytes.is_empty());
    }
    let html = renderer
        .render(request(
            "s1",
            vec![event("Only unit", "", "")],
            Format::Html,
        ))
        .unwrap()
        .bytes;
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains("There are fewer than two events with a time, so no pauses."));
    // the chart has its one bar
    let chart = &html[html.find("<svg").unwrap()..html.find("</svg>").unwrap()];
    assert_eq!(chart.matches("fill=\"#346EBE\"").count(), 1, "{chart}");
    assert!(chart.contains("Only unit"));
}

// === PDF ===

#[test]
fn pdf_text_holds_the_student_and_the_units_in_order() {
    let renderer = Renderer::new().unwrap();
    let rendered = renderer
        .render(request("student-42", week(), Format::Pdf))
        .unwrap();
    assert_eq!(rendered.format, Format::Pdf);
    assert!(rendered.bytes.starts_with(b"%PDF-"));
    let text = pdf_text(&rendered.bytes);

    assert!(text.contains(&squeeze("Student student-42")), "{text}");
    assert!(text.contains(&squeeze("page 1 of 2")), "{text}");
    assert!(text.contains(&squeeze("page 2 of 2")), "{text}");
    let table = text.find(&squeeze("Units in order")).unwrap();
    // the chart's labels are text too, drawn before the tables
    let chart = text.find(&squeeze("Events per unit")).unwrap();
    for unit in [
        "Welcome",
        "Fractions: adding",
        "Decimals",
        "Fractions: intro",
    ] {
        assert!(
            text[chart..table].contains(&squeeze(unit)),
            "{unit} not in chart"
        );
    }
    let mut at = table;
    for unit in [
        "Fractions: intro",
        "Welcome",
        "Fractions: intro",
        "Fractions: adding",
        "Fractions: intro",
        "Fractions: adding",
        "Decimals",
    ] {
        at += text[at..].find(&squeeze(unit)).unwrap() + 1;
    }
    assert!(at < text.find(&squeeze("Events per type")).unwrap());
    assert!(text.contains(&squeeze("3d 8h")));
}

#[test]
fn pdf_tables_continue_across_numbered_pages() {
    // 300 visits: the visits table cannot fit one page
    let events = (0..300)
        .map(|i| {
            event(
                &format!("Unit {i:03} of a long course"),
                "viewed",
                &format!("2025-03-01T{:02}:{:02}:00Z", i / 60, i % 60),
            )
        })
        .collect();
    let renderer = Renderer::new().unwrap();
    let pdf = renderer
        .render(request(HOSTILE, events, Format::Pdf))
        .unwrap()
        .bytes;
    let text = pdf_text(&pdf);
    let pages = (1..100)
        .take_while(|n| text.contains(&squeeze(&format!("page {n} of"))))
        .count();
    assert!(pages >= 5, "only {pages} pages");
    for n in 1..=pages {
        assert!(
            text.contains(&squeeze(&format!("page {n} of {pages}"))),
            "no footer on page {n}"
        );
    }
    assert!(text.contains(&squeeze("Units in order (continued)")));
    // the hostile id is plain text in a PDF
    assert!(text.contains(&squeeze(&format!("Student {HOSTILE}"))));
    let mut at = text.find(&squeeze("Units in order")).unwrap();
    for i in 0..300 {
        at += text[at..]
            .find(&squeeze(&format!("Unit {i:03} of a long course")))
            .unwrap_or_else(|| panic!("unit {i} missing or out of order"))
            + 1;
    }
}

// === size ===

/// A deterministic walk through `units` units, with repeats, short and long pauses.
fn walk(events: usize, units: usize) -> Vec<Event> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut time = chrono::DateTime::parse_from_rfc3339("2024-09-01T08:00:00Z").unwrap();
    let mut unit = 0;
    let types = [
        "viewed",
        "started",
        "completed",
        "quiz_submitted",
        "video_played",
    ];
    (0..events)
        .map(|_| {
            let roll = next();
            if roll % 4 == 0 {
                unit = (roll >> 8) as usize % units;
            }
            time += chrono::TimeDelta::seconds(if roll % 997 == 0 {
                86_400 * 3
            } else {
                (roll >> 20) as i64 % 600
            });
            event(
                &format!("Module {} · lesson {}", unit / 10 + 1, unit % 10 + 1),
                types[(roll >> 32) as usize % types.len()],
                &time.to_rfc3339(),
            )
        })
        .collect()
}

#[test]
fn a_hundred_thousand_events_render_in_both_formats() {
    let renderer = Renderer::new().unwrap();
    let valid = request("student-big", walk(MAX_EVENTS, 400), Format::Pdf)
        .validate()
        .unwrap();
    let analysis = Analysis::new(&valid, &AnalysisOptions::default());
    assert_eq!(analysis.total_events, MAX_EVENTS);
    assert!(analysis.visits.len() > MAX_TABLE_ROWS);

    let html = renderer.html(&analysis).unwrap();
    assert!(html.contains("Showing the first 5,000 of"));
    assert!(analysis.gaps_over_threshold > 50, "the walk pauses often");
    assert!(html.contains(&format!(
        "The 50 longest of the {} pauses of at least 1d",
        analysis.gaps_over_threshold
    )));
    assert!(html.matches("<tr>").count() <= 4 * MAX_TABLE_ROWS + 100);

    let pdf = renderer.pdf(&analysis).unwrap();
    let text = pdf_text(&pdf);
    assert!(text.contains(&squeeze("Showing the first 5,000 of")));
    assert!(text.contains(&squeeze("Events 100,000")));
    let total: usize = {
        let after = &text[text.find("page1of").unwrap() + "page1of".len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap()
    };
    assert!(total > 100, "{total} pages");
    assert!(text.contains(&format!("page{total}of{total}")));
}
