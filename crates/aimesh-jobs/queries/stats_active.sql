-- Queued and running jobs per kind, with the submission time of the oldest of each.
SELECT kind, state, COUNT(*) AS count, MIN(created_at) AS oldest
FROM jobs
WHERE state IN ('QUEUED', 'RUNNING')
GROUP BY kind, state
ORDER BY kind, state
