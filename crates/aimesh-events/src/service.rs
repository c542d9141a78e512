//! Reading events: a user's own (every account's for an administrator), as a page or as a live
//! stream that resumes after the last event a client saw.

use std::{sync::Arc, time::Duration};

use aimesh_kit::{auth::Principal, db::Db};
use futures::stream::BoxStream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    error::{EventsError, EventsResult},
    outbox::EVENT_TYPES,
    store::{BATCH, EventFilter, EventStore, SEQUENCED_CHANNEL, StoredEvent},
};

/// Most type filters in one request.
pub const MAX_TYPES: usize = 20;
/// Longest type filter, in bytes.
pub const MAX_TYPE_LEN: usize = 100;
/// Events read per query of a watch.
const WATCH_BATCH: i64 = 200;
/// How often a watch looks for new events when it heard of none (a lost notification costs
/// at most this much delay).
const WATCH_POLL: Duration = Duration::from_secs(2);

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// With the events numbered after the call.
    Now,
    /// With the oldest retained event.
    Oldest,
    /// After this event.
    After(Uuid),
}

/// The events service.
#[derive(Clone)]
pub struct Events {
    store: EventStore,
    /// Bumped whenever events were numbered (by this process's relay, or heard of from
    /// another process on PostgreSQL).
    sequenced: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// The service on a migrated database.
    pub fn new(db: Db) -> Self {
        Self {
            store: EventStore::new(db),
            sequenced: Arc::new(watch::Sender::new(0)),
        }
    }

    /// On PostgreSQL, listens until `shutdown` for events numbered by other processes, so this
    /// process's watches hear of them at once (without, they look every few seconds). For a
    /// process that serves WatchEvents.
    pub async fn listen(&self, shutdown: CancellationToken) -> Result<(), sqlx::Error> {
        if let Db::Postgres(pool) = self.store.db() {
            let sequenced = self.sequenced.clone();
            aimesh_kit::db::listen(pool, SEQUENCED_CHANNEL, shutdown, move |_| {
                sequenced.send_modify(|n| *n = n.wrapping_add(1));
            })
            .await?;
        }
        Ok(())
    }

    /// The store.
    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// Numbers every committed event that has no number yet (see
    /// [`EventStore::sequence`]), waking the watches when it numbered any; returns how many.
    pub async fn sequence_pending(&self) -> Result<u64, sqlx::Error> {
        let mut total = 0;
        loop {
            let numbered = self.store.sequence(BATCH).await?;
            total += numbered;
            if numbered < BATCH as u64 {
                break;
            }
        }
        if total > 0 {
            self.announce();
        }
        Ok(total)
    }

    /// Wakes this process's watches: events were numbered.
    fn announce(&self) {
        self.sequenced.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The filter of a caller's request: their own events, or every account's for an
    /// administrator who asks.
    pub fn filter(
        caller: &Principal,
        all_accounts: bool,
        types: Vec<String>,
    ) -> EventsResult<EventFilter> {
        if all_accounts && !caller.is_admin() {
            return Err(EventsError::PermissionDenied);
        }
        check_types(&types)?;
        Ok(EventFilter {
            owner_id: (!all_accounts).then(|| caller.user_id.clone()),
            types,
        })
    }

    /// A page of events from `cursor` on: after that number, oldest first (`None`: from the
    /// oldest), or before it, newest first (`None`: from the newest); and the cursor of the
    /// next page when more follow.
    pub async fn list(
        &self,
        filter: &EventFilter,
        cursor: Option<i64>,
        page_size: u32,
        newest_first: bool,
    ) -> EventsResult<(Vec<StoredEvent>, Option<i64>)> {
        let limit = i64::from(page_size) + 1;
        let mut events = if newest_first {
            self.store.before(cursor, filter, limit).await?
        } else {
            self.store.after(cursor.unwrap_or(0), filter, limit).await?
        };
        let next = aimesh_kit::paging::take_page(&mut events, page_size, |event| event.seq);
        Ok((events, next))
    }

    /// Streams the events `filter` selects from `start` on, live, until the receiver goes.
    pub async fn watch(
        &self,
        filter: EventFilter,
        start: Start,
    ) -> EventsResult<BoxStream<'static, EventsResult<StoredEvent>>> {
        let mut cursor = match start {
            Start::Now => {
                // Number what committed before the call, so that "from now on" means after it.
                self.sequence_pending().await?;
                self.store.last_seq().await?
            }
            Start::Oldest => 0,
            Start::After(id) => match self.store.position(id).await? {
                Some((seq, owner))
                    if filter.owner_id.as_deref().is_none_or(|mine| mine == owner) =>
                {
                    seq
                }
                _ => return Err(EventsError::NotRetained(id.to_string())),
            },
        };
        let (tx, rx) = mpsc::channel(64);
        let store = self.store.clone();
        let mut sequenced = self.sequenced.subscribe();
        tokio::spawn(async move {
            loop {
                // Mark what has been heard before reading, so nothing numbered after the
                // read goes unnoticed.
                sequenced.borrow_and_update();
                let batch = match store.after(cursor, &filter, WATCH_BATCH).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        tracing::error!(%error, "reading events for a watch failed");
                        let _ = tx.send(Err(EventsError::Db(error))).await;
                        return;
                    }
                };
                let full = batch.len() as i64 == WATCH_BATCH;
                for event in batch {
                    cursor = event.seq;
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                if full {
                    continue;
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = sequenced.changed() => {}
                    _ = tokio::time::sleep(WATCH_POLL) => {}
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

/// Checks type filters: each an event type or a dotted prefix of one.
fn check_types(types: &[String]) -> EventsResult<()> {
    if types.len() > MAX_TYPES {
        return Err(EventsError::invalid(
            "types",
            format!("at most {MAX_TYPES} types, not {}", types.len()),
        ));
    }
    let mut violations = Vec::new();
    for (i, prefix) in types.iter().enumerate() {
        let known = prefix.len() <= MAX_TYPE_LEN
            && EVENT_TYPES.iter().any(|name| {
                name == prefix
                    || (name.starts_with(prefix.as_str())
                        && name.as_bytes().get(prefix.len()) == Some(&b'.'))
            });
        if !known {
            violations.push(aimesh_kit::FieldViolation::new(
                format!("types[{i}]"),
                format!(
                    "{} is neither an event type nor a prefix of one ending at a dot \
                     (e.g. `notes`, `gallery.image`, `notes.note.created`)",
                    aimesh_kit::error::excerpt(prefix)
                ),
            ));
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(EventsError::InvalidArgument(violations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_filters_are_types_or_dotted_prefixes() {
        let ok =
            |types: &[&str]| check_types(&types.iter().map(|t| t.to_string()).collect::<Vec<_>>());
        assert!(ok(&["notes", "gallery.image", "speech.audio.generated"]).is_ok());
        let error = ok(&["notes", "note", "notes.note.created.x", ""]).unwrap_err();
        let EventsError::InvalidArgument(violations) = error else {
            panic!("invalid argument");
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["types[1]", "types[2]", "types[3]"]);
        assert!(ok(&vec!["notes"; MAX_TYPES + 1]).is_err());
    }
}
