-- hookline schema v10 (PostgreSQL): claims read the due runs of a handler in claim order.
--
-- claim_due takes each handler's first due runs ordered by (available_at, seq). The index
-- had (handler, available_at) only, so PostgreSQL sorted every due run of the handler —
-- probing each for a held sibling first — before it could take the first few: each claim
-- cost the whole backlog (a 20,000-event bench: ~550 index probes per run claimed, most of
-- the database's CPU). With seq in the index the scan is already in claim order and stops
-- once the claim has its runs (and the rows it skipped as locked).

DROP INDEX runs_due_handler;
CREATE INDEX runs_due_handler ON runs (handler, available_at, seq)
WHERE status IN ('queued', 'retrying');
