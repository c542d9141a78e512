-- Notes and their translations (PostgreSQL).
CREATE TABLE notes (
    id                UUID        NOT NULL PRIMARY KEY, -- UUIDv7: time-ordered, the keyset for paging
    owner_id          TEXT        NOT NULL,
    title             TEXT        NOT NULL,
    original_text     TEXT        NOT NULL,
    original_language TEXT        NOT NULL,
    version           BIGINT      NOT NULL DEFAULT 1,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX notes_by_owner ON notes (owner_id, id DESC);
CREATE INDEX notes_by_owner_language ON notes (owner_id, original_language, id DESC);

CREATE TABLE note_translations (
    note_id         UUID        NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    target_language TEXT        NOT NULL,
    text            TEXT        NOT NULL,
    engine          TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (note_id, target_language)
);
