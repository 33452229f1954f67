-- hookline schema v3 (SQLite): jobs posted to the gateway (and enqueued by schedules).
--
-- A job IS an event (source 'jobs', type = the job name, body = the posted JSON), so it
-- runs through the same runs, steps, worker, admin API and dashboard. Its idempotency key
-- is the event's provider_event_id ("<job name>/<key>", or the job id without a key): the
-- events table's UNIQUE (source, provider_event_id) makes concurrent requests with one key
-- store exactly one job, and pruning the job frees its key.
--
-- `job` holds what a job has beyond an event, as JSON (NULL for a webhook):
-- {"key": <Idempotency-Key or null>, "fingerprint": <of the payload>, "runAt": <unix time, as
--  the request asked>, "dueAt": <when the first run is due, by the store's clock>, and its
--  first run: "runId", "handler", "maxAttempts", "concurrencyKey"}.
-- A column of the event rather than a table of its own: the group-commit writer pays per
-- statement, and a job is one (see docs/architecture.md, "Jobs in the store").
ALTER TABLE events ADD COLUMN job TEXT;

-- A job's first run comes with its event, in `job` ("runId", "handler", "maxAttempts",
-- "concurrencyKey"): this trigger inserts it inside the event's INSERT (one sqlite3_step,
-- the GIL released), so the group-commit writer pays one statement per job, as per webhook.
CREATE TRIGGER job_first_run AFTER INSERT ON events
WHEN NEW.job IS NOT NULL AND json_extract(NEW.job, '$.runId') IS NOT NULL
BEGIN
    INSERT INTO runs (id, event_id, handler, generation, status, attempts, max_attempts,
                      available_at, concurrency_key, created_at, updated_at)
    VALUES (json_extract(NEW.job, '$.runId'), NEW.id, json_extract(NEW.job, '$.handler'), 0,
            'queued', 0, json_extract(NEW.job, '$.maxAttempts'),
            json_extract(NEW.job, '$.dueAt'), json_extract(NEW.job, '$.concurrencyKey'),
            NEW.received_at, NEW.received_at);
END;
