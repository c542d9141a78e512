-- Transcriptions of uploaded recordings and stored synthesised audio (PostgreSQL).
CREATE TABLE transcriptions (
    id               UUID    NOT NULL PRIMARY KEY, -- UUIDv7: time-ordered, the keyset for paging
    owner_id         TEXT    NOT NULL,
    filename         TEXT    NOT NULL,
    content_type     TEXT    NOT NULL,
    size_bytes       BIGINT  NOT NULL,
    blob             TEXT,              -- the recording's blob name; NULL once deleted
    status           TEXT    NOT NULL,
    failure_reason   TEXT,
    language         TEXT    NOT NULL,
    engine           TEXT,
    duration_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    text             TEXT,
    segments         TEXT,              -- JSON: [{"start":s,"end":s,"text":"..."}]
    job_id           UUID,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX transcriptions_by_owner ON transcriptions (owner_id, id DESC);

CREATE TABLE synthesized_audio (
    id               UUID    NOT NULL PRIMARY KEY,
    owner_id         TEXT    NOT NULL,
    request_key      TEXT    NOT NULL, -- SHA-256 of (text, voice, format, rate): the cache key
    text             TEXT    NOT NULL,
    voice            TEXT    NOT NULL,
    format           TEXT    NOT NULL,
    words_per_minute BIGINT  NOT NULL,
    content_type     TEXT    NOT NULL,
    size_bytes       BIGINT  NOT NULL,
    duration_seconds DOUBLE PRECISION NOT NULL,
    engine           TEXT    NOT NULL,
    blob             TEXT    NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);

-- One stored audio per owner and request: an identical request reuses it.
CREATE UNIQUE INDEX synthesized_audio_by_request ON synthesized_audio (owner_id, request_key);
CREATE INDEX synthesized_audio_by_owner ON synthesized_audio (owner_id, id DESC);
