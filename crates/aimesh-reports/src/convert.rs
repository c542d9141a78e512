//! Conversions between the protobuf messages of `aimesh.reports.v1` and the reports domain.
//!
//! Requests become validated domain values through `TryFrom`, every offending field reported
//! by its path in the request (`report.events[3].unit`, `events[0].created_time`) as an
//! INVALID_ARGUMENT; domain values become responses through `From`.

use aimesh_kit::{
    error::{Violations, parse_uuid},
    paging,
    proto::timestamp,
};
use aimesh_proto::reports::v1 as pb;
use uuid::Uuid;

use crate::{
    ReportsError,
    domain::{self, Event, Format, ReportRequest},
    error::ReportsServiceError,
    report::{self, EventPage, ListQuery, NewReport, Report, Status},
};

fn finish<T: aimesh_kit::error::Checked>(
    violations: Violations,
    values: T,
) -> Result<T::Values, ReportsServiceError> {
    violations
        .finish(values)
        .map_err(ReportsServiceError::InvalidArgument)
}

/// Parses the id a request names in `field`.
pub fn parse_id(field: &str, id: &str) -> Result<Uuid, ReportsServiceError> {
    let mut violations = Violations::new();
    let id = violations.check(field, parse_uuid(id));
    finish(violations, id)
}

/// The domain status a proto status names (`None` for unspecified).
pub fn status_filter(status: pb::ReportStatus) -> Option<Status> {
    match status {
        pb::ReportStatus::Unspecified => None,
        pb::ReportStatus::Draft => Some(Status::Draft),
        pb::ReportStatus::Pending => Some(Status::Pending),
        pb::ReportStatus::Running => Some(Status::Running),
        pb::ReportStatus::Done => Some(Status::Done),
        pb::ReportStatus::Failed => Some(Status::Failed),
    }
}

impl From<Status> for pb::ReportStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Draft => pb::ReportStatus::Draft,
            Status::Pending => pb::ReportStatus::Pending,
            Status::Running => pb::ReportStatus::Running,
            Status::Done => pb::ReportStatus::Done,
            Status::Failed => pb::ReportStatus::Failed,
        }
    }
}

impl From<Format> for pb::ReportFormat {
    fn from(format: Format) -> Self {
        match format {
            Format::Html => pb::ReportFormat::Html,
            Format::Pdf => pb::ReportFormat::Pdf,
        }
    }
}

/// The core's events from the request's, moved (no copies of 100,000 strings).
fn events(events: Vec<pb::ReportEvent>) -> Vec<Event> {
    events
        .into_iter()
        .map(|event| Event {
            unit: event.unit,
            event_type: event.r#type,
            created_time: event.created_time,
        })
        .collect()
}

/// Adds the core's violations to `found` under the request's field paths: `prefix` before
/// each, and the proto's name `type` for the core's `event_type`.
fn add_core(
    found: &mut Violations,
    error: ReportsError,
    prefix: &str,
) -> Result<(), ReportsServiceError> {
    match error {
        ReportsError::InvalidArgument(core) => {
            for violation in core {
                let field = match violation.field.strip_suffix(".event_type") {
                    Some(event) => format!("{prefix}{event}.type"),
                    None => format!("{prefix}{}", violation.field),
                };
                found.add(field, violation.description);
            }
            Ok(())
        }
        ReportsError::Internal(message) => Err(ReportsServiceError::Internal(message)),
    }
}

/// The format a CreateReport asks for: `report.format`, else `format_name`, else HTML.
fn format(field: i32, name: &str, found: &mut Violations) -> Option<Format> {
    let by_enum = match pb::ReportFormat::try_from(field) {
        Ok(pb::ReportFormat::Unspecified) => None,
        Ok(pb::ReportFormat::Html) => Some(Format::Html),
        Ok(pb::ReportFormat::Pdf) => Some(Format::Pdf),
        Err(_) => {
            found.add("report.format", "is not a known format");
            return None;
        }
    };
    let by_name = match name.trim() {
        "" => None,
        name => match Format::parse(name) {
            Some(format) => Some(format),
            None => {
                found.add("format_name", "must be html or pdf");
                return None;
            }
        },
    };
    match (by_enum, by_name) {
        (Some(a), Some(b)) if a != b => {
            found.add(
                "format_name",
                format!("names {}, but report.format is {}", b.as_str(), a.as_str()),
            );
            None
        }
        (a, b) => Some(a.or(b).unwrap_or(Format::Html)),
    }
}

// === requests -> domain ===

impl TryFrom<pb::CreateReportRequest> for NewReport {
    type Error = ReportsServiceError;

    fn try_from(request: pb::CreateReportRequest) -> Result<Self, Self::Error> {
        let input = request.report.unwrap_or_default();
        let mut found = Violations::new();
        let format = format(input.format, &request.format_name, &mut found);
        let core = ReportRequest {
            student_id: input.student_id,
            namespace: input.namespace,
            events: events(input.events),
            format: format.unwrap_or(Format::Html),
        };
        let checked = if request.draft {
            core.validate_draft()
        } else {
            core.validate()
        };
        let valid = match checked {
            Ok(valid) => Some(valid),
            Err(error) => {
                add_core(&mut found, error, "report.")?;
                None
            }
        };
        let (valid, format) = finish(found, (valid, format))?;
        Ok(NewReport {
            events: valid
                .events
                .iter()
                .map(domain::ValidEvent::to_event)
                .collect(),
            student_id: valid.student_id,
            namespace: valid.namespace,
            format,
            draft: request.draft,
        })
    }
}

impl TryFrom<pb::AppendReportEventsRequest> for EventPage {
    type Error = ReportsServiceError;

    fn try_from(request: pb::AppendReportEventsRequest) -> Result<Self, Self::Error> {
        let mut found = Violations::new();
        let report_id = found.check("id", parse_uuid(&request.id));
        if request.offset < 0 {
            found.add("offset", "must not be negative");
        }
        let valid = if request.events.len() > domain::MAX_EVENTS {
            found.add(
                "events",
                format!(
                    "must list at most {} events, got {}",
                    domain::MAX_EVENTS,
                    request.events.len()
                ),
            );
            None
        } else {
            match domain::validate_events(events(request.events)) {
                Ok(valid) => Some(valid),
                Err(error) => {
                    add_core(&mut found, error, "")?;
                    None
                }
            }
        };
        let (report_id, valid) = finish(found, (report_id, valid))?;
        Ok(EventPage {
            report_id,
            offset: request.offset,
            events: valid.iter().map(domain::ValidEvent::to_event).collect(),
        })
    }
}

impl TryFrom<&pb::ListReportsRequest> for ListQuery {
    type Error = ReportsServiceError;

    fn try_from(request: &pb::ListReportsRequest) -> Result<Self, Self::Error> {
        let mut found = Violations::new();
        let page_size = found.check("page_size", report::validate_page_size(request.page_size));
        let status = found.check(
            "status",
            pb::ReportStatus::try_from(request.status)
                .map(status_filter)
                .map_err(|_| "is not a known status"),
        );
        let (page_size, status) = finish(found, (page_size, status))?;
        let mut query = ListQuery {
            page_size,
            after: None,
            status,
        };
        let mut found = Violations::new();
        let after = found.check(
            "page_token",
            paging::decode_uuid(&request.page_token, &query.filter_key()),
        );
        query.after = finish(found, after)?;
        Ok(query)
    }
}

// === domain -> responses ===

impl From<&Report> for pb::Report {
    fn from(report: &Report) -> Self {
        pb::Report {
            id: report.id.to_string(),
            student_id: report.student_id.clone(),
            namespace: report.namespace.clone().unwrap_or_default(),
            format: pb::ReportFormat::from(report.format).into(),
            status: pb::ReportStatus::from(report.status).into(),
            failure_reason: report.failure_reason.clone().unwrap_or_default(),
            job_id: report.job_id.map(|id| id.to_string()).unwrap_or_default(),
            event_count: report.event_count,
            unit_count: report.unit_count,
            first_event_time: report.first_event_at.map(timestamp),
            last_event_time: report.last_event_at.map(timestamp),
            size_bytes: report.size_bytes,
            filename: report.filename(),
            content_type: report.content_type().to_owned(),
            create_time: Some(timestamp(report.created_at)),
            update_time: Some(timestamp(report.updated_at)),
        }
    }
}
