"""``python -m tests.support.skewed_clock <hookline args>``: the hookline CLI on a machine
whose clock is wrong by ``HOOKLINE_TEST_CLOCK_OFFSET`` seconds (``time.time`` only; the
monotonic clock, like a real machine's, is unaffected)."""

from __future__ import annotations

import os
import time

_offset = float(os.environ["HOOKLINE_TEST_CLOCK_OFFSET"])
_real_time = time.time
time.time = lambda: _real_time() + _offset

from hookline.cli import main  # noqa: E402  (imported after the clock is set)

if __name__ == "__main__":
    main()
