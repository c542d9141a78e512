-- Finished jobs by when they finished: the retention purge and the last hour's statistics.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
