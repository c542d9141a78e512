-- Ends attempts in one statement: $1-$6 arrays of the outcomes' columns (job, state, result
-- type and value, error, retry time), $7 now, $8 the worker whose lease must still hold. Each
-- job is notified as changed, or as queued for a retry.
--
-- Only the lease owner is checked: a job has one only while RUNNING (claims set it; finishing
-- and releasing clear it). With `state = 'RUNNING'` too, the planner would walk the partial
-- index of running jobs (dead entries and all, under churn) instead of fetching the rows by
-- primary key. The ids are also a condition of their own, so that whatever the join, the rows
-- are looked up by primary key.
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
    RETURNING jobs.id, jobs.kind, jobs.owner_id, jobs.state
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
            SELECT CASE WHEN finished.state = 'QUEUED' THEN 'queued' ELSE 'changed' END
                || ' ' || finished.id::text || ' ' || finished.kind || ' ' || finished.owner_id
                AS event
            FROM finished
        ) events
    ) lines
    GROUP BY chunk
)
SELECT finished.id, finished.kind, finished.owner_id, finished.state
FROM finished
WHERE (SELECT count(*) FROM notified) > 0
