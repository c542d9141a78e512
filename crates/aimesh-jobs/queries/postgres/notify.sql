-- Sends notifications on channel $1, one for each payload of the array $2. Run on its own, not
-- in a transaction that writes: it then writes nothing before its commit record, so its commit
-- waits for no WAL flush, and it holds PostgreSQL's notification lock (which serialises the
-- commits of every notifying transaction of the database) only briefly.
SELECT pg_notify($1, payload)
FROM unnest($2::text[]) AS payload
