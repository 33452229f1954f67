-- hookline schema v9 (SQLite): a job's first run is inserted by its own statement again.
--
-- The trigger job_first_run (0003_jobs.sql) read the run from the event's `job` JSON with
-- five json_extract calls. Measured on the writer thread, an event insert plus a positional
-- run insert costs less than that trigger (the job's run is then stored exactly like a
-- webhook's), and the `job` column shrinks to what a job has beyond an event: its key,
-- fingerprint and runAt. So this version never writes "runId" there.
--
-- The trigger stays, for a process of the previous version still running against this
-- file while a new one starts (it writes "runId" and relies on the trigger for the run);
-- its guard now looks for the key with instr() first, so a job of this version pays a
-- substring search of its short JSON, not a JSON parse.
DROP TRIGGER IF EXISTS job_first_run;

CREATE TRIGGER job_first_run AFTER INSERT ON events
WHEN NEW.job IS NOT NULL AND instr(NEW.job, '"runId"') > 0
     AND json_extract(NEW.job, '$.runId') IS NOT NULL
BEGIN
    INSERT INTO runs (id, event_id, handler, generation, status, attempts, max_attempts,
                      available_at, concurrency_key, created_at, updated_at)
    VALUES (json_extract(NEW.job, '$.runId'), NEW.id, json_extract(NEW.job, '$.handler'), 0,
            'queued', 0, json_extract(NEW.job, '$.maxAttempts'),
            json_extract(NEW.job, '$.dueAt'), json_extract(NEW.job, '$.concurrencyKey'),
            NEW.received_at, NEW.received_at);
END;
