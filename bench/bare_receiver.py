"""The ceiling: uvicorn + Starlette answering a constant 200, nothing verified or stored.

``bench/ingest.py`` runs it with as many processes as hookline (``uvicorn --workers N``,
uvloop, httptools, no access log), so "hookline / bare" is the share of the bare
framework's throughput that hookline keeps while verifying and durably storing::

    uvicorn bare_receiver:app --app-dir bench --port 8500 --workers 2 --no-access-log
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ANSWER = b'{"id":"bare","eventId":"bare","duplicate":false}'


async def webhook(request: Request) -> Response:
    await request.body()  # read it, as any receiver must
    return Response(ANSWER, media_type="application/json")


async def ready(request: Request) -> Response:
    return Response(b"ok")


app = Starlette(routes=[Route("/webhooks/stripe", webhook, methods=["POST"]),
                        Route("/readyz", ready)])  # fmt: skip
