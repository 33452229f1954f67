-- hookline schema v9 (SQLite): a job's first run is inserted by its own statement again.
--
-- The trigger job_first_run (0003_jobs.sql) read the run from the event's `job` JSON with
-- five json_extract calls. Measured on the writer thread, an event insert plus a positional
-- run insert costs less than that trigger (the job's run is then stored exactly like a
-- webhook's), and the `job` column shrinks to what a job has beyond an event: its key,
-- fingerprint and runAt. Rows written before this migration keep their extra fields; no
-- reader uses them.
DROP TRIGGER IF EXISTS job_first_run;
