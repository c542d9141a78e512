-- Jobs that succeeded or failed since $1, latest first, at most $2: their kind, state and run
-- time (first start to finish).
SELECT kind, state, started_at, finished_at
FROM jobs
WHERE finished_at >= $1 AND state IN ('SUCCEEDED', 'FAILED')
ORDER BY finished_at DESC
LIMIT $2
