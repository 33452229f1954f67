-- hookline schema v7 (PostgreSQL): dashboard sessions kept on the server.
-- Mirrors app/sql/sqlite/migrations/0007_admin_sessions.sql (whose probe table SQLite alone
-- needs: PostgreSQL's readiness probe is a query on a fresh connection).
--
-- The cookie carries a signed session id; the row is what makes it valid. Logout deletes
-- the row, so a copied cookie stops working; a row made under another admin token does not
-- count, so rotating the token ends every session. Only hashes are stored.

CREATE TABLE admin_sessions (
    id_hash    TEXT PRIMARY KEY,                -- SHA-256 (hex) of the session id
    token_hash TEXT NOT NULL,                   -- HMAC-SHA256 of the admin token it was made under
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);
