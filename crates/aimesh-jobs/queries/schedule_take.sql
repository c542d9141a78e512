-- Takes the tick of schedule $3 due at $4, moving its next run to $1 ($2 is now): of the
-- replicas that saw the tick, the one whose update applies fires it; the others find no row.
UPDATE job_schedules
SET next_run_at = $1, updated_at = $2
WHERE name = $3 AND next_run_at = $4
RETURNING kind, payload, max_attempts
