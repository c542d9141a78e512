-- Inserts jobs, $1-$10 arrays of their columns, in one statement, and returns the ids of those
-- inserted (the store notifies them as queued once they committed). A job whose owner
-- already used its idempotency key is not inserted.
INSERT INTO jobs (id, owner_id, kind, state, payload, max_attempts, idempotency_key,
    trace_context, run_after, created_at, updated_at)
SELECT id, owner_id, kind, state, payload, max_attempts, idempotency_key, trace_context,
    run_after, created_at, created_at
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::int4[],
    $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[])
    AS j(id, owner_id, kind, state, payload, max_attempts, idempotency_key, trace_context,
        run_after, created_at)
ON CONFLICT (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id
