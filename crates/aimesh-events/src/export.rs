//! An account's events with its data: exported as `events/events.json` (every retained event as
//! `aimesh.events.v1.Event`) and deleted with the account.

use aimesh_kit::{export::ExportArchive, owned::OwnedData};
use futures::future::BoxFuture;

use crate::store::EventStore;

impl OwnedData for EventStore {
    fn name(&self) -> &'static str {
        "events"
    }

    fn delete_owner<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            EventStore::delete_owner(self, owner)
                .await
                .map_err(|error| error.to_string())
        })
    }

    fn export_owner<'a>(
        &'a self,
        owner: &'a str,
        archive: &'a ExportArchive,
    ) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let events: Vec<_> = self
                .of_owner(owner)
                .await
                .map_err(|error| error.to_string())?
                .iter()
                .map(|event| event.to_proto())
                .collect();
            archive.records("events/events.json", &events).await?;
            Ok(events.len() as u64)
        })
    }
}
