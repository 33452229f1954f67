-- hookline schema v11 (PostgreSQL): an event's status, derived from its runs, in one place.
--
-- The newest run of each of the event's handlers decides: running > retrying > queued >
-- failed > cancelled > succeeded; an event without runs is 'unhandled'. (SQLite's
-- counterpart is the view event_status.) refresh_event_status and refresh_events_of_runs
-- store it; the tests compare stored statuses with it. A single-expression SQL function:
-- PostgreSQL inlines it into the statements that call it.
CREATE OR REPLACE FUNCTION hookline_event_status(event_id text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT coalesce((
    SELECT CASE
        WHEN bool_or(latest.status = 'running') THEN 'running'
        WHEN bool_or(latest.status = 'retrying') THEN 'retrying'
        WHEN bool_or(latest.status = 'queued') THEN 'queued'
        WHEN bool_or(latest.status = 'failed') THEN 'failed'
        WHEN bool_or(latest.status = 'cancelled') THEN 'cancelled'
        WHEN count(*) > 0 THEN 'succeeded'
    END
    FROM (SELECT DISTINCT ON (r.handler) r.status FROM runs r
          WHERE r.event_id = hookline_event_status.event_id
          ORDER BY r.handler, r.seq DESC) AS latest
), 'unhandled')
$$;
