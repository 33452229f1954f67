-- hookline schema v1 (PostgreSQL). Times are Unix seconds (DOUBLE PRECISION).
-- Mirrors app/sql/sqlite/migrations/0001_init.sql column for column, index for index;
-- JSON stays TEXT so that app.store.records reads the rows of both dialects.

CREATE TABLE events (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- arrival order; cursor
    id                TEXT NOT NULL UNIQUE,
    source            TEXT NOT NULL,
    provider_event_id TEXT NOT NULL,
    type              TEXT NOT NULL,
    status            TEXT NOT NULL,                  -- derived from the runs, kept in step
    received_at       DOUBLE PRECISION NOT NULL,
    headers           TEXT NOT NULL,                  -- JSON object, signatures redacted
    body              BYTEA NOT NULL,                 -- the raw bytes as received
    UNIQUE (source, provider_event_id)
);
CREATE INDEX events_status ON events (status, seq);
CREATE INDEX events_source ON events (source, seq);
CREATE INDEX events_received ON events (received_at);

CREATE TABLE runs (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- order for concurrency keys
    id               TEXT NOT NULL UNIQUE,
    event_id         TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    handler          TEXT NOT NULL,
    generation       INTEGER NOT NULL DEFAULT 0,      -- bumped by a 'fresh' redelivery
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    available_at     DOUBLE PRECISION NOT NULL,
    lease_owner      TEXT,
    lease_expires_at DOUBLE PRECISION,
    concurrency_key  TEXT,
    result           TEXT,                            -- JSON
    error            TEXT,
    created_at       DOUBLE PRECISION NOT NULL,
    updated_at       DOUBLE PRECISION NOT NULL
);
CREATE INDEX runs_due ON runs (available_at) WHERE status IN ('queued', 'retrying');
CREATE INDEX runs_leased ON runs (lease_expires_at) WHERE status = 'running';
CREATE INDEX runs_event ON runs (event_id);
CREATE INDEX runs_key ON runs (concurrency_key, handler, seq) WHERE concurrency_key IS NOT NULL;

-- The memo: one row per (event, handler, generation, step name).
CREATE TABLE steps (
    event_id   TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    handler    TEXT NOT NULL,
    generation INTEGER NOT NULL,
    name       TEXT NOT NULL,
    position   INTEGER NOT NULL,
    status     TEXT NOT NULL,                         -- succeeded | failed
    result     TEXT,                                  -- JSON
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (event_id, handler, generation, name)
);

CREATE TABLE step_attempts (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id     TEXT NOT NULL,
    event_id   TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    handler    TEXT NOT NULL,
    generation INTEGER NOT NULL,
    step_name  TEXT NOT NULL,
    number     INTEGER NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    ended_at   DOUBLE PRECISION,
    outcome    TEXT NOT NULL,                         -- succeeded | failed
    error      TEXT,
    traceback  TEXT
);
CREATE INDEX step_attempts_step ON step_attempts (event_id, handler, generation, step_name);

-- Worker processes announce themselves and heartbeat (for /metrics and operators).
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL
);
