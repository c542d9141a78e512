-- Deletes every job of owner $1, whatever its state (a running job's worker then finds its
-- lease gone and records nothing).
DELETE FROM jobs
WHERE owner_id = $1
