//! The reports the service keeps: a report's status and what it found, its events (kept in
//! pages until it is rendered), list queries and the payloads of its jobs. No tonic, no SQL.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Event, Format};

pub use aimesh_kit::paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, validate_page_size};

/// Events kept per stored page: a large report is stored as several rows, none too large.
pub const EVENTS_PER_PAGE: usize = 10_000;

/// Where a report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Takes more events; not rendered until generated.
    Draft,
    /// Waiting for a worker.
    Pending,
    /// Being rendered.
    Running,
    /// Rendered: the file is stored.
    Done,
    /// Rendering failed.
    Failed,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "DRAFT",
            Status::Pending => "PENDING",
            Status::Running => "RUNNING",
            Status::Done => "DONE",
            Status::Failed => "FAILED",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "DRAFT" => Status::Draft,
            "PENDING" => Status::Pending,
            "RUNNING" => Status::Running,
            "DONE" => Status::Done,
            "FAILED" => Status::Failed,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Identifier (UUIDv7).
    pub id: Uuid,
    /// Owner's user id.
    pub owner_id: String,
    /// The student.
    pub student_id: String,
    /// The namespace, if any.
    pub namespace: Option<String>,
    /// The output format.
    pub format: Format,
    /// Where the report is.
    pub status: Status,
    /// Why rendering failed.
    pub failure_reason: Option<String>,
    /// The rendering job.
    pub job_id: Option<Uuid>,
    /// Events held.
    pub event_count: i64,
    /// Distinct units (once done).
    pub unit_count: i64,
    /// The earliest event time (once done).
    pub first_event_at: Option<DateTime<Utc>>,
    /// The latest event time (once done).
    pub last_event_at: Option<DateTime<Utc>>,
    /// The file's size (once done).
    pub size_bytes: i64,
    /// SHA-256 of the file, lowercase hex: its blob's name (once done).
    pub sha256: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Report {
    /// The file's download name: `report-<student>.<ext>`, the student id reduced to
    /// characters safe in any header or file system.
    pub fn filename(&self) -> String {
        let mut name = String::from("report");
        let student: String = self
            .student_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        let student = student.trim_matches(|c| c == '-' || c == '.');
        if !student.is_empty() {
            name.push('-');
            name.push_str(student);
        }
        format!("{name}.{}", self.format.extension())
    }

    /// The file's media type.
    pub fn content_type(&self) -> &'static str {
        self.format.content_type()
    }
}

/// A validated CreateReport.
#[derive(Debug, Clone)]
pub struct NewReport {
    /// The student.
    pub student_id: String,
    /// The namespace, if any.
    pub namespace: Option<String>,
    /// The output format.
    pub format: Format,
    /// The events, validated and in their normal form.
    pub events: Vec<Event>,
    /// Whether to keep it as a draft instead of rendering it.
    pub draft: bool,
}

/// A validated AppendReportEvents.
#[derive(Debug, Clone)]
pub struct EventPage {
    /// The report.
    pub report_id: Uuid,
    /// Events the report holds before this page.
    pub offset: i64,
    /// The events, validated and in their normal form.
    pub events: Vec<Event>,
}

/// A validated ListReports query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Reports per page.
    pub page_size: u32,
    /// Only reports older than this one (the page token's cursor).
    pub after: Option<Uuid>,
    /// Only reports in this status.
    pub status: Option<Status>,
}

impl ListQuery {
    /// The filters a page token is bound to.
    pub fn filter_key(&self) -> String {
        format!(
            "status={}",
            self.status.map(Status::as_str).unwrap_or_default()
        )
    }
}

/// A page of reports.
#[derive(Debug, Clone)]
pub struct ReportPage {
    /// The reports, newest first.
    pub reports: Vec<Report>,
    /// The cursor of the next page, if any.
    pub next_after: Option<Uuid>,
}

/// What rendering produced, recorded on the report when it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// SHA-256 of the file: its blob's name.
    pub sha256: String,
    /// The file's size.
    pub size_bytes: i64,
    /// Distinct units.
    pub unit_count: i64,
    /// The earliest event time.
    pub first_event_at: Option<DateTime<Utc>>,
    /// The latest event time.
    pub last_event_at: Option<DateTime<Utc>>,
}

/// The payload of a `reports.render` job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenderJob {
    /// The report to render.
    pub report_id: Uuid,
}

/// The payload of a `reports.purge` job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PurgeJob {}

/// Encodes events for storage: a JSON array of `[unit, type, time]` triples.
pub fn encode_events(events: &[Event]) -> Vec<u8> {
    let triples: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.unit.as_str(),
                e.event_type.as_str(),
                e.created_time.as_str(),
            )
        })
        .collect();
    // Serialising strings into a vector cannot fail.
    serde_json::to_vec(&triples).unwrap_or_default()
}

/// Decodes events stored by [`encode_events`].
pub fn decode_events(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let triples: Vec<(String, String, String)> =
        serde_json::from_slice(bytes).map_err(|error| format!("unreadable events: {error}"))?;
    Ok(triples
        .into_iter()
        .map(|(unit, event_type, created_time)| Event {
            unit,
            event_type,
            created_time,
        })
        .collect())
}

/// Returns the current time at the precision both databases store.
pub fn now() -> DateTime<Utc> {
    aimesh_kit::db::now()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn report(student: &str, format: Format) -> Report {
        Report {
            id: Uuid::now_v7(),
            owner_id: "alice".into(),
            student_id: student.into(),
            namespace: None,
            format,
            status: Status::Draft,
            failure_reason: None,
            job_id: None,
            event_count: 0,
            unit_count: 0,
            first_event_at: None,
            last_event_at: None,
            size_bytes: 0,
            sha256: None,
            created_at: now(),
            updated_at: now(),
        }
    }

    #[test]
    fn file_names_are_safe_in_headers() {
        assert_eq!(
            report("student-0042", Format::Pdf).filename(),
            "report-student-0042.pdf"
        );
        assert_eq!(
            report("<script>\"x\"; rm -rf /", Format::Html).filename(),
            "report-script--x---rm--rf.html"
        );
        assert_eq!(report("ünï", Format::Html).filename(), "report-n.html");
        assert_eq!(report("ü ï", Format::Html).filename(), "report.html");
    }

    #[test]
    fn events_round_trip_through_storage() {
        let events = vec![
            Event {
                unit: "Unit \"1\"".into(),
                event_type: "viewed".into(),
                created_time: "2025-03-01T09:00:00Z".into(),
            },
            Event {
                unit: "Ünit 2".into(),
                event_type: String::new(),
                created_time: String::new(),
            },
        ];
        assert_eq!(decode_events(&encode_events(&events)).unwrap(), events);
        assert!(decode_events(b"{").is_err());
    }
}
