-- Documents, their searchable chunks and resumable uploads (SQLite).
CREATE TABLE documents (
    id             BLOB    NOT NULL PRIMARY KEY, -- UUIDv7: time-ordered, the keyset for paging
    owner_id       TEXT    NOT NULL,
    filename       TEXT    NOT NULL,
    content_type   TEXT    NOT NULL,
    size_bytes     INTEGER NOT NULL,
    sha256         TEXT    NOT NULL, -- the blob's name in the owner's blob space
    status         TEXT    NOT NULL,
    failure_reason TEXT,
    format         TEXT,
    page_count     INTEGER NOT NULL DEFAULT 0,
    chunk_count    INTEGER NOT NULL DEFAULT 0,
    text           TEXT,
    generate_notes INTEGER NOT NULL,
    job_id         BLOB,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL
);

-- One document per owner and content: an identical upload is recognised, not stored twice.
CREATE UNIQUE INDEX documents_by_owner_sha256 ON documents (owner_id, sha256);
CREATE INDEX documents_by_owner ON documents (owner_id, id DESC);

CREATE TABLE document_chunks (
    document_id BLOB    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    page        INTEGER NOT NULL,
    char_start  INTEGER NOT NULL,
    char_end    INTEGER NOT NULL,
    text        TEXT    NOT NULL,
    embedding   BLOB    NOT NULL, -- little-endian f32s, unit length
    PRIMARY KEY (document_id, seq)
);

CREATE TABLE uploads (
    id             BLOB    NOT NULL PRIMARY KEY,
    owner_id       TEXT    NOT NULL,
    filename       TEXT    NOT NULL,
    content_type   TEXT    NOT NULL,
    size_bytes     INTEGER NOT NULL,
    received_bytes INTEGER NOT NULL DEFAULT 0,
    generate_notes INTEGER NOT NULL,
    created_at     TEXT    NOT NULL
);

CREATE INDEX uploads_by_owner ON uploads (owner_id);

CREATE TABLE upload_parts (
    upload_id    BLOB    NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    start_offset INTEGER NOT NULL,
    data         BLOB    NOT NULL,
    PRIMARY KEY (upload_id, start_offset)
);
