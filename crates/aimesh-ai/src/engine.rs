//! What every inference engine shares: the errors a request can meet, and the dedicated
//! inference thread fed by a bounded queue that keeps model work off the async runtime.
//!
//! A request that finds the queue full is refused at once with [`EngineError::Busy`] (callers
//! answer `RESOURCE_EXHAUSTED`) rather than waiting behind work the engine cannot absorb.
//!
//! The thread is supervised: a panic while serving (a malformed input reaching a corner of
//! the model code) loses the request being served — its caller gets an error — but not the
//! engine: the serving loop starts again on the same queue after a short pause, during which
//! [`EngineQueue::is_alive`] reports false (health shows the engine NOT_SERVING). An engine
//! that panics again and again within a minute is given up: it stays down, and says so.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, SyncSender, TrySendError},
    },
    time::{Duration, Instant},
};

/// Panics within [`PANIC_WINDOW`] after which an engine is given up.
const MAX_PANICS: usize = 5;
/// The window in which panics are counted.
const PANIC_WINDOW: Duration = Duration::from_secs(60);
/// Pause before the serving loop starts again after a panic.
const RESTART_PAUSE: Duration = Duration::from_millis(200);

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
    /// The caller cancelled the request while it ran.
    #[error("{engine}: cancelled")]
    Cancelled {
        /// Engine.
        engine: &'static str,
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
    alive: Arc<AtomicBool>,
}

impl<R> Clone for EngineQueue<R> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine,
            capacity: self.capacity,
            sender: self.sender.clone(),
            alive: self.alive.clone(),
        }
    }
}

impl<R: Send + 'static> EngineQueue<R> {
    /// Starts a thread named `thread_name` running `serve` on the receiving side of a queue
    /// holding at most `capacity` requests (at least one). `serve` returns when the queue is
    /// closed; if it panics, it is called again on the same queue (see the module docs).
    pub fn spawn(
        engine: &'static str,
        thread_name: impl Into<String>,
        capacity: usize,
        mut serve: impl FnMut(&Receiver<R>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let capacity = capacity.max(1);
        let (sender, receiver) = mpsc::sync_channel(capacity);
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || {
                let mut panics: Vec<Instant> = Vec::new();
                loop {
                    match catch_unwind(AssertUnwindSafe(|| serve(&receiver))) {
                        Ok(()) => break,
                        Err(panic) => {
                            flag.store(false, Ordering::SeqCst);
                            let now = Instant::now();
                            panics.retain(|at| now.duration_since(*at) < PANIC_WINDOW);
                            panics.push(now);
                            let message = panic_message(panic.as_ref());
                            if panics.len() >= MAX_PANICS {
                                tracing::error!(
                                    engine,
                                    panics = panics.len(),
                                    panic = message,
                                    "inference thread keeps panicking: engine stopped"
                                );
                                return;
                            }
                            tracing::error!(
                                engine,
                                panic = message,
                                "inference thread panicked: restarting it"
                            );
                            std::thread::sleep(RESTART_PAUSE);
                            flag.store(true, Ordering::SeqCst);
                        }
                    }
                }
                flag.store(false, Ordering::SeqCst);
            })?;
        Ok(Self {
            engine,
            capacity,
            sender,
            alive,
        })
    }

    /// Returns whether the inference thread is serving (false while it restarts after a
    /// panic, and for good once it has stopped).
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
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

/// The text of a panic's payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
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

    #[test]
    fn a_panicking_request_does_not_stop_the_engine() {
        let (replies, answers) = mpsc::channel::<u32>();
        let queue = EngineQueue::spawn("test-engine", "test-engine", 4, move |requests| {
            while let Ok(n) = requests.recv() {
                assert!(n != 13, "unlucky input");
                let _ = replies.send(n * 2);
            }
        })
        .expect("thread starts");
        queue.submit(13_u32).expect("queued");
        queue.submit(21_u32).expect("queued");
        let answer = answers
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("served after the restart");
        assert_eq!(answer, 42);
        assert!(queue.is_alive());
    }

    #[test]
    fn an_engine_that_keeps_panicking_stops_and_says_so() {
        let queue = EngineQueue::spawn("test-engine", "test-engine", 8, |requests| {
            if requests.recv().is_ok() {
                panic!("always");
            }
        })
        .expect("thread starts");
        // Every request panics: the engine gives up after MAX_PANICS, and is then reported
        // stopped.
        let mut stopped = false;
        for _ in 0..400 {
            match queue.submit(7_u32) {
                Err(EngineError::Stopped { .. }) => {
                    stopped = true;
                    break;
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(25)),
            }
        }
        assert!(stopped, "the engine gave up and refuses requests");
        assert!(!queue.is_alive());
    }
}
