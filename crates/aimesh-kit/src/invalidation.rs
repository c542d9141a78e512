//! Cache invalidation fan-out. Writers (request handlers, background jobs, and — through a
//! database notification bridge — other replicas) publish the keys that changed; every cache
//! subscribes and evicts them.

use tokio::sync::broadcast;

/// A changed key under a topic, e.g. topic `"notes"`, key the note's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    /// What kind of resource changed.
    pub topic: &'static str,
    /// Which one.
    pub key: String,
}

/// A process-wide broadcast of invalidations.
///
/// A subscriber that falls behind by more than the capacity receives `Lagged` and must
/// assume anything changed (clear its cache).
#[derive(Debug, Clone)]
pub struct InvalidationBus {
    sender: broadcast::Sender<Invalidation>,
}

impl InvalidationBus {
    /// Creates a bus that buffers up to `capacity` invalidations per subscriber.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self { sender }
    }

    /// Publishes an invalidation; it is dropped when nobody subscribes.
    pub fn publish(&self, topic: &'static str, key: impl Into<String>) {
        let _ = self.sender.send(Invalidation {
            topic,
            key: key.into(),
        });
    }

    /// Subscribes to every invalidation published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Invalidation> {
        self.sender.subscribe()
    }
}

impl Default for InvalidationBus {
    fn default() -> Self {
        Self::new(1024)
    }
}
