-- Chat sessions and their messages (SQLite).
CREATE TABLE chat_sessions (
    id            BLOB    NOT NULL PRIMARY KEY,
    owner_id      TEXT    NOT NULL,
    title         TEXT    NOT NULL, -- empty until the first message names the session
    message_count INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT    NOT NULL,
    activity      INTEGER NOT NULL  -- microseconds since the epoch of the last activity: the keyset for paging
);

CREATE INDEX chat_sessions_by_activity ON chat_sessions (owner_id, activity DESC, id DESC);

CREATE TABLE chat_messages (
    id                BLOB    NOT NULL PRIMARY KEY, -- UUIDv7: time-ordered, the conversation's order
    session_id        BLOB    NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    owner_id          TEXT    NOT NULL,
    role              TEXT    NOT NULL,
    content           TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    stage             TEXT,
    failure_reason    TEXT,
    reply_to          BLOB,
    refined_prompt    TEXT    NOT NULL DEFAULT '',
    intent            TEXT,
    intent_confidence REAL    NOT NULL DEFAULT 0,
    citations         TEXT    NOT NULL DEFAULT '[]', -- JSON
    image_id          BLOB,
    job_id            BLOB,
    model             TEXT    NOT NULL DEFAULT '',
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    document_context  TEXT, -- JSON: the context the reply is to use
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL
);

CREATE INDEX chat_messages_by_session ON chat_messages (session_id, id);
CREATE INDEX chat_messages_pending ON chat_messages (owner_id, status);
