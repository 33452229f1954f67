-- hookline schema v7 (SQLite): the SHA-256 of each event's raw body, for sources whose
-- event id comes from a header the signature does not cover (GitHub's X-GitHub-Delivery,
-- an HMAC source's id_header). The same signed body under another id within the source's
-- replay_window is a replay: answered as a duplicate of the first (hookline.ingest).
-- NULL for every other event, so the index holds only the events it is for.

ALTER TABLE events ADD COLUMN body_sha256 TEXT;
CREATE INDEX events_body_sha256 ON events (source, body_sha256, received_at)
    WHERE body_sha256 IS NOT NULL;
