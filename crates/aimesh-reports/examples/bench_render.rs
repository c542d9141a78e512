//! Measures report generation: validation, analysis and rendering of HTML and PDF reports for
//! 1,000, 10,000 and 100,000 events, printing the time and output size of each.
//!
//! Run with `cargo run --release -p aimesh-reports --example bench_render`; pass a directory
//! to also write the reports there.

use std::{path::PathBuf, time::Instant};

use aimesh_reports::{Event, Format, Renderer, ReportRequest};
use chrono::{DateTime, TimeDelta};

/// Runs per size; the best is printed.
const RUNS: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::env::args().nth(1).map(PathBuf::from);
    let renderer = Renderer::new()?;
    println!("events   format   best of {RUNS}   size");
    for events in [1_000, 10_000, 100_000] {
        for format in [Format::Html, Format::Pdf] {
            let mut best = f64::INFINITY;
            let mut bytes = Vec::new();
            for _ in 0..RUNS {
                let request = ReportRequest {
                    student_id: "student-0042".to_owned(),
                    namespace: "algebra-1".to_owned(),
                    events: walk(events, 400),
                    format,
                };
                // the request is built outside the timing; validation is inside
                let start = Instant::now();
                bytes = renderer.render(request)?.bytes;
                best = best.min(start.elapsed().as_secs_f64());
            }
            println!(
                "{events:>7}   {:<6}   {:>9.1} ms   {:>8.1} KiB",
                format.extension(),
                best * 1e3,
                bytes.len() as f64 / 1024.0
            );
            if let Some(dir) = &out_dir {
                std::fs::write(
                    dir.join(format!("report-{events}.{}", format.extension())),
                    &bytes,
                )?;
            }
        }
    }
    Ok(())
}

/// A deterministic walk through `units` units: runs of events in one unit, jumps between
/// units, pauses of seconds to minutes and now and then of days.
fn walk(events: usize, units: usize) -> Vec<Event> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let types = [
        "viewed",
        "started",
        "completed",
        "quiz_submitted",
        "video_played",
    ];
    let mut time = DateTime::parse_from_rfc3339("2024-09-01T08:00:00Z").unwrap_or_default();
    let mut unit = 0;
    (0..events)
        .map(|_| {
            let roll = next();
            if roll % 4 == 0 {
                unit = (roll >> 8) as usize % units;
            }
            let pause = if roll % 997 == 0 {
                3 * 86_400
            } else {
                (roll >> 20) as i64 % 600
            };
            time += TimeDelta::seconds(pause);
            Event {
                unit: format!("Module {} · lesson {}", unit / 10 + 1, unit % 10 + 1),
                event_type: types[(roll >> 32) as usize % types.len()].to_owned(),
                created_time: time.to_rfc3339(),
            }
        })
        .collect()
}
