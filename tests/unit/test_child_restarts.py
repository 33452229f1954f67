"""``ChildProcesses``: restarts back off while a child keeps dying, and are quick again
once it has run well. Real processes (a tiny Python script), a shortened time scale."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest

from hookline.serve import ChildProcesses

# Each start appends a line; the fourth start runs a while before it exits (healthy), the
# others exit at once with status 3.
SCRIPT = """
import sys, time
path = sys.argv[1]
with open(path, "a") as f:
    f.write("x\\n")
starts = len(open(path).read().splitlines())
time.sleep(3.0 if starts == 4 else 0)
sys.exit(3)
"""


class Quick(ChildProcesses):
    RESTART_DELAY_SECONDS = 0.5
    MAX_RESTART_DELAY_SECONDS = 4.0
    STABLE_SECONDS = 2.0


def test_backoff_grows_while_a_child_keeps_dying_and_resets_after_it_ran_well(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    starts = tmp_path / "starts"
    script = tmp_path / "child.py"
    script.write_text(SCRIPT)
    caplog.set_level(logging.ERROR, logger="hookline.serve")
    children = Quick("test child", [[sys.executable, str(script), str(starts)]], str(tmp_path))
    try:
        deadline = time.monotonic() + 30
        while len([r for r in caplog.records if "restarting" in r.getMessage()]) < 5:
            assert time.monotonic() < deadline, caplog.records
            time.sleep(0.1)
    finally:
        children.stop(grace=2)
    delays = [r.in_seconds for r in caplog.records if "restarting" in r.getMessage()]  # type: ignore[attr-defined]
    # exits 1-3 at once: 0.5, 1, 2; the 4th ran 3 s (≥ STABLE): back to 0.5; then 1 again
    assert delays[:5] == [0.5, 1.0, 2.0, 0.5, 1.0], delays
