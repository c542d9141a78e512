-- Chat sessions and their messages (PostgreSQL).
CREATE TABLE chat_sessions (
    id            UUID    NOT NULL PRIMARY KEY,
    owner_id      TEXT    NOT NULL,
    title         TEXT    NOT NULL, -- empty until the first message names the session
    message_count BIGINT  NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL,
    activity      BIGINT  NOT NULL  -- microseconds since the epoch of the last activity: the keyset for paging
);

CREATE INDEX chat_sessions_by_activity ON chat_sessions (owner_id, activity DESC, id DESC);

CREATE TABLE chat_messages (
    id                UUID    NOT NULL PRIMARY KEY, -- UUIDv7: time-ordered, the conversation's order
    session_id        UUID    NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    owner_id          TEXT    NOT NULL,
    role              TEXT    NOT NULL,
    content           TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    stage             TEXT,
    failure_reason    TEXT,
    reply_to          UUID,
    refined_prompt    TEXT    NOT NULL DEFAULT '',
    intent            TEXT,
    intent_confidence REAL    NOT NULL DEFAULT 0,
    citations         TEXT    NOT NULL DEFAULT '[]', -- JSON
    image_id          UUID,
    job_id            UUID,
    model             TEXT    NOT NULL DEFAULT '',
    completion_tokens BIGINT  NOT NULL DEFAULT 0,
    document_context  TEXT, -- JSON: the context the reply is to use
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX chat_messages_by_session ON chat_messages (session_id, id);
CREATE INDEX chat_messages_pending ON chat_messages (owner_id, status);
