"""Children of ``serve`` forked from it, so the memory of their imports is shared.

A child started as ``python -m hookline.child …`` imports everything again: each process
holds its own copy of the same modules (most of its memory). A child forked from ``serve``
after the common imports, while ``serve`` has no other thread yet, shares those pages with
it copy-on-write (``gc.freeze()`` first, so that no garbage collection in the child writes
to them). Only the first start of each child forks; a restart after a crash runs
``python -m hookline.child`` as before, because by then ``serve`` has threads, and forking a
process with threads can leave a lock held forever in the child.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("hookline.serve")

PR_SET_NAME = 15


class ForkedChild:
    """A process forked from this one, with the part of ``subprocess.Popen``'s interface
    that ``ChildProcesses`` uses (``returncode`` is -N for a signal N, like Popen's)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                self.returncode = 255
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            time.sleep(0.02)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def stop(children: Sequence[ForkedChild], grace: float) -> None:
    """SIGTERM each child, wait up to ``grace`` seconds for them all, then SIGKILL."""
    for child in children:
        child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def can_fork() -> bool:
    """Only a process with a single thread (none started by Python, a handler module or a C
    library) is safe to fork."""
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:  # not Linux: start children the ordinary way
        return False
    if threads > 1:  # e.g. a handler module started one at import: correct, just more memory
        log.info("children start as new interpreters, not forked", extra={"threads": threads})
    return threads == 1


def fork(name: str, run: Callable[[], None]) -> ForkedChild:
    """Fork a child that runs ``run()`` and exits with its status; never returns in it."""
    gc.collect()
    gc.freeze()  # what exists now is never scanned by a collection in the child: stays shared
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return ForkedChild(pid)
    code = 1
    try:
        _set_name(name)
        run()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except BaseException:
        sys.excepthook(*sys.exc_info())  # a JSON log line, redacted, once logging is set up
    finally:
        # the rest of the stack is serve's: never unwind into it
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _set_name(name: str) -> None:
    """The process's name in ``ps -o comm``, ``top`` (its command line stays serve's)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
