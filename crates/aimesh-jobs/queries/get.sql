-- A job by id ($1).
SELECT id, owner_id, kind, state, payload, attempts, max_attempts, progress_percent,
    progress_message, partial_output, result_type, result, error, idempotency_key, trace_context,
    cancel_requested, lease_owner, lease_expires_at, run_after, created_at, updated_at, started_at,
    finished_at
FROM jobs
WHERE id = $1
