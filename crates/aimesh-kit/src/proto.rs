//! Conversions between domain values and protobuf well-known types.

use chrono::{DateTime, Utc};

/// Converts a UTC time into a `google.protobuf.Timestamp`.
pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}
