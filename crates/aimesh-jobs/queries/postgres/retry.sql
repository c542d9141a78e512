-- Queues owner $3's failed or cancelled job $2 again at $1, with a fresh attempt budget, and
-- notifies it as queued.
WITH retried AS (
    UPDATE jobs
    SET state = 'QUEUED',
        attempts = 0,
        error = NULL,
        cancel_requested = FALSE,
        finished_at = NULL,
        run_after = $1,
        updated_at = $1,
        progress_percent = 0,
        progress_message = '',
        partial_output = ''
    WHERE id = $2 AND owner_id = $3 AND state IN ('FAILED', 'CANCELLED')
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
            SELECT 'queued'
                || ' ' || retried.id::text || ' ' || retried.kind || ' ' || retried.owner_id
                AS event
            FROM retried
        ) events
    ) lines
    GROUP BY chunk
)
SELECT retried.*
FROM retried
WHERE (SELECT count(*) FROM notified) > 0
