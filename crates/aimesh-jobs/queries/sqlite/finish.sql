-- Ends the attempt on job $8 while worker $9 holds it: state $1 (QUEUED again for a retry at
-- $5), result $2/$3, error $4, finished at $6 when terminal, at $7.
UPDATE jobs
SET state = $1,
    result_type = $2,
    result = $3,
    error = $4,
    run_after = COALESCE($5, run_after),
    finished_at = $6,
    updated_at = $7,
    progress_percent = CASE WHEN $1 = 'SUCCEEDED' THEN 100 ELSE progress_percent END,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE id = $8 AND lease_owner = $9 AND state = 'RUNNING'
RETURNING id, kind, owner_id, state
