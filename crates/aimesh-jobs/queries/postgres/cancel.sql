-- Cancels owner $3's job $2 at $1: a queued one at once (notified as changed), a running one
-- by flagging it for its worker (notified as a cancellation request).
WITH cancelled AS (
    UPDATE jobs
    SET state = CASE WHEN state = 'QUEUED' THEN 'CANCELLED' ELSE state END,
        finished_at = CASE WHEN state = 'QUEUED' THEN $1 ELSE finished_at END,
        cancel_requested = CASE WHEN state = 'RUNNING' THEN TRUE ELSE cancel_requested END,
        updated_at = $1
    WHERE id = $2 AND owner_id = $3 AND state IN ('QUEUED', 'RUNNING')
    RETURNING id, owner_id, kind, state, payload, attempts, max_attempts, progress_percent,
        progress_message, partial_output, result_type, result, error, idempotency_key,
        trace_context, cancel_requested, lease_owner, lease_expires_at, run_after, created_at,
        updated_at, started_at, finished_at
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
            SELECT CASE WHEN cancelled.state = 'RUNNING' THEN 'cancel' ELSE 'changed' END
                || ' ' || cancelled.id::text || ' ' || cancelled.kind || ' ' || cancelled.owner_id
                AS event
            FROM cancelled
        ) events
    ) lines
    GROUP BY chunk
)
SELECT cancelled.*
FROM cancelled
WHERE (SELECT count(*) FROM notified) > 0
