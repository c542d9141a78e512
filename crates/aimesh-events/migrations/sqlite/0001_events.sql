-- Domain events: the transactional outbox every service writes (SQLite).
CREATE TABLE events (
    id           BLOB    NOT NULL PRIMARY KEY, -- UUIDv7, the message id it is published with
    seq          INTEGER,                      -- its place once visible (NULL until sequenced)
    type         TEXT    NOT NULL,             -- `<service>.<entity>.<what happened>`
    owner_id     TEXT    NOT NULL,
    subject_id   TEXT    NOT NULL,
    payload      BLOB    NOT NULL,             -- aimesh.events.v1.EventPayload, protobuf
    traceparent  TEXT,
    created_at   TEXT    NOT NULL,
    published_at TEXT                          -- when JetStream acknowledged it
);

CREATE UNIQUE INDEX events_by_seq ON events (seq);
CREATE INDEX events_unsequenced ON events (id) WHERE seq IS NULL;
CREATE INDEX events_by_owner ON events (owner_id, seq);
CREATE INDEX events_unpublished ON events (seq) WHERE published_at IS NULL AND seq IS NOT NULL;

-- The last sequence number handed out (one row): numbers are never reused, even once the
-- events that had them are pruned.
CREATE TABLE event_sequence (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);
INSERT INTO event_sequence (id, last) VALUES (1, 0);
