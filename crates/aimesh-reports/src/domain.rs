//! The report request and the rules its fields follow.
//!
//! A request names a student and lists their learning events. `student_id` and every event's
//! `unit` are required; an event's type and time are optional, and a time, when given, must be
//! RFC 3339. Validation collects every bad field, each named by its path
//! (`events[3].created_time`), up to [`MAX_VIOLATIONS`].

use chrono::{DateTime, SecondsFormat, Utc};

use crate::error::{FieldViolation, ReportsError, ReportsResult};

/// Most events one report takes.
pub const MAX_EVENTS: usize = 100_000;
/// Longest student id, in characters.
pub const STUDENT_ID_MAX_CHARS: usize = 128;
/// Longest namespace, in characters.
pub const NAMESPACE_MAX_CHARS: usize = 128;
/// Longest unit name, in characters.
pub const UNIT_MAX_CHARS: usize = 200;
/// Longest event type, in characters.
pub const EVENT_TYPE_MAX_CHARS: usize = 64;
/// Longest event time, in bytes (RFC 3339 needs about 35).
pub const TIME_MAX_LEN: usize = 64;
/// Most violations listed; past it, one summary entry says how many more there were. A gRPC
/// status carries them twice, in its message and its details, both HTTP/2 headers: twenty keep
/// them well within a client's header limit.
pub const MAX_VIOLATIONS: usize = 20;

/// The output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A self-contained HTML page.
    Html,
    /// A PDF document.
    Pdf,
}

impl Format {
    /// Returns the media type of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Pdf => "application/pdf",
        }
    }

    /// Returns the usual file extension of the format, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Pdf => "pdf",
        }
    }

    /// Returns the format's stored name, `HTML` or `PDF`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Html => "HTML",
            Format::Pdf => "PDF",
        }
    }

    /// Parses a format's name in any case: `html` or `pdf`.
    pub fn parse(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("html") {
            Some(Format::Html)
        } else if name.eq_ignore_ascii_case("pdf") {
            Some(Format::Pdf)
        } else {
            None
        }
    }
}

/// One learning event as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The unit (lesson, module, page) the event happened in. Required.
    pub unit: String,
    /// What happened, e.g. `viewed` or `submitted`; empty when unknown.
    pub event_type: String,
    /// When it happened, as an RFC 3339 time; empty when unknown.
    pub created_time: String,
}

/// A report request as a client sends it, not yet validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRequest {
    /// The student the events belong to. Required.
    pub student_id: String,
    /// The namespace (course, tenant) of the events; empty when none.
    pub namespace: String,
    /// The student's events, in any order.
    pub events: Vec<Event>,
    /// The output format.
    pub format: Format,
}

/// A validated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidEvent {
    /// The unit, trimmed and non-empty.
    pub unit: String,
    /// The event type, trimmed, if given.
    pub event_type: Option<String>,
    /// The time, in UTC, if given.
    pub created_time: Option<DateTime<Utc>>,
}

/// A validated report request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRequest {
    /// The student, trimmed and non-empty.
    pub student_id: String,
    /// The namespace, trimmed, if given.
    pub namespace: Option<String>,
    /// The events, in the order they were sent.
    pub events: Vec<ValidEvent>,
    /// The output format.
    pub format: Format,
}

impl ValidEvent {
    /// Returns the event in its normal form: trimmed, its time in UTC as RFC 3339.
    pub fn to_event(&self) -> Event {
        Event {
            unit: self.unit.clone(),
            event_type: self.event_type.clone().unwrap_or_default(),
            created_time: self
                .created_time
                .map(|time| time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                .unwrap_or_default(),
        }
    }
}

/// Validates a page of events sent apart from their report, naming each bad field by its
/// index in the page (`events[3].unit`).
pub fn validate_events(events: Vec<Event>) -> ReportsResult<Vec<ValidEvent>> {
    let mut violations = Violations::default();
    let mut valid = Vec::with_capacity(events.len());
    for (index, event) in events.into_iter().enumerate() {
        if let Some(event) = validate_event(index, event, &mut violations) {
            valid.push(event);
        }
    }
    violations.into_result()?;
    Ok(valid)
}

impl ReportRequest {
    /// Validates the request, consuming it so that no event is copied.
    ///
    /// Returns [`ReportsError::InvalidArgument`] listing every bad field.
    pub fn validate(self) -> ReportsResult<ValidRequest> {
        self.check(false)
    }

    /// Validates the request like [`ReportRequest::validate`], except that it may list no
    /// events: a draft whose events are sent later, page by page.
    pub fn validate_draft(self) -> ReportsResult<ValidRequest> {
        self.check(true)
    }

    fn check(self, allow_empty: bool) -> ReportsResult<ValidRequest> {
        let mut violations = Violations::default();
        // A failed check leaves an empty id behind, but then the request is rejected.
        let student_id = violations
            .check(
                "student_id",
                required_text(&self.student_id, STUDENT_ID_MAX_CHARS),
            )
            .unwrap_or_default();
        let namespace = violations
            .check(
                "namespace",
                optional_text(&self.namespace, NAMESPACE_MAX_CHARS),
            )
            .flatten();

        let mut events = Vec::new();
        if self.events.is_empty() && !allow_empty {
            violations.add("events", "must list at least one event");
        } else if self.events.len() > MAX_EVENTS {
            violations.add(
                "events",
                format!(
                    "must list at most {MAX_EVENTS} events, got {}",
                    self.events.len()
                ),
            );
        } else {
            events.reserve_exact(self.events.len());
            for (index, event) in self.events.into_iter().enumerate() {
                if let Some(event) = validate_event(index, event, &mut violations) {
                    events.push(event);
                }
            }
        }

        violations.into_result()?;
        Ok(ValidRequest {
            student_id,
            namespace,
            events,
            format: self.format,
        })
    }
}

/// Validates one event, recording its bad fields under `events[index]`.
fn validate_event(index: usize, event: Event, violations: &mut Violations) -> Option<ValidEvent> {
    let unit = violations.check_with(
        || format!("events[{index}].unit"),
        required_text(&event.unit, UNIT_MAX_CHARS),
    );
    let event_type = violations.check_with(
        || format!("events[{index}].event_type"),
        optional_text(&event.event_type, EVENT_TYPE_MAX_CHARS),
    );
    let created_time = violations.check_with(
        || format!("events[{index}].created_time"),
        parse_time(&event.created_time),
    );
    Some(ValidEvent {
        unit: unit?,
        event_type: event_type?,
        created_time: created_time?,
    })
}

/// Checks a required text field: trimmed, non-empty, no control characters, at most `max` chars.
fn required_text(value: &str, max: usize) -> Result<String, String> {
    match optional_text(value, max)? {
        Some(text) => Ok(text),
        None => Err("must not be empty".to_owned()),
    }
}

/// Checks an optional text field; empty (after trimming) means absent.
fn optional_text(value: &str, max: usize) -> Result<Option<String>, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.len() > max * 4 || trimmed.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(Some(trimmed.to_owned()))
}

/// Parses an optional RFC 3339 time into UTC.
fn parse_time(value: &str) -> Result<Option<DateTime<Utc>>, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.len() > TIME_MAX_LEN {
        return Err("must be an RFC 3339 time".to_owned());
    }
    DateTime::parse_from_rfc3339(trimmed)
        .map(|time| Some(time.with_timezone(&Utc)))
        .map_err(|_| "must be an RFC 3339 time, e.g. 2025-03-01T09:30:00Z".to_owned())
}

/// The violations gathered while validating, capped at [`MAX_VIOLATIONS`].
#[derive(Debug, Default)]
struct Violations {
    listed: Vec<FieldViolation>,
    unlisted: usize,
}

impl Violations {
    fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        if self.listed.len() < MAX_VIOLATIONS {
            self.listed.push(FieldViolation::new(field, description));
        } else {
            self.unlisted += 1;
        }
    }

    fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        self.check_with(|| field.to_owned(), result)
    }

    /// Records the error of a check under the field `field()` names, built only on error.
    fn check_with<T>(
        &mut self,
        field: impl FnOnce() -> String,
        result: Result<T, String>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(description) => {
                self.add(field(), description);
                None
            }
        }
    }

    fn into_result(mut self) -> ReportsResult<()> {
        if self.unlisted > 0 {
            self.listed.push(FieldViolation::new(
                "events",
                format!("{} more invalid fields not listed", self.unlisted),
            ));
        }
        if self.listed.is_empty() {
            Ok(())
        } else {
            Err(ReportsError::InvalidArgument(self.listed))
        }
    }
}
