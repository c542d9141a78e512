-- Reports and the events they hold until rendered (PostgreSQL).
CREATE TABLE reports (
    id             UUID        NOT NULL PRIMARY KEY, -- UUIDv7: time-ordered, the keyset for paging
    owner_id       TEXT        NOT NULL,
    student_id     TEXT        NOT NULL,
    namespace      TEXT,
    format         TEXT        NOT NULL, -- HTML or PDF
    status         TEXT        NOT NULL, -- DRAFT, PENDING, RUNNING, DONE or FAILED
    failure_reason TEXT,
    job_id         UUID,
    event_count    BIGINT      NOT NULL DEFAULT 0,
    unit_count     BIGINT      NOT NULL DEFAULT 0,
    first_event_at TIMESTAMPTZ,
    last_event_at  TIMESTAMPTZ,
    size_bytes     BIGINT      NOT NULL DEFAULT 0,
    sha256         TEXT, -- the file's blob in the owner's blob space, once DONE
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX reports_by_owner ON reports (owner_id, id DESC);
CREATE INDEX reports_by_created ON reports (created_at);

-- A report's events in pages of up to 10,000, kept until it is rendered.
CREATE TABLE report_event_pages (
    report_id   UUID    NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    start_index BIGINT  NOT NULL,
    event_count BIGINT  NOT NULL,
    events      BYTEA   NOT NULL, -- JSON array of [unit, type, time]
    PRIMARY KEY (report_id, start_index)
);
