-- When schedule $1 is next due.
SELECT next_run_at
FROM job_schedules
WHERE name = $1
