-- Durable jobs (PostgreSQL).
CREATE TABLE jobs (
    id               UUID        NOT NULL PRIMARY KEY,
    owner_id         TEXT        NOT NULL,
    kind             TEXT        NOT NULL,
    state            TEXT        NOT NULL, -- QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED
    payload          BYTEA       NOT NULL,
    attempts         INTEGER     NOT NULL DEFAULT 0,
    max_attempts     INTEGER     NOT NULL,
    progress_percent INTEGER     NOT NULL DEFAULT 0,
    progress_message TEXT        NOT NULL DEFAULT '',
    partial_output   TEXT        NOT NULL DEFAULT '',
    result_type      TEXT,
    result           BYTEA,
    error            TEXT,
    idempotency_key  TEXT,
    trace_context    TEXT,
    cancel_requested BOOLEAN     NOT NULL DEFAULT FALSE,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    run_after        TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    UNIQUE (owner_id, idempotency_key)
);

CREATE INDEX jobs_claimable ON jobs (kind, state, run_after);
CREATE INDEX jobs_by_owner ON jobs (owner_id, id DESC);
