-- Records the progress of job $5 while worker $6 holds it (percent $1, message $2, output so
-- far $3, at $4), and notifies it as changed.
WITH updated AS (
    UPDATE jobs
    SET progress_percent = $1, progress_message = $2, partial_output = $3, updated_at = $4
    WHERE id = $5 AND lease_owner = $6 AND state = 'RUNNING'
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
            SELECT 'changed'
                || ' ' || updated.id::text || ' ' || updated.kind || ' ' || updated.owner_id
                AS event
            FROM updated
        ) events
    ) lines
    GROUP BY chunk
)
SELECT updated.id, updated.kind, updated.owner_id
FROM updated
WHERE (SELECT count(*) FROM notified) > 0
