-- Gallery images, their tags and stored files (PostgreSQL).
CREATE TABLE images (
    id                  UUID        NOT NULL PRIMARY KEY, -- UUIDv7: time-ordered, the keyset for paging
    owner_id            TEXT        NOT NULL,
    title               TEXT        NOT NULL,
    prompt              TEXT        NOT NULL,
    tags                TEXT        NOT NULL, -- JSON array, in the order given
    origin              TEXT        NOT NULL, -- UPLOADED, GENERATED, DERIVED
    source_id           UUID,                 -- no foreign key: a derivative outlives its source
    operation           TEXT        NOT NULL,
    format              TEXT        NOT NULL,
    width               INTEGER     NOT NULL,
    height              INTEGER     NOT NULL,
    original_sha256     TEXT        NOT NULL, -- blob names in the owner's blob space
    original_type       TEXT        NOT NULL,
    original_bytes      BIGINT      NOT NULL,
    thumb256_sha256     TEXT        NOT NULL,
    thumb256_type       TEXT        NOT NULL,
    thumb256_bytes      BIGINT      NOT NULL,
    thumb1024_sha256    TEXT        NOT NULL,
    thumb1024_type      TEXT        NOT NULL,
    thumb1024_bytes     BIGINT      NOT NULL,
    perceptual_hash     TEXT        NOT NULL,
    metadata_kept       BOOLEAN     NOT NULL,
    job_id              UUID,                 -- the job that made it: one image per job
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    deleted_at          TIMESTAMPTZ           -- set while in the trash
);

CREATE INDEX images_by_owner ON images (owner_id, id DESC);
CREATE INDEX images_in_trash ON images (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE UNIQUE INDEX images_by_job ON images (job_id);

CREATE TABLE image_tags (
    image_id UUID NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tag      TEXT NOT NULL,
    PRIMARY KEY (image_id, tag)
);

CREATE INDEX image_tags_by_tag ON image_tags (tag, image_id);
