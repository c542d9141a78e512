//! The engine's SQL: every statement whole in a file of `queries/`, one set per backend.
//! Statements the backends share are in `queries/` itself; those that differ are in
//! `queries/sqlite/` and `queries/postgres/`. Each file's header says what its parameters are.
//! The PostgreSQL statements that end (claiming the next jobs with it), cancel, retry or
//! release jobs notify their changes themselves; the store has those of the others sent after
//! they commit (see [`crate::notify`]).

use aimesh_kit::db::Db;

/// The statements of one backend.
#[derive(Debug)]
pub(crate) struct Statements {
    /// A job by id.
    pub(crate) get: &'static str,
    /// A job by owner and idempotency key.
    pub(crate) get_by_key: &'static str,
    /// A page of an owner's jobs.
    pub(crate) list: &'static str,
    /// A page of every owner's jobs (administration).
    pub(crate) list_all: &'static str,
    /// Queued and running jobs per kind.
    pub(crate) stats_active: &'static str,
    /// Jobs that finished lately.
    pub(crate) stats_finished: &'static str,
    /// Deletes a batch of jobs that finished long ago.
    pub(crate) purge_finished: &'static str,
    /// Deletes an owner's jobs.
    pub(crate) delete_owner: &'static str,
    /// Inserts jobs: one a statement on SQLite, arrays of them on PostgreSQL.
    pub(crate) insert: &'static str,
    /// Claims queued jobs whose time has come.
    pub(crate) claim_due: &'static str,
    /// Claims running jobs whose lease lapsed.
    pub(crate) claim_lapsed: &'static str,
    /// Extends a lease.
    pub(crate) heartbeat: &'static str,
    /// Records progress.
    pub(crate) progress: &'static str,
    /// Ends attempts: one a statement on SQLite, arrays of them on PostgreSQL, where the same
    /// statement claims the jobs the ended attempts' slots run next (SQLite runs `claim_due`
    /// for them in the same transaction).
    pub(crate) finish: &'static str,
    /// Cancels a job.
    pub(crate) cancel: &'static str,
    /// Queues a failed or cancelled job again.
    pub(crate) retry: &'static str,
    /// Gives a worker's running jobs back to the queue.
    pub(crate) release: &'static str,
    /// Counts queued jobs per kind.
    pub(crate) queue_depth: &'static str,
    /// Registers a schedule.
    pub(crate) schedule_register: &'static str,
    /// When a schedule is next due.
    pub(crate) schedule_next_run: &'static str,
    /// Takes a schedule's due tick.
    pub(crate) schedule_take: &'static str,
}

impl Statements {
    /// Returns the statements of `db`'s backend.
    pub(crate) fn of(db: &Db) -> &'static Statements {
        match db {
            Db::Sqlite(_) => &SQLITE,
            Db::Postgres(_) => &POSTGRES,
        }
    }
}

/// The statements on SQLite.
pub(crate) const SQLITE: Statements = Statements {
    get: include_str!("../queries/get.sql"),
    get_by_key: include_str!("../queries/get_by_key.sql"),
    list: include_str!("../queries/sqlite/list.sql"),
    list_all: include_str!("../queries/sqlite/list_all.sql"),
    stats_active: include_str!("../queries/stats_active.sql"),
    stats_finished: include_str!("../queries/stats_finished.sql"),
    purge_finished: include_str!("../queries/purge_finished.sql"),
    delete_owner: include_str!("../queries/delete_owner.sql"),
    insert: include_str!("../queries/sqlite/insert.sql"),
    claim_due: include_str!("../queries/sqlite/claim_due.sql"),
    claim_lapsed: include_str!("../queries/sqlite/claim_lapsed.sql"),
    heartbeat: include_str!("../queries/heartbeat.sql"),
    progress: include_str!("../queries/sqlite/progress.sql"),
    finish: include_str!("../queries/sqlite/finish.sql"),
    cancel: include_str!("../queries/sqlite/cancel.sql"),
    retry: include_str!("../queries/sqlite/retry.sql"),
    release: include_str!("../queries/sqlite/release.sql"),
    queue_depth: include_str!("../queries/queue_depth.sql"),
    schedule_register: include_str!("../queries/schedule_register.sql"),
    schedule_next_run: include_str!("../queries/schedule_next_run.sql"),
    schedule_take: include_str!("../queries/schedule_take.sql"),
};

/// The statements on PostgreSQL.
pub(crate) const POSTGRES: Statements = Statements {
    get: include_str!("../queries/get.sql"),
    get_by_key: include_str!("../queries/get_by_key.sql"),
    list: include_str!("../queries/postgres/list.sql"),
    list_all: include_str!("../queries/postgres/list_all.sql"),
    stats_active: include_str!("../queries/stats_active.sql"),
    stats_finished: include_str!("../queries/stats_finished.sql"),
    purge_finished: include_str!("../queries/purge_finished.sql"),
    delete_owner: include_str!("../queries/delete_owner.sql"),
    insert: include_str!("../queries/postgres/insert.sql"),
    claim_due: include_str!("../queries/postgres/claim_due.sql"),
    claim_lapsed: include_str!("../queries/postgres/claim_lapsed.sql"),
    heartbeat: include_str!("../queries/heartbeat.sql"),
    progress: include_str!("../queries/postgres/progress.sql"),
    finish: include_str!("../queries/postgres/finish.sql"),
    cancel: include_str!("../queries/postgres/cancel.sql"),
    retry: include_str!("../queries/postgres/retry.sql"),
    release: include_str!("../queries/postgres/release.sql"),
    queue_depth: include_str!("../queries/queue_depth.sql"),
    schedule_register: include_str!("../queries/schedule_register.sql"),
    schedule_next_run: include_str!("../queries/schedule_next_run.sql"),
    schedule_take: include_str!("../queries/schedule_take.sql"),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::CHANNEL;

    /// The PostgreSQL statements that end a job's attempt, cancel, retry or release jobs
    /// notify their changes on the engine's channel, and send every notification (read their
    /// `notified` CTE to the end); those whose events the store sends after the commit do not
    /// notify.
    #[test]
    fn postgres_writes_notify_on_the_channel() {
        for (name, sql) in [
            ("insert", POSTGRES.insert),
            ("claim_due", POSTGRES.claim_due),
            ("claim_lapsed", POSTGRES.claim_lapsed),
            ("progress", POSTGRES.progress),
        ] {
            assert!(!sql.contains("pg_notify"), "{name} notifies");
        }
        let writes = [
            ("finish", POSTGRES.finish),
            ("cancel", POSTGRES.cancel),
            ("retry", POSTGRES.retry),
            ("release", POSTGRES.release),
        ];
        for (name, sql) in writes {
            assert!(
                sql.contains(&format!("pg_notify('{CHANNEL}', ")),
                "{name} does not notify on {CHANNEL}"
            );
            assert!(
                sql.contains("WHERE (SELECT count(*) FROM notified) > 0"),
                "{name} does not read its notifications"
            );
        }
    }
}
