-- Deletes at most $2 of the jobs that finished (succeeded, failed or were cancelled) before $1,
-- the oldest first.
DELETE FROM jobs
WHERE id IN (
    SELECT id
    FROM jobs
    WHERE finished_at < $1 AND state IN ('SUCCEEDED', 'FAILED', 'CANCELLED')
    ORDER BY finished_at
    LIMIT $2
)
