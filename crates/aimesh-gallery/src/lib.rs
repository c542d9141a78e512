//! The gallery service: images uploaded from any client (or made by an operation job),
//! decoded within limits on bytes and pixels, stored with their EXIF orientation applied and
//! their metadata stripped (unless kept), with 256 px and 1024 px thumbnails, a SHA-256 and a
//! perceptual hash; a trash whose images are purged after a retention period; and operations
//! (enhance, styles, upscaling, background removal, generation) as jobs producing derived
//! images linked to their source.
//!
//! Layers, outermost first: [`api`] (the tonic `GalleryService`, a pure adapter) with
//! [`convert`] (proto <-> domain, request validation), [`service`] (domain logic: uploads,
//! quota, ownership, the trash, submitting operations), [`store`] (SQL on SQLite or
//! PostgreSQL); [`job`] holds the job handlers. [`imaging`] and [`edit`] are the synchronous
//! image core (decoding, thumbnails, hashes, filters); [`engine`] is the trait the AI engines
//! implement, one capability each.

pub mod api;
pub mod convert;
pub mod domain;
pub mod edit;
pub mod engine;
pub mod error;
pub mod files;
pub mod imaging;
pub mod job;
pub mod samples;
pub mod service;
pub mod store;

pub use api::GalleryApi;
pub use engine::{
    Capability, EngineControl, EngineError, EngineRequest, ImageEngine, ImageEngines,
};
pub use error::{GalleryError, GalleryResult};
pub use imaging::{DecodeError, DecodeLimits, decode};
pub use service::{Gallery, GalleryConfig};
pub use store::{ImageStore, MIGRATIONS};
