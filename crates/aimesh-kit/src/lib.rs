//! The shared runtime every aimesh service stands on: typed configuration, telemetry, one
//! error-to-`Status` mapping, database pools with migrations, content-addressed blob storage,
//! the caller's identity in request extensions, cache invalidation fan-out, the hook that deletes an account's data in every service, and a gRPC server
//! builder that adds grpc-web, reflection, health and graceful shutdown.

pub mod auth;
pub mod blob;
pub mod config;
pub mod db;
pub mod drain;
pub mod error;
pub mod export;
pub mod files;
pub mod invalidation;
pub mod metrics;
pub mod owned;
pub mod paging;
pub mod proto;
pub mod server;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;

pub use error::{Code, FieldViolation, ServiceError};
