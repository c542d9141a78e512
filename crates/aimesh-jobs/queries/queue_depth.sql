-- Queued jobs per kind.
SELECT kind, COUNT(*)
FROM jobs
WHERE state = 'QUEUED'
GROUP BY kind
ORDER BY kind
