//! Transcript files: plain text, SubRip (SRT) and WebVTT.

use std::fmt::Write;

use crate::domain::{ExportFormat, Segment};

/// Renders segments in `format`.
pub fn render(format: ExportFormat, text: &str, segments: &[Segment]) -> String {
    match format {
        ExportFormat::Text => {
            if segments.is_empty() {
                let mut out = text.trim().to_owned();
                if !out.is_empty() {
                    out.push('\n');
                }
                out
            } else {
                segments
                    .iter()
                    .map(|segment| format!("{}\n", segment.text.trim()))
                    .collect()
            }
        }
        ExportFormat::Srt => {
            let mut out = String::new();
            for (index, segment) in segments.iter().enumerate() {
                let _ = write!(
                    out,
                    "{}\n{} --> {}\n{}\n\n",
                    index + 1,
                    timestamp(segment.start, ','),
                    timestamp(segment.end, ','),
                    cue_text(&segment.text)
                );
            }
            out
        }
        ExportFormat::Vtt => {
            let mut out = String::from("WEBVTT\n\n");
            for segment in segments {
                let _ = write!(
                    out,
                    "{} --> {}\n{}\n\n",
                    timestamp(segment.start, '.'),
                    timestamp(segment.end, '.'),
                    cue_text(&segment.text).replace("-->", "->")
                );
            }
            out
        }
    }
}

/// `HH:MM:SS<sep>mmm`.
fn timestamp(seconds: f64, separator: char) -> String {
    let millis = (seconds.max(0.0) * 1000.0).round() as u64;
    let (hours, rest) = (millis / 3_600_000, millis % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (secs, millis) = (rest / 1000, rest % 1000);
    format!("{hours:02}:{minutes:02}:{secs:02}{separator}{millis:03}")
}

/// A cue's text: trimmed, with no blank line (which would end the cue).
fn cue_text(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments() -> Vec<Segment> {
        vec![
            Segment {
                start: 0.0,
                end: 2.5,
                text: " Hello there.".into(),
            },
            Segment {
                start: 3661.042,
                end: 3662.0,
                text: "Bye --> now".into(),
            },
        ]
    }

    #[test]
    fn srt_numbers_cues_with_comma_milliseconds() {
        assert_eq!(
            render(ExportFormat::Srt, "", &segments()),
            "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n\
             2\n01:01:01,042 --> 01:01:02,000\nBye --> now\n\n"
        );
    }

    #[test]
    fn vtt_has_its_header_and_dot_milliseconds() {
        assert_eq!(
            render(ExportFormat::Vtt, "", &segments()),
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n\
             01:01:01.042 --> 01:01:02.000\nBye -> now\n\n"
        );
    }

    #[test]
    fn text_is_one_line_per_segment() {
        assert_eq!(
            render(ExportFormat::Text, "ignored", &segments()),
            "Hello there.\nBye --> now\n"
        );
        assert_eq!(render(ExportFormat::Text, " whole ", &[]), "whole\n");
    }
}
