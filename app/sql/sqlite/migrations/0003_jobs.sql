-- hookline schema v3 (SQLite): jobs posted to the gateway (and enqueued by schedules).
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
    run_at          REAL NOT NULL            -- not run before (request time + Hookline-Delay)
);

-- One statement stores a job (job_insert): the event row carries its job's fields and runs
-- as JSON in `intake`, and this trigger puts them into `jobs` and `runs`. All of it runs
-- inside that statement's sqlite3_step(), with the GIL released: the group-commit writer
-- pays one statement per job, as per webhook, not three. `intake` is kept (~200 bytes):
-- clearing it would rewrite the whole event row, body included, in the same transaction.
ALTER TABLE events ADD COLUMN intake TEXT;

CREATE TRIGGER job_intake AFTER INSERT ON events WHEN NEW.intake IS NOT NULL
BEGIN
    INSERT INTO jobs (id, name, idempotency_key, fingerprint, run_at)
    VALUES (NEW.id, NEW.type, json_extract(NEW.intake, '$.key'),
            json_extract(NEW.intake, '$.fingerprint'), json_extract(NEW.intake, '$.run_at'));
    INSERT INTO runs (id, event_id, handler, generation, status, attempts, max_attempts,
                      available_at, concurrency_key, created_at, updated_at)
    SELECT json_extract(r.value, '$.id'), NEW.id, json_extract(r.value, '$.handler'), 0,
           'queued', 0, json_extract(r.value, '$.max_attempts'),
           json_extract(NEW.intake, '$.run_at'), json_extract(r.value, '$.concurrency_key'),
           NEW.received_at, NEW.received_at
    FROM json_each(NEW.intake, '$.runs') AS r
    ORDER BY r.key;
END;
