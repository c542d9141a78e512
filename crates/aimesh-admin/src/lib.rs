//! The admin service (`aimesh.admin.v1.AdminService`): the operator's view of the mesh.
//! Accounts with their call counts and storage use, disabling, enabling and deleting them; an
//! audit log of every administrator's action; every user's jobs, each kind's queue statistics,
//! retry and cancel of any job, and a stream of every job's changes. Administrators only.
//!
//! Layers: [`api`] (tonic) -> [`service`] (domain, calling the identity service's
//! [`AccountAdmin`](aimesh_identity::AccountAdmin) and the job engine's
//! [`Jobs`](aimesh_jobs::Jobs)) -> [`store`] (the audit log's SQL).

pub mod api;
pub mod domain;
pub mod error;
pub mod service;
pub mod store;

pub use api::AdminApi;
pub use error::{AdminError, AdminResult};
pub use service::{Admin, StorageUsage};
pub use store::{AuditStore, MIGRATIONS};
