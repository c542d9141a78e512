-- Accounts and refresh tokens (SQLite).
CREATE TABLE users (
    id            BLOB    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL UNIQUE, -- lowercased: usernames are unique case-insensitively
    email         TEXT    NOT NULL UNIQUE, -- stored lowercased
    password_hash TEXT    NOT NULL,        -- argon2id, PHC string
    api_calls     INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT    NOT NULL
);

CREATE TABLE refresh_tokens (
    token_hash BLOB NOT NULL PRIMARY KEY, -- SHA-256 of the token; the token itself is never stored
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  BLOB NOT NULL,             -- every token descended from one login
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT,                      -- set when rotated; presenting it again is a replay
    revoked_at TEXT
);

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
