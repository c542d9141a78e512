-- Notes and their translations (SQLite).
CREATE TABLE notes (
    id                BLOB    NOT NULL PRIMARY KEY, -- UUIDv7: time-ordered, the keyset for paging
    owner_id          TEXT    NOT NULL,
    title             TEXT    NOT NULL,
    original_text     TEXT    NOT NULL,
    original_language TEXT    NOT NULL,
    version           INTEGER NOT NULL DEFAULT 1,
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL
);

CREATE INDEX notes_by_owner ON notes (owner_id, id DESC);
CREATE INDEX notes_by_owner_language ON notes (owner_id, original_language, id DESC);

CREATE TABLE note_translations (
    note_id         BLOB NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    target_language TEXT NOT NULL,
    text            TEXT NOT NULL,
    engine          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (note_id, target_language)
);
