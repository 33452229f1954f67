-- hookline schema v6 (PostgreSQL): schedules (versions 4 and 5 belong to other changes).
-- Mirrors app/sql/sqlite/migrations/0006_schedules.sql.
--
-- Every tick of a schedule gets a row here, whichever process records it first: the
-- primary key (schedule, tick_at) is what makes "exactly one job per tick" hold for any
-- number of `serve` processes. The job of a tick is enqueued in the same transaction as
-- its row, and only by the transaction that inserted the row. The newest 1000 rows of
-- each schedule are kept (app/store/schedules.py).

CREATE TABLE schedule_ticks (
    schedule    TEXT NOT NULL,
    tick_at     BIGINT NOT NULL,            -- Unix seconds; ticks are whole seconds
    outcome     TEXT NOT NULL,              -- fired | skipped_overlap | missed | caught_up
    job_id      TEXT,                       -- the job enqueued for it (fired, caught_up)
    recorded_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (schedule, tick_at)
);

-- What a schedule has beyond its config, shared by every process and kept across restarts.
CREATE TABLE schedule_state (
    name        TEXT PRIMARY KEY,
    paused      BOOLEAN NOT NULL,
    resumed_at  DOUBLE PRECISION,           -- ticks before it are never caught up
    last_job_id TEXT,                       -- its newest job (overlap looks at its status)
    updated_at  DOUBLE PRECISION NOT NULL
);
