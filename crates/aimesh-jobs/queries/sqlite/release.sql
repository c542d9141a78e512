-- Gives worker $2's running jobs back to the queue at $1, without spending their attempt.
UPDATE jobs
SET state = 'QUEUED',
    attempts = attempts - 1,
    lease_owner = NULL,
    lease_expires_at = NULL,
    run_after = $1,
    updated_at = $1
WHERE lease_owner = $2 AND state = 'RUNNING'
RETURNING id, kind, owner_id
