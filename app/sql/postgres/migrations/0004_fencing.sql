-- hookline schema v4 (PostgreSQL): fenced claims, the database's clock, claims by loaded
-- handler, worker counters. (Version 2 is SQLite's op_log; PostgreSQL has no use for it.)

-- The one clock of a deployment on many machines: the database server's, at the start of
-- the current statement. Not now() (the start of the transaction: stale after a lock
-- wait), not clock_timestamp() (volatile: no index could be used to compare with it).
CREATE FUNCTION hookline_now() RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT extract(epoch FROM statement_timestamp())::double precision $$;

-- Every claim of a run increments its fence; each write of the run presents the fence
-- of its claim and is refused once that claim is over (see queries.sql: held).
ALTER TABLE runs ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;

-- Claims filter by the handlers a worker has loaded: the due runs of one handler in order.
CREATE INDEX runs_due_handler ON runs (handler, available_at)
WHERE status IN ('queued', 'retrying');

-- Runs whose worker still holds them (running, or cancelled and not yet let go): a claim
-- checks each candidate against them. Without it that check read the whole runs table.
CREATE INDEX runs_held ON runs (event_id, handler) WHERE lease_owner IS NOT NULL;

-- A worker's counters (runs by outcome, step durations) for /metrics; the rows of stopped
-- workers are kept so that the totals never go down (prune folds old ones into one row).
ALTER TABLE workers ADD COLUMN stats TEXT NOT NULL DEFAULT '{}';
ALTER TABLE workers ADD COLUMN stopped BOOLEAN NOT NULL DEFAULT false;
