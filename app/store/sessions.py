"""Dashboard sessions in the store, written once for both dialects (see ``program``).

A session row holds hashes only: of the session id (the cookie carries the id itself) and
of the admin token it was made under. A session is valid while its row exists, has not
expired (the store's clock) and names the current admin token: logout deletes the row, and
a new admin token matches no row made under the old one.
"""

from __future__ import annotations

from hookline.store.program import Program, Sql


def create(id_hash: str, token_hash: str, max_age: float, now: float) -> Program[None]:
    """Store a new session; expired rows of any session go at the same time."""
    yield Sql("sessions_expire", {"now": now})
    params = {"id_hash": id_hash, "token_hash": token_hash, "max_age": max_age, "now": now}
    yield Sql("session_insert", params)


def valid(id_hash: str, token_hash: str, now: float) -> Program[bool]:
    rows = yield Sql("session_valid", {"id_hash": id_hash, "token_hash": token_hash, "now": now})
    return bool(rows)


def delete(id_hash: str) -> Program[None]:
    yield Sql("session_delete", {"id_hash": id_hash})


def forget_other_tokens(token_hash: str) -> Program[None]:
    """Delete every session made under another admin token (run at start): going back to
    an earlier token does not bring its sessions back."""
    yield Sql("sessions_of_other_tokens_delete", {"token_hash": token_hash})
