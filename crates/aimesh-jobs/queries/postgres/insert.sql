-- Inserts jobs, $1-$10 arrays of their columns, in one statement, and notifies each new one as
-- queued. A job whose owner already used its idempotency key is not inserted.
WITH inserted AS (
    INSERT INTO jobs (id, owner_id, kind, state, payload, max_attempts, idempotency_key,
        trace_context, run_after, created_at, updated_at)
    SELECT id, owner_id, kind, state, payload, max_attempts, idempotency_key, trace_context,
        run_after, created_at, created_at
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::int4[],
        $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[])
        AS j(id, owner_id, kind, state, payload, max_attempts, idempotency_key, trace_context,
            run_after, created_at)
    ON CONFLICT (owner_id, idempotency_key) DO NOTHING
    RETURNING id, kind, owner_id
),
-- An event per row ("<event> <id> <kind> <owner>", one a line), several to a notification
-- with payloads well under PostgreSQL's 8,000-byte limit. PostgreSQL evaluates a CTE only as
-- far as it is read: the final SELECT reads all of it, so every notification is sent, and
-- they go out when the statement commits.
notified AS (
    SELECT pg_notify('aimesh_jobs', string_agg(event, chr(10)))
    FROM (
        SELECT
            event,
            sum(octet_length(event) + 1) OVER (ROWS UNBOUNDED PRECEDING) / 4000 AS chunk
        FROM (
            SELECT 'queued'
                || ' ' || inserted.id::text || ' ' || inserted.kind || ' ' || inserted.owner_id
                AS event
            FROM inserted
        ) events
    ) lines
    GROUP BY chunk
)
SELECT inserted.id
FROM inserted
WHERE (SELECT count(*) FROM notified) > 0
