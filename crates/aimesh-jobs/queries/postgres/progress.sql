-- Records the progress of job $5 while worker $6 holds it (percent $1, message $2, output so
-- far $3, at $4); the store notifies it as changed once it committed.
UPDATE jobs
SET progress_percent = $1, progress_message = $2, partial_output = $3, updated_at = $4
WHERE id = $5 AND lease_owner = $6 AND state = 'RUNNING'
RETURNING id, kind, owner_id
