-- Claims queued jobs whose time has come, oldest first.
-- Each starts an attempt under worker $1 with a lease until $2 ($3 is now, $4 the kind, $5 the
-- limit), comes back whole, and is notified as changed (it started). The picked rows are
-- locked, skipping those other workers are claiming, then fetched by primary key through an
-- array.
WITH picked AS (
    SELECT id
    FROM jobs
    WHERE kind = $4 AND state = 'QUEUED' AND run_after <= $3
    ORDER BY run_after
    LIMIT $5
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE jobs
    SET state = 'RUNNING',
        attempts = attempts + 1,
        lease_owner = $1,
        lease_expires_at = $2,
        started_at = COALESCE(started_at, $3),
        updated_at = $3,
        progress_percent = 0,
        progress_message = '',
        partial_output = ''
    WHERE id = ANY(ARRAY(SELECT id FROM picked))
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
            SELECT 'changed'
                || ' ' || claimed.id::text || ' ' || claimed.kind || ' ' || claimed.owner_id
                AS event
            FROM claimed
        ) events
    ) lines
    GROUP BY chunk
)
SELECT claimed.*
FROM claimed
WHERE (SELECT count(*) FROM notified) > 0
