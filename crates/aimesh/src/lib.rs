//! The aimesh process: which services, engines and workers it runs ([`mesh`]), configured
//! once at start ([`config`]), plus the command-line helpers that need no running mesh
//! ([`tools`], [`ops`]). The binary and the integration tests build a mesh the same way.

pub mod config;
pub mod console;
pub mod export;
mod images;
pub mod mesh;
pub mod ops;
pub mod tools;

pub use config::{
    ConversationSettings, EventsSettings, FilesSettings, GallerySettings, JobsSettings, MeshConfig,
    ProcessingSettings, ReportsSettings, ServiceKind, SpeechSettings, WorkerMode, WorkerSettings,
};
pub use mesh::{Core, Mesh, ServiceSettings, connect, migrate, run_worker};
