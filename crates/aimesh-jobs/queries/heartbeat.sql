-- Extends worker $3's lease on job $2 until $1; no row when the worker lost it.
UPDATE jobs
SET lease_expires_at = $1
WHERE id = $2 AND lease_owner = $3 AND state = 'RUNNING'
RETURNING cancel_requested
