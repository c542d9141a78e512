-- Administrators' actions (PostgreSQL).
CREATE TABLE admin_audit_log (
    id             UUID        NOT NULL PRIMARY KEY, -- UUIDv7: time-ordered, the keyset for paging
    created_at     TIMESTAMPTZ NOT NULL,
    actor_id       TEXT        NOT NULL, -- the administrator's user id, or `cli`
    actor_username TEXT        NOT NULL,
    action         TEXT        NOT NULL, -- user.disable, user.enable, user.delete, job.retry, ...
    target         TEXT        NOT NULL, -- the user or job id, or an email
    detail         TEXT        NOT NULL
);
