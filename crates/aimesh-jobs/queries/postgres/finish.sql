-- Ends attempts and claims the jobs their slots run next, in one statement: $1-$6 arrays of
-- the outcomes' columns (job, state, result type and value, error, retry time), $7 now, $8
-- the worker whose lease must still hold; $9 and $10 how many queued jobs of each kind to
-- claim for $8, leased until $11. Jobs claimed come back whole, with `claimed` true; jobs
-- ended come back as their id, owner, kind and state, the rest of their columns null (the
-- worker knows what it just sent, and a large result is not sent back to it). Each job ended
-- is notified as changed, or as queued for a retry, and each job claimed as changed (it
-- started).
--
-- Only the lease owner is checked: a job has one only while RUNNING (claims set it; finishing
-- and releasing clear it). With `state = 'RUNNING'` too, the planner would walk the partial
-- index of running jobs (dead entries and all, under churn) instead of fetching the rows by
-- primary key. The ids are also a condition of their own, so that whatever the join, the rows
-- are looked up by primary key.
--
-- The claims see the table as it was before the statement, so a job ended here (RUNNING
-- then) is never claimed again by it, even when it is queued for a retry.
WITH outcome AS (
    SELECT *
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::text[],
        $6::timestamptz[]) AS o(id, state, result_type, result, error, retry_at)
),
finished AS (
    UPDATE jobs
    SET state = o.state,
        result_type = o.result_type,
        result = o.result,
        error = o.error,
        run_after = COALESCE(o.retry_at, jobs.run_after),
        finished_at = CASE WHEN o.state IN ('SUCCEEDED', 'FAILED', 'CANCELLED') THEN $7 END,
        updated_at = $7,
        progress_percent = CASE WHEN o.state = 'SUCCEEDED' THEN 100 ELSE jobs.progress_percent END,
        lease_owner = NULL,
        lease_expires_at = NULL
    FROM outcome o
    WHERE jobs.id = ANY($1) AND jobs.id = o.id AND jobs.lease_owner = $8
    RETURNING jobs.id, jobs.owner_id, jobs.kind, jobs.state
),
-- The oldest queued jobs of each kind asked for, locked, skipping those others are claiming.
picked AS (
    SELECT next.id
    FROM unnest($9::text[], $10::int8[]) AS wanted(kind, count)
    CROSS JOIN LATERAL (
        SELECT id
        FROM jobs
        WHERE kind = wanted.kind AND state = 'QUEUED' AND run_after <= $7
        ORDER BY run_after
        LIMIT wanted.count
        FOR UPDATE SKIP LOCKED
    ) next
),
claimed AS (
    UPDATE jobs
    SET state = 'RUNNING',
        attempts = attempts + 1,
        lease_owner = $8,
        lease_expires_at = $11,
        started_at = COALESCE(started_at, $7),
        updated_at = $7,
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
            SELECT CASE WHEN state = 'QUEUED' THEN 'queued' ELSE 'changed' END
                || ' ' || id::text || ' ' || kind || ' ' || owner_id AS event
            FROM finished
            UNION ALL
            SELECT 'changed ' || id::text || ' ' || kind || ' ' || owner_id
            FROM claimed
        ) events
    ) lines
    GROUP BY chunk
)
SELECT true AS claimed, * FROM claimed WHERE (SELECT count(*) FROM notified) > 0
UNION ALL
SELECT false, id, owner_id, kind, state, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM finished WHERE (SELECT count(*) FROM notified) > 0
