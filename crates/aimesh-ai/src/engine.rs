//! What every inference engine shares: the errors a request can meet, and the dedicated
//! inference thread fed by a bounded queue that keeps model work off the async runtime.
//!
//! A request that finds the queue full is refused at once with [`EngineError::Busy`] (callers
//! answer `RESOURCE_EXHAUSTED`) rather than waiting behind work the engine cannot absorb.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

/// Why an inference request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The engine's queue is full; retry later.
    #[error("{engine} is busy: its queue of {queued} requests is full")]
    Busy {
        /// Engine.
        engine: &'static str,
        /// The queue's capacity.
        queued: usize,
    },
    /// The request itself is unacceptable (empty, too long, undecodable audio...).
    #[error("{field}: {message}")]
    InvalidInput {
        /// The request field at fault, as the API names it.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The engine failed while running the model.
    #[error("{engine} failed: {message}")]
    Failed {
        /// Engine.
        engine: &'static str,
        /// What happened.
        message: String,
    },
    /// The engine's thread has stopped (it panicked or the engine is shutting down).
    #[error("{engine} has stopped")]
    Stopped {
        /// Engine.
        engine: &'static str,
    },
}

impl EngineError {
    /// An [`EngineError::InvalidInput`] for `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            message: message.into(),
        }
    }

    /// An [`EngineError::Failed`] of `engine`.
    pub fn failed(engine: &'static str, message: impl std::fmt::Display) -> Self {
        Self::Failed {
            engine,
            message: message.to_string(),
        }
    }
}

/// The sending side of a dedicated inference thread's bounded queue. Dropping every clone
/// ends the thread once it has answered what it holds.
#[derive(Debug)]
pub struct EngineQueue<R> {
    engine: &'static str,
    capacity: usize,
    sender: SyncSender<R>,
}

impl<R> Clone for EngineQueue<R> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine,
            capacity: self.capacity,
            sender: self.sender.clone(),
        }
    }
}

impl<R: Send + 'static> EngineQueue<R> {
    /// Starts a thread named `thread_name` running `serve` on the receiving side of a queue
    /// holding at most `capacity` requests (at least one).
    pub fn spawn(
        engine: &'static str,
        thread_name: impl Into<String>,
        capacity: usize,
        serve: impl FnOnce(Receiver<R>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let capacity = capacity.max(1);
        let (sender, receiver) = mpsc::sync_channel(capacity);
        std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || serve(receiver))?;
        Ok(Self {
            engine,
            capacity,
            sender,
        })
    }

    /// Queues a request without waiting: [`EngineError::Busy`] when the queue is full,
    /// [`EngineError::Stopped`] when the thread is gone.
    pub fn submit(&self, request: R) -> Result<(), EngineError> {
        self.sender.try_send(request).map_err(|error| match error {
            TrySendError::Full(_) => EngineError::Busy {
                engine: self.engine,
                queued: self.capacity,
            },
            TrySendError::Disconnected(_) => EngineError::Stopped {
                engine: self.engine,
            },
        })
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn a_full_queue_refuses_and_a_stopped_thread_is_reported() {
        let (release, gate) = mpsc::channel::<()>();
        let queue = EngineQueue::spawn("test-engine", "test-engine", 1, move |requests| {
            // Hold the first request until released, so the queue fills up behind it.
            let _first: u32 = requests.recv().expect("a request");
            let _ = gate.recv();
        })
        .expect("thread starts");
        queue.submit(1).expect("taken by the thread");
        // The thread may not have taken the first one yet: fill until refused.
        let mut refused = None;
        for n in 2..10 {
            if let Err(error) = queue.submit(n) {
                refused = Some(error);
                break;
            }
        }
        assert!(
            matches!(refused, Some(EngineError::Busy { queued: 1, .. })),
            "{refused:?}"
        );
        release.send(()).expect("thread waits");
        // The thread returns, dropping the receiver.
        let mut stopped = None;
        for _ in 0..200 {
            match queue.submit(0) {
                Err(error @ EngineError::Stopped { .. }) => {
                    stopped = Some(error);
                    break;
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
        assert!(stopped.is_some(), "the stopped thread is reported");
    }
}
