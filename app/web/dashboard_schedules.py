"""The dashboard's schedules page (server-rendered, like the events pages).

    GET  /admin/ui/schedules                   every schedule: timing, state, last ticks
    GET  /admin/ui/schedules/live              fragment: the same table (polled every 2 s)
    POST /admin/ui/schedules/{name}/pause      form
    POST /admin/ui/schedules/{name}/resume     form
    POST /admin/ui/schedules/{name}/trigger    form: run the schedule's job now

Every form carries the session's CSRF token (403 without it), as on the events pages.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from hookline.jobs import JobRejected
from hookline.schedules import Schedules, UnknownSchedule
from hookline.web.dashboard import PREFIX, checked_form, html, message

PAGE = f"{PREFIX}/ui/schedules"
_DONE = {"pause": "paused", "resume": "resumed", "trigger": "triggered"}
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def _schedules(request: Request) -> Schedules:
    schedules: Schedules = request.app.state.schedules
    return schedules


async def _context(request: Request) -> dict[str, Any]:
    return {
        "views": await _schedules(request).views(),
        "session": await request.app.state.sessions.of(request),
    }


async def schedules_page(request: Request) -> Response:
    """With ``?done=&name=&job=`` (after a form) it says what was done."""
    done = request.query_params.get("done", "")
    name = request.query_params.get("name", "")
    job_id = request.query_params.get("job", "")
    known = any(s.name == name for s in _schedules(request).configured)
    return html(
        "schedules.html",
        **await _context(request),
        done=done if done in _DONE.values() and known else "",
        done_name=name,
        job_id=job_id if _JOB_ID.fullmatch(job_id) else "",
    )


async def schedules_fragment(request: Request) -> Response:
    return html("_schedules.html", **await _context(request))


async def act(request: Request) -> Response:
    checked = await checked_form(request)
    if isinstance(checked, Response):
        return checked
    _, session = checked
    name = request.path_params["name"]
    action = request.url.path.rsplit("/", 1)[1]
    schedules = _schedules(request)
    query = {"done": _DONE[action], "name": name}
    try:
        if action == "trigger":
            query["job"] = await schedules.trigger(name)
        else:
            await schedules.set_paused(name, action == "pause")
    except UnknownSchedule as exc:
        return message(404, "Not found", str(exc), session)
    except JobRejected as exc:
        return message(exc.status, "Not triggered", exc.detail, session)
    return RedirectResponse(f"{PAGE}?{urlencode(query)}", status_code=303)


routes = [
    Route("/ui/schedules", schedules_page, methods=["GET"]),
    Route("/ui/schedules/live", schedules_fragment, methods=["GET"]),
    *(
        Route(f"/ui/schedules/{{name}}/{action}", act, methods=["POST"], name=f"schedule-{action}")
        for action in _DONE
    ),
]
