"""The directory the HTTP processes of one ``serve`` share, while it runs.

With several HTTP processes on one port, the kernel hands each connection to any one of
them, so what must be counted per ``serve`` is counted there:

- **request counters.** A scrape of ``/metrics`` reaches any one process. If each
  answered with its own counters, the series would jump between the processes' values from
  scrape to scrape, which Prometheus reads as counter resets. So ``serve`` puts
  ``prometheus_client`` in its multiprocess mode: every process writes its counters to a
  file of its own here, and a scrape adds up every file (those of a process that died and
  was restarted included, so the totals never go down). ``prometheus_client`` reads the
  directory from the environment when it is imported, so this runs first thing in
  ``serve``, before that import; the HTTP processes, forked or started later, inherit the
  variable.
- **failed admin logins** (``hookline.web.shared_lockout``).

With one HTTP process there is no directory, and each counts in memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
#: ``hookline-metrics-<pid of the serve>-<random>`` in the temporary directory (the name
#: it had when it held the counters alone: a serve still removes those its older version left)
PREFIX = "hookline-metrics-"
#: In each directory, a file its serve holds a shared lock on (``flock``) while it runs;
#: the processes forked from it inherit the lock. One whose lock anyone can take is left
#: behind: its serve and every fork of it are gone.
LOCK_FILE = "in-use"
#: A directory younger than this is never taken for left behind (its serve may not have
#: locked it yet).
MIN_AGE_SECONDS = 10.0


@contextlib.contextmanager
def made_for_serve(http_processes: int) -> Iterator[str | None]:
    """A fresh directory for ``http_processes`` (> 1) processes while the block runs
    (removed after); None, and nothing changed, for one process."""
    if http_processes <= 1:
        yield None
        return
    if "prometheus_client" in sys.modules:  # too late: each process would count alone
        raise RuntimeError("prometheus_client was imported before the metrics directory")
    parent = tempfile.gettempdir()
    remove_left_behind(parent)
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent)
    lock = os.open(os.path.join(path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_SH)
    os.environ[ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(ENV, None)
        shutil.rmtree(path, ignore_errors=True)
        os.close(lock)


def remove_left_behind(parent: str, min_age: float = MIN_AGE_SECONDS) -> None:
    """Remove the directories of serves that ended without removing theirs (``kill -9``):
    those whose lock nobody holds. The lock is the kernel's, so a serve in a container
    that shares the temporary directory (with pids of its own) holds its directory too.
    Another user's directory, a symlink, one without a lock file (an older version's) or
    one made in the last ``min_age`` seconds is left alone."""
    now = time.time()
    for entry in Path(parent).glob(f"{PREFIX}*"):
        try:
            info = entry.lstat()
            if (
                not stat.S_ISDIR(info.st_mode)
                or info.st_uid != os.getuid()
                or now - info.st_mtime < min_age
            ):
                continue
            fd = os.open(entry / LOCK_FILE, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:  # gone meanwhile, or no lock file
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its serve (or a process forked from it) runs
            continue
        else:
            shutil.rmtree(entry, ignore_errors=True)
        finally:
            os.close(fd)


def shared_directory() -> str | None:
    """The directory this process shares with the other HTTP processes of its serve, if
    ``serve`` made one."""
    return os.environ.get(ENV) or None


_pid = os.getpid()


def _renew_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_renew_pid)


def process_id() -> int:
    """``os.getpid()`` without the system call (kept, and renewed at each fork): what
    notices a fork in a hot path."""
    return _pid
