"""The Stripe webhook receiver a user would write by hand: the benchmark's baseline.

Starlette, ``stripe.Webhook.construct_event`` on the raw body (the documented way),
then an INSERT and a COMMIT per request on one aiosqlite connection in WAL mode with
``synchronous=FULL`` (so the 200 is as durable as hookline's). Served by uvicorn with
one worker and its defaults (uvloop/httptools when installed, access log on)::

    BASELINE_DB=/tmp/b.db BASELINE_SECRET=whsec_... \\
        uvicorn baseline_receiver:app --app-dir bench --port 8500

``bench/ingest.py`` starts and stops it; it is not part of hookline.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator

import aiosqlite
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DB_PATH = os.environ.get("BASELINE_DB", "baseline.db")
SECRET = os.environ.get("BASELINE_SECRET", "")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    received_at REAL NOT NULL,
    payload     BLOB NOT NULL
)
"""


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    db = await aiosqlite.connect(DB_PATH)
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA synchronous = FULL")
    await db.execute(SCHEMA)
    await db.commit()
    app.state.db = db
    try:
        yield
    finally:
        await db.close()


async def stripe_webhook(request: Request) -> JSONResponse:
    payload = await request.body()
    sig_header = request.headers.get("stripe-signature", "")
    try:
        event = stripe.Webhook.construct_event(payload, sig_header, SECRET)
    except ValueError:
        return JSONResponse({"error": "invalid_payload"}, status_code=400)
    except stripe.SignatureVerificationError:
        return JSONResponse({"error": "invalid_signature"}, status_code=400)
    db: aiosqlite.Connection = request.app.state.db
    cursor = await db.execute(
        "INSERT INTO events (id, type, received_at, payload) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        (event.id, event.type, time.time(), payload),
    )
    await db.commit()
    return JSONResponse({"id": event.id, "duplicate": cursor.rowcount == 0})


app = Starlette(
    routes=[Route("/webhooks/stripe", stripe_webhook, methods=["POST"])], lifespan=lifespan
)
