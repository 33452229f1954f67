"""Schedules in real ``hookline serve`` processes, on SQLite and PostgreSQL.

Every wait here waits on a condition (ticks recorded, side effects written), except the
downtime of the catch-up test, which *is* the scenario: time passing while nothing runs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from hookline.scheduler import MISSED_AFTER_SECONDS
from hookline.store import open_store
from hookline.store.base import EventFilter, TickRecord
from hookline.timetable import iso
from tests.support.clients import wait_for
from tests.support.server import HooklineProcess, base_config

HANDLERS = ["tests.e2e.schedule_handlers"]


def stored(db_url: str, schedule: str) -> tuple[list[TickRecord], dict[str, str]]:
    """Every tick record of ``schedule`` (oldest first) and the scheduledFor of each of its
    jobs (a job whose payload names another schedule is not its)."""

    async def read() -> tuple[list[TickRecord], dict[str, str]]:
        store = open_store(db_url)
        await store.open()
        try:
            state = await store.schedule_state(schedule, ticks=5000)
            jobs = {}
            for event in await store.list_events(EventFilter(source="jobs"), 5000, None):
                record = await store.get_event(event.id)
                assert record is not None
                data = json.loads(record.body)
                if data.get("schedule", schedule) == schedule:
                    jobs[event.id] = data["scheduledFor"]
            return list(reversed(state.last_ticks)), jobs
        finally:
            await store.close()

    return asyncio.run(read())


def effects(directory: Path, name: str = "ticks.log") -> list[list[str]]:
    path = directory / name
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def ticked(server: HooklineProcess) -> list[str]:
    """The ticks this process recorded (won), from its log."""
    found = []
    for line in server.logs().splitlines():
        if line.startswith("{") and '"schedule tick"' in line:
            entry = json.loads(line)
            if entry.get("outcome") in ("fired", "caught_up"):
                found.append(entry["tickAt"])
    return found


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_two_serve_processes_enqueue_each_tick_exactly_once(tmp_path: Path, db_url: str) -> None:
    schedule = {"name": "every-second", "job": "tick", "every": "1s", "overlap": "allow",
                "payload": {"schedule": "every-second"}}  # fmt: skip
    config = base_config(db_url, handlers=HANDLERS, workers=1, schedules=[schedule])
    env = {"HOOKLINE_TEST_DIR": str(tmp_path)}
    servers = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        servers.append(HooklineProcess(tmp_path / name, config, env=env))
    try:
        for server in servers:
            server.start()
        both_up = time.time()
        window = [float(t) for t in range(int(both_up) + 1, int(both_up) + 12)]  # 11 s

        def all_ran() -> bool:
            done = {ts(fields[1]) for fields in effects(tmp_path)}
            return set(window) <= done

        wait_for(all_ran, timeout=60, what="11 s of ticks, each run")
    finally:
        for server in servers:
            server.stop()

    records, jobs = stored(db_url, "every-second")
    in_window = [r for r in records if r.tick_at in window]
    assert [r.tick_at for r in in_window] == window  # every second, once (the primary key)
    assert {r.outcome for r in in_window} == {"fired"}
    assert len({r.job_id for r in in_window}) == len(window)
    for record in in_window:
        assert jobs[record.job_id or ""] == iso(record.tick_at)
    per_tick = [sum(1 for when in jobs.values() if ts(when) == t) for t in window]
    assert per_tick == [1] * len(window)  # one job per tick in the store
    runs = [ts(fields[1]) for fields in effects(tmp_path)]
    assert [runs.count(t) for t in window] == [1] * len(window)  # and each ran once
    # Both processes ticked; each tick was won by exactly one of them.
    won = [{ts(t) for t in ticked(server)} & set(window) for server in servers]
    assert "scheduler started" in servers[0].logs() and "scheduler started" in servers[1].logs()
    assert won[0] | won[1] == set(window) and not won[0] & won[1]
    print(f"ticks won: a={len(won[0])} b={len(won[1])}")


def test_overlap_skip_never_runs_two_at_once_and_records_skips(tmp_path: Path, db_url: str) -> None:
    schedule = {"name": "slow", "job": "slow", "every": "1s", "overlap": "skip",
                "payload": {"seconds": 1.5}}  # fmt: skip
    config = base_config(db_url, handlers=HANDLERS, workers=2, schedules=[schedule])
    server = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)})
    server.start()
    try:
        ends = lambda: [f for f in effects(tmp_path, "slow.log") if f[0] == "end"]  # noqa: E731
        wait_for(lambda: len(ends()) >= 3, timeout=60, what="three slow runs to end")
    finally:
        server.stop()

    lines = effects(tmp_path, "slow.log")
    starts = {f[1]: float(f[2]) for f in lines if f[0] == "start"}
    finished = {f[1]: float(f[2]) for f in lines if f[0] == "end"}
    spans = sorted((starts[k], finished.get(k, float("inf"))) for k in starts)
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        assert next_start >= end, spans  # never two at once
    records, _ = stored(db_url, "slow")
    outcomes = [r.outcome for r in records]
    assert set(outcomes) == {"fired", "skipped_overlap"}, outcomes
    assert outcomes.count("skipped_overlap") >= 2  # each run outlasts the next tick
    fired = [iso(r.tick_at) for r in records if r.outcome == "fired"]
    assert set(starts) <= set(fired)  # only fired ticks ran, each once
    assert len(starts) == len([f for f in lines if f[0] == "start"])
    assert all(r.job_id is None for r in records if r.outcome == "skipped_overlap")


def test_after_a_downtime_catch_up_skip_latest_all(tmp_path: Path, sqlite_url: str) -> None:
    modes = ("skip", "latest", "all")
    schedules = [
        {"name": f"catch-{mode}", "job": "tick", "every": "1s", "catch_up": mode,
         "overlap": "allow", "payload": {"schedule": f"catch-{mode}"}}
        for mode in modes
    ]  # fmt: skip
    config = base_config(sqlite_url, handlers=HANDLERS, workers=1, schedules=schedules)
    server = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)})

    def listed() -> dict[str, Any]:
        with server.admin() as admin:
            response = admin.get("/admin/schedules")
        assert response.status_code == 200, response.text
        return {item["name"]: item for item in response.json()["items"]}

    server.start()
    try:
        wait_for(
            lambda: all(len(item["lastTicks"]) >= 2 for item in listed().values()),
            timeout=30,
            what="two ticks of each schedule",
        )
    finally:
        server.stop()
    stopped = time.time()
    # Down across at least 3 ticks that are more than MISSED_AFTER_SECONDS old at restart.
    down_until = stopped + 3 + MISSED_AFTER_SECONDS + 1
    wait_for(lambda: time.time() > down_until, timeout=30, interval=0.2, what="the downtime")
    server.start()
    restarted = time.time()
    try:
        wait_for(
            lambda: all(ts(i["lastTicks"][0]["tickAt"]) > restarted for i in listed().values()),
            timeout=30,
            what="a tick of each schedule after the restart",
        )
    finally:
        server.stop()

    for mode in modes:
        records, jobs = stored(sqlite_url, f"catch-{mode}")
        late = [r for r in records if r.outcome in ("missed", "caught_up")]
        times = [r.tick_at for r in records]
        assert times == list(range(times[0], times[-1] + 1))  # no tick without a record
        assert len(late) >= 3 and all(stopped - 1 < r.tick_at < restarted for r in late)
        caught_up = [r for r in late if r.outcome == "caught_up"]
        if mode == "skip":
            assert caught_up == []
        elif mode == "latest":
            assert caught_up == [late[-1]]
        else:
            assert caught_up == late
        assert all(r.job_id is not None for r in caught_up)
        assert all(r.job_id is None for r in late if r.outcome == "missed")
        late_jobs = [t for t in jobs.values() if ts(t) in {r.tick_at for r in late}]
        assert len(late_jobs) == len(caught_up)  # skip: none; latest: one; all: each once
        assert all(r.outcome == "fired" for r in records if r not in late)


def test_admin_api_pause_resume_trigger_and_unknown(tmp_path: Path, db_url: str) -> None:
    schedules = [
        {"name": "nightly", "job": "tick", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
         "payload": {"schedule": "nightly"}},
        {"name": "often", "job": "tick", "every": "1s", "payload": {"schedule": "often"}},
    ]  # fmt: skip
    config = base_config(db_url, handlers=HANDLERS, workers=1, schedules=schedules)
    server = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)})
    server.start()
    try:
        with server.admin() as admin:
            assert httpx.get(f"{server.url}/admin/schedules").status_code == 401
            items = admin.get("/admin/schedules").json()["items"]
            nightly, often = items
            assert nightly["name"] == "nightly" and nightly["cron"] == "30 2 * * *"
            assert "every" not in nightly and nightly["timezone"] == "Europe/Berlin"
            assert (nightly["job"], nightly["paused"]) == ("tick", False)
            next_tick = datetime.fromisoformat(nightly["nextTickAt"].replace("Z", "+00:00"))
            assert next_tick.minute == 30 and next_tick.hour in (0, 1)  # 02:30 in Berlin
            assert often["every"] == "1s" and "cron" not in often

            paused = admin.post("/admin/schedules/often/pause")
            assert paused.status_code == 200, paused.text
            assert paused.json()["paused"] is True and paused.json()["nextTickAt"] is None
            before = len(admin.get("/admin/schedules").json()["items"][1]["lastTicks"])
            triggered = admin.post("/admin/schedules/often/trigger")
            assert triggered.status_code == 202, triggered.text
            job_id = triggered.json()["jobId"]

            def ran() -> bool:
                return any(f[2] == job_id for f in effects(tmp_path))

            wait_for(ran, timeout=30, what="the triggered job to run")
            # paused: no tick was recorded meanwhile (the trigger is no tick)
            after = admin.get("/admin/schedules").json()["items"][1]
            assert len(after["lastTicks"]) == before and after["paused"] is True
            (line,) = [f for f in effects(tmp_path) if f[2] == job_id]
            assert line[0] == "often" and abs(ts(line[1]) - time.time()) < 60

            resumed = admin.post("/admin/schedules/often/resume")
            assert resumed.status_code == 200 and resumed.json()["paused"] is False
            wait_for(
                lambda: len(admin.get("/admin/schedules").json()["items"][1]["lastTicks"]) > before,
                timeout=30,
                what="a tick after resume",
            )
            tick = admin.get("/admin/schedules").json()["items"][1]["lastTicks"][0]
            assert set(tick) == {"tickAt", "outcome", "jobId"}
            assert tick["outcome"] in ("fired", "skipped_overlap")

            for action in ("pause", "resume", "trigger"):
                missing = admin.post(f"/admin/schedules/nope/{action}")
                assert missing.status_code == 404
                assert missing.json()["error"] == "not_found" and "nope" in missing.json()["detail"]
            assert admin.get("/admin/schedules/often/pause").status_code == 405
    finally:
        server.stop()
