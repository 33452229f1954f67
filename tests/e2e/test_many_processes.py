"""Many processes against one store: fenced leases, the database's clock, rolling deploys.

Real ``hookline serve`` and ``hookline worker`` processes; side effects are lines the
handlers append to files, so the counts below come from what the steps did, not from
hookline's own tables.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.support.clients import event_detail, post_stripe, wait_for, wait_status
from tests.support.server import HooklineProcess, base_config

HANDLERS = ["tests.e2e.pipeline_handlers"]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def pause(proc: HooklineProcess, db_url: str) -> None:
    """SIGSTOP ``proc`` — but never while it holds SQLite's write lock (the other
    processes would then wait for a frozen process, which is not what is tested)."""
    assert proc.proc is not None
    for _ in range(50):
        os.kill(proc.proc.pid, signal.SIGSTOP)
        if not db_url.startswith("sqlite:"):
            return
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=0.2)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.rollback()
            return
        except sqlite3.OperationalError:
            os.kill(proc.proc.pid, signal.SIGCONT)
            time.sleep(0.05)
        finally:
            conn.close()
    raise AssertionError("the worker kept the write lock")


def test_a_worker_paused_past_its_lease_never_runs_the_next_step(
    tmp_path: Path, db_url: str
) -> None:
    """Step ``a`` (sync, 2.5 s) outlives the 1.5 s lease while its worker is SIGSTOPped; the
    other worker reclaims the run and finishes it. On SIGCONT the first worker's ``a``
    ends — its result is refused, and it must not start ``b``."""
    env = {"HOOKLINE_TEST_DIR": str(tmp_path)}
    config = base_config(db_url, handlers=HANDLERS, pipeline={"lease_seconds": 1.5})
    server = HooklineProcess(tmp_path, config, env=env).start()
    first = HooklineProcess(tmp_path, config, command="worker", env=env).start()
    second = HooklineProcess(tmp_path, config, command="worker", env=env)
    effects = tmp_path / "effects.log"
    try:
        event_id = post_stripe(server, "evt_fence", "test.fence", {"seconds": 2.5})["id"]
        assert first.proc is not None
        wait_for(lambda: f"a-start evt_fence {first.proc.pid}" in lines(effects))  # type: ignore[union-attr]
        pause(first, db_url)
        second.start()
        with server.admin() as admin:
            wait_status(admin, event_id, "succeeded", timeout=30)
            os.kill(first.proc.pid, signal.SIGCONT)
            # its thread ends at once (its sleep is over); wait until the worker has given
            # the run up after it — or has run b again
            wait_for(
                lambda: lines(effects).count("b evt_fence") > 1 or "run given up" in first.logs(),
                timeout=30,
                what="the paused worker to give the run up (or to run b again)",
            )
            assert lines(effects).count("b evt_fence") == 1
            assert lines(effects).count(f"a-end evt_fence {first.proc.pid}") == 1
            run = event_detail(admin, event_id)["runs"][0]
            assert run["status"] == "succeeded"
            for step in run["steps"]:
                outcomes = [a["outcome"] for a in step["attempts"]]
                assert outcomes == ["succeeded"], (step["name"], outcomes)
    finally:
        if first.proc is not None and first.proc.poll() is None:
            os.kill(first.proc.pid, signal.SIGCONT)
        first.stop()
        second.stop()
        server.stop()


@pytest.mark.postgres
def test_a_worker_clock_ahead_by_more_than_the_lease_reclaims_nothing_healthy(
    tmp_path: Path, pg_url: str
) -> None:
    """On PostgreSQL the database's clock decides leases: a worker whose own clock is
    five minutes ahead must not take a run that a healthy worker holds (lease 2 s)."""
    env = {"HOOKLINE_TEST_DIR": str(tmp_path)}
    config = base_config(pg_url, handlers=HANDLERS, pipeline={"lease_seconds": 2})
    server = HooklineProcess(tmp_path, config, env=env).start()
    healthy = HooklineProcess(tmp_path, config, command="worker", env=env).start()
    skewed = HooklineProcess(
        tmp_path,
        config,
        command="worker",
        env={**env, "HOOKLINE_TEST_CLOCK_OFFSET": "300"},
        module="tests.support.skewed_clock",
    )
    effects = tmp_path / "effects.log"
    try:
        event_id = post_stripe(server, "evt_skew", "test.block")["id"]
        wait_for(lambda: "blocking-start evt_skew" in lines(effects))
        skewed.start()
        wait_for(lambda: "worker started" in skewed.logs(), what="the skewed worker")
        # The skewed worker polls every 10 ms; with its own clock it would reclaim at once.
        # A bounded window (several healthy heartbeats) is the only way to see "never".
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            assert lines(effects).count("blocking-start evt_skew") == 1
            time.sleep(0.1)
        (tmp_path / "release-evt_skew").touch()
        with server.admin() as admin:
            detail = wait_status(admin, event_id, "succeeded", timeout=30)
        assert detail["runs"][0]["attempts"] == 1
        assert lines(effects).count("blocking-start evt_skew") == 1
        assert lines(effects).count("after evt_skew") == 1
    finally:
        skewed.stop()
        healthy.stop()
        server.stop()


def test_a_worker_leaves_runs_of_handlers_it_has_not_loaded(tmp_path: Path, db_url: str) -> None:
    """A rolling deploy: the old worker has not loaded the new handler. Its runs wait,
    visible in the admin API, until a worker that has loaded it takes them."""
    env = {"HOOKLINE_TEST_DIR": str(tmp_path)}
    handlers = [*HANDLERS, "tests.e2e.other_handlers"]
    server = HooklineProcess(tmp_path, base_config(db_url, handlers=handlers), env=env).start()
    old_config = base_config(db_url, handlers=["tests.e2e.other_handlers"])
    old = HooklineProcess(tmp_path, old_config, command="worker", env=env).start()
    new_config = base_config(db_url, handlers=handlers)
    new = HooklineProcess(tmp_path, new_config, command="worker", env=env)
    try:
        with server.admin() as admin:
            waiting = post_stripe(server, "evt_new_handler", "test.two_steps")["id"]
            # posted later: once it succeeded, the old worker has polled past the first one
            known = post_stripe(server, "evt_old_handler", "test.other")["id"]
            wait_status(admin, known, "succeeded")
            detail = event_detail(admin, waiting)
            assert detail["status"] == "queued"
            assert [(r["status"], r["attempts"]) for r in detail["runs"]] == [("queued", 0)]
            new.start()
            detail = wait_status(admin, waiting, "succeeded")
            assert detail["runs"][0]["attempts"] == 1
        assert lines(tmp_path / "effects.log").count("one evt_new_handler") == 1
    finally:
        new.stop()
        old.stop()
        server.stop()
