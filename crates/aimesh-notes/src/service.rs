//! Notes domain logic: ownership, the read cache and its invalidation, and translations
//! submitted as jobs. No tonic, no SQL.

use std::{sync::Arc, time::Duration};

use aimesh_ai::translate::{Translator, Translators};
use aimesh_jobs::{Job, Jobs, SubmitOptions};
use aimesh_kit::invalidation::InvalidationBus;
use uuid::Uuid;

use crate::{
    cache::{NoteCache, TOPIC},
    domain::{
        ListQuery, NewNote, Note, NotePage, NotePatch, NoteStats, TranslateRequest, Translation,
        TranslationJob, now,
    },
    error::{NotesError, NotesResult},
    store::NotesStore,
};

/// Attempts a translation job gets before it fails for good.
const TRANSLATION_ATTEMPTS: i32 = 3;

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
    jobs: Jobs,
    translators: Arc<Translators>,
}

impl Notes {
    /// Creates the service; its cache follows invalidations published on `bus`, and
    /// translations by `translators` run as jobs of `jobs`.
    pub fn new(
        store: NotesStore,
        cache: &CacheConfig,
        bus: InvalidationBus,
        jobs: Jobs,
        translators: Arc<Translators>,
    ) -> Self {
        let cache = NoteCache::new(cache.capacity, cache.ttl);
        cache.spawn_invalidation_listener(&bus);
        Self {
            store,
            cache,
            bus,
            jobs,
            translators,
        }
    }

    /// Returns the translation engines.
    pub fn translators(&self) -> &Arc<Translators> {
        &self.translators
    }

    /// Creates a note owned by `owner`.
    pub async fn create(&self, owner: &str, new: NewNote) -> NotesResult<Note> {
        self.store.create(owner, new, now()).await
    }

    /// Returns `owner`'s note, from the cache when possible.
    pub async fn get(&self, owner: &str, id: Uuid) -> NotesResult<Arc<Note>> {
        let note = match self.cache.get(&id) {
            Some(note) => note,
            None => {
                let generation = self.cache.generation(&id);
                let note = Arc::new(self.store.get(id).await?.ok_or(NotesError::NotFound(id))?);
                self.cache.insert(note.clone(), generation);
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

    /// Starts translating `owner`'s note and returns the job. The language pair and engine
    /// are resolved now, so a pair no engine offers is refused here, not as a failed job.
    pub async fn translate(&self, owner: &str, request: TranslateRequest) -> NotesResult<Job> {
        let note = self.get(owner, request.note_id).await?;
        let source = request
            .source_language
            .unwrap_or_else(|| note.original_language.clone());
        let target = request.target_language;
        if source == target {
            return Err(NotesError::invalid(
                "target_language",
                "is the language the text is in",
            ));
        }
        let engine = request.engine.as_deref();
        let Some((engine, pair)) = self.translators.find(&source, &target, engine) else {
            return Err(NotesError::invalid(
                "target_language",
                format!(
                    "no {}engine translates {source} to {target}; ListLanguages tells which pairs exist",
                    engine.map(|e| format!("{e} ")).unwrap_or_default()
                ),
            ));
        };
        let payload = TranslationJob {
            note_id: note.id,
            source_language: pair.source,
            target_language: pair.target,
            engine: engine.name().to_owned(),
        };
        let payload = serde_json::to_vec(&payload).map_err(|error| {
            NotesError::Internal(format!("failed to encode the job payload: {error}"))
        })?;
        let job = self
            .jobs
            .submit(
                owner,
                crate::translate::KIND,
                payload,
                SubmitOptions {
                    idempotency_key: request.idempotency_key,
                    max_attempts: TRANSLATION_ATTEMPTS,
                    ..SubmitOptions::default()
                },
            )
            .await?;
        Ok(job)
    }

    /// Returns the translation engines and the pairs each offers.
    pub fn engines(&self) -> &[Arc<dyn Translator>] {
        self.translators.engines()
    }

    /// Returns `owner`'s statistics.
    pub async fn stats(&self, owner: &str) -> NotesResult<NoteStats> {
        self.store.stats(owner).await
    }

    /// Deletes every note of `owner` with their translations (the account is being deleted);
    /// returns how many notes went.
    pub async fn delete_owner(&self, owner: &str) -> NotesResult<u64> {
        let ids = self.store.delete_owner(owner).await?;
        for id in &ids {
            self.invalidate(*id).await;
        }
        Ok(ids.len() as u64)
    }

    async fn invalidate(&self, id: Uuid) {
        self.cache.invalidate(&id);
        self.bus.publish(TOPIC, id.to_string()).await;
    }
}

impl aimesh_kit::owned::OwnedData for Notes {
    fn name(&self) -> &'static str {
        "notes"
    }

    fn delete_owner<'a>(
        &'a self,
        owner: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            Notes::delete_owner(self, owner)
                .await
                .map_err(|error| error.to_string())
        })
    }
    fn export_owner<'a>(
        &'a self,
        owner: &'a str,
        archive: &'a aimesh_kit::export::ExportArchive,
    ) -> futures::future::BoxFuture<'a, Result<u64, String>> {
        Box::pin(crate::export::export(self, owner, archive))
    }
}
