-- hookline schema v7 (SQLite): dashboard sessions kept on the server, and the table the
-- readiness probe writes to while a storage fault (a full disk) is in force.
-- Mirrors app/sql/postgres/migrations/0007_admin_sessions.sql (which has no probe table).
--
-- The cookie carries a signed session id; the row is what makes it valid. Logout deletes
-- the row, so a copied cookie stops working; a row made under another admin token does not
-- count, so rotating the token ends every session. Only hashes are stored: a read of the
-- database yields neither a usable session id nor the admin token.

CREATE TABLE admin_sessions (
    id_hash    TEXT PRIMARY KEY,        -- SHA-256 (hex) of the session id
    token_hash TEXT NOT NULL,           -- HMAC-SHA256 of the admin token it was made under
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

CREATE TABLE storage_probe (
    id     INTEGER PRIMARY KEY,
    filler BLOB NOT NULL
);
