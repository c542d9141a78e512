-- Keys the mesh signs file URLs with when AIMESH_SIGNING_KEY is not set: the first process to
-- start creates one, every process of the deployment reads the same.
CREATE TABLE signing_keys (
    name TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
