-- Every job (only owner $1's, when given), newest first: older than job $2 (when given), only in state $3 and of
-- kind $4 (when given), at most $5. The cursor bounds the primary key (or the owner index)
-- range.
SELECT id, owner_id, kind, state, payload, attempts, max_attempts, progress_percent,
    progress_message, partial_output, result_type, result, error, idempotency_key, trace_context,
    cancel_requested, lease_owner, lease_expires_at, run_after, created_at, updated_at, started_at,
    finished_at
FROM jobs
WHERE ($1::text IS NULL OR owner_id = $1)
    AND id < COALESCE($2::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
    AND ($3::text IS NULL OR state = $3)
    AND ($4::text IS NULL OR kind = $4)
ORDER BY id DESC
LIMIT $5
