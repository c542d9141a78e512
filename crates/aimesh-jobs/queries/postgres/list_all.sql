-- Every owner's jobs, newest first: older than job $1 (when given), only in state $2 and of
-- kind $3 (when given), at most $4. (One owner's jobs are `list.sql`'s.) The cursor bounds the
-- primary key's range.
SELECT id, owner_id, kind, state, payload, attempts, max_attempts, progress_percent,
    progress_message, partial_output, result_type, result, error, idempotency_key, trace_context,
    cancel_requested, lease_owner, lease_expires_at, run_after, created_at, updated_at, started_at,
    finished_at
FROM jobs
WHERE id < COALESCE($1::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
    AND ($2::text IS NULL OR state = $2)
    AND ($3::text IS NULL OR kind = $3)
ORDER BY id DESC
LIMIT $4
