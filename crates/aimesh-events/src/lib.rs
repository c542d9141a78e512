//! The mesh's domain events.
//!
//! Every product service records what it changed in a transactional outbox ([`outbox`]): the
//! event row commits in the same transaction as the change. The relay ([`relay`]) numbers
//! committed events in the order they became visible and, with a NATS server configured,
//! publishes them to JetStream with the event id as the message id, marks them published and
//! prunes them after their retention. [`service::Events`] streams a user's events (everyone's
//! to an administrator) from that order, resumably, and [`api`] is its tonic adapter,
//! `aimesh.events.v1.EventsService`.

pub mod api;
pub mod error;
mod export;
pub mod outbox;
pub mod relay;
pub mod service;
pub mod store;

pub use api::EventsApi;
pub use error::{EventsError, EventsResult};
pub use outbox::{EVENT_TYPES, NewEvent, Outbox, Payload};
pub use relay::{Relay, RelayConfig};
pub use service::Events;
pub use store::{EventStore, MIGRATIONS, StoredEvent};

/// The protobuf messages of events and their payloads.
pub use aimesh_proto::events::v1 as pb;
