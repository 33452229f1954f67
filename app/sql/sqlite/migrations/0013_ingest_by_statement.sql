-- hookline schema v13 (SQLite): a webhook's writes as one statement, like a worker's.
--
-- An HTTP process's writer used to store each batch of webhooks as a Python transaction:
-- BEGIN IMMEDIATE, one INSERT per event and per run, COMMIT. sqlite3 releases the GIL
-- around every statement, so under load the writer held SQLite's write lock while it waited
-- for the GIL again, once per statement, and every other process's commits waited with it.
-- Now a batch is rows inserted into ingest_log in one multi-row INSERT in autocommit mode
-- (the technique of op_log, 0002): the lock is taken, the events and runs written, the
-- commit fsynced and the lock released inside one sqlite3_step, with the GIL released.
--
-- kind 'event': one event (ON CONFLICT: a redelivery inserts nothing; the writer then reads
-- which of its events are new and answers the others through the ordinary path), and its
-- first run if `run_id` is set (most events have one run: one row, not two).
-- kind 'run': one more run of the event named by `id`.
-- A run is written only if its event was inserted: the first by the event row's own trigger
-- (changes() of its INSERT), another if the event's row exists, which holds only if this
-- batch wrote it because the caller mints a new event id for every call (SQLiteStore.ingest).
-- Rows are never stored. A process of the previous version keeps writing events directly.

CREATE TABLE ingest_log (
    kind              TEXT NOT NULL,
    id                TEXT,
    source            TEXT,
    provider_event_id TEXT,
    type              TEXT,
    status            TEXT,
    received_at       REAL,
    headers           TEXT,
    body              BLOB,
    body_sha256       TEXT,
    run_id            TEXT,
    handler           TEXT,
    max_attempts      INTEGER,
    concurrency_key   TEXT
);

CREATE TRIGGER ingest_event BEFORE INSERT ON ingest_log WHEN NEW.kind = 'event'
BEGIN
    INSERT INTO events (id, source, provider_event_id, type, status, received_at, headers,
                        body, body_sha256)
    VALUES (NEW.id, NEW.source, NEW.provider_event_id, NEW.type, NEW.status, NEW.received_at,
            NEW.headers, NEW.body, NEW.body_sha256)
    ON CONFLICT (source, provider_event_id) DO NOTHING;
    INSERT INTO runs (id, event_id, handler, generation, status, attempts, max_attempts,
                      available_at, concurrency_key, created_at, updated_at)
    SELECT NEW.run_id, NEW.id, NEW.handler, 0, 'queued', 0, NEW.max_attempts,
           NEW.received_at, NEW.concurrency_key, NEW.received_at, NEW.received_at
    WHERE NEW.run_id IS NOT NULL AND changes() = 1;  -- the INSERT above wrote the event
    SELECT RAISE(IGNORE);
END;

CREATE TRIGGER ingest_run BEFORE INSERT ON ingest_log WHEN NEW.kind = 'run'
BEGIN
    INSERT INTO runs (id, event_id, handler, generation, status, attempts, max_attempts,
                      available_at, concurrency_key, created_at, updated_at)
    SELECT NEW.run_id, NEW.id, NEW.handler, 0, 'queued', 0, NEW.max_attempts,
           NEW.received_at, NEW.concurrency_key, NEW.received_at, NEW.received_at
    WHERE EXISTS (SELECT 1 FROM events WHERE id = NEW.id);
    SELECT RAISE(IGNORE);
END;

-- kind 'pad': nothing. The writer makes a statement's rows up to a power of two with these,
-- so it keeps a prepared statement for a few sizes only, not one for each number of rows it
-- happened to batch (a prepared statement holds code for each of its rows: an ingest_log
-- INSERT of 1 row takes 34 KiB, of 64 rows 110 KiB; op_log's 66 KiB and 136 KiB for 32).
CREATE TRIGGER ingest_pad BEFORE INSERT ON ingest_log WHEN NEW.kind = 'pad'
BEGIN
    SELECT RAISE(IGNORE);
END;

CREATE TRIGGER ingest_unknown BEFORE INSERT ON ingest_log
WHEN NEW.kind NOT IN ('event', 'run', 'pad')
BEGIN
    SELECT RAISE(ABORT, 'unknown ingest_log kind');
END;

-- op_log pads its statements the same way (a worker's batches).
CREATE TRIGGER op_pad BEFORE INSERT ON op_log WHEN NEW.kind = 'pad'
BEGIN
    SELECT RAISE(IGNORE);
END;

DROP TRIGGER op_unknown;
CREATE TRIGGER op_unknown BEFORE INSERT ON op_log
WHEN NEW.kind NOT IN ('claim', 'lease', 'step', 'finish', 'worker_up', 'worker_down', 'pad')
BEGIN
    SELECT RAISE(ABORT, 'unknown op_log kind');
END;
