//! Group commit: writes that arrive together share one transaction.
//!
//! A [`Batcher`] hands items to a task that commits them as they come, all those waiting at
//! once: concurrent writers share commits (on PostgreSQL a transaction that notifies holds a
//! lock through its commit, so one commit per item would cap the rate of writes), and an item
//! alone is committed at once. The commit runs in the first waiting item's span and links to
//! the others' (OpenTelemetry's model of batch operations). Submissions insert jobs through
//! one; workers record outcomes through another.

use std::future::Future;

use opentelemetry::trace::{SpanContext, TraceContextExt};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Items on their way to one commit, with the spans of those who submitted them.
pub(crate) struct Batch<I> {
    /// The items, in the order they arrived.
    pub(crate) items: Vec<I>,
    /// The submitters' spans, one per item.
    pub(crate) spans: Vec<tracing::Span>,
}

impl<I> Batch<I> {
    /// The span contexts of the traces the batch serves besides the first submitter's (whose
    /// span is the commit's parent): the links of the commit's database span.
    pub(crate) fn links(&self) -> Vec<SpanContext> {
        self.spans
            .iter()
            .skip(1)
            .map(|span| span.context().span().span_context().clone())
            .filter(|context| context.is_valid())
            .collect()
    }
}

/// An item waiting for its commit.
struct Waiting<I, O> {
    item: I,
    span: tracing::Span,
    done: oneshot::Sender<O>,
}

/// Commits items in batches on a task of its own, which ends once every handle is dropped and
/// the items sent are committed.
#[derive(Debug)]
pub(crate) struct Batcher<I, O> {
    queue: mpsc::Sender<Waiting<I, O>>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the committing task: `commit` gets at most `max_batch` items at a time and returns
    /// one result per item, in their order. At most `capacity` items wait for a commit; more
    /// submitters wait for room.
    pub(crate) fn start<F, Fut>(capacity: usize, max_batch: usize, mut commit: F) -> Self
    where
        F: FnMut(Batch<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<O>> + Send,
    {
        let (queue, mut waiting) = mpsc::channel::<Waiting<I, O>>(capacity.max(1));
        let max_batch = max_batch.max(1);
        tokio::spawn(async move {
            let mut received = Vec::with_capacity(max_batch);
            while waiting.recv_many(&mut received, max_batch).await > 0 {
                let mut batch = Batch {
                    items: Vec::with_capacity(received.len()),
                    spans: Vec::with_capacity(received.len()),
                };
                let mut done = Vec::with_capacity(received.len());
                for item in received.drain(..) {
                    batch.items.push(item.item);
                    batch.spans.push(item.span);
                    done.push(item.done);
                }
                let first = batch.spans[0].clone();
                let results = commit(batch).instrument(first).await;
                for (result, done) in results.into_iter().zip(done) {
                    let _ = done.send(result);
                }
            }
        });
        Self { queue }
    }

    /// Commits `item` with whatever else is waiting, in the current span; returns its result,
    /// or `None` if the committing task is gone.
    pub(crate) async fn submit(&self, item: I) -> Option<O> {
        let (done, result) = oneshot::channel();
        let waiting = Waiting {
            item,
            span: tracing::Span::current(),
            done,
        };
        self.queue.send(waiting).await.ok()?;
        result.await.ok()
    }
}
