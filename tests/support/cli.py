"""Run ``hookline`` commands as real processes and read their output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.server import ROOT

# Variables that would make rich treat a pipe as a terminal (colour codes, live bars).
_TERMINAL_VARS = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "HOOKLINE_CONFIG")


def hookline(
    *args: str | Path, cwd: Path = ROOT, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _TERMINAL_VARS}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "hookline.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )


def replay_lines(stdout: str) -> dict[str, str]:
    """``hookline replay`` output: the line of each fixture, by its path as printed."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    return {line.split("  ", 1)[0]: line for line in lines[:-1]}


def summary(stdout: str) -> str:
    return stdout.strip().splitlines()[-1]
