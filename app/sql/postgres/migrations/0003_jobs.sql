-- hookline schema v3 (PostgreSQL): jobs posted to the gateway (and enqueued by schedules).
-- Mirrors app/sql/sqlite/migrations/0003_jobs.sql.
--
-- A job IS an event (source 'jobs', type = the job name, body = the posted JSON), so it
-- runs through the same runs, steps, worker, admin API and dashboard. Its idempotency key
-- is the event's provider_event_id ("<job name>/<key>", or the job id without a key): the
-- events table's UNIQUE (source, provider_event_id) makes concurrent requests with one key
-- store exactly one job, and pruning the job frees its key. This table holds what a job has
-- beyond an event.

CREATE TABLE jobs (
    id              TEXT PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    idempotency_key TEXT,                    -- as the client sent it (unquoted)
    fingerprint     TEXT,                    -- SHA-256 of the canonical JSON payload
    run_at          DOUBLE PRECISION NOT NULL  -- not run before (request time + Hookline-Delay)
);
