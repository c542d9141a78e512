-- Inserts a job ($1-$10 its columns); nothing when its owner already used its idempotency key.
INSERT INTO jobs (id, owner_id, kind, state, payload, attempts, max_attempts, idempotency_key,
    trace_context, run_after, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10, $10)
ON CONFLICT (owner_id, idempotency_key) DO NOTHING
RETURNING id
