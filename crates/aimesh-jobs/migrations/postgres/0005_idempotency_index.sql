-- Idempotency keys are unique per owner, and only jobs submitted with one are indexed. Every
-- change to a job writes a new row version with an entry in each index that covers it (a
-- change of state is never a heap-only update: the partial indexes name the state), so the
-- unique constraint over every row cost an index insertion per version of every job, though
-- most jobs have no key.
CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE jobs DROP CONSTRAINT jobs_owner_id_idempotency_key_key;
