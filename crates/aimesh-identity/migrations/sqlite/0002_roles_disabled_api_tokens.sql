-- Administrators, disabled accounts and personal API tokens (SQLite).
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN disabled_at TEXT; -- set while an administrator has it disabled

CREATE TABLE api_tokens (
    id           BLOB    NOT NULL PRIMARY KEY,
    user_id      BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    token_hash   BLOB    NOT NULL UNIQUE, -- SHA-256 of the secret; the secret itself is never stored
    access       TEXT    NOT NULL,        -- read-only | read-write
    services     TEXT    NOT NULL,        -- comma-separated full service names; empty: every service
    created_at   TEXT    NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    revoked_at   TEXT
);

CREATE INDEX api_tokens_by_user ON api_tokens (user_id, id);
