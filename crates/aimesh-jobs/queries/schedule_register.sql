-- Registers schedule $1: jobs of kind $2 with payload $3 and $4 attempts, at cadence $5, the
-- next at $6 ($7 is now). A schedule registered again keeps its next run unless its cadence
-- changed, so replicas starting one after another do not push it back.
INSERT INTO job_schedules (name, kind, payload, max_attempts, cadence, next_run_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name) DO UPDATE
SET kind = excluded.kind,
    payload = excluded.payload,
    max_attempts = excluded.max_attempts,
    next_run_at = CASE
        WHEN job_schedules.cadence = excluded.cadence THEN job_schedules.next_run_at
        ELSE excluded.next_run_at
    END,
    cadence = excluded.cadence,
    updated_at = excluded.updated_at
