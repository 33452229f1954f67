-- Named queries of the PostgreSQL store. A block starts with "-- name: <name>".
-- Parameters are psycopg named placeholders; arrays go in binary (%(name)b: the server
-- parses no array text and decodes no hex for bytea, 3 % of its CPU on the hot path).
-- Every claim locks with FOR UPDATE SKIP LOCKED, and every transaction that changes a
-- run's status locks its event row (in id order) before refresh_event_status, so the
-- derived status is computed from committed state.
-- Every time a lease or a due time is compared with is hookline_now(): the database's
-- clock (migration 0004), never a worker's.

-- name: create_schema_migrations
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
);

-- name: synchronous_commit
SHOW synchronous_commit;

-- name: synchronous_commit_on
SET synchronous_commit = on;

-- name: schema_version
SELECT coalesce(max(version), 0) FROM schema_migrations;

-- name: insert_migration
INSERT INTO schema_migrations (version, name, applied_at) VALUES (%(version)s, %(name)s, %(now)s);

-- name: advisory_lock
-- Session-level lock held while migrating: concurrent processes apply migrations one at a time.
SELECT pg_advisory_lock(%(space)s::int4, %(key)s::int4);

-- name: advisory_unlock
SELECT pg_advisory_unlock(%(space)s::int4, %(key)s::int4);

-- name: advisory_xact_lock
-- Transaction-level lock on one (handler, concurrency key): claims of one key take turns.
SELECT pg_advisory_xact_lock(%(space)s::int4,
                             hashtext(%(handler)s::text || chr(31) || %(key)s::text));

-- name: notify_runs
-- One channel per handler (named by PostgresStore.channel): only workers that loaded the
-- handler listen to it. Delivered at commit, and only if the transaction commits.
SELECT pg_notify(channel, '') FROM unnest(%(channels)b::text[]) AS channel;

-- name: now
SELECT hookline_now();

-- name: insert_event
INSERT INTO events (id, source, provider_event_id, type, status, received_at, headers, body,
                    body_sha256)
VALUES (%(id)s, %(source)s, %(provider_event_id)s, %(type)s, %(status)s, %(received_at)s,
        %(headers)s, %(body)s, %(body_sha256)s)
ON CONFLICT (source, provider_event_id) DO NOTHING;

-- name: lock_body_digest
-- serializes ingests of one body of one source, so two replays at once cannot both be new
SELECT pg_advisory_xact_lock(hashtextextended(%(source)s || '/' || %(body_sha256)s, 0));

-- name: replay_original
-- the first event of this source with the same body under another id since %(since)s,
-- unless this id is stored itself (a resend of that event, not a replay)
SELECT id, provider_event_id FROM events
WHERE source = %(source)s AND body_sha256 = %(body_sha256)s AND received_at >= %(since)s
  AND provider_event_id <> %(provider_event_id)s
  AND NOT EXISTS (SELECT 1 FROM events
                  WHERE source = %(source)s AND provider_event_id = %(provider_event_id)s)
ORDER BY received_at LIMIT 1;
-- name: ingest_batch
-- Group commit of ingests (hookline.store.pg_ingest): many events with their runs in ONE
-- statement, run in autocommit mode, so one round trip is the whole transaction and its
-- commit. Events are inserted in arrival order (their seq); a conflicting one is skipped and
-- its caller handled alone afterwards. Runs are inserted only for the events inserted here,
-- then the channels of their handlers are notified (delivered at commit, as notify_runs).
-- Returns the ids of the events inserted.
WITH input AS (
    SELECT * FROM unnest(%(ids)b::text[], %(sources)b::text[], %(event_ids)b::text[],
                         %(types)b::text[], %(statuses)b::text[], %(received_at)b::float8[],
                         %(headers)b::text[], %(bodies)b::bytea[])
        WITH ORDINALITY AS t(id, source, provider_event_id, type, status, received_at,
                             headers, body, n)
), inserted AS (
    INSERT INTO events (id, source, provider_event_id, type, status, received_at, headers, body)
    SELECT id, source, provider_event_id, type, status, received_at, headers, body
    FROM input ORDER BY n
    ON CONFLICT (source, provider_event_id) DO NOTHING
    RETURNING id
), new_runs AS (
    INSERT INTO runs (id, event_id, handler, generation, status, attempts, max_attempts,
                      available_at, concurrency_key, created_at, updated_at)
    SELECT r.id, r.event_id, r.handler, 0, 'queued', 0, r.max_attempts, hookline_now(),
           r.concurrency_key, hookline_now(), hookline_now()
    FROM unnest(%(run_ids)b::text[], %(run_event_ids)b::text[], %(run_handlers)b::text[],
                %(run_max_attempts)b::int[], %(run_keys)b::text[])
             WITH ORDINALITY AS r(id, event_id, handler, max_attempts, concurrency_key, n)
    WHERE r.event_id IN (SELECT id FROM inserted)
    ORDER BY r.n
    RETURNING handler
), notified AS (
    SELECT count(pg_notify('hookline_' || left(encode(sha256(convert_to(h, 'UTF8')), 'hex'), 32),
                           ''))
    FROM (SELECT DISTINCT handler AS h FROM new_runs) AS handlers
)
SELECT id, (SELECT count FROM notified) FROM inserted;

-- name: event_id_by_key
SELECT id FROM events WHERE source = %(source)s AND provider_event_id = %(provider_event_id)s;

-- name: lock_event_by_key
SELECT id FROM events WHERE source = %(source)s AND provider_event_id = %(provider_event_id)s
FOR NO KEY UPDATE;

-- name: lock_events
-- NO KEY UPDATE: serialises status refreshes without blocking inserts that reference the
-- event (runs, steps, attempts take KEY SHARE locks for their foreign keys).
SELECT id FROM events WHERE id = ANY(%(ids)b::text[]) ORDER BY id FOR NO KEY UPDATE;

-- name: lock_claimed_events
-- lock_events, in a claim's transaction (its own name: a hot statement, see hot_plans).
SELECT id FROM events WHERE id = ANY(%(ids)b::text[]) ORDER BY id FOR NO KEY UPDATE;

-- name: insert_run
-- Due at once by the database's clock (a serve process's clock may be off).
INSERT INTO runs (id, event_id, handler, generation, status, attempts, max_attempts,
                  available_at, concurrency_key, created_at, updated_at)
VALUES (%(id)s, %(event_id)s, %(handler)s, %(generation)s, 'queued', 0, %(max_attempts)s,
        hookline_now(), %(concurrency_key)s, hookline_now(), hookline_now());

-- name: latest_runs_of_event
-- The newest run of each handler of an event, in creation order.
SELECT id, handler, generation, status, max_attempts, concurrency_key
FROM (SELECT DISTINCT ON (handler) id, handler, generation, status, max_attempts,
                                   concurrency_key, seq
      FROM runs WHERE event_id = %(event_id)s
      ORDER BY handler, seq DESC) AS latest
ORDER BY seq;

-- name: refresh_event_status
-- An event's status is derived from the newest run of each of its handlers
-- (hookline_event_status, 0012_event_statuses.sql).
UPDATE events e SET status = hookline_event_status(e.id)
WHERE e.id = ANY(%(ids)b::text[]);

-- name: event_by_id
SELECT id, source, provider_event_id, type, status, received_at, seq, headers, body
FROM events WHERE id = %(id)s;

-- name: list_events
-- A NULL parameter disables its filter; type_like is a LIKE pattern with '\' as escape.
SELECT id, source, provider_event_id, type, status, received_at, seq FROM events
WHERE (%(source)s::text IS NULL OR source = %(source)s::text)
  AND (%(type_like)s::text IS NULL OR type LIKE %(type_like)s::text ESCAPE '\')
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(since)s::float8 IS NULL OR received_at >= %(since)s::float8)
  AND (%(until)s::float8 IS NULL OR received_at < %(until)s::float8)
  AND (%(search)s::text IS NULL OR strpos(provider_event_id, %(search)s::text) > 0)
  AND (%(before_seq)s::bigint IS NULL OR seq < %(before_seq)s::bigint)
ORDER BY seq DESC
LIMIT %(limit)s;

-- name: lock_events_matching
-- The same filter as list_events, locking the events (in id order) for a redelivery.
SELECT id FROM events
WHERE (%(source)s::text IS NULL OR source = %(source)s::text)
  AND (%(type_like)s::text IS NULL OR type LIKE %(type_like)s::text ESCAPE '\')
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(since)s::float8 IS NULL OR received_at >= %(since)s::float8)
  AND (%(until)s::float8 IS NULL OR received_at < %(until)s::float8)
  AND (%(search)s::text IS NULL OR strpos(provider_event_id, %(search)s::text) > 0)
ORDER BY id
FOR NO KEY UPDATE;

-- name: runs_of_event
SELECT id, event_id, handler, generation, status, attempts, max_attempts, available_at,
       created_at, updated_at, result, error, concurrency_key
FROM runs WHERE event_id = %(event_id)s ORDER BY seq;

-- name: run_by_id
SELECT id, event_id, handler, generation, status, attempts, max_attempts, available_at,
       created_at, updated_at, result, error, concurrency_key
FROM runs WHERE id = %(id)s;

-- name: steps_of
SELECT name, position, status, result FROM steps
WHERE event_id = %(event_id)s AND handler = %(handler)s AND generation = %(generation)s
ORDER BY position;

-- name: attempts_of
SELECT step_name, number, started_at, ended_at, outcome, error, traceback, run_id
FROM step_attempts
WHERE event_id = %(event_id)s AND handler = %(handler)s AND generation = %(generation)s
ORDER BY id;

-- name: any_due
-- One index probe per handler (runs_due_handler), whatever other handlers have queued.
SELECT EXISTS (SELECT 1 FROM unnest(%(handlers)b::text[]) AS h(name)
               WHERE EXISTS (SELECT 1 FROM runs
                             WHERE handler = h.name AND status IN ('queued', 'retrying')
                               AND available_at <= hookline_now()))
    OR EXISTS (SELECT 1 FROM runs WHERE status = 'running' AND lease_expires_at < hookline_now()
                                    AND handler = ANY(%(handlers)b::text[]));

-- name: begin
BEGIN;

-- name: commit
COMMIT;

-- name: rollback
ROLLBACK;

-- name: hot_plans
-- The first statement of every transaction of the hot path (claims, step records, endings;
-- see HOT in PostgresStore): its statements run prepared, each with its generic plan, made
-- once and kept for the connection's life, instead of being parsed and planned at every
-- execution (planning cost more than running them). Made while the tables are small a
-- generic plan may prefer a sequential scan and keep it as they grow: with sequential scans
-- disabled the plan probes the indexes, whatever the size of the tables when it was made.
-- Transaction-local: every other statement is planned as PostgreSQL chooses.
SELECT set_config('plan_cache_mode', 'force_generic_plan', true),
       set_config('enable_seqscan', 'off', true);

-- name: claim_runs
-- A claim's first round trip (BEGIN pipelined with it): one statement reads the database's
-- clock once, locks expired leases and due runs (FOR UPDATE SKIP LOCKED), leases those that
-- need no turn of a concurrency key (fence, attempt, lease) and returns them with their
-- events and has_memo. Due runs with a key stay locked, not leased: they are returned as
-- arrays (ids, handlers, keys, in claim order) for PostgresStore.claim_runs to take the
-- keys' advisory locks and re-check them with a fresh snapshot (keyed_runs_still_free),
-- which no single statement can do. Always one row: the clock and the keyed arrays, with
-- the run's columns NULL when nothing was leased.
WITH clock AS MATERIALIZED (SELECT hookline_now() AS now),
-- Runs whose worker stopped heartbeating: reclaimed. Rows another claimer holds are skipped.
expired AS MATERIALIZED (
    SELECT r.id FROM runs r
    WHERE r.status = 'running' AND r.lease_expires_at < (SELECT now FROM clock)
      AND r.handler = ANY(%(handlers)b::text[])
    ORDER BY r.lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
-- Runs ready to start, of the handlers the worker has loaded. A run with a concurrency key
-- waits while another run of its (handler, key) is running or an earlier one is unfinished.
-- One index scan per handler (runs_due_handler), each stopping at its first claimable runs:
-- a backlog of a handler this worker has not loaded (a rolling deploy) is never read. Rows
-- of a handler that the outer LIMIT drops stay locked until commit. None when the expired
-- runs fill the claim (LIMIT 0 reads nothing).
due AS MATERIALIZED (
    SELECT c.id, c.handler, c.concurrency_key, c.available_at, c.seq
    FROM unnest(%(handlers)b::text[]) AS h(name)
    CROSS JOIN LATERAL (
        SELECT r.id, r.handler, r.concurrency_key, r.available_at, r.seq FROM runs r
        WHERE r.handler = h.name AND r.status IN ('queued', 'retrying')
          AND r.available_at <= (SELECT now FROM clock)
          AND (r.concurrency_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM runs p
                WHERE p.concurrency_key = r.concurrency_key AND p.handler = r.handler
                  AND p.id <> r.id
                  AND (p.status = 'running'
                       OR (p.status IN ('queued', 'retrying') AND p.seq < r.seq)
                       -- a cancelled run still held by its worker holds its key too
                       OR (p.lease_owner IS NOT NULL
                           AND p.lease_expires_at >= (SELECT now FROM clock)))))
          -- never beside a cancelled run of the same (event, handler) still held by its
          -- worker. A LIMIT 1 subquery, not NOT EXISTS: one probe of runs_held (event_id,
          -- handler) per run, where the anti join read every held run of the handler per run.
          AND coalesce((
                SELECT 1 FROM runs o
                WHERE o.event_id = r.event_id AND o.handler = r.handler AND o.id <> r.id
                  AND o.lease_owner IS NOT NULL AND o.lease_expires_at >= (SELECT now FROM clock)
                LIMIT 1), 0) = 0
        -- r.handler is one value here; naming it lets the scan of runs_due_handler (handler,
        -- available_at, seq) deliver this order, so no sort reads the whole backlog first
        ORDER BY r.handler, r.available_at, r.seq
        LIMIT greatest(%(limit)s - (SELECT count(*) FROM expired), 0)
        FOR UPDATE OF r SKIP LOCKED
    ) AS c
    ORDER BY c.available_at, c.seq
    LIMIT greatest(%(limit)s - (SELECT count(*) FROM expired), 0)
),
picked AS (
    SELECT id, 0 AS part, 0::bigint AS ord FROM expired
    UNION ALL
    SELECT id, 1, row_number() OVER (ORDER BY available_at, seq) FROM due
    WHERE concurrency_key IS NULL
),
leased AS (
    UPDATE runs r SET status = 'running', attempts = r.attempts + 1, fence = r.fence + 1,
                      lease_owner = %(worker_id)s,
                      lease_expires_at = (SELECT now FROM clock) + %(lease)s,
                      updated_at = (SELECT now FROM clock)
    FROM picked p
    WHERE r.id = p.id
    RETURNING r.id, r.event_id, r.handler, r.generation, r.status, r.attempts, r.max_attempts,
              r.available_at, r.created_at, r.updated_at, r.result, r.error, r.concurrency_key,
              r.fence, p.part, p.ord
),
keyed AS (
    SELECT array_agg(id ORDER BY available_at, seq) AS ids,
           array_agg(handler ORDER BY available_at, seq) AS handlers,
           array_agg(concurrency_key ORDER BY available_at, seq) AS keys
    FROM due WHERE concurrency_key IS NOT NULL
)
SELECT clock.now, keyed.ids, keyed.handlers, keyed.keys,
       l.id, l.event_id, l.handler, l.generation, l.status, l.attempts, l.max_attempts,
       l.available_at, l.created_at, l.updated_at, l.result, l.error, l.concurrency_key,
       e.source, e.provider_event_id, e.type, e.status, e.received_at, e.seq, e.headers,
       e.body, l.fence,
       -- has_memo: as in claimed_runs_with_events
       coalesce((SELECT 1 FROM steps s WHERE s.event_id = l.event_id AND s.handler = l.handler
                                         AND s.generation = l.generation LIMIT 1), 0)
FROM clock CROSS JOIN keyed
LEFT JOIN (leased l JOIN events e ON e.id = l.event_id) ON true
ORDER BY l.part, l.ord;

-- name: keyed_runs_still_free
-- Re-checked (with a fresh snapshot) once the claimer holds the locks of the keys. A LIMIT 1
-- subquery, not NOT EXISTS: one probe of runs_key per run, where the generic plan of the
-- anti join (hot_plans) read every keyed run.
SELECT r.id FROM runs r
WHERE r.id = ANY(%(ids)b::text[])
  AND coalesce((
        SELECT 1 FROM runs p
        WHERE p.concurrency_key = r.concurrency_key AND p.handler = r.handler
          AND p.id <> r.id
          AND (p.status = 'running'
               OR (p.status IN ('queued', 'retrying') AND p.seq < r.seq)
               OR (p.lease_owner IS NOT NULL AND p.lease_expires_at >= %(now)s))
        LIMIT 1), 0) = 0;

-- name: lease_runs
UPDATE runs SET status = 'running', attempts = attempts + 1, fence = fence + 1,
                lease_owner = %(worker_id)s, lease_expires_at = %(now)s + %(lease)s,
                updated_at = %(now)s
WHERE id = ANY(%(ids)b::text[]);

-- name: claimed_runs_with_events
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
WHERE r.id = ANY(%(ids)b::text[]);

-- name: claimed_events_running
-- A claim's status refresh of its events, sent after lock_events (a fresh snapshot once the
-- claimer holds their rows). A claim turns runs into 'running', which outranks every other
-- status of refresh_event_status: an event whose claimed run is the newest of its handler is
-- 'running' now, whatever its other runs; a claimed run that is not the newest of its
-- handler (an older run reclaimed beside a redelivery's) does not count for the status, so
-- its event keeps the status it has. Rows already 'running' (reclaims) are not rewritten.
-- The newer run is looked for with a LIMIT 1 subquery, not NOT EXISTS: one probe of
-- runs_event per run, where NOT EXISTS let PostgreSQL hash a sequential scan of all runs.
UPDATE events e SET status = 'running'
WHERE e.id IN (SELECT r.event_id FROM runs r
               WHERE r.id = ANY(%(run_ids)b::text[])
                 AND coalesce((SELECT 1 FROM runs n
                               WHERE n.event_id = r.event_id AND n.handler = r.handler
                                 AND n.seq > r.seq LIMIT 1), 0) = 0)
  AND e.status <> 'running';

-- name: heartbeat
-- Extends the leases that these claims still hold; an expired lease is over for good.
-- The rows are locked in id order first, as the batched step records and run endings lock
-- theirs (lock_runs, record_steps, finish_runs): many-row writes of one worker never
-- deadlock.
WITH locked AS (
    SELECT id FROM runs WHERE id = ANY(%(ids)b::text[]) ORDER BY id FOR NO KEY UPDATE
)
UPDATE runs r SET lease_expires_at = hookline_now() + %(lease)s
FROM unnest(%(ids)b::text[], %(fences)b::bigint[]) AS c(id, fence)
WHERE r.id = ANY(%(ids)b::text[]) AND r.id = c.id AND r.fence = c.fence
  AND r.lease_owner = %(worker_id)s
  AND r.id IN (SELECT id FROM locked)
  AND r.status IN ('running', 'cancelled') AND r.lease_expires_at >= hookline_now()
RETURNING r.id, r.status;

-- name: record_step
-- One attempt of one step and the memo, written only while the claim is held (the row
-- lock makes a concurrent reclaim wait). A step that succeeded is the memo: a later failed
-- attempt never overwrites it. Answers how many claims were held: 1 written, 0 refused.
WITH held AS (
    SELECT id FROM runs
    WHERE id = %(run_id)s AND fence = %(fence)s AND lease_owner = %(worker_id)s
      AND status IN ('running', 'cancelled') AND lease_expires_at >= hookline_now()
    FOR SHARE
), attempt AS (
    INSERT INTO step_attempts (run_id, event_id, handler, generation, step_name, number,
                               started_at, ended_at, outcome, error, traceback)
    SELECT held.id, %(event_id)s::text, %(handler)s::text, %(generation)s::int,
           %(name)s::text, %(number)s::int, %(started_at)s::float8, %(ended_at)s::float8,
           %(outcome)s::text, %(error)s::text, %(traceback)s::text
    FROM held
    WHERE NOT EXISTS (  -- once: a write retried after a commit whose answer was lost
        SELECT 1 FROM step_attempts
        WHERE event_id = %(event_id)s AND handler = %(handler)s
          AND generation = %(generation)s AND step_name = %(name)s
          AND run_id = %(run_id)s AND number = %(number)s)
), memo AS (
    INSERT INTO steps (event_id, handler, generation, name, position, status, result,
                       updated_at)
    SELECT %(event_id)s::text, %(handler)s::text, %(generation)s::int, %(name)s::text,
           %(position)s::int, %(outcome)s::text, %(result)s::text, %(ended_at)s::float8
    FROM held
    ON CONFLICT (event_id, handler, generation, name) DO UPDATE
    SET status = excluded.status, result = excluded.result, position = excluded.position,
        updated_at = excluded.updated_at
    WHERE steps.status <> 'succeeded'
)
SELECT count(*) FROM held;

-- name: lock_runs
-- A batch of step records and endings (PostgresStore._write_batch) locks all its runs in id
-- order first: record_steps and finish_runs each lock theirs in id order, but one after the
-- other the batch's order would not be one order, and a heartbeat of the same runs (which
-- locks them all in id order) could deadlock with it.
SELECT id FROM runs WHERE id = ANY(%(ids)b::text[]) ORDER BY id FOR NO KEY UPDATE;

-- name: record_steps
-- record_step for many claims at once (hookline.store.pg_batch): one statement, one commit.
-- The parameters are arrays, one element per attempt; no two share a memo key. Answers the
-- runs whose claim was held (each locked FOR SHARE, in id order, while its rows are written).
WITH input AS (
    SELECT * FROM unnest(%(run_ids)b::text[], %(fences)b::bigint[], %(worker_ids)b::text[],
                         %(event_ids)b::text[], %(handlers)b::text[], %(generations)b::int[],
                         %(names)b::text[], %(positions)b::int[], %(numbers)b::int[],
                         %(started_at)b::float8[], %(ended_at)b::float8[],
                         %(outcomes)b::text[], %(errors)b::text[], %(tracebacks)b::text[],
                         %(results)b::text[])
        AS i(run_id, fence, worker_id, event_id, handler, generation, name, position, number,
             started_at, ended_at, outcome, error, traceback, result)
), held AS (
    SELECT r.id FROM runs r
    WHERE r.id = ANY(%(run_ids)b::text[])
      AND r.status IN ('running', 'cancelled') AND r.lease_expires_at >= hookline_now()
      AND EXISTS (SELECT 1 FROM input i
                  WHERE i.run_id = r.id AND i.fence = r.fence AND i.worker_id = r.lease_owner)
    ORDER BY r.id
    FOR SHARE
), attempt AS (
    INSERT INTO step_attempts (run_id, event_id, handler, generation, step_name, number,
                               started_at, ended_at, outcome, error, traceback)
    SELECT i.run_id, i.event_id, i.handler, i.generation, i.name, i.number, i.started_at,
           i.ended_at, i.outcome, i.error, i.traceback
    FROM input i
    WHERE i.run_id IN (SELECT id FROM held)
      AND NOT EXISTS (  -- once: a write retried after a commit whose answer was lost
        SELECT 1 FROM step_attempts a
        WHERE a.event_id = i.event_id AND a.handler = i.handler
          AND a.generation = i.generation AND a.step_name = i.name
          AND a.run_id = i.run_id AND a.number = i.number)
), memo AS (
    INSERT INTO steps (event_id, handler, generation, name, position, status, result,
                       updated_at)
    SELECT i.event_id, i.handler, i.generation, i.name, i.position, i.outcome, i.result,
           i.ended_at
    FROM input i
    WHERE i.run_id IN (SELECT id FROM held)
    ON CONFLICT (event_id, handler, generation, name) DO UPDATE
    SET status = excluded.status, result = excluded.result, position = excluded.position,
        updated_at = excluded.updated_at
    WHERE steps.status <> 'succeeded'
)
SELECT id FROM held;

-- name: finish_runs
-- finish_run for many claims at once (hookline.store.pg_batch), in a transaction that then
-- refreshes their events. The rows are locked in id order first (see heartbeat). Claims not
-- answered are not held: each goes the one-run way. The handlers of the runs ended here
-- whose next run may start now (a keyed run let go of its key; a run due again at once) are
-- woken (delivered at commit); the channel is PostgresStore.channel(handler), computed here
-- (a test checks they agree).
WITH locked AS (
    SELECT id FROM runs WHERE id = ANY(%(ids)b::text[]) ORDER BY id FOR NO KEY UPDATE
), ended AS (
    UPDATE runs r SET status = f.status, available_at = hookline_now() + f.delay,
                      result = f.result, error = f.error, attempts = r.attempts - f.refund,
                      lease_owner = NULL, lease_expires_at = NULL, updated_at = hookline_now()
    FROM unnest(%(ids)b::text[], %(fences)b::bigint[], %(worker_ids)b::text[],
                %(statuses)b::text[], %(delays)b::float8[], %(results)b::text[],
                %(errors)b::text[], %(refunds)b::int[])
         AS f(id, fence, worker_id, status, delay, result, error, refund)
    WHERE r.id = ANY(%(ids)b::text[]) AND r.id = f.id AND r.id IN (SELECT id FROM locked)
      AND r.fence = f.fence AND r.lease_owner = f.worker_id
      -- (SELECT 'running'), not the constant: a generic plan made on empty tables
      -- (hot_plans) would read every leased run through runs_leased, whose predicate the
      -- constant proves
      AND r.status = (SELECT 'running') AND r.lease_expires_at >= hookline_now()
    RETURNING r.id, r.event_id, r.concurrency_key, r.handler, r.status,
              r.available_at <= hookline_now() AS claimable_now
), notified AS (
    SELECT count(pg_notify('hookline_' || left(encode(sha256(convert_to(h, 'UTF8')), 'hex'), 32),
                           ''))
    FROM (SELECT DISTINCT handler AS h FROM ended
          WHERE concurrency_key IS NOT NULL
             OR (status IN ('queued', 'retrying') AND claimable_now)) AS handlers
)
SELECT id, event_id, concurrency_key, handler, claimable_now, (SELECT count FROM notified)
FROM ended;

-- name: lock_events_of_runs
-- lock_events, for the events of these runs (sent in one pipeline with the runs' ending).
SELECT id FROM events WHERE id IN (SELECT event_id FROM runs WHERE id = ANY(%(run_ids)b::text[]))
ORDER BY id FOR NO KEY UPDATE;

-- name: refresh_events_of_runs
-- refresh_event_status, for the events of these runs.
-- hookline_event_statuses is called per run (its argument must hold no subquery for it to be
-- inlined); an event two of the runs share is updated once.
UPDATE events e SET status = s.derived
FROM runs r CROSS JOIN LATERAL hookline_event_statuses(ARRAY[r.event_id]) AS s
WHERE r.id = ANY(%(run_ids)b::text[]) AND e.id = r.event_id;

-- name: channel_of
SELECT 'hookline_' || left(encode(sha256(convert_to(%(handler)s::text, 'UTF8')), 'hex'), 32);

-- name: finish_run
UPDATE runs SET status = %(status)s, available_at = hookline_now() + %(delay)s,
                result = %(result)s, error = %(error)s, attempts = attempts - %(refund)s,
                lease_owner = NULL, lease_expires_at = NULL, updated_at = hookline_now()
WHERE id = %(id)s AND fence = %(fence)s AND lease_owner = %(worker_id)s
  AND status = 'running' AND lease_expires_at >= hookline_now()
RETURNING event_id, concurrency_key, handler, available_at <= hookline_now();

-- name: already_finished
-- A finish retried after an error: the first one was written (same claim, same outcome).
SELECT 1 FROM runs
WHERE id = %(id)s AND fence = %(fence)s AND lease_owner IS NULL AND status = %(status)s;

-- name: run_key
SELECT event_id, concurrency_key, handler FROM runs WHERE id = %(id)s;

-- name: cancel_run
-- A running run keeps its lease until its worker lets go (release_cancelled): until then
-- no other run of its (event, handler) may start (see claim_runs).
UPDATE runs SET status = 'cancelled', updated_at = hookline_now()
WHERE id = %(id)s AND status IN ('queued', 'running', 'retrying');

-- name: release_cancelled
UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL
WHERE id = %(id)s AND fence = %(fence)s AND lease_owner = %(worker_id)s
  AND status = 'cancelled'
RETURNING event_id, handler;

-- name: prune_events
-- One chunk per transaction: no statement runs into the statement timeout.
DELETE FROM events WHERE id IN (
    SELECT id FROM events
    WHERE received_at < %(older_than)s
      AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.event_id = events.id
                      AND r.status IN ('queued', 'running', 'retrying'))
      AND (%(include_failed)s::boolean OR NOT EXISTS (SELECT 1 FROM runs r
                                                      WHERE r.event_id = events.id
                                                        AND r.status = 'failed'))
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED);

-- name: queue_depth
-- Bounded: at most %(cap)s entries of the runs_due index are read.
SELECT count(*) FROM (SELECT 1 FROM runs WHERE status IN ('queued', 'retrying')
                      LIMIT %(cap)s) AS due;

-- name: run_counts
SELECT status, count(*) FROM runs GROUP BY status;

-- name: upsert_worker
INSERT INTO workers (id, host, pid, started_at, heartbeat_at, stats, stopped)
VALUES (%(id)s, %(host)s, %(pid)s, %(started_at)s, hookline_now(), %(stats)s, false)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, stats = excluded.stats,
                               stopped = false;

-- name: worker_stopped
UPDATE workers SET stopped = true, stats = %(stats)s WHERE id = %(id)s;

-- name: live_workers
SELECT count(*) FROM workers WHERE heartbeat_at >= hookline_now() - %(within)s AND NOT stopped;

-- name: worker_stats
SELECT stats FROM workers;

-- name: stale_workers
SELECT id, stats FROM workers
WHERE heartbeat_at < hookline_now() - %(after)s AND id <> 'retired'
FOR UPDATE;

-- name: retired_stats
SELECT stats FROM workers WHERE id = 'retired' FOR UPDATE;

-- name: delete_workers
DELETE FROM workers WHERE id = ANY(%(ids)b::text[]);

-- name: upsert_retired
INSERT INTO workers (id, host, pid, started_at, heartbeat_at, stats, stopped)
VALUES ('retired', '', 0, 0, 0, %(stats)s, true)
ON CONFLICT (id) DO UPDATE SET stats = excluded.stats;

-- Jobs (app/store/jobs.py runs these on either dialect). ------------------------------------

-- name: job_insert
-- The job's event and its first run in one statement (what SQLite's trigger job_first_run
-- does); nothing at all when its key is taken (no row returned). The run's foreign key is
-- checked at the end of the statement, when the event exists.
WITH event AS (
    INSERT INTO events (id, source, provider_event_id, type, status, received_at, headers, body,
                        job)
    VALUES (%(id)s, %(source)s, %(provider_event_id)s, %(type)s, %(status)s, %(received_at)s,
            %(headers)s, %(body)s, %(job)s)
    ON CONFLICT (source, provider_event_id) DO NOTHING
    RETURNING id, received_at
), run AS (
    INSERT INTO runs (id, event_id, handler, generation, status, attempts, max_attempts,
                      available_at, concurrency_key, created_at, updated_at)
    -- due by the database's clock: the delay the request asked for, after its now
    SELECT %(run_id)s::text, event.id, %(run_handler)s::text, 0, 'queued', 0,
           %(run_max_attempts)s::integer,
           hookline_now() + (%(run_at)s::float8 - %(received_at)s::float8),
           %(run_concurrency_key)s::text, hookline_now(), hookline_now()
    FROM event
    WHERE %(run_id)s::text IS NOT NULL
)
SELECT id FROM event;

-- name: job_insert_first_run
-- Nothing to do: job_insert inserted the first run in its WITH.

-- name: job_insert_run
-- Due by the database's clock: `available_at - now` is the delay the caller asked for.
INSERT INTO runs (id, event_id, handler, generation, status, attempts, max_attempts,
                  available_at, concurrency_key, created_at, updated_at)
VALUES (%(id)s, %(event_id)s, %(handler)s, %(generation)s, 'queued', 0, %(max_attempts)s,
        hookline_now() + (%(available_at)s::float8 - %(now)s::float8), %(concurrency_key)s,
        hookline_now(), hookline_now());

-- name: job_notify
-- Wakes the workers that loaded these handlers: the channel of each, as
-- hookline.store.postgres.channel names it ('hookline_' + 32 hex digits of its SHA-256).
SELECT pg_notify('hookline_' || left(encode(sha256(convert_to(h, 'UTF8')), 'hex'), 32), '')
FROM unnest(%(handlers)b::text[]) AS h;

-- name: job_lock_by_key
-- The row lock makes a second request with this key wait, so two cannot both resume a job.
-- READ COMMITTED: a request that lost the insert race sees the winner's committed row here.
SELECT e.id, e.status, e.job
FROM events e
WHERE e.source = 'jobs' AND e.provider_event_id = %(provider_event_id)s
FOR NO KEY UPDATE;

-- name: job_latest_runs
SELECT id, handler, generation, status, max_attempts, concurrency_key
FROM (SELECT DISTINCT ON (handler) id, handler, generation, status, max_attempts,
                                   concurrency_key, seq
      FROM runs WHERE event_id = %(event_id)s
      ORDER BY handler, seq DESC) AS latest
ORDER BY seq;

-- name: job_refresh_status
-- The caller holds the event's row lock (job_lock_by_key).
UPDATE events e SET status = hookline_event_status(e.id)
WHERE e.id = %(id)s;

-- name: job_by_id
SELECT e.id, e.source, e.provider_event_id, e.type, e.status, e.received_at, e.seq, e.job
FROM events e
WHERE e.id = %(id)s AND e.source = 'jobs';

-- name: job_runs
SELECT id, event_id, handler, generation, status, attempts, max_attempts, available_at,
       created_at, updated_at, result, error, concurrency_key
FROM runs WHERE event_id = %(event_id)s ORDER BY seq;

-- Schedules (app/store/schedules.py runs these on either dialect; named parameters). ------

-- name: schedule_ensure
INSERT INTO schedule_state (name, paused, updated_at) VALUES (%(name)s, false, %(now)s)
ON CONFLICT (name) DO NOTHING;

-- name: schedule_lock
-- Every write of one schedule (its ticks, triggers, pause) takes this row lock first: they
-- take turns, so two processes cannot both see "no active job" and both enqueue one.
SELECT paused, resumed_at, last_job_id FROM schedule_state WHERE name = %(name)s FOR UPDATE;

-- name: schedule_set_paused
UPDATE schedule_state SET paused = %(paused)s, resumed_at = %(resumed_at)s, updated_at = %(now)s
WHERE name = %(name)s;

-- name: schedule_set_last_job
UPDATE schedule_state SET last_job_id = %(job_id)s, updated_at = %(now)s WHERE name = %(name)s;

-- name: schedule_job_status
SELECT status FROM events WHERE id = %(id)s;

-- name: tick_insert
INSERT INTO schedule_ticks (schedule, tick_at, outcome, job_id, recorded_at)
VALUES (%(schedule)s, %(tick_at)s, %(outcome)s, %(job_id)s, %(now)s)
ON CONFLICT (schedule, tick_at) DO NOTHING
RETURNING tick_at;

-- name: tick_set_job
UPDATE schedule_ticks SET job_id = %(job_id)s
WHERE schedule = %(schedule)s AND tick_at = %(tick_at)s;

-- name: ticks_prune
-- Keep the newest `keep` ticks of the schedule.
DELETE FROM schedule_ticks
WHERE schedule = %(schedule)s
  AND tick_at < (SELECT tick_at FROM schedule_ticks WHERE schedule = %(schedule)s
                 ORDER BY tick_at DESC LIMIT 1 OFFSET %(keep)s - 1);

-- name: schedule_state
SELECT paused, resumed_at, last_job_id FROM schedule_state WHERE name = %(name)s;

-- name: ticks_newest
SELECT tick_at, outcome, job_id, recorded_at FROM schedule_ticks
WHERE schedule = %(name)s ORDER BY tick_at DESC LIMIT %(limit)s;

-- name: session_insert
INSERT INTO admin_sessions (id_hash, token_hash, created_at, expires_at)
VALUES (%(id_hash)s, %(token_hash)s, hookline_now(), hookline_now() + %(max_age)s);

-- name: sessions_expire
DELETE FROM admin_sessions WHERE expires_at <= hookline_now();

-- name: session_valid
SELECT 1 FROM admin_sessions
WHERE id_hash = %(id_hash)s AND token_hash = %(token_hash)s AND expires_at > hookline_now();

-- name: sessions_of_other_tokens_delete
DELETE FROM admin_sessions WHERE token_hash <> %(token_hash)s;

-- name: session_delete
DELETE FROM admin_sessions WHERE id_hash = %(id_hash)s;

-- name: storage_probe
-- SQLite only (its readiness probe while a storage fault is in force).

-- name: schema_migrations_exists
SELECT to_regclass('schema_migrations');

-- name: tables_named
SELECT c.relname FROM pg_class c
WHERE c.relkind IN ('r', 'p', 'v', 'm') AND c.relname = ANY(%(names)s)
  AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema());
