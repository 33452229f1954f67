"""What Linux's ``/proc`` says about the processes a test or a bench started."""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> list[int]:
    """Child processes of ``pid``, whichever of its threads started them (``hookline
    serve`` restarts workers from a monitor thread)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    for task in tasks:
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return found


def stat_fields(path: Path | str) -> list[str]:
    """The fields of a ``/proc/PID/stat`` (or ``/proc/PID/task/TID/stat``) line from the
    third, the state, on: index 11 is utime, 16 nice, 38 the scheduling policy. The name
    before them may hold spaces and parentheses, so the line is cut at its last ``)``."""
    return Path(path).read_text().rsplit(")", 1)[1].split()
