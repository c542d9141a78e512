-- Administrators, disabled accounts and personal API tokens (PostgreSQL).
ALTER TABLE users ADD COLUMN is_admin BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMPTZ; -- set while an administrator has it disabled

CREATE TABLE api_tokens (
    id           UUID        NOT NULL PRIMARY KEY,
    user_id      UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT        NOT NULL,
    token_hash   BYTEA       NOT NULL UNIQUE, -- SHA-256 of the secret; the secret itself is never stored
    access       TEXT        NOT NULL,        -- read-only | read-write
    services     TEXT        NOT NULL,        -- comma-separated full service names; empty: every service
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

CREATE INDEX api_tokens_by_user ON api_tokens (user_id, id);
