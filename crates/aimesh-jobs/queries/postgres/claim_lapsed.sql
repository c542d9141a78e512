-- Claims running jobs whose lease lapsed, longest lapsed first.
-- Each starts an attempt under worker $1 with a lease until $2 ($3 is now, $4 the kind, $5 the
-- limit) and comes back whole; the store notifies it as changed (it started) once it
-- committed. The picked rows are locked, skipping those other workers are claiming, then
-- updated by primary key through an array.
WITH picked AS (
    SELECT id
    FROM jobs
    WHERE kind = $4 AND state = 'RUNNING' AND lease_expires_at < $3
    ORDER BY lease_expires_at
    LIMIT $5
    FOR UPDATE SKIP LOCKED
)
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
