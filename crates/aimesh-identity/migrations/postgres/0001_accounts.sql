-- Accounts and refresh tokens (PostgreSQL).
CREATE TABLE users (
    id            UUID        NOT NULL PRIMARY KEY,
    username      TEXT        NOT NULL,
    username_key  TEXT        NOT NULL UNIQUE, -- lowercased: usernames are unique case-insensitively
    email         TEXT        NOT NULL UNIQUE, -- stored lowercased
    password_hash TEXT        NOT NULL,        -- argon2id, PHC string
    api_calls     BIGINT      NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE refresh_tokens (
    token_hash BYTEA       NOT NULL PRIMARY KEY, -- SHA-256 of the token; the token itself is never stored
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  UUID        NOT NULL,             -- every token descended from one login
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,                      -- set when rotated; presenting it again is a replay
    revoked_at TIMESTAMPTZ
);

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
