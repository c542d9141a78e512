-- Claims look only at claimable rows. Every state change leaves a dead row version behind, and
-- until vacuum removes it a claim's index scan walks over it: partial indexes keep only queued
-- (or leased) rows, and autovacuum runs on this table far more often than the default.
DROP INDEX jobs_claimable;
CREATE INDEX jobs_queued ON jobs (kind, run_after) WHERE state = 'QUEUED';
CREATE INDEX jobs_leased ON jobs (kind, lease_expires_at) WHERE state = 'RUNNING';
ALTER TABLE jobs SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 500,
    autovacuum_vacuum_cost_delay = 0
);
