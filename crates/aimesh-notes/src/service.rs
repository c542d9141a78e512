//! Notes domain logic: ownership, the read cache and its invalidation. No tonic, no SQL.

use std::{sync::Arc, time::Duration};

use aimesh_kit::invalidation::InvalidationBus;
use uuid::Uuid;

use crate::{
    cache::{NoteCache, TOPIC},
    domain::{ListQuery, NewNote, Note, NotePage, NotePatch, NoteStats, Translation, now},
    error::{NotesError, NotesResult},
    store::NotesStore,
};

/// Cache settings.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Most notes cached.
    pub capacity: u64,
    /// Longest time a note stays cached.
    pub ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            ttl: Duration::from_secs(300),
        }
    }
}

/// The notes service.
#[derive(Clone)]
pub struct Notes {
    store: NotesStore,
    cache: NoteCache,
    bus: InvalidationBus,
}

impl Notes {
    /// Creates the service; its cache follows invalidations published on `bus`.
    pub fn new(store: NotesStore, cache: &CacheConfig, bus: InvalidationBus) -> Self {
        let cache = NoteCache::new(cache.capacity, cache.ttl);
        cache.spawn_invalidation_listener(&bus);
        Self { store, cache, bus }
    }

    /// Creates a note owned by `owner`.
    pub async fn create(&self, owner: &str, new: NewNote) -> NotesResult<Note> {
        self.store.create(owner, new, now()).await
    }

    /// Returns `owner`'s note, from the cache when possible.
    pub async fn get(&self, owner: &str, id: Uuid) -> NotesResult<Arc<Note>> {
        let note = match self.cache.get(&id).await {
            Some(note) => note,
            None => {
                let generation = self.cache.generation(&id);
                let note = Arc::new(self.store.get(id).await?.ok_or(NotesError::NotFound(id))?);
                self.cache.insert(note.clone(), generation).await;
                note
            }
        };
        if note.owner_id != owner {
            return Err(NotesError::NotFound(id));
        }
        Ok(note)
    }

    /// Lists `owner`'s notes.
    pub async fn list(&self, owner: &str, query: &ListQuery) -> NotesResult<NotePage> {
        self.store.list(owner, query).await
    }

    /// Changes `owner`'s note.
    pub async fn update(&self, owner: &str, id: Uuid, patch: &NotePatch) -> NotesResult<Note> {
        let note = self.store.update(owner, id, patch, now()).await;
        self.invalidate(id).await;
        note
    }

    /// Deletes `owner`'s note.
    pub async fn delete(
        &self,
        owner: &str,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> NotesResult<()> {
        let deleted = self.store.delete(owner, id, expected_version).await;
        self.invalidate(id).await;
        deleted
    }

    /// Stores a translation on `owner`'s note.
    pub async fn put_translation(
        &self,
        owner: &str,
        id: Uuid,
        translation: &Translation,
    ) -> NotesResult<()> {
        let stored = self.store.put_translation(owner, id, translation).await;
        self.invalidate(id).await;
        stored
    }

    /// Returns `owner`'s statistics.
    pub async fn stats(&self, owner: &str) -> NotesResult<NoteStats> {
        self.store.stats(owner).await
    }

    async fn invalidate(&self, id: Uuid) {
        self.cache.invalidate(&id).await;
        self.bus.publish(TOPIC, id.to_string()).await;
    }
}
