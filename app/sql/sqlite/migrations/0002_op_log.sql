-- hookline schema v2 (SQLite): worker writes as single-statement batches.
--
-- A worker's writes (claims, leases, step outcomes, run endings) are rows inserted
-- into op_log; BEFORE INSERT triggers apply each one and RAISE(IGNORE) drops the
-- row. A whole batch is therefore ONE multi-row INSERT in autocommit mode: SQLite
-- takes the write lock, applies it, fsyncs and releases the lock inside a single
-- sqlite3_step() call, during which Python's GIL is released. A worker whose
-- threads burn CPU can thus never hold the write lock while it waits for the GIL,
-- which used to stall the acks of the serve process for hundreds of milliseconds.

CREATE TABLE op_log (
    kind       TEXT NOT NULL,
    run_id     TEXT,
    event_id   TEXT,
    handler    TEXT,
    generation INTEGER,
    name       TEXT,
    position   INTEGER,
    number     INTEGER,
    started_at REAL,
    ended_at   REAL,
    status     TEXT,
    result     TEXT,
    error      TEXT,
    traceback  TEXT,
    worker     TEXT,
    at         REAL,
    until      REAL,
    n          INTEGER,
    refund     INTEGER,
    host       TEXT,
    pid        INTEGER
);

-- Which claim leased a run, so the claimer can read back exactly what it took.
ALTER TABLE runs ADD COLUMN claim_id TEXT;
CREATE INDEX runs_claim ON runs (claim_id) WHERE claim_id IS NOT NULL;

-- The one definition of an event's status: from the newest run of each of its handlers
-- (no run at all: 'unhandled', written by the callers' coalesce).
CREATE VIEW event_status AS
SELECT r.event_id AS event_id,
       CASE
           WHEN sum(r.status = 'running') > 0 THEN 'running'
           WHEN sum(r.status = 'retrying') > 0 THEN 'retrying'
           WHEN sum(r.status = 'queued') > 0 THEN 'queued'
           WHEN sum(r.status = 'failed') > 0 THEN 'failed'
           WHEN sum(r.status = 'cancelled') > 0 THEN 'cancelled'
           ELSE 'succeeded'
       END AS status
FROM runs r
WHERE r.seq = (SELECT max(r2.seq) FROM runs r2 WHERE r2.event_id = r.event_id
                                              AND r2.handler = r.handler)
GROUP BY r.event_id;

-- An event's status follows its runs, whoever changes a run.
CREATE TRIGGER runs_status_changed AFTER UPDATE OF status ON runs
WHEN OLD.status IS NOT NEW.status
BEGIN
    UPDATE events
    SET status = coalesce((SELECT status FROM event_status WHERE event_id = NEW.event_id),
                          'unhandled')
    WHERE id = NEW.event_id;
END;

-- claim (name = a unique claim id): reclaim expired leases, then due runs whose
-- concurrency key is free.
CREATE TRIGGER op_claim BEFORE INSERT ON op_log WHEN NEW.kind = 'claim'
BEGIN
    UPDATE runs SET status = 'running', attempts = attempts + 1, lease_owner = NEW.worker,
                    lease_expires_at = NEW.until, updated_at = NEW.at, claim_id = NEW.name
    WHERE id IN (
        -- each side limited on its own index, so no claim ever sorts the whole queue
        SELECT id FROM (
            SELECT id FROM runs
            WHERE status = 'running' AND lease_expires_at < NEW.at
            ORDER BY lease_expires_at LIMIT NEW.n
        )
        UNION ALL
        SELECT id FROM (
            SELECT r.id FROM runs r
            WHERE r.status IN ('queued', 'retrying') AND r.available_at <= NEW.at
              AND (r.concurrency_key IS NULL OR NOT EXISTS (
                    SELECT 1 FROM runs p
                    WHERE p.concurrency_key = r.concurrency_key AND p.handler = r.handler
                      AND p.id != r.id
                      AND ((p.seq < r.seq AND p.status IN ('queued', 'running', 'retrying'))
                           -- a cancelled run still held by its worker holds its key too
                           OR (p.lease_owner IS NOT NULL AND p.lease_expires_at >= NEW.at))))
              -- never beside a cancelled run of the same (event, handler) still held
              AND NOT EXISTS (
                    SELECT 1 FROM runs o
                    WHERE o.event_id = r.event_id AND o.handler = r.handler AND o.id != r.id
                      AND o.lease_owner IS NOT NULL AND o.lease_expires_at >= NEW.at)
            ORDER BY r.available_at, r.seq LIMIT NEW.n
        )
        LIMIT NEW.n
    );
    SELECT RAISE(IGNORE);
END;

-- lease: a heartbeat extends one run's lease if this worker still holds it.
CREATE TRIGGER op_lease BEFORE INSERT ON op_log WHEN NEW.kind = 'lease'
BEGIN
    UPDATE runs SET lease_expires_at = NEW.until
    WHERE id = NEW.run_id AND lease_owner = NEW.worker AND status = 'running';
    SELECT RAISE(IGNORE);
END;

-- step: one attempt of one step; the memo row never goes back from 'succeeded'.
CREATE TRIGGER op_step BEFORE INSERT ON op_log WHEN NEW.kind = 'step'
BEGIN
    INSERT INTO step_attempts (run_id, event_id, handler, generation, step_name, number,
                               started_at, ended_at, outcome, error, traceback)
    VALUES (NEW.run_id, NEW.event_id, NEW.handler, NEW.generation, NEW.name, NEW.number,
            NEW.started_at, NEW.ended_at, NEW.status, NEW.error, NEW.traceback);
    INSERT INTO steps (event_id, handler, generation, name, position, status, result, updated_at)
    VALUES (NEW.event_id, NEW.handler, NEW.generation, NEW.name, NEW.position, NEW.status,
            NEW.result, NEW.ended_at)
    ON CONFLICT (event_id, handler, generation, name) DO UPDATE
    SET status = excluded.status, result = excluded.result, position = excluded.position,
        updated_at = excluded.updated_at
    WHERE steps.status != 'succeeded';
    SELECT RAISE(IGNORE);
END;

-- finish: a run's ending, written only while this worker holds its lease.
CREATE TRIGGER op_finish BEFORE INSERT ON op_log WHEN NEW.kind = 'finish'
BEGIN
    UPDATE runs SET status = NEW.status, available_at = NEW.until, result = NEW.result,
                    error = NEW.error, attempts = attempts - NEW.refund, lease_owner = NULL,
                    lease_expires_at = NULL, updated_at = NEW.at
    WHERE id = NEW.run_id AND lease_owner = NEW.worker AND status = 'running';
    -- cancelled while it ran: the worker lets go, and the next run of the handler may start
    UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL
    WHERE id = NEW.run_id AND lease_owner = NEW.worker AND status = 'cancelled';
    SELECT RAISE(IGNORE);
END;

-- worker_up / worker_down: the workers table for /metrics.
CREATE TRIGGER op_worker_up BEFORE INSERT ON op_log WHEN NEW.kind = 'worker_up'
BEGIN
    INSERT INTO workers (id, host, pid, started_at, heartbeat_at)
    VALUES (NEW.worker, NEW.host, NEW.pid, NEW.started_at, NEW.at)
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at;
    SELECT RAISE(IGNORE);
END;

CREATE TRIGGER op_worker_down BEFORE INSERT ON op_log WHEN NEW.kind = 'worker_down'
BEGIN
    DELETE FROM workers WHERE id = NEW.worker;
    SELECT RAISE(IGNORE);
END;

-- Anything else is a bug: refuse it loudly rather than storing it.
CREATE TRIGGER op_unknown BEFORE INSERT ON op_log
WHEN NEW.kind NOT IN ('claim', 'lease', 'step', 'finish', 'worker_up', 'worker_down')
BEGIN
    SELECT RAISE(ABORT, 'unknown op_log kind');
END;
