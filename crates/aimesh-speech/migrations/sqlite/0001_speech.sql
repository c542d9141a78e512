-- Transcriptions of uploaded recordings and stored synthesised audio (SQLite).
CREATE TABLE transcriptions (
    id               BLOB    NOT NULL PRIMARY KEY, -- UUIDv7: time-ordered, the keyset for paging
    owner_id         TEXT    NOT NULL,
    filename         TEXT    NOT NULL,
    content_type     TEXT    NOT NULL,
    size_bytes       INTEGER NOT NULL,
    blob             TEXT,              -- the recording's blob name; NULL once deleted
    status           TEXT    NOT NULL,
    failure_reason   TEXT,
    language         TEXT    NOT NULL,
    engine           TEXT,
    duration_seconds REAL    NOT NULL DEFAULT 0,
    text             TEXT,
    segments         TEXT,              -- JSON: [{"start":s,"end":s,"text":"..."}]
    job_id           BLOB,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL
);

CREATE INDEX transcriptions_by_owner ON transcriptions (owner_id, id DESC);

CREATE TABLE synthesized_audio (
    id               BLOB    NOT NULL PRIMARY KEY,
    owner_id         TEXT    NOT NULL,
    request_key      TEXT    NOT NULL, -- SHA-256 of (text, voice, format, rate): the cache key
    text             TEXT    NOT NULL,
    voice            TEXT    NOT NULL,
    format           TEXT    NOT NULL,
    words_per_minute INTEGER NOT NULL,
    content_type     TEXT    NOT NULL,
    size_bytes       INTEGER NOT NULL,
    duration_seconds REAL    NOT NULL,
    engine           TEXT    NOT NULL,
    blob             TEXT    NOT NULL,
    created_at       TEXT    NOT NULL
);

-- One stored audio per owner and request: an identical request reuses it.
CREATE UNIQUE INDEX synthesized_audio_by_request ON synthesized_audio (owner_id, request_key);
CREATE INDEX synthesized_audio_by_owner ON synthesized_audio (owner_id, id DESC);
