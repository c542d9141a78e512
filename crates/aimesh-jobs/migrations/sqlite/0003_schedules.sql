-- Recurring jobs: each schedule submits a job of its kind at every tick of its cadence. A
-- replica fires a due tick by moving next_run_at on with a conditional update, so a tick runs
-- once across replicas.
CREATE TABLE job_schedules (
    name         TEXT    NOT NULL PRIMARY KEY,
    kind         TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    max_attempts INTEGER NOT NULL,
    cadence      TEXT    NOT NULL, -- a cron expression or a fixed interval, as registered
    next_run_at  TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL
);
