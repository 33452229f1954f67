"""Unmap the pages of shared libraries that startup touched and serving may never touch again.

Importing a compiled extension faults in much of its code, ``_pydantic_core`` (~4 MiB) and
libcrypto (~2 MiB, ``ssl``) above all, and those pages count in the process's RSS for as long
as they stay mapped, used or not. ``serve`` pays that for every import (its forked children
only for the pages they touch themselves). ``release_file_pages()`` unmaps from this process
the pages of every read-only private mapping of a file that holds no page of its own
(``Anonymous: 0`` in ``/proc/self/smaps``): such a page is an unmodified copy of the file,
still in the page cache, and is faulted in again from there (a minor fault, no I/O) when the
process next uses it. That is exactly what the kernel does to any clean file page under
memory pressure, so no content can change; writable mappings, shared ones, anonymous
memory and mappings with any modified page (relocated data), in memory or swapped out,
are never touched.

It reduces what the process holds mapped (RSS, PSS), not the page cache: the pages stay
cached for as long as the kernel has no better use for the memory.
"""

from __future__ import annotations

import contextlib
import logging
import os

log = logging.getLogger("hookline.serve")

MADV_DONTNEED = 4  # Linux: unmap; a private file mapping refaults from the file


# A mapping qualifies only if smaps shows each of these as 0: no copy-on-write page in
# memory (Anonymous), none swapped out (Swap: a swapped copy would not count as Anonymous,
# and dropping it would bring back the unmodified file page), none dirty (Private_Dirty).
_MUST_BE_ZERO = ("Anonymous:", "Swap:", "Private_Dirty:")


def _candidates(smaps: str) -> list[tuple[int, int, int]]:
    """(start, end, rss KiB) of each private, read-only, file-backed mapping without
    modified pages (in memory or swapped out) and with some page resident."""
    out: list[tuple[int, int, int]] = []
    start = end = rss = 0
    eligible = False
    seen: dict[str, int] = {}

    def flush() -> None:
        clean = all(seen.get(field) == 0 for field in _MUST_BE_ZERO)
        if eligible and clean and rss > 0:
            out.append((start, end, rss))

    for line in smaps.splitlines():
        head, _, rest = line.partition(" ")
        if "-" in head and not head.endswith(":"):  # a new mapping's header line
            flush()
            fields = rest.split()
            low, high = head.split("-")
            start, end, rss, seen = int(low, 16), int(high, 16), 0, {}
            perms, path = fields[0], fields[4] if len(fields) > 4 else ""
            eligible = path.startswith("/") and "w" not in perms and perms.endswith("p")
        elif head == "Rss:":
            rss = int(rest.split()[0])
        elif head in _MUST_BE_ZERO:
            seen[head] = int(rest.split()[0])
    flush()
    return out


def release_file_pages() -> int:
    """Unmap the resident pages of the clean read-only file mappings (see the module's
    docstring); the KiB released, 0 where this is not Linux. Call it while this process
    has a single thread (no library can be mapping or relocating a file meanwhile):
    with more it does nothing."""
    try:
        if len(os.listdir("/proc/self/task")) > 1:
            return 0  # another thread could be mapping a library meanwhile
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        with open("/proc/self/smaps") as f:  # after ctypes' own mappings are made
            smaps = f.read()
    except OSError:
        return 0
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    released = 0
    for start, end, rss in _candidates(smaps):
        with contextlib.suppress(Exception):
            if madvise(start, end - start, MADV_DONTNEED) == 0:
                released += rss
    log.debug("released file pages", extra={"kib": released, "pid": os.getpid()})
    return released


M_ARENA_MAX = -8  # glibc's mallopt() parameter


def one_malloc_arena() -> bool:
    """Make every thread of this process allocate from glibc's main arena (the effect of
    ``MALLOC_ARENA_MAX=1``); call it before the first thread starts. Otherwise each thread
    that calls ``malloc`` (the SQLite writer and reader, the steps' executor, uvicorn's and
    asyncio's) may get an arena of its own, and the memory freed in one is not reused by
    the others: under load that held 0.5 to 1.5 MiB more per process
    (docs/benchmarks.md "Memory per process"). Python's own small objects do not use these
    arenas, and the threads take turns on the GIL anyway, so one arena costs no measurable
    CPU. False where this is not glibc."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, 1))
