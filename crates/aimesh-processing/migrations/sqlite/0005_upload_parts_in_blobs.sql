-- The parts of resumable uploads now live in the blob store, staged beside the blobs; the
-- database records which part lands at each offset. Parts stored in the database before this
-- migration are dropped: unfinished uploads start again at offset 0, which a resuming client
-- reads from GetUpload (received bytes) before it sends.
DROP TABLE upload_parts;
UPDATE uploads SET received_bytes = 0;
CREATE TABLE upload_parts (
    upload_id    BLOB    NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    start_offset INTEGER NOT NULL,
    size_bytes   INTEGER NOT NULL,
    part_key     TEXT    NOT NULL, -- the part's name in the upload's staging
    PRIMARY KEY (upload_id, start_offset)
);
