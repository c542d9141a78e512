-- The sweep of stale uploads (older than AIMESH_UPLOAD_EXPIRY_SECS) finds the oldest first.
CREATE INDEX uploads_by_created_at ON uploads (created_at);
