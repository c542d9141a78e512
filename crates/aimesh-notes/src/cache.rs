//! The read cache of GetNote (cache-aside).
//!
//! Entries are invalidated on every write. A read that raced a write must not put the stale
//! value back: each key hashes to a stripe with a generation counter, bumped by every
//! invalidation. A reader snapshots the generation before it reads the database, inserts, and
//! then evicts its own insert if the generation moved meanwhile.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use aimesh_kit::invalidation::InvalidationBus;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::domain::Note;

/// The invalidation topic of notes.
pub const TOPIC: &str = "notes";

const STRIPES: usize = 64;

/// An in-process cache of notes by id.
#[derive(Clone)]
pub struct NoteCache {
    entries: moka::sync::Cache<Uuid, Arc<Note>, foldhash::fast::RandomState>,
    generations: Arc<[AtomicU64; STRIPES]>,
}

impl NoteCache {
    /// Creates a cache holding up to `capacity` notes, each for at most `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            generations: Arc::new(std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    /// Returns the cached note.
    pub fn get(&self, id: &Uuid) -> Option<Arc<Note>> {
        self.entries.get(id)
    }

    /// Returns the generation to pass to [`insert`](Self::insert) after reading `id`.
    pub fn generation(&self, id: &Uuid) -> u64 {
        self.stripe(id).load(Ordering::Acquire)
    }

    /// Caches a note read at `generation`, unless it was invalidated since.
    pub fn insert(&self, note: Arc<Note>, generation: u64) {
        let id = note.id;
        if self.generation(&id) != generation {
            return;
        }
        self.entries.insert(id, note);
        if self.generation(&id) != generation {
            self.entries.invalidate(&id);
        }
    }

    /// Evicts a note; reads in flight will not re-insert their older copy.
    pub fn invalidate(&self, id: &Uuid) {
        self.stripe(id).fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate(id);
    }

    /// Evicts everything.
    pub fn invalidate_all(&self) {
        for generation in self.generations.iter() {
            generation.fetch_add(1, Ordering::AcqRel);
        }
        self.entries.invalidate_all();
    }

    /// Evicts the notes published on `bus` (by jobs, or bridged from other replicas) until the
    /// bus closes.
    pub fn spawn_invalidation_listener(
        &self,
        bus: &InvalidationBus,
    ) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        let mut events = bus.subscribe();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) if event.topic == TOPIC => {
                        if let Ok(id) = Uuid::try_parse(&event.key) {
                            cache.invalidate(&id);
                        }
                    }
                    Ok(event) if event.topic == "*" => cache.invalidate_all(),
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "note cache fell behind invalidations: clearing it");
                        cache.invalidate_all();
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }

    fn stripe(&self, id: &Uuid) -> &AtomicU64 {
        let low = id.as_u128() as usize;
        &self.generations[low % STRIPES]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::now;

    fn note() -> Arc<Note> {
        Arc::new(Note {
            id: Uuid::now_v7(),
            owner_id: "u".into(),
            title: "t".into(),
            original_text: "x".into(),
            original_language: "en".into(),
            translations: vec![],
            created_at: now(),
            updated_at: now(),
            version: 1,
        })
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_cached() {
        let cache = NoteCache::new(100, Duration::from_secs(60));
        let note = note();
        let generation = cache.generation(&note.id);
        cache.invalidate(&note.id); // a write lands while the read is in flight
        cache.insert(note.clone(), generation);
        assert!(cache.get(&note.id).is_none());

        let generation = cache.generation(&note.id);
        cache.insert(note.clone(), generation);
        assert!(cache.get(&note.id).is_some());
    }

    #[tokio::test]
    async fn bus_invalidations_evict() {
        let cache = NoteCache::new(100, Duration::from_secs(60));
        let bus = InvalidationBus::new(16);
        let listener = cache.spawn_invalidation_listener(&bus);
        let note = note();
        cache.insert(note.clone(), cache.generation(&note.id));
        bus.publish(TOPIC, note.id.to_string()).await;
        for _ in 0..100 {
            if cache.get(&note.id).is_none() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(cache.get(&note.id).is_none());
        listener.abort();
    }
}
