-- Reports and the events they hold until rendered (SQLite).
CREATE TABLE reports (
    id             BLOB    NOT NULL PRIMARY KEY, -- UUIDv7: time-ordered, the keyset for paging
    owner_id       TEXT    NOT NULL,
    student_id     TEXT    NOT NULL,
    namespace      TEXT,
    format         TEXT    NOT NULL, -- HTML or PDF
    status         TEXT    NOT NULL, -- DRAFT, PENDING, RUNNING, DONE or FAILED
    failure_reason TEXT,
    job_id         BLOB,
    event_count    INTEGER NOT NULL DEFAULT 0,
    unit_count     INTEGER NOT NULL DEFAULT 0,
    first_event_at TEXT,
    last_event_at  TEXT,
    size_bytes     INTEGER NOT NULL DEFAULT 0,
    sha256         TEXT, -- the file's blob in the owner's blob space, once DONE
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL
);

CREATE INDEX reports_by_owner ON reports (owner_id, id DESC);
CREATE INDEX reports_by_created ON reports (created_at);

-- A report's events in pages of up to 10,000, kept until it is rendered.
CREATE TABLE report_event_pages (
    report_id   BLOB    NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    start_index INTEGER NOT NULL,
    event_count INTEGER NOT NULL,
    events      BLOB    NOT NULL, -- JSON array of [unit, type, time]
    PRIMARY KEY (report_id, start_index)
);
