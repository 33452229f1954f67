-- Named queries of the SQLite store. A block starts with "-- name: <name>".

-- name: insert_event
INSERT INTO events (id, source, provider_event_id, type, status, received_at, headers, body,
                    body_sha256)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source, provider_event_id) DO NOTHING;

-- name: replay_original
-- the first event of this source with the same body under another id since ``?``, unless
-- this id is stored itself (a resend of that event, not a replay)
SELECT id, provider_event_id FROM events
WHERE source = ? AND body_sha256 = ? AND received_at >= ? AND provider_event_id <> ?
  AND NOT EXISTS (SELECT 1 FROM events WHERE source = ? AND provider_event_id = ?)
ORDER BY received_at LIMIT 1;

-- name: event_id_by_key
SELECT id FROM events WHERE source = ? AND provider_event_id = ?;

-- name: insert_run
INSERT INTO runs (id, event_id, handler, generation, status, attempts, max_attempts,
                  available_at, concurrency_key, created_at, updated_at)
VALUES (?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?);

-- name: latest_runs_of_event
-- The newest run of each handler of an event.
SELECT r.id, r.handler, r.generation, r.status, r.max_attempts, r.concurrency_key
FROM runs r
WHERE r.event_id = ?
  AND r.seq = (SELECT max(r2.seq) FROM runs r2 WHERE r2.event_id = r.event_id
                                                AND r2.handler = r.handler)
ORDER BY r.seq;

-- name: refresh_event_status
-- After runs are inserted (updates of a run's status refresh it by trigger; see 0002).
UPDATE events
SET status = coalesce((SELECT status FROM event_status WHERE event_id = events.id), 'unhandled')
WHERE id = ?;

-- name: event_by_id
SELECT id, source, provider_event_id, type, status, received_at, seq, headers, body
FROM events WHERE id = ?;

-- name: runs_of_event
SELECT id, event_id, handler, generation, status, attempts, max_attempts, available_at,
       created_at, updated_at, result, error, concurrency_key
FROM runs WHERE event_id = ? ORDER BY seq;

-- name: run_by_id
SELECT id, event_id, handler, generation, status, attempts, max_attempts, available_at,
       created_at, updated_at, result, error, concurrency_key
FROM runs WHERE id = ?;

-- name: steps_of
SELECT name, position, status, result FROM steps
WHERE event_id = ? AND handler = ? AND generation = ? ORDER BY position;

-- name: attempts_of
SELECT step_name, number, started_at, ended_at, outcome, error, traceback, run_id
FROM step_attempts
WHERE event_id = ? AND handler = ? AND generation = ? ORDER BY id;

-- name: any_due
-- ?1: now, ?2: JSON array of the worker's handlers. One probe of runs_due_handler per
-- handler, whatever other handlers have queued.
SELECT EXISTS (SELECT 1 FROM json_each(?2) h
               WHERE EXISTS (SELECT 1 FROM runs
                             WHERE handler = h.value AND status IN ('queued', 'retrying')
                               AND available_at <= ?1))
    OR EXISTS (SELECT 1 FROM runs WHERE status = 'running' AND lease_expires_at < ?1
                                    AND handler IN (SELECT value FROM json_each(?2)));

-- name: event_of_run
SELECT event_id FROM runs WHERE id = ?;

-- name: cancel_run
-- A running run keeps its lease until its worker lets go (op_finish): until then no other
-- run of its (event, handler) may start (see op_claim).
UPDATE runs SET status = 'cancelled', updated_at = ?
WHERE id = ? AND status IN ('queued', 'running', 'retrying');

-- name: prune_events
-- One chunk (?3 events) per transaction: the write lock is never held for long.
DELETE FROM events WHERE id IN (
    SELECT id FROM events
    WHERE received_at < ?1
      AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.event_id = events.id
                      AND r.status IN ('queued', 'running', 'retrying'))
      AND (?2 OR NOT EXISTS (SELECT 1 FROM runs r WHERE r.event_id = events.id
                             AND r.status = 'failed'))
    LIMIT ?3);

-- name: prune_refusals
DELETE FROM op_refusals WHERE at < ?;

-- name: queue_depth
-- Bounded: at most ? entries of the runs_due index are read.
SELECT count(*) FROM (SELECT 1 FROM runs WHERE status IN ('queued', 'retrying') LIMIT ?);

-- name: schema_version
SELECT coalesce(max(version), 0) FROM schema_migrations;

-- name: run_counts
SELECT status, count(*) FROM runs GROUP BY status;

-- name: live_workers
SELECT count(*) FROM workers WHERE heartbeat_at >= ? AND stopped = 0;

-- name: worker_stats
SELECT stats FROM workers;

-- name: claimed_by
-- What one claim took: the op_log 'claim' trigger stamped its claim id on each run.
SELECT r.id, r.event_id, r.handler, r.generation, r.status, r.attempts, r.max_attempts,
       r.available_at, r.created_at, r.updated_at, r.result, r.error, r.concurrency_key,
       e.source, e.provider_event_id, e.type, e.status, e.received_at, e.seq, e.headers, e.body,
       r.fence,
       -- has_memo: any step recorded for its key (a first attempt has none: not read again).
       -- A LIMIT 1 subquery, not EXISTS: one probe of the steps key per run, where EXISTS
       -- let PostgreSQL hash a sequential scan of all steps.
       coalesce((SELECT 1 FROM steps s WHERE s.event_id = r.event_id AND s.handler = r.handler
                                         AND s.generation = r.generation LIMIT 1), 0)
FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.claim_id = ? AND r.lease_owner = ? AND r.status = 'running'
ORDER BY r.seq;

-- name: held
-- Of the claims ?1 (JSON [[run id, fence], ...]) of worker ?2: those still held at ?3.
SELECT r.id, r.status FROM json_each(?1) j
JOIN runs r ON r.id = json_extract(j.value, '$[0]') AND r.fence = json_extract(j.value, '$[1]')
WHERE r.lease_owner = ?2 AND r.lease_expires_at >= ?3 AND r.status IN ('running', 'cancelled');

-- name: claims_in_doubt
-- Of the claims ?1 (JSON [[run id, fence], ...]) of worker ?2, those NOT still held with a
-- lease that runs at least until ?3 (the latest time of the writes that presented them):
-- their index in ?1, and when their lease expires if this worker still holds the run (else
-- NULL). The caller compares that with each write's own time, exactly (a time through JSON
-- text might not come back bit for bit). Usually no row: one step of the statement.
SELECT j.key, r.lease_expires_at FROM json_each(?1) j
LEFT JOIN runs r ON r.id = json_extract(j.value, '$[0]')
                AND r.fence = json_extract(j.value, '$[1]')
                AND r.lease_owner = ?2 AND r.status IN ('running', 'cancelled')
WHERE r.id IS NULL OR r.lease_expires_at IS NULL OR r.lease_expires_at < ?3;

-- name: refusals_of
-- The refusals noted for the claims ?1 (JSON [[run id, fence], ...]): index in ?1, time.
SELECT j.key, f.at FROM json_each(?1) j
JOIN op_refusals f ON f.run_id = json_extract(j.value, '$[0]')
                  AND f.fence = json_extract(j.value, '$[1]');

-- name: already_finished
-- A finish retried after an error: the first one was written (same claim, same outcome).
SELECT 1 FROM runs WHERE id = ? AND fence = ? AND lease_owner IS NULL AND status = ?;

-- name: stale_workers
SELECT id, stats FROM workers WHERE heartbeat_at < ? AND id != 'retired';

-- name: delete_worker
DELETE FROM workers WHERE id = ?;

-- name: upsert_retired
INSERT INTO workers (id, host, pid, started_at, heartbeat_at, stats, stopped)
VALUES ('retired', '', 0, 0, 0, ?, 1)
ON CONFLICT (id) DO UPDATE SET stats = excluded.stats;

-- Jobs (app/store/jobs.py runs these on either dialect; named parameters). ----------------

-- name: job_insert
-- The job's event (its first run follows: job_insert_first_run); nothing at all when its
-- key is taken (no row returned). hookline.store.sqlite binds the same columns by position
-- on its fast path (job_insert_positional).
INSERT INTO events (id, source, provider_event_id, type, status, received_at, headers, body,
                    job)
VALUES (:id, :source, :provider_event_id, :type, :status, :received_at, :headers, :body, :job)
ON CONFLICT (source, provider_event_id) DO NOTHING
RETURNING id;

-- name: job_insert_positional
-- job_insert with positional parameters, in its column order: the writer thread binds a
-- tuple faster than a mapping of names.
INSERT INTO events (id, source, provider_event_id, type, status, received_at, headers, body,
                    job)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source, provider_event_id) DO NOTHING;

-- name: job_insert_first_run
-- The first run of a job just inserted (PostgreSQL's job_insert inserts it in its WITH).
INSERT INTO runs (id, event_id, handler, generation, status, attempts, max_attempts,
                  available_at, concurrency_key, created_at, updated_at)
VALUES (:run_id, :id, :run_handler, 0, 'queued', 0, :run_max_attempts, :due_at,
        :run_concurrency_key, :clock, :clock);

-- name: job_insert_run
INSERT INTO runs (id, event_id, handler, generation, status, attempts, max_attempts,
                  available_at, concurrency_key, created_at, updated_at)
VALUES (:id, :event_id, :handler, :generation, 'queued', 0, :max_attempts, :available_at,
        :concurrency_key, :now, :now);

-- name: job_notify
-- Nothing to do: SQLite workers poll.

-- name: job_lock_by_key
-- No lock needed: the group-commit writer holds the database's write lock.
SELECT e.id, e.status, e.job
FROM events e
WHERE e.source = 'jobs' AND e.provider_event_id = :provider_event_id;

-- name: job_latest_runs
SELECT r.id, r.handler, r.generation, r.status, r.max_attempts, r.concurrency_key
FROM runs r
WHERE r.event_id = :event_id
  AND r.seq = (SELECT max(r2.seq) FROM runs r2 WHERE r2.event_id = r.event_id
                                                AND r2.handler = r.handler)
ORDER BY r.seq;

-- name: job_refresh_status
UPDATE events
SET status = coalesce((SELECT status FROM event_status WHERE event_id = :id), 'unhandled')
WHERE id = :id;

-- name: job_by_id
SELECT e.id, e.source, e.provider_event_id, e.type, e.status, e.received_at, e.seq, e.job
FROM events e
WHERE e.id = :id AND e.source = 'jobs';

-- name: job_runs
SELECT id, event_id, handler, generation, status, attempts, max_attempts, available_at,
       created_at, updated_at, result, error, concurrency_key
FROM runs WHERE event_id = :event_id ORDER BY seq;

-- Schedules (app/store/schedules.py runs these on either dialect; named parameters). ------

-- name: schedule_ensure
INSERT INTO schedule_state (name, paused, updated_at) VALUES (:name, 0, :now)
ON CONFLICT (name) DO NOTHING;

-- name: schedule_lock
-- No lock needed: the group-commit writer holds the database's write lock.
SELECT paused, resumed_at, last_job_id FROM schedule_state WHERE name = :name;

-- name: schedule_set_paused
UPDATE schedule_state SET paused = :paused, resumed_at = :resumed_at, updated_at = :now
WHERE name = :name;

-- name: schedule_set_last_job
UPDATE schedule_state SET last_job_id = :job_id, updated_at = :now WHERE name = :name;

-- name: schedule_job_status
SELECT status FROM events WHERE id = :id;

-- name: tick_insert
INSERT INTO schedule_ticks (schedule, tick_at, outcome, job_id, recorded_at)
VALUES (:schedule, :tick_at, :outcome, :job_id, :now)
ON CONFLICT (schedule, tick_at) DO NOTHING
RETURNING tick_at;

-- name: tick_set_job
UPDATE schedule_ticks SET job_id = :job_id WHERE schedule = :schedule AND tick_at = :tick_at;

-- name: ticks_prune
-- Keep the newest `keep` ticks of the schedule.
DELETE FROM schedule_ticks
WHERE schedule = :schedule
  AND tick_at < (SELECT tick_at FROM schedule_ticks WHERE schedule = :schedule
                 ORDER BY tick_at DESC LIMIT 1 OFFSET :keep - 1);

-- name: schedule_state
SELECT paused, resumed_at, last_job_id FROM schedule_state WHERE name = :name;

-- name: ticks_newest
SELECT tick_at, outcome, job_id, recorded_at FROM schedule_ticks
WHERE schedule = :name ORDER BY tick_at DESC LIMIT :limit;

-- name: session_insert
INSERT INTO admin_sessions (id_hash, token_hash, created_at, expires_at)
VALUES (:id_hash, :token_hash, :now, :now + :max_age);

-- name: sessions_expire
DELETE FROM admin_sessions WHERE expires_at <= :now;

-- name: session_valid
SELECT 1 FROM admin_sessions
WHERE id_hash = :id_hash AND token_hash = :token_hash AND expires_at > :now;

-- name: sessions_of_other_tokens_delete
DELETE FROM admin_sessions WHERE token_hash <> :token_hash;

-- name: session_delete
DELETE FROM admin_sessions WHERE id_hash = :id_hash;

-- name: storage_probe
-- Rewrites one row's blob: WAL frames of that size, so it commits only where a write
-- of that size can.
INSERT INTO storage_probe (id, filler) VALUES (1, randomblob(:size))
ON CONFLICT (id) DO UPDATE SET filler = excluded.filler;
