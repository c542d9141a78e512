-- AI tasks on documents and notes, and the study notes written while a document is processed
-- (PostgreSQL).
CREATE TABLE tasks (
    id             UUID        NOT NULL PRIMARY KEY, -- UUIDv7: time-ordered, the keyset for paging
    owner_id       TEXT        NOT NULL,
    source_kind    TEXT        NOT NULL, -- DOCUMENT or NOTE
    source_id      UUID        NOT NULL,
    task_type      TEXT        NOT NULL,
    status         TEXT        NOT NULL,
    failure_reason TEXT,
    job_id         UUID,
    options        TEXT, -- JSON: the translation's resolved languages and engine
    result         TEXT, -- JSON: the typed result, once SUCCEEDED
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX tasks_by_owner ON tasks (owner_id, id DESC);

CREATE TABLE document_notes (
    document_id UUID        NOT NULL PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    notes       TEXT        NOT NULL, -- JSON: overview, sections with key points and terms, engine
    created_at  TIMESTAMPTZ NOT NULL
);
