//! The in-process side of job change notifications.
//!
//! Every change to a job is announced as a [`JobEvent`] on a [`Fanout`]. On SQLite (one
//! process) the store dispatches the events of a write once it committed. On PostgreSQL every
//! replica's listener dispatches what the [`CHANNEL`] carries, its own events included, so a
//! watch served by one replica sees progress made on another, and idle workers everywhere wake
//! up when a job is queued. Events reach the channel in one of two ways:
//!
//! - The statements that end, cancel, retry or release jobs notify their own changes with
//!   `pg_notify` (the `notified` CTE written out in each of those `queries/postgres/*.sql`):
//!   the change and its events are one commit, so a watcher waiting for a job's end cannot
//!   miss it, even if the writing process dies right after the commit. The statement that
//!   ends jobs also claims the next ones for their slots, and notifies those claims with it.
//! - Submissions, claim loops' claims and progress — the bulk of the other writes — commit
//!   without notifying, and a [`Notifier`] sends their events right after, in transactions of
//!   their own. PostgreSQL serialises the commits of notifying transactions, WAL flush
//!   included, across the whole database: were these writes to notify, their commits would
//!   queue one behind another instead of sharing flushes. A notifying transaction that writes nothing else waits for no
//!   flush, so it holds that lock only briefly. Should a process die between such a write's
//!   commit and its notification, the event is lost, and what it stood for comes later another
//!   way: a queued job is claimed at the workers' next poll, a started job's watchers see it
//!   at its next change, and a job's end is always notified with its commit.

use std::{
    collections::HashMap,
    future::Future,
    str::FromStr,
    sync::{Arc, Mutex},
};

use aimesh_kit::db::Db;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    error::JobsResult,
    model::{EventKind, Job, JobEvent},
};

/// The PostgreSQL channel job events travel on (named in each notifying statement).
pub(crate) const CHANNEL: &str = "aimesh_jobs";

impl EventKind {
    /// The name of the kind in a notification (and in the statements' `notified` CTEs).
    fn as_str(self) -> &'static str {
        match self {
            EventKind::Queued => "queued",
            EventKind::Changed => "changed",
            EventKind::CancelRequested => "cancel",
            EventKind::Resync => "resync",
        }
    }
}

impl FromStr for EventKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => EventKind::Queued,
            "changed" => EventKind::Changed,
            "cancel" => EventKind::CancelRequested,
            "resync" => EventKind::Resync,
            _ => return Err(()),
        })
    }
}

impl JobEvent {
    /// Encodes the event as a notification line: `<event> <id> <kind> <owner>`.
    fn encode(&self) -> String {
        format!(
            "{} {} {} {}",
            self.kind.as_str(),
            self.job_id,
            self.job_kind,
            self.owner_id
        )
    }

    fn decode(line: &str) -> Option<Self> {
        let mut parts = line.splitn(4, ' ');
        Some(Self {
            kind: parts.next()?.parse().ok()?,
            job_id: Uuid::try_parse(parts.next()?).ok()?,
            job_kind: parts.next()?.to_owned(),
            owner_id: parts.next()?.to_owned(),
        })
    }

    /// Decodes a notification's payload: one event per line; lines that are not events are
    /// skipped.
    fn decode_all(payload: &str) -> impl Iterator<Item = Self> + '_ {
        payload.lines().filter_map(Self::decode)
    }
}

/// Hands events to those who wait for them: every event to the broadcast that streams of
/// many jobs follow, an event about one job to that job's own watchers only, and to workers
/// only what they act on — a wake-up for their kind when a job is queued, and cancellation
/// requests — so that the stream of progress events does not wake every worker, and a change
/// to one job does not wake the watchers of every other.
#[derive(Debug)]
pub(crate) struct Fanout {
    all: broadcast::Sender<JobEvent>,
    cancellations: broadcast::Sender<JobEvent>,
    queued: Mutex<HashMap<String, Arc<Notify>>>,
    /// The jobs watched one by one, with how many watch each.
    watched: Mutex<HashMap<Uuid, (usize, Arc<JobWatchers>)>>,
}

/// What the watchers of one job share.
#[derive(Debug)]
struct JobWatchers {
    /// Counts the events about the job (resyncs included) since it was first watched.
    changes: watch::Sender<u64>,
    /// The job as last read, with the count of events before that read began: one read after
    /// an event serves every watcher of the job. `None` inside: the job was gone.
    latest: tokio::sync::Mutex<Option<(u64, Option<Job>)>>,
}

/// One watcher's hold on a job (see [`Fanout::watch_job`]); the job is forgotten when its
/// last watcher goes.
pub(crate) struct JobWatch {
    fanout: Arc<Fanout>,
    id: Uuid,
    watchers: Arc<JobWatchers>,
    changes: watch::Receiver<u64>,
}

impl JobWatch {
    /// Waits until an event about the job arrives that this watcher has not read past.
    pub(crate) async fn changed(&mut self) {
        // The sender lives as long as `self.watchers`: this cannot fail.
        let _ = self.changes.changed().await;
    }

    /// Returns the job as it is after every event this watcher has seen, reading it with
    /// `read` unless another watcher of the job already did so since those events.
    pub(crate) async fn read<F, Fut>(&mut self, read: F) -> JobsResult<Option<Job>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = JobsResult<Option<Job>>>,
    {
        let seen = *self.changes.borrow_and_update();
        let mut latest = self.watchers.latest.lock().await;
        if let Some((read_after, job)) = &*latest
            && *read_after >= seen
        {
            return Ok(job.clone());
        }
        // Events are dispatched once their change is visible, so a read that begins after the
        // n-th event sees the n-th change.
        let read_after = *self.watchers.changes.borrow();
        let job = read().await?;
        *latest = Some((read_after, job.clone()));
        Ok(job)
    }
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        let mut watched = self
            .fanout
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((count, _)) = watched.get_mut(&self.id) {
            *count -= 1;
            if *count == 0 {
                watched.remove(&self.id);
            }
        }
    }
}

impl Fanout {
    /// A fanout with nobody waiting yet.
    fn new() -> Self {
        Fanout {
            all: broadcast::channel(4096).0,
            cancellations: broadcast::channel(256).0,
            queued: Mutex::new(HashMap::new()),
            watched: Mutex::new(HashMap::new()),
        }
    }

    /// Creates a fanout; on PostgreSQL it also starts the listener that dispatches what the
    /// channel carries (stopped by `shutdown`).
    pub(crate) async fn start(
        db: &Db,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, sqlx::Error> {
        let fanout = Arc::new(Fanout::new());
        if let Db::Postgres(pool) = db {
            let fanout = fanout.clone();
            aimesh_kit::db::listen(pool, CHANNEL, shutdown, move |payload| {
                match payload {
                    Some(payload) => JobEvent::decode_all(payload).for_each(|e| fanout.dispatch(e)),
                    // Events may have been lost: watchers re-read what they watch.
                    None => fanout.dispatch(JobEvent::resync()),
                }
            })
            .await?;
        }
        Ok(fanout)
    }

    /// Returns what is notified (`notify_waiters`) when a job of `kind` is queued, or when
    /// events may have been lost.
    pub(crate) fn queued(&self, kind: &str) -> Arc<Notify> {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = queued.get(kind) {
            return notify.clone();
        }
        queued.entry(kind.to_owned()).or_default().clone()
    }

    /// Subscribes to every event from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.all.subscribe()
    }

    /// Watches the events about job `id` (and resyncs) from now on.
    pub(crate) fn watch_job(self: &Arc<Self>, id: Uuid) -> JobWatch {
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        let (count, watchers) = watched.entry(id).or_insert_with(|| {
            let watchers = JobWatchers {
                changes: watch::Sender::new(0),
                latest: tokio::sync::Mutex::new(None),
            };
            (0, Arc::new(watchers))
        });
        *count += 1;
        JobWatch {
            fanout: self.clone(),
            id,
            changes: watchers.changes.subscribe(),
            watchers: watchers.clone(),
        }
    }

    /// Returns how many jobs are watched one by one.
    #[cfg(test)]
    fn watched_jobs(&self) -> usize {
        self.watched.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Subscribes to cancellation requests (and [`EventKind::Resync`]) only.
    pub(crate) fn subscribe_cancellations(&self) -> broadcast::Receiver<JobEvent> {
        self.cancellations.subscribe()
    }

    /// Hands an event to those who wait for it.
    pub(crate) fn dispatch(&self, event: JobEvent) {
        {
            let watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
            let bump = |(_, watchers): &(usize, Arc<JobWatchers>)| {
                watchers.changes.send_modify(|count| *count += 1);
            };
            if event.kind == EventKind::Resync {
                watched.values().for_each(bump);
            } else if let Some(watchers) = watched.get(&event.job_id) {
                bump(watchers);
            }
        }
        match event.kind {
            EventKind::Queued => {
                let notify = self
                    .queued
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&event.job_kind)
                    .cloned();
                if let Some(notify) = notify {
                    notify.notify_waiters();
                }
            }
            EventKind::CancelRequested => {
                let _ = self.cancellations.send(event.clone());
            }
            EventKind::Resync => {
                for notify in self
                    .queued
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                {
                    notify.notify_waiters();
                }
                let _ = self.cancellations.send(event.clone());
            }
            EventKind::Changed => {}
        }
        let _ = self.all.send(event);
    }
}

/// Sends the events of writes that did not notify them themselves (see the module's
/// documentation), on PostgreSQL, from a task of its own: all the events waiting at once go in
/// one statement, as few notifications as fit them.
#[derive(Debug)]
pub(crate) struct Notifier {
    queue: mpsc::Sender<JobEvent>,
    closing: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The statement that sends notifications.
const NOTIFY: &str = include_str!("../queries/postgres/notify.sql");
/// The most bytes of events in one notification (PostgreSQL takes up to 8,000).
const PAYLOAD_BYTES: usize = 4000;
/// Events waiting for the notifier before writers wait for room.
const QUEUE: usize = 16_384;
/// The most events one statement sends.
const BATCH: usize = 1024;
/// How often sending is tried before the events are given up.
const SEND_ATTEMPTS: u32 = 20;
/// The pause between tries.
const SEND_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

impl Notifier {
    /// Starts the notifier on `pool`.
    pub(crate) fn start(pool: sqlx::PgPool) -> Self {
        let (queue, events) = mpsc::channel(QUEUE);
        let closing = CancellationToken::new();
        let task = tokio::spawn(Self::run(pool, events, closing.clone()));
        Self {
            queue,
            closing,
            task: Mutex::new(Some(task)),
        }
    }

    /// Sends `events` (soon, with those of other writes). Waits only when the notifier is far
    /// behind; events sent after [`close`](Self::close) are dropped.
    pub(crate) async fn send(&self, events: Vec<JobEvent>) {
        for event in events {
            if self.queue.send(event).await.is_err() {
                return;
            }
        }
    }

    /// Sends what is waiting, then stops.
    pub(crate) async fn close(&self) {
        self.closing.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    async fn run(
        pool: sqlx::PgPool,
        mut queue: mpsc::Receiver<JobEvent>,
        closing: CancellationToken,
    ) {
        let mut events = Vec::with_capacity(BATCH);
        let mut open = true;
        loop {
            let received = tokio::select! {
                received = queue.recv_many(&mut events, BATCH) => received,
                _ = closing.cancelled(), if open => {
                    // Take no more, and send what came before.
                    queue.close();
                    open = false;
                    continue;
                }
            };
            if received == 0 {
                break;
            }
            publish(&pool, &payloads(&events)).await;
            events.clear();
        }
    }
}

/// Joins events into notification payloads: one event a line, at most [`PAYLOAD_BYTES`] a
/// payload.
fn payloads(events: &[JobEvent]) -> Vec<String> {
    let mut payloads: Vec<String> = Vec::new();
    for line in events.iter().map(JobEvent::encode) {
        match payloads.last_mut() {
            Some(payload) if payload.len() + 1 + line.len() <= PAYLOAD_BYTES => {
                payload.push('\n');
                payload.push_str(&line);
            }
            _ => payloads.push(line),
        }
    }
    payloads
}

/// Sends `payloads` on the [`CHANNEL`], trying again while the database cannot be reached.
async fn publish(pool: &sqlx::PgPool, payloads: &[String]) {
    for attempt in 1..=SEND_ATTEMPTS {
        match sqlx::query(NOTIFY)
            .bind(CHANNEL)
            .bind(payloads)
            .execute(pool)
            .await
        {
            Ok(_) => return,
            Err(error) if attempt < SEND_ATTEMPTS => {
                tracing::debug!(%error, attempt, "sending job events failed; trying again");
                tokio::time::sleep(SEND_RETRY).await;
            }
            Err(error) => {
                tracing::warn!(
                    %error,
                    notifications = payloads.len(),
                    "job events could not be sent: other replicas learn of these changes later"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_payload() {
        let event = JobEvent {
            kind: EventKind::CancelRequested,
            job_id: Uuid::now_v7(),
            owner_id: "owner with spaces".into(),
            job_kind: "notes.translate".into(),
        };
        assert_eq!(JobEvent::decode(&event.encode()), Some(event));
        assert_eq!(JobEvent::decode("nonsense"), None);
    }

    #[test]
    fn a_payload_carries_one_event_per_line() {
        let events: Vec<JobEvent> = [EventKind::Queued, EventKind::Changed]
            .into_iter()
            .map(|kind| JobEvent {
                kind,
                job_id: Uuid::now_v7(),
                owner_id: "owner".into(),
                job_kind: "bench.noop".into(),
            })
            .collect();
        let payload = format!("{}\nnonsense\n{}", events[0].encode(), events[1].encode());
        assert_eq!(JobEvent::decode_all(&payload).collect::<Vec<_>>(), events);
    }

    #[test]
    fn payloads_hold_whole_events_within_the_limit() {
        let events: Vec<JobEvent> = (0..200)
            .map(|_| event(EventKind::Changed, Uuid::now_v7()))
            .collect();
        let joined = payloads(&events);
        assert!(joined.len() > 1, "{} payloads", joined.len());
        assert!(joined.iter().all(|p| p.len() <= PAYLOAD_BYTES));
        let decoded: Vec<JobEvent> = joined
            .iter()
            .flat_map(|p| JobEvent::decode_all(p))
            .collect();
        assert_eq!(decoded, events);
        assert!(payloads(&[]).is_empty());
    }

    fn event(kind: EventKind, job_id: Uuid) -> JobEvent {
        JobEvent {
            kind,
            job_id,
            owner_id: "owner".into(),
            job_kind: "test.count".into(),
        }
    }

    fn fanout() -> Arc<Fanout> {
        Arc::new(Fanout::new())
    }

    /// Whether `watch` has an event it has not read past, without waiting.
    fn woken(watch: &mut JobWatch) -> bool {
        watch.changes.has_changed().expect("sender alive")
    }

    #[tokio::test]
    async fn an_event_wakes_the_watchers_of_its_job_only() {
        let fanout = fanout();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut watch_a = fanout.watch_job(a);
        let mut watch_b = fanout.watch_job(b);
        fanout.dispatch(event(EventKind::Changed, a));
        assert!(woken(&mut watch_a));
        assert!(!woken(&mut watch_b));
        // A resync wakes everyone: events may have been lost.
        fanout.dispatch(JobEvent::resync());
        assert!(woken(&mut watch_b));
    }

    #[tokio::test]
    async fn one_read_serves_every_watcher_of_a_job_after_an_event() {
        let fanout = fanout();
        let id = Uuid::now_v7();
        let mut watches: Vec<JobWatch> = (0..3).map(|_| fanout.watch_job(id)).collect();
        let reads = std::sync::atomic::AtomicUsize::new(0);
        let read = || async {
            reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(None)
        };
        fanout.dispatch(event(EventKind::Changed, id));
        for watch in &mut watches {
            watch.changed().await;
            assert_eq!(watch.read(read).await.expect("read"), None);
        }
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);
        // The next event needs a new read.
        fanout.dispatch(event(EventKind::Changed, id));
        for watch in &mut watches {
            watch.changed().await;
            watch.read(read).await.expect("read");
        }
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn a_job_is_forgotten_when_its_last_watcher_goes() {
        let fanout = fanout();
        let id = Uuid::now_v7();
        let first = fanout.watch_job(id);
        let second = fanout.watch_job(id);
        assert_eq!(fanout.watched_jobs(), 1);
        drop(first);
        assert_eq!(fanout.watched_jobs(), 1);
        drop(second);
        assert_eq!(fanout.watched_jobs(), 0);
    }
}
