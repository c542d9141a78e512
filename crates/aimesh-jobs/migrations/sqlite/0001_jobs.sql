-- Durable jobs (SQLite). Times are RFC 3339 text in UTC with trimmed fractions, which sort
-- chronologically as text.
CREATE TABLE jobs (
    id               BLOB    NOT NULL PRIMARY KEY,
    owner_id         TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    state            TEXT    NOT NULL, -- QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED
    payload          BLOB    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    progress_percent INTEGER NOT NULL DEFAULT 0,
    progress_message TEXT    NOT NULL DEFAULT '',
    partial_output   TEXT    NOT NULL DEFAULT '',
    result_type      TEXT,
    result           BLOB,
    error            TEXT,
    idempotency_key  TEXT,
    trace_context    TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    run_after        TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    UNIQUE (owner_id, idempotency_key)
);

CREATE INDEX jobs_claimable ON jobs (kind, state, run_after);
CREATE INDEX jobs_by_owner ON jobs (owner_id, id DESC);
