"""Crash and shutdown: kill -9 of a worker mid-step, SIGTERM under load."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from hookline.store import open_store
from tests.support.clients import all_events, event_detail, post_stripe, wait_for, wait_status
from tests.support.procs import children
from tests.support.server import HooklineProcess, base_config

HANDLERS = ["tests.e2e.pipeline_handlers"]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_killed_worker_run_is_reclaimed_and_only_the_step_in_flight_repeats(
    tmp_path: Path, db_url: str
) -> None:
    env = {"HOOKLINE_TEST_DIR": str(tmp_path)}
    config = base_config(db_url, handlers=HANDLERS, workers=0, pipeline={"lease_seconds": 1.5})
    server = HooklineProcess(tmp_path, config, env=env).start()
    first = HooklineProcess(tmp_path, config, command="worker", env=env).start()
    second = HooklineProcess(tmp_path, config, command="worker", env=env)
    try:
        event_id = post_stripe(server, "evt_crash", "test.block")["id"]
        wait_for(lambda: "blocking-start evt_crash" in lines(tmp_path / "effects.log"))
        second.start()
        first.kill9()  # mid-step: "before" succeeded, "blocking" is in flight
        (tmp_path / "release-evt_crash").touch()
        with server.admin() as admin:
            detail = wait_status(admin, event_id, "succeeded", timeout=30)
        effects = lines(tmp_path / "effects.log")
        assert effects.count("before evt_crash") == 1  # succeeded step: exactly once
        assert effects.count("blocking-start evt_crash") == 2  # in flight: at least once
        assert effects.count("after evt_crash") == 1
        run = detail["runs"][0]
        assert run["attempts"] == 2
        assert [a["outcome"] for a in run["steps"][1]["attempts"]] == ["succeeded"]
    finally:
        second.stop()
        server.stop()


def test_kill_9_amid_batched_step_records_never_repeats_a_recorded_step(
    tmp_path: Path, db_url: str
) -> None:
    """Many runs in flight share each commit of step records (SQLite's group commit, the
    PostgreSQL batches). A worker killed amid them: a step whose record was committed never
    runs again, and no run went on to its next step before that record was committed —
    so once "two" of an event has started, its "one" never runs again."""
    env = {"HOOKLINE_TEST_DIR": str(tmp_path)}
    pipeline = {"lease_seconds": 1.5, "concurrency": 32}
    config = base_config(db_url, handlers=HANDLERS, workers=0, pipeline=pipeline)
    server = HooklineProcess(tmp_path, config, env=env).start()
    first = HooklineProcess(tmp_path, config, command="worker", env=env)
    second = HooklineProcess(tmp_path, config, command="worker", env=env)
    total = 300
    try:
        for i in range(total):
            post_stripe(server, f"evt_batch_{i}", "test.two_steps")
        first.start()
        wait_for(lambda: len(lines(tmp_path / "effects.log")) >= 150, what="runs under way")
        first.kill9()  # amid batches: some records committed, some in flight
        killed_at = len(lines(tmp_path / "effects.log"))
        second.start()
        with server.admin() as admin:
            wait_for(
                lambda: all(
                    e["status"] == "succeeded" for e in all_events(admin, type="test.two_steps")
                ),
                timeout=60,
                what="every run to succeed after the kill",
            )
        effects = lines(tmp_path / "effects.log")
        assert killed_at < 2 * total, "the kill came after every run had finished"
        for i in range(total):
            mine = [line.split()[0] for line in effects if line.endswith(f" evt_batch_{i}")]
            assert "two" in mine
            started_two = mine.index("two")
            assert "one" not in mine[started_two:], (i, mine)  # never repeated once recorded
            assert 1 <= mine.count("one") <= 2 and 1 <= mine.count("two") <= 2, (i, mine)
    finally:
        second.stop()
        server.stop()


def run_counts(url: str) -> dict[str, int]:
    async def read() -> dict[str, int]:
        store = open_store(url)
        await store.open()
        try:
            return await store.run_counts()
        finally:
            await store.close()

    return asyncio.run(read())


def test_sigterm_under_load_loses_no_run(tmp_path: Path, db_url: str) -> None:
    env = {"HOOKLINE_TEST_DIR": str(tmp_path)}
    config = base_config(db_url, handlers=HANDLERS, workers=2, pipeline={"concurrency": 8})
    server = HooklineProcess(tmp_path, config, env=env).start()
    ids = [post_stripe(server, f"evt_load_{i}", "test.slow")["id"] for i in range(120)]
    assert server.terminate(timeout=60) == 0
    statuses = run_counts(db_url)
    assert statuses.get("running", 0) == 0, statuses  # drained or released, never stuck
    assert sum(statuses.values()) == 120
    server.start()
    try:
        with server.admin() as admin:
            wait_for(
                lambda: all(
                    e["status"] == "succeeded" for e in all_events(admin, type="test.slow")
                ),
                timeout=60,
                what="every run to succeed after restart",
            )
            assert len(all_events(admin, type="test.slow")) == 120
            for event_id in ids[:5]:
                assert event_detail(admin, event_id)["runs"][0]["status"] == "succeeded"
        effects = lines(tmp_path / "effects.log")
        assert all(effects.count(f"b evt_load_{i}") == 1 for i in range(120))
    finally:
        server.stop()


def test_workers_stop_when_their_serve_process_is_killed(tmp_path: Path, sqlite_url: str) -> None:
    config = base_config(sqlite_url, handlers=HANDLERS, workers=2)
    server = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)}).start()
    assert server.proc is not None
    pid = server.proc.pid
    workers = wait_for(
        lambda: children(pid) if len(children(pid)) == 2 else None, what="two worker processes"
    )
    os.kill(pid, signal.SIGKILL)  # the serve process alone: its workers are orphaned
    server.proc.wait()

    def gone() -> bool:
        return not any(
            Path(f"/proc/{child}").exists() and "zombie" not in _state(child) for child in workers
        )

    wait_for(gone, timeout=15, what="orphaned workers to exit")
    assert "supervisor is gone" in server.logs()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"


def test_serve_restarts_a_worker_that_died(tmp_path: Path, sqlite_url: str) -> None:
    config = base_config(sqlite_url, handlers=HANDLERS, workers=2)
    server = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)}).start()
    try:
        assert server.proc is not None
        serve = server.proc.pid

        def workers() -> list[int]:  # children of any thread (restarts come from a monitor)
            return children(serve)

        first = wait_for(lambda: workers() if len(workers()) == 2 else None, what="2 workers")
        os.kill(first[0], signal.SIGKILL)
        wait_for(
            lambda: len(workers()) == 2 and first[0] not in workers(),
            timeout=20,
            what="a replacement worker",
        )
        assert "worker exited; restarting" in server.logs()
        with server.admin() as admin:  # and the pipeline still works
            event_id = post_stripe(server, "evt_after_restart", "test.two_steps")["id"]
            wait_status(admin, event_id, "succeeded")
    finally:
        server.stop()


def test_serve_leaves_alone_a_worker_stopped_on_purpose(tmp_path: Path, sqlite_url: str) -> None:
    config = base_config(sqlite_url, handlers=HANDLERS, workers=2)
    server = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)}).start()
    try:
        assert server.proc is not None
        serve = server.proc.pid

        def workers() -> list[int]:  # children of any thread (restarts come from a monitor)
            return children(serve)

        first = wait_for(lambda: workers() if len(workers()) == 2 else None, what="2 workers")
        wait_for(lambda: server.logs().count('"worker started"') == 2, what="signal handlers")
        os.kill(first[0], signal.SIGTERM)  # a graceful stop: exit status 0
        wait_for(lambda: workers() == [first[1]] or None, timeout=15, what="one worker left")
        time.sleep(2.5)  # longer than the restart delay
        assert workers() == [first[1]]
        assert "worker exited; restarting" not in server.logs()
    finally:
        server.stop()


def test_a_stop_signal_to_the_process_group_lets_the_workers_drain(
    tmp_path: Path, sqlite_url: str
) -> None:
    """systemd's control-group kill (or Ctrl-C's SIGINT) reaches a worker directly and again
    as the SIGTERM serve relays: that must not be the "second signal" that exits at once and
    leaves the step in flight to run again after its lease."""
    env = {"HOOKLINE_TEST_DIR": str(tmp_path)}
    config = base_config(sqlite_url, handlers=HANDLERS, workers=1)
    server = HooklineProcess(tmp_path, config, env=env).start()
    assert server.proc is not None
    post_stripe(server, "evt_group", "test.fence", data={"seconds": 1.5})
    wait_for(
        lambda: any(
            line.startswith("a-start evt_group") for line in lines(tmp_path / "effects.log")
        )
    )
    os.killpg(server.proc.pid, signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    assert "second signal" not in server.logs()
    effects = [line.split()[0] for line in lines(tmp_path / "effects.log")]
    assert effects == ["a-start", "a-end", "b"]  # the run finished in the drain
