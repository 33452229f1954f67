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
-- the request asked>, "run": <the first run, with "dueAt": when it is due by the store's clock>}.
-- A column of the event rather than a table of its own: storing a job stays two statements
-- (the event, its run) like a webhook with one handler, and the writer pays per statement.
ALTER TABLE events ADD COLUMN job TEXT;

-- A job's first run comes with its event, as {"run": {...}} in `job`: this trigger inserts
-- it inside the event's INSERT (one sqlite3_step, the GIL released), so the group-commit
-- writer pays one statement per job — as per webhook — instead of two.
CREATE TRIGGER job_first_run AFTER INSERT ON events
WHEN NEW.job IS NOT NULL AND json_extract(NEW.job, '$.run.id') IS NOT NULL
BEGIN
    INSERT INTO runs (id, event_id, handler, generation, status, attempts, max_attempts,
                      available_at, concurrency_key, created_at, updated_at)
    SELECT json_extract(run, '$.id'), NEW.id, json_extract(run, '$.handler'), 0, 'queued', 0,
           json_extract(run, '$.maxAttempts'), json_extract(run, '$.dueAt'),
           json_extract(run, '$.concurrencyKey'), NEW.received_at, NEW.received_at
    FROM (SELECT json_extract(NEW.job, '$.run') AS run);
END;
