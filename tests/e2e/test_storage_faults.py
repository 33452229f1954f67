"""Storage faults under a real ``hookline serve``: a full disk, a database server that stops
and starts. Whatever happens, an event answered 200 is stored; the rest get 503
``storage_unavailable`` with ``Retry-After``; ``/readyz`` says so; and the service recovers
by itself once the storage does. Figures for docs/reliability.md: ``pytest -s`` prints them.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.clients import _stripe, all_events, stripe_body, wait_for
from tests.support.faults import OwnPostgres, Tally, fill, process_figures, report, small_disk
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
        answers = pool.map(lambda e: send(client, url, e), ids)
        for event_id, response in zip(ids, answers, strict=True):
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


class Load:
    """Webhooks sent without pause from ``parallel`` threads until stopped."""

    def __init__(self, url: str, parallel: int = 4) -> None:
        self.tally = Tally()
        self._url = url
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(parallel)
        ]

    def _run(self, n: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                event_id = f"evt_load_{n}_{i}"
                i += 1
                try:
                    response = send(client, self._url, event_id)
                except httpx.HTTPError as exc:  # counted: a request with no answer
                    with self._lock:
                        self.tally.tried += 1
                        self.tally.unexpected.append(f"no answer: {exc!r}")
                    continue
                with self._lock:
                    self.tally.record(response, event_id)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def test_postgres_stopped_and_started_under_load(tmp_path: Path) -> None:
    """On a cluster of this test's own: never the shared server."""
    pg = OwnPostgres()
    server: HooklineProcess | None = None
    try:
        pg.start()
        server = HooklineProcess(tmp_path, base_config(pg.url, handlers=HANDLERS)).start()
        with httpx.Client(base_url=server.url, timeout=30) as client, Load(server.url) as load:
            wait_for(lambda: len(load.tally.acked) >= 50, 30, what="acks before the outage")
            pg.stop()
            started = time.monotonic()
            ready = client.get("/readyz")
            readyz_seconds = time.monotonic() - started
            assert ready.status_code == 503
            assert ready.json() == {
                "error": "storage_unavailable",
                "detail": "the storage is unreachable, full or not migrated; see the server log",
            }
            assert ready.headers["retry-after"]
            assert readyz_seconds < 10  # was 30 s: the pool's wait (the figure is printed)
            wait_for(lambda: load.tally.statuses.get(503, 0) >= 5, 30, what="503s")
            time.sleep(1)
            acked_before_restart = len(load.tally.acked)
            pg.start()
            wait_for(lambda: client.get("/readyz").status_code == 200, 30, what="ready again")
            wait_for(
                lambda: len(load.tally.acked) >= acked_before_restart + 50, 30, what="acks after"
            )
        tally = load.tally
        assert not tally.unexpected, tally.unexpected[:5]
        assert set(tally.statuses) <= {200, 503}, tally.statuses
        with server.admin() as admin:
            stored = {e["eventId"] for e in all_events(admin, source="stripe")}
        assert tally.acked <= stored  # every 200 is stored
        figures = process_figures(server.proc.pid)  # type: ignore[union-attr]
        report("postgres_restart", tally, len(tally.acked & stored), 1,
               {"readyz_ms": round(readyz_seconds * 1000), "stored_total": len(stored),
                **figures})  # fmt: skip
    finally:
        if server is not None:
            server.stop()
        pg.remove()
