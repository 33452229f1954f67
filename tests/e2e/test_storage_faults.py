"""Storage faults under a real ``hookline serve``: a full disk, a database server that stops
and starts. Whatever happens, an event answered 200 is stored; the rest get 503
``storage_unavailable`` with ``Retry-After``; ``/readyz`` says so; and the service recovers
by itself once the storage does. Figures for docs/reliability.md: ``pytest -s`` prints them.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.clients import _stripe, all_events, stripe_body, wait_for
from tests.support.faults import Tally, fill, process_figures, report, small_disk
from tests.support.server import API_KEY, HooklineProcess, base_config

HANDLERS = ["tests.e2e.pipeline_handlers", "tests.e2e.job_handlers"]
PAD = "x" * 3000  # each event ~3 KB: a 2 MiB disk fills for real


def effects(workdir: Path) -> dict[str, int]:
    """How often each step body ran, by "<step> <event id>" (see pipeline_handlers)."""
    path = workdir / "effects.log"
    lines = path.read_text().splitlines() if path.exists() else []
    found: dict[str, int] = {}
    for line in lines:
        found[line] = found.get(line, 0) + 1
    return found


def send(client: httpx.Client, url: str, event_id: str) -> httpx.Response:
    body = stripe_body(event_id, "test.two_steps", {"pad": PAD})
    headers = {"content-type": "application/json", **_stripe.sign(body, time.time())}
    return client.post(f"{url}/webhooks/stripe", content=body, headers=headers)


def burst(url: str, tally: Tally, prefix: str, n: int, parallel: int = 8) -> None:
    """``n`` webhooks, ``parallel`` at a time: several land in one group-commit batch."""
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(parallel) as pool:
        ids = [f"evt_{prefix}_{i}" for i in range(n)]
        for event_id, response in zip(ids, pool.map(lambda e: send(client, url, e), ids)):
            tally.record(response, event_id)


def test_a_full_disk_answers_503_and_recovers_by_itself(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "8m") as disk:
        config = base_config(f"sqlite:///{disk / 'hookline.db'}", handlers=HANDLERS)
        server = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)})
        server.start()
        worker: HooklineProcess | None = None
        try:
            tally = Tally()
            burst(server.url, tally, "before", 20)
            assert tally.statuses == {200: 20}

            filler = fill(disk)
            burst(server.url, tally, "full", 60)
            assert tally.statuses.get(503, 0) > 0, tally.statuses
            with httpx.Client(base_url=server.url, timeout=10) as client:
                ready = client.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["error"] == "storage_unavailable"
                assert ready.headers["retry-after"]
                job = client.post(
                    "/jobs/echo",
                    json={"pad": PAD},
                    headers={"Authorization": f"Bearer {API_KEY}"},
                )
                assert job.status_code == 503, job.text
                assert job.json()["error"] == "storage_unavailable"
                assert job.headers["retry-after"]

                filler.unlink()  # space returns; no restart, no request needed
                wait_for(lambda: client.get("/readyz").status_code == 200, 10, what="ready")
            burst(server.url, tally, "after", 20)
            assert tally.statuses.get(503, 0) + tally.statuses.get(200, 0) == tally.tried
            assert not tally.unexpected, tally.unexpected

            # Every acked event is stored once, and runs once, nothing else was stored.
            with server.admin() as admin:
                stored = [e["eventId"] for e in all_events(admin, source="stripe")]
            assert sorted(stored) == sorted(tally.acked)
            assert {f"evt_after_{i}" for i in range(20)} <= tally.acked
            figures = process_figures(server.proc.pid)  # type: ignore[union-attr]
            worker = HooklineProcess(tmp_path, config, command="worker",
                                     env={"HOOKLINE_TEST_DIR": str(tmp_path)}).start()  # fmt: skip
            wait_for(
                lambda: all(f"two {e}" in effects(tmp_path) for e in tally.acked),
                60,
                what="every acked event's handler to run",
            )
            ran = effects(tmp_path)
            duplicates = sum(n - 1 for n in ran.values())
            assert duplicates == 0
            report("sqlite_full_disk", tally, len(stored), 1,
                   {"duplicates": duplicates, **figures})  # fmt: skip
        finally:
            if worker is not None:
                worker.stop()
            server.stop()
