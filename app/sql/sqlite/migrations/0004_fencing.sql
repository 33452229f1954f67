-- hookline schema v4 (SQLite): fenced claims, claims by loaded handler, worker counters.
--
-- Fencing: every claim of a run increments runs.fence; the worker presents that token with
-- each write of the run (op_log.fence), and a write whose claim is over is refused:
--   held = the run has this fence and owner, its lease has not expired, and it is running
--          (or cancelled: its worker is letting go and may still record a finished step).
-- A lease that expired is over for good: the heartbeat does not revive it.

ALTER TABLE runs ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;

-- Claims filter by the handlers a worker has loaded: the due runs of one handler in order.
CREATE INDEX runs_due_handler ON runs (handler, available_at)
WHERE status IN ('queued', 'retrying');

-- Runs whose worker still holds them (running, or cancelled and not yet let go): a claim
-- checks each candidate against them. Without it that check read the whole runs table.
CREATE INDEX runs_held ON runs (event_id, handler) WHERE lease_owner IS NOT NULL;

ALTER TABLE op_log ADD COLUMN fence INTEGER;
ALTER TABLE op_log ADD COLUMN handlers TEXT;  -- claim: JSON array of the worker's handlers
ALTER TABLE op_log ADD COLUMN stats TEXT;     -- worker_up/worker_down: the worker's counters

-- A worker's counters (runs by outcome, step durations) for /metrics; the rows of stopped
-- workers are kept so that the totals never go down.
ALTER TABLE workers ADD COLUMN stats TEXT NOT NULL DEFAULT '{}';
ALTER TABLE workers ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0;

-- Refused finishes, so that a worker can tell "refused" from "written" after its batch
-- (an op_log row returns nothing). Rare: only workers whose claim is over write here.
CREATE TABLE op_refusals (
    run_id TEXT NOT NULL,
    fence  INTEGER NOT NULL,
    at     REAL NOT NULL
);
CREATE INDEX op_refusals_run ON op_refusals (run_id, fence);

DROP TRIGGER op_claim;
DROP TRIGGER op_lease;
DROP TRIGGER op_step;
DROP TRIGGER op_finish;
DROP TRIGGER op_worker_up;
DROP TRIGGER op_worker_down;

-- claim (name = a unique claim id): reclaim expired leases, then due runs whose
-- concurrency key is free — only runs of the handlers listed in NEW.handlers.
CREATE TRIGGER op_claim BEFORE INSERT ON op_log WHEN NEW.kind = 'claim'
BEGIN
    UPDATE runs SET status = 'running', attempts = attempts + 1, fence = fence + 1,
                    lease_owner = NEW.worker, lease_expires_at = NEW.until,
                    updated_at = NEW.at, claim_id = NEW.name
    WHERE id IN (
        -- each side limited on its own index, so no claim ever sorts the whole queue
        SELECT id FROM (
            SELECT id FROM runs
            WHERE status = 'running' AND lease_expires_at < NEW.at
              AND handler IN (SELECT value FROM json_each(NEW.handlers))
            ORDER BY lease_expires_at LIMIT NEW.n
        )
        UNION ALL
        SELECT id FROM (
            SELECT r.id FROM runs r
            WHERE r.status IN ('queued', 'retrying') AND r.available_at <= NEW.at
              AND r.handler IN (SELECT value FROM json_each(NEW.handlers))
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

-- lease: a heartbeat extends a lease that this claim still holds (never an expired one).
CREATE TRIGGER op_lease BEFORE INSERT ON op_log WHEN NEW.kind = 'lease'
BEGIN
    UPDATE runs SET lease_expires_at = NEW.until
    WHERE id = NEW.run_id AND fence = NEW.fence AND lease_owner = NEW.worker
      AND status IN ('running', 'cancelled') AND lease_expires_at >= NEW.at;
    SELECT RAISE(IGNORE);
END;

-- step: one attempt of one step, written only under a claim still held (and only once);
-- the memo row never goes back from 'succeeded'.
CREATE TRIGGER op_step BEFORE INSERT ON op_log WHEN NEW.kind = 'step'
BEGIN
    INSERT INTO step_attempts (run_id, event_id, handler, generation, step_name, number,
                               started_at, ended_at, outcome, error, traceback)
    SELECT NEW.run_id, NEW.event_id, NEW.handler, NEW.generation, NEW.name, NEW.number,
           NEW.started_at, NEW.ended_at, NEW.status, NEW.error, NEW.traceback
    WHERE EXISTS (SELECT 1 FROM runs
                  WHERE id = NEW.run_id AND fence = NEW.fence AND lease_owner = NEW.worker
                    AND status IN ('running', 'cancelled') AND lease_expires_at >= NEW.at)
      -- written once: a write retried after an error whose commit was not seen adds nothing
      AND NOT EXISTS (SELECT 1 FROM step_attempts
                      WHERE event_id = NEW.event_id AND handler = NEW.handler
                        AND generation = NEW.generation AND step_name = NEW.name
                        AND run_id = NEW.run_id AND number = NEW.number);
    INSERT INTO steps (event_id, handler, generation, name, position, status, result, updated_at)
    SELECT NEW.event_id, NEW.handler, NEW.generation, NEW.name, NEW.position, NEW.status,
           NEW.result, NEW.ended_at
    WHERE EXISTS (SELECT 1 FROM runs
                  WHERE id = NEW.run_id AND fence = NEW.fence AND lease_owner = NEW.worker
                    AND status IN ('running', 'cancelled') AND lease_expires_at >= NEW.at)
    ON CONFLICT (event_id, handler, generation, name) DO UPDATE
    SET status = excluded.status, result = excluded.result, position = excluded.position,
        updated_at = excluded.updated_at
    WHERE steps.status != 'succeeded';
    SELECT RAISE(IGNORE);
END;

-- finish: a run's ending, written only under a claim still held (else noted as refused).
CREATE TRIGGER op_finish BEFORE INSERT ON op_log WHEN NEW.kind = 'finish'
BEGIN
    INSERT INTO op_refusals (run_id, fence, at)
    SELECT NEW.run_id, NEW.fence, NEW.at
    WHERE NOT EXISTS (SELECT 1 FROM runs
                      WHERE id = NEW.run_id AND fence = NEW.fence AND lease_owner = NEW.worker
                        AND status = 'running' AND lease_expires_at >= NEW.at);
    UPDATE runs SET status = NEW.status, available_at = NEW.until, result = NEW.result,
                    error = NEW.error, attempts = attempts - NEW.refund, lease_owner = NULL,
                    lease_expires_at = NULL, updated_at = NEW.at
    WHERE id = NEW.run_id AND fence = NEW.fence AND lease_owner = NEW.worker
      AND status = 'running' AND lease_expires_at >= NEW.at;
    -- cancelled while it ran: the worker lets go, and the next run of the handler may start
    UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL
    WHERE id = NEW.run_id AND fence = NEW.fence AND lease_owner = NEW.worker
      AND status = 'cancelled';
    SELECT RAISE(IGNORE);
END;

-- worker_up / worker_down: the workers table, with each worker's counters.
CREATE TRIGGER op_worker_up BEFORE INSERT ON op_log WHEN NEW.kind = 'worker_up'
BEGIN
    INSERT INTO workers (id, host, pid, started_at, heartbeat_at, stats, stopped)
    VALUES (NEW.worker, NEW.host, NEW.pid, NEW.started_at, NEW.at, NEW.stats, 0)
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,
                                   stats = excluded.stats, stopped = 0;
    SELECT RAISE(IGNORE);
END;

CREATE TRIGGER op_worker_down BEFORE INSERT ON op_log WHEN NEW.kind = 'worker_down'
BEGIN
    UPDATE workers SET stopped = 1, stats = coalesce(NEW.stats, stats) WHERE id = NEW.worker;
    SELECT RAISE(IGNORE);
END;
