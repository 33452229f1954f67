"""What the shared failed-login count costs the event loop, and its file on disk.

Fills a ``SharedLoginLimiter`` (``hookline.web.shared_lockout``) to its bound of kept
failures (``--rows``, default the bound) from distinct addresses, as a flood of guessers
would, then times ``failed`` (a new address: insert + two pruning deletes) and
``retry_after`` (one indexed read) on the full file, and prints the file's size.

    .venv/bin/python bench/lockout_cost.py [--rows 100000] [--calls 5000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from hookline.web.shared_lockout import FILE_NAME, MAX_ROWS, SharedLoginLimiter  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=MAX_ROWS)
    parser.add_argument("--calls", type=int, default=5_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hookline-lockout-") as tmp:
        limiter = SharedLoginLimiter(tmp, 10, 300.0)
        for n in range(args.rows):
            limiter.failed(f"2001:db8::{n:x}")
        started = time.perf_counter()
        for n in range(args.calls):
            limiter.failed(f"2001:db8:1::{n:x}")
        failed_us = (time.perf_counter() - started) / args.calls * 1e6
        started = time.perf_counter()
        for n in range(args.calls):
            limiter.retry_after(f"2001:db8::{n:x}")
        check_us = (time.perf_counter() - started) / args.calls * 1e6
        sizes = {
            name: os.path.getsize(os.path.join(tmp, name)) / 2**20
            for name in (FILE_NAME, f"{FILE_NAME}-wal")
            if os.path.exists(os.path.join(tmp, name))
        }
    print(
        f"{args.rows} failures kept: failed() {failed_us:.1f} µs, retry_after() {check_us:.1f} µs"
    )
    print("files: " + ", ".join(f"{name} {mib:.1f} MiB" for name, mib in sizes.items()))


if __name__ == "__main__":
    main()
