-- Gives worker $2's running jobs back to the queue at $1, without spending their attempt, and
-- notifies each as queued.
WITH released AS (
    UPDATE jobs
    SET state = 'QUEUED',
        attempts = attempts - 1,
        lease_owner = NULL,
        lease_expires_at = NULL,
        run_after = $1,
        updated_at = $1
    WHERE lease_owner = $2 AND state = 'RUNNING'
    RETURNING id, kind, owner_id
),
-- An event per row ("<event> <id> <kind> <owner>", one a line), several to a notification
-- with payloads well under PostgreSQL's 8,000-byte limit. PostgreSQL evaluates a CTE only as
-- far as it is read: the final SELECT reads all of it, so every notification is sent, and
-- they go out when the statement commits.
notified AS (
    SELECT pg_notify('aimesh_jobs', string_agg(event, chr(10)))
    FROM (
        SELECT
            event,
            sum(octet_length(event) + 1) OVER (ROWS UNBOUNDED PRECEDING) / 4000 AS chunk
        FROM (
            SELECT 'queued'
                || ' ' || released.id::text || ' ' || released.kind || ' ' || released.owner_id
                AS event
            FROM released
        ) events
    ) lines
    GROUP BY chunk
)
SELECT released.id, released.kind, released.owner_id
FROM released
WHERE (SELECT count(*) FROM notified) > 0
