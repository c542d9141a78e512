//! Generated protobuf messages and tonic clients/servers for every aimesh package, plus the
//! encoded `FileDescriptorSet` of the whole `proto/` module (with its imports), which gRPC
//! reflection serves and Envoy's REST transcoder reads.

#![allow(missing_docs, unreachable_pub, clippy::all)]

pub mod codec;

/// The encoded descriptor set of every aimesh proto file and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/aimesh_descriptor.bin"));

/// `aimesh.identity.v1`.
pub mod identity {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("aimesh.identity.v1");
    }
}

/// `aimesh.jobs.v1`.
pub mod jobs {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("aimesh.jobs.v1");
    }
}

/// `aimesh.notes.v1`.
pub mod notes {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("aimesh.notes.v1");
    }
}

/// `aimesh.models.v1`.
pub mod models {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("aimesh.models.v1");
    }
}

/// `aimesh.conversation.v1`.
pub mod conversation {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("aimesh.conversation.v1");
    }
}

/// `aimesh.events.v1`: domain events.
pub mod events {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("aimesh.events.v1");
    }
}

/// `aimesh.processing.v1`.
pub use self::packages::processing;

/// `aimesh.admin.v1`.
pub use self::packages::admin;
/// `aimesh.files.v1`.
pub use self::packages::files;
/// `aimesh.gallery.v1`.
pub use self::packages::gallery;
/// `aimesh.reports.v1`.
pub use self::packages::reports;
/// `aimesh.speech.v1`.
pub use self::packages::speech;

/// Packages whose code names types outside the `aimesh` package (`google.api.HttpBody`): the
/// generated paths climb one module per package segment, so these sit under an `aimesh`-like
/// module of their own, beside the aimesh packages they name.
mod packages {
    pub use crate::jobs;

    /// `aimesh.admin.v1` (its messages name `aimesh.jobs.v1.Job`).
    pub mod admin {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("aimesh.admin.v1");
        }
    }

    /// `aimesh.processing.v1`.
    pub mod processing {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("aimesh.processing.v1");
        }
    }

    /// `aimesh.reports.v1`.
    pub mod reports {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("aimesh.reports.v1");
        }
    }
    /// `aimesh.gallery.v1`.
    pub mod gallery {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("aimesh.gallery.v1");
        }
    }
    /// `aimesh.files.v1`: stored files behind signed URLs.
    pub mod files {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("aimesh.files.v1");
        }
    }
    /// `aimesh.speech.v1`.
    pub mod speech {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("aimesh.speech.v1");
        }
    }
}

/// The `google.api` messages the APIs use (`HttpBody`).
pub mod google {
    /// `google.api`.
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

/// `aimesh.bench.v1`: the echo service used as a benchmark ceiling.
pub mod bench {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("aimesh.bench.v1");
    }
}
