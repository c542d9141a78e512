-- Queues owner $3's failed or cancelled job $2 again at $1, with a fresh attempt budget.
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
    progress_message, partial_output, result_type, result, error, idempotency_key, trace_context,
    cancel_requested, lease_owner, lease_expires_at, run_after, created_at, updated_at, started_at,
    finished_at
