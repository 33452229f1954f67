"""Fault injection for end-to-end tests: a small file system that fills up, a PostgreSQL
cluster of the test's own that it may stop and start, and a tally of what the clients saw.

Never the shared PostgreSQL server: a test that needs the database down starts its own
cluster (``initdb`` into a temporary folder, a free port) and removes it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import free_port

PG_BIN = Path(os.environ.get("HOOKLINE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        reason = f"{what} needs root (mount / run PostgreSQL as its own user)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)


@contextlib.contextmanager
def small_disk(where: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where``; always unmounted afterwards."""
    _need_root("a small tmpfs")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Write a filler file until the disk is full; return it (delete it to free the space)."""
    filler = disk / "filler"
    with contextlib.suppress(OSError):  # ENOSPC: full (when writing, or already on close)
        with filler.open("wb") as out:
            while True:
                out.write(b"\0" * 16_384)
                out.flush()
    return filler


def _as_postgres(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, text=True
    )


class OwnPostgres:
    """A throwaway PostgreSQL cluster on a free port (trust auth), owned by one test."""

    def __init__(self) -> None:
        _need_root("a throwaway PostgreSQL cluster")
        if not (PG_BIN / "initdb").exists():
            pytest.fail(f"no PostgreSQL binaries at {PG_BIN} (set HOOKLINE_TEST_PG_BIN)")
        # not under pytest's tmp_path: its folders are root's alone, and the server runs as
        # the postgres user
        root = Path(tempfile.mkdtemp(prefix="hookline-pg-"))
        self.root = root
        self.data = root / "pgdata"
        self.port = free_port()
        shutil.chown(root, "postgres", "postgres")
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                     "postgres", "--no-sync")  # fmt: skip
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                     "-l", str(self.root / "pg.log"), "-w", "start")  # fmt: skip

    def stop(self) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Tally:
    """What clients saw: each answer by status, every acked event id, stray 5xx."""

    tried: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    unexpected: list[str] = field(default_factory=list)  # 5xx other than 503 + Retry-After

    def record(self, response: httpx.Response, event_id: str) -> None:
        self.tried += 1
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        if response.status_code == 200:
            self.acked.add(event_id)
        elif response.status_code == 503:
            body = response.json()
            if body.get("error") != "storage_unavailable" or not response.headers.get(
                "retry-after"
            ):
                self.unexpected.append(f"503 {response.text[:200]}")
        elif response.status_code >= 500:
            self.unexpected.append(f"{response.status_code} {response.text[:200]}")


def process_figures(pid: int) -> dict[str, int]:
    """Peak RSS (KiB) and open descriptors of a process and its children."""
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    peak = fds = 0
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
            fds = max(fds, len(os.listdir(f"/proc/{p}/fd")))
    return {"peak_rss_kib": peak, "fds": fds}


def report(name: str, tally: Tally, found: int, faults: int, extra: dict[str, Any]) -> None:
    """One line per fault test, for docs/reliability.md (run pytest with -s to see it)."""
    figures = {
        "requests": tally.tried,
        "faults": faults,
        "acked": len(tally.acked),
        "found": found,
        "503": tally.statuses.get(503, 0),
        "other_5xx": len(tally.unexpected),
        **extra,
    }
    print(f"\nFAULTS {name}: " + " ".join(f"{k}={v}" for k, v in figures.items()))


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
