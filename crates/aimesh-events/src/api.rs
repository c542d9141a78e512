//! The tonic adapter of `aimesh.events.v1.EventsService`.

use std::pin::Pin;

use aimesh_kit::{auth::principal, error::parse_uuid, paging};
use aimesh_proto::events::v1::{self as pb, events_service_server::EventsService};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::{
    error::EventsError,
    service::{Events, Start},
};

/// The gRPC face of the events service.
#[derive(Clone)]
pub struct EventsApi {
    events: Events,
}

impl EventsApi {
    /// Wraps the service.
    pub fn new(events: Events) -> Self {
        Self { events }
    }

    /// Returns the tonic server for this API.
    pub fn into_server(self) -> pb::events_service_server::EventsServiceServer<Self> {
        pb::events_service_server::EventsServiceServer::new(self)
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventsService for EventsApi {
    type WatchEventsStream = WatchStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let start = if request.after_event_id.is_empty() {
            if request.from_oldest {
                Start::Oldest
            } else {
                Start::Now
            }
        } else {
            let id = parse_uuid(&request.after_event_id)
                .map_err(|error| EventsError::invalid("after_event_id", error))?;
            Start::After(id)
        };
        let filter = Events::filter(&caller, request.all_accounts, request.types)?;
        let events = self.events.watch(filter, start).await?;
        Ok(Response::new(Box::pin(events.map(|event| {
            event
                .map(|event| pb::WatchEventsResponse {
                    event: Some(event.to_proto()),
                })
                .map_err(Status::from)
        }))))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let page_size = paging::validate_page_size(request.page_size)
            .map_err(|error| EventsError::invalid("page_size", error))?;
        let filter = Events::filter(&caller, request.all_accounts, request.types)?;
        let key = format!(
            "{:?}|{:?}|{}",
            filter.owner_id, filter.types, request.newest_first
        );
        let cursor = if request.page_token.is_empty() {
            None
        } else {
            let cursor = paging::decode(&request.page_token, &key)
                .map_err(|error| EventsError::invalid("page_token", error.to_string()))?;
            let bytes: [u8; 8] = cursor
                .try_into()
                .map_err(|_| EventsError::invalid("page_token", "is not a valid page token"))?;
            Some(i64::from_be_bytes(bytes))
        };
        let (events, next) = self
            .events
            .list(&filter, cursor, page_size, request.newest_first)
            .await?;
        Ok(Response::new(pb::ListEventsResponse {
            events: events.iter().map(|event| event.to_proto()).collect(),
            next_page_token: next
                .map(|seq| paging::encode(&seq.to_be_bytes(), &key))
                .unwrap_or_default(),
        }))
    }
}
