-- Gallery images, their tags and stored files (SQLite).
CREATE TABLE images (
    id                  BLOB        NOT NULL PRIMARY KEY, -- UUIDv7: time-ordered, the keyset for paging
    owner_id            TEXT        NOT NULL,
    title               TEXT        NOT NULL,
    prompt              TEXT        NOT NULL,
    tags                TEXT        NOT NULL, -- JSON array, in the order given
    origin              TEXT        NOT NULL, -- UPLOADED, GENERATED, DERIVED
    source_id           BLOB,                 -- no foreign key: a derivative outlives its source
    operation           TEXT        NOT NULL,
    format              TEXT        NOT NULL,
    width               INTEGER     NOT NULL,
    height              INTEGER     NOT NULL,
    original_sha256     TEXT        NOT NULL, -- blob names in the owner's blob space
    original_type       TEXT        NOT NULL,
    original_bytes      INTEGER     NOT NULL,
    thumb256_sha256     TEXT        NOT NULL,
    thumb256_type       TEXT        NOT NULL,
    thumb256_bytes      INTEGER     NOT NULL,
    thumb1024_sha256    TEXT        NOT NULL,
    thumb1024_type      TEXT        NOT NULL,
    thumb1024_bytes     INTEGER     NOT NULL,
    perceptual_hash     TEXT        NOT NULL,
    metadata_kept       INTEGER     NOT NULL,
    job_id              BLOB,                 -- the job that made it: one image per job
    created_at          TEXT        NOT NULL,
    updated_at          TEXT        NOT NULL,
    deleted_at          TEXT                  -- set while in the trash
);

CREATE INDEX images_by_owner ON images (owner_id, id DESC);
CREATE INDEX images_in_trash ON images (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE UNIQUE INDEX images_by_job ON images (job_id);

CREATE TABLE image_tags (
    image_id BLOB NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tag      TEXT NOT NULL,
    PRIMARY KEY (image_id, tag)
);

CREATE INDEX image_tags_by_tag ON image_tags (tag, image_id);
