"""Storage faults under steady load, longer than the tests: the figures of
docs/reliability.md "Faults".

- ``sqlite``: a SQLite database on a small tmpfs; ``--cycles`` times the disk is filled
  (a filler file) for ``--down`` seconds, then freed, while 4 threads send signed webhooks
  without pause. One worker process runs a two-step handler throughout.
- ``postgres``: a throwaway PostgreSQL cluster of its own (never the shared server):
  ``--cycles`` times it is stopped (``pg_ctl -m fast``) for ``--down`` seconds and started.

Then, from the outside: every event answered 200 is stored, every step of every stored
event ran exactly once, no 5xx but ``503 storage_unavailable`` with ``Retry-After``, and
the peak RSS and open descriptors of the serve process and its worker.

    .venv/bin/python bench/faults.py [sqlite|postgres] [--cycles 3] [--down 3] [--up 4]

Needs root (mount, runuser). Loopback only; bounded in time; stops what it starts.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from tests.e2e.test_storage_faults import HANDLERS, Load, effects  # noqa: E402
from tests.support.clients import all_events, wait_for  # noqa: E402
from tests.support.faults import OwnPostgres, fill, process_figures, small_disk  # noqa: E402
from tests.support.server import HooklineProcess, base_config  # noqa: E402


class Peak:
    """Samples the figures of a process tree every 0.5 s; keeps the maxima."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.figures = {"peak_rss_kib": 0, "fds": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for key, value in process_figures(self.pid).items():
                self.figures[key] = max(self.figures[key], value)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return self.figures


def check(server: HooklineProcess, load: Load, workdir: Path) -> dict[str, Any]:
    with server.admin() as admin:
        stored = {e["eventId"] for e in all_events(admin, source="stripe")}
    wait_for(
        lambda: all(f"two {e}" in effects(workdir) for e in stored),
        120,
        what="every stored event's handler to finish",
    )
    ran = effects(workdir)
    tally = load.tally
    return {
        "requests": tally.tried,
        "answers": {str(k): v for k, v in sorted(tally.statuses.items())},
        "acked": len(tally.acked),
        "acked_and_found": len(tally.acked & stored),
        "stored": len(stored),
        "duplicate_side_effects": sum(n - 1 for n in ran.values()),
        "other_5xx_or_no_answer": len(tally.unexpected),
    }


def run(kind: str, cycles: int, down: float, up: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="hookline-faults-"))
    env = {"HOOKLINE_TEST_DIR": str(workdir)}
    pg: OwnPostgres | None = None
    with small_disk(workdir / "disk", "64m") as disk:
        if kind == "postgres":
            pg = OwnPostgres()
            pg.start()
            url = pg.url
        else:
            url = f"sqlite:///{disk / 'hookline.db'}"
        server = HooklineProcess(workdir, base_config(url, handlers=HANDLERS, workers=1), env=env)
        server.start()
        assert server.proc is not None
        peak = Peak(server.proc.pid)
        readyz_ms: list[float] = []
        try:
            with Load(server.url) as load, httpx.Client(base_url=server.url, timeout=30) as c:
                time.sleep(up)
                for _ in range(cycles):
                    filler = fill(disk) if kind == "sqlite" else None
                    if pg is not None:
                        pg.stop()
                    time.sleep(down / 2)
                    started = time.monotonic()
                    ready = c.get("/readyz").status_code
                    readyz_ms.append((time.monotonic() - started) * 1000)
                    assert ready == 503, ready
                    time.sleep(down / 2)
                    if filler is not None:
                        filler.unlink()
                    if pg is not None:
                        pg.start()
                    wait_for(lambda: c.get("/readyz").status_code == 200, 60, what="ready")
                    time.sleep(up)
            figures = check(server, load, workdir)
        finally:
            figures_peak = peak.stop()
            server.stop()
            if pg is not None:
                pg.remove()
    return {
        "kind": kind,
        "faults": cycles,
        **figures,
        **figures_peak,
        "readyz_ms_while_down": [round(ms) for ms in readyz_ms],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["sqlite", "postgres"])
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--down", type=float, default=3.0)
    parser.add_argument("--up", type=float, default=4.0)
    args = parser.parse_args()
    result = run(args.kind, args.cycles, args.down, args.up)
    print(json.dumps(result, indent=2))
    ok = (
        result["acked"] == result["acked_and_found"]
        and result["duplicate_side_effects"] == 0
        and result["other_5xx_or_no_answer"] == 0
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
