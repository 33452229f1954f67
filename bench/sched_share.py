"""The CPU share a worker keeps beside a busy normal process: nice 10 against SCHED_IDLE.

Two CPU-bound processes pinned to one core for ``--seconds``: a normal one, and one at
``[pipeline] worker_nice = 10`` alone or with ``worker_sched_idle`` besides (Linux only).
Prints each one's CPU seconds and the low-priority one's share.

    .venv/bin/python bench/sched_share.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import time


def burn(seconds: float) -> float:
    """Spin for ``seconds`` of wall time; the CPU seconds this process got meanwhile."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return time.process_time()


def share(mode: str, seconds: float) -> tuple[float, float]:
    """(low-priority CPU s, normal CPU s) with the child at ``mode``: "nice" or "idle"."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # the child inherits the core
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.nice(10)
        if mode == "idle":
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        os.write(write, f"{burn(seconds)}".encode())
        os._exit(0)
    os.close(write)
    start = time.process_time()
    normal = burn(seconds) - start
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        low = float(pipe.read())
    return low, normal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    for mode, label in (("nice", "nice 10"), ("idle", "nice 10 + SCHED_IDLE")):
        low, normal = share(mode, args.seconds)
        print(
            f"{label:<22} low-priority {low:6.3f} s, normal {normal:6.3f} s: "
            f"{100 * low / (low + normal):5.1f} % of the core"
        )


if __name__ == "__main__":
    main()
