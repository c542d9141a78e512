-- Cancels owner $3's job $2 at $1: a queued one at once, a running one by flagging it for its
-- worker.
UPDATE jobs
SET state = CASE WHEN state = 'QUEUED' THEN 'CANCELLED' ELSE state END,
    finished_at = CASE WHEN state = 'QUEUED' THEN $1 ELSE finished_at END,
    cancel_requested = CASE WHEN state = 'RUNNING' THEN TRUE ELSE cancel_requested END,
    updated_at = $1
WHERE id = $2 AND owner_id = $3 AND state IN ('QUEUED', 'RUNNING')
RETURNING id, owner_id, kind, state, payload, attempts, max_attempts, progress_percent,
    progress_message, partial_output, result_type, result, error, idempotency_key, trace_context,
    cancel_requested, lease_owner, lease_expires_at, run_after, created_at, updated_at, started_at,
    finished_at
