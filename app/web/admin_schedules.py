"""The admin API of schedules: list, pause, resume, trigger (behind ``AdminGuard``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hookline.jobs import JobRejected
from hookline.schedules import Schedules, ScheduleView, UnknownSchedule
from hookline.web.responses import JSON, error, iso


def schedule_item(view: ScheduleView) -> dict[str, Any]:
    config = view.config
    timing = {"cron": config.cron} if config.cron is not None else {"every": config.every}
    return {
        "name": config.name,
        "job": config.job,
        **timing,
        "timezone": config.timezone,
        "catchUp": config.catch_up,
        "overlap": config.overlap,
        "paused": view.state.paused,
        "nextTickAt": iso(view.next_tick_at),
        "lastTicks": [
            {"tickAt": iso(t.tick_at), "outcome": t.outcome, "jobId": t.job_id}
            for t in view.state.last_ticks
        ],
    }


def _schedules(request: Request) -> Schedules:
    schedules: Schedules = request.app.state.schedules
    return schedules


def _not_found(exc: UnknownSchedule) -> Response:
    return error(404, "not_found", str(exc))


async def list_schedules(request: Request) -> Response:
    views = await _schedules(request).views()
    return JSON({"items": [schedule_item(v) for v in views]})


async def pause(request: Request) -> Response:
    try:
        view = await _schedules(request).set_paused(request.path_params["name"], True)
    except UnknownSchedule as exc:
        return _not_found(exc)
    return JSON(schedule_item(view))


async def resume(request: Request) -> Response:
    try:
        view = await _schedules(request).set_paused(request.path_params["name"], False)
    except UnknownSchedule as exc:
        return _not_found(exc)
    return JSON(schedule_item(view))


async def trigger(request: Request) -> Response:
    try:
        job_id = await _schedules(request).trigger(request.path_params["name"])
    except UnknownSchedule as exc:
        return _not_found(exc)
    except JobRejected as exc:  # the job's handler is gone or its model changed
        return error(exc.status, exc.code, exc.detail)
    return JSON({"jobId": job_id}, status_code=202)


routes = [
    Route("/schedules", list_schedules, methods=["GET"]),
    Route("/schedules/{name}/pause", pause, methods=["POST"]),
    Route("/schedules/{name}/resume", resume, methods=["POST"]),
    Route("/schedules/{name}/trigger", trigger, methods=["POST"]),
]
