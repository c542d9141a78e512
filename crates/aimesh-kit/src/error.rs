//! The one mapping from service errors to gRPC statuses.
//!
//! Each service keeps a small `thiserror` enum and implements [`ServiceError`] for it: a code
//! from the table below and, for bad input, the violated fields. [`into_status`] turns it into
//! a `tonic::Status` with the rich error model (`google.rpc.BadRequest` field violations) and
//! makes sure internals never reach a client: for internal and unavailable errors the client
//! gets a generic message while the whole cause chain is logged here, once.

use std::{error::Error as StdError, fmt};

use tonic_types::{ErrorDetails, StatusExt};

/// What kind of failure an error is, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The request is malformed; the violated fields say where.
    InvalidArgument,
    /// The resource does not exist, or is not the caller's.
    NotFound,
    /// The resource already exists.
    AlreadyExists,
    /// A concurrency conflict, such as a stale version; retrying after a re-read can succeed.
    Aborted,
    /// The system is not in the state the operation needs.
    FailedPrecondition,
    /// A quota or limit was hit.
    ResourceExhausted,
    /// No valid credentials.
    Unauthenticated,
    /// Credentials are valid but do not allow the operation.
    PermissionDenied,
    /// A dependency is down or overloaded; retrying later can succeed.
    Unavailable,
    /// The operation was cancelled.
    Cancelled,
    /// The operation ran out of time.
    DeadlineExceeded,
    /// A bug or an unexpected failure.
    Internal,
}

impl Code {
    /// Returns the gRPC status code.
    pub fn grpc(self) -> tonic::Code {
        match self {
            Code::InvalidArgument => tonic::Code::InvalidArgument,
            Code::NotFound => tonic::Code::NotFound,
            Code::AlreadyExists => tonic::Code::AlreadyExists,
            Code::Aborted => tonic::Code::Aborted,
            Code::FailedPrecondition => tonic::Code::FailedPrecondition,
            Code::ResourceExhausted => tonic::Code::ResourceExhausted,
            Code::Unauthenticated => tonic::Code::Unauthenticated,
            Code::PermissionDenied => tonic::Code::PermissionDenied,
            Code::Unavailable => tonic::Code::Unavailable,
            Code::Cancelled => tonic::Code::Cancelled,
            Code::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            Code::Internal => tonic::Code::Internal,
        }
    }

    /// Returns the HTTP status the same failure has over REST.
    pub fn http_status(self) -> u16 {
        match self {
            Code::InvalidArgument => 400,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::FailedPrecondition => 400,
            Code::ResourceExhausted => 429,
            Code::Unauthenticated => 401,
            Code::PermissionDenied => 403,
            Code::Unavailable => 503,
            Code::Cancelled => 499,
            Code::DeadlineExceeded => 504,
            Code::Internal => 500,
        }
    }

    /// Returns whether errors with this code hide their message from clients.
    fn is_opaque(self) -> bool {
        matches!(self, Code::Internal | Code::Unavailable)
    }
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `note.title`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl FieldViolation {
    /// Creates a violation.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// A list of field violations, gathered while validating a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Creates an empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a violation.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Records the error of a fallible check under `field`, returning the value if it passed.
    pub fn check<T, E: fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error.to_string());
                None
            }
        }
    }

    /// Returns whether no violation was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns `Ok(())` when empty, or the violations.
    pub fn into_result(self) -> Result<(), Vec<FieldViolation>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }

    /// Ends a validation: the checked values (what [`Violations::check`] returned, as one
    /// `Option` or a tuple of them) when nothing was violated, else the violations.
    ///
    /// ```
    /// # use aimesh_kit::error::Violations;
    /// let mut violations = Violations::new();
    /// let a = violations.check("a", "1".parse::<u8>());
    /// let b = violations.check("b", "x".parse::<u8>());
    /// assert!(violations.finish((a, b)).is_err());
    /// ```
    ///
    /// A value missing although no violation was recorded (a check that returned `None`
    /// without recording one) is reported as a violation of `request`, never a panic.
    pub fn finish<T: Checked>(self, values: T) -> Result<T::Values, Vec<FieldViolation>> {
        self.into_result()?;
        values
            .all()
            .ok_or_else(|| vec![FieldViolation::new("request", "is incomplete")])
    }
}

/// Values gathered by [`Violations::check`]: an `Option`, or a tuple of them, which
/// [`Violations::finish`] turns into the values themselves.
pub trait Checked {
    /// The values once every check passed.
    type Values;
    /// Returns the values if every one is present.
    fn all(self) -> Option<Self::Values>;
}

impl<A> Checked for Option<A> {
    type Values = A;
    fn all(self) -> Option<A> {
        self
    }
}

macro_rules! checked_tuple {
    ($($name:ident),+) => {
        impl<$($name),+> Checked for ($(Option<$name>,)+) {
            type Values = ($($name,)+);
            #[allow(non_snake_case)]
            fn all(self) -> Option<Self::Values> {
                let ($($name,)+) = self;
                Some(($($name?,)+))
            }
        }
    };
}

checked_tuple!(A, B);
checked_tuple!(A, B, C);
checked_tuple!(A, B, C, D);
checked_tuple!(A, B, C, D, E);
checked_tuple!(A, B, C, D, E, F);

/// Quotes a client's value for an error message, cut to its first 40 characters: a message
/// travels in a response header, and echoing a long value whole would overflow the client's
/// header limit (HTTP/2 answers that with a protocol error, not the status).
pub fn excerpt(value: &str) -> String {
    const MAX: usize = 40;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

/// Parses a resource id: a UUID in any of its usual text forms. The error is a field
/// violation's description, for [`Violations::check`].
pub fn parse_uuid(value: &str) -> Result<uuid::Uuid, &'static str> {
    if value.is_empty() {
        return Err("must not be empty");
    }
    uuid::Uuid::try_parse(value).map_err(|_| "must be a UUID")
}

/// The most field violations one error reports: a request with thousands of bad items gets
/// the first ones and a count of the rest, not an error larger than a client's header limit.
pub const MAX_REPORTED_VIOLATIONS: usize = 20;

/// Formats violations as one line: `title: must not be empty; page_size: ...`, at most
/// [`MAX_REPORTED_VIOLATIONS`] of them and how many more there are.
pub fn display_violations(violations: &[FieldViolation]) -> String {
    let mut line = violations
        .iter()
        .take(MAX_REPORTED_VIOLATIONS)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(more) = violations.len().checked_sub(MAX_REPORTED_VIOLATIONS)
        && more > 0
    {
        line.push_str(&format!("; and {more} more"));
    }
    line
}

/// An error a service returns to its clients.
pub trait ServiceError: StdError {
    /// Returns the failure's code.
    fn code(&self) -> Code;

    /// Returns the invalid request fields, for `InvalidArgument` errors.
    fn field_violations(&self) -> &[FieldViolation] {
        &[]
    }
}

/// Converts a service error into a `Status`, logging opaque errors with their cause chain.
pub fn into_status<E: ServiceError>(error: E) -> tonic::Status {
    let code = error.code();
    let message = if code.is_opaque() {
        tracing::error!(error.cause_chain = %CauseChain(&error), "request failed");
        match code {
            Code::Unavailable => "the service is temporarily unavailable".to_owned(),
            _ => "internal error".to_owned(),
        }
    } else {
        error.to_string()
    };
    let violations = error.field_violations();
    if violations.is_empty() {
        tonic::Status::new(code.grpc(), message)
    } else {
        let mut reported = violations
            .iter()
            .take(MAX_REPORTED_VIOLATIONS)
            .map(|v| tonic_types::FieldViolation::new(&v.field, &v.description))
            .collect::<Vec<_>>();
        if violations.len() > MAX_REPORTED_VIOLATIONS {
            reported.push(tonic_types::FieldViolation::new(
                "request",
                format!(
                    "and {} more invalid fields",
                    violations.len() - MAX_REPORTED_VIOLATIONS
                ),
            ));
        }
        let details = ErrorDetails::with_bad_request(reported);
        tonic::Status::with_error_details(code.grpc(), message, details)
    }
}

/// Builds a RESOURCE_EXHAUSTED status with a `google.rpc.RetryInfo` detail saying when to retry.
pub fn retry_status(message: &str, retry_after: std::time::Duration) -> tonic::Status {
    tonic::Status::with_error_details(
        tonic::Code::ResourceExhausted,
        message,
        ErrorDetails::with_retry_info(Some(retry_after)),
    )
}

/// Displays an error and all its sources, separated by `: `.
pub struct CauseChain<'a>(pub &'a dyn StdError);

impl fmt::Display for CauseChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;

    #[test]
    fn excerpts_are_short_and_cut_on_characters() {
        assert_eq!(excerpt("en"), "\"en\"");
        let long = "\u{301}é".repeat(500);
        let quoted = excerpt(&long);
        assert!(quoted.ends_with('…'), "{quoted}");
        assert!(quoted.len() < 400, "{quoted}");
    }

    #[derive(Debug, thiserror::Error)]
    enum TestError {
        #[error("invalid argument: {}", display_violations(.0))]
        Invalid(Vec<FieldViolation>),
        #[error("database failed at /var/lib/secret.db")]
        Internal,
    }

    impl ServiceError for TestError {
        fn code(&self) -> Code {
            match self {
                TestError::Invalid(_) => Code::InvalidArgument,
                TestError::Internal => Code::Internal,
            }
        }
        fn field_violations(&self) -> &[FieldViolation] {
            match self {
                TestError::Invalid(v) => v,
                TestError::Internal => &[],
            }
        }
    }

    #[test]
    fn thousands_of_violations_are_reported_as_the_first_ones_and_a_count() {
        let many: Vec<FieldViolation> = (0..10_000)
            .map(|i| FieldViolation::new(format!("messages[{i}].content"), "must not be empty"))
            .collect();
        let status = into_status(TestError::Invalid(many));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().len() < 2_000, "{}", status.message().len());
        assert!(
            status.message().ends_with("; and 9980 more"),
            "{}",
            status.message()
        );
        let bad = status
            .get_details_bad_request()
            .expect("a BadRequest detail");
        assert_eq!(bad.field_violations.len(), MAX_REPORTED_VIOLATIONS + 1);
        assert_eq!(bad.field_violations[0].field, "messages[0].content");
        assert_eq!(
            bad.field_violations[MAX_REPORTED_VIOLATIONS].field,
            "request"
        );
    }

    #[test]
    fn invalid_argument_carries_field_violations() {
        let status = into_status(TestError::Invalid(vec![FieldViolation::new(
            "note.title",
            "must not be empty",
        )]));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("note.title"));
        let bad = status
            .get_details_bad_request()
            .expect("bad request details");
        assert_eq!(bad.field_violations[0].field, "note.title");
    }

    #[test]
    fn finish_returns_the_values_or_every_violation() {
        let mut violations = Violations::new();
        let id = violations.check("id", parse_uuid("0193e0a5-7d8e-7b1c-9b1e-2f6a1f4c2b11"));
        let size = violations.check("size", "12".parse::<u32>());
        let (id, size) = violations.finish((id, size)).expect("valid");
        assert_eq!(size, 12);
        assert_eq!(id.get_version_num(), 7);

        let mut violations = Violations::new();
        let id = violations.check("id", parse_uuid("nope"));
        let empty = violations.check("other", parse_uuid(""));
        let error = violations.finish((id, empty)).unwrap_err();
        assert_eq!(error.len(), 2);
        assert_eq!(error[0], FieldViolation::new("id", "must be a UUID"));
        assert_eq!(error[1], FieldViolation::new("other", "must not be empty"));

        // A value missing without a violation is still an error, not a panic.
        let error = Violations::new().finish(None::<u8>).unwrap_err();
        assert_eq!(error[0].field, "request");
    }

    #[test]
    fn internal_errors_hide_their_message() {
        let status = into_status(TestError::Internal);
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}
