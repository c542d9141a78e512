-- Claims look only at claimable rows: partial indexes of queued and leased jobs.
DROP INDEX jobs_claimable;
CREATE INDEX jobs_queued ON jobs (kind, run_after) WHERE state = 'QUEUED';
CREATE INDEX jobs_leased ON jobs (kind, lease_expires_at) WHERE state = 'RUNNING';
