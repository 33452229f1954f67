"""``hookline.pages``: only clean, private, read-only file mappings are released; a process
that released them keeps working (its libraries' code comes back from the page cache) and
holds fewer pages of them; with a second thread it does nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from hookline.pages import _candidates

SMAPS = """\
00400000-00500000 r-xp 00000000 fe:00 11 /usr/lib/libclean.so
Rss:                  64 kB
Anonymous:             0 kB
Private_Dirty:        0 kB
Swap:                  0 kB
00500000-00600000 r--p 00100000 fe:00 11 /usr/lib/libclean.so
Rss:                  16 kB
Anonymous:             8 kB
Private_Dirty:        8 kB
Swap:                  0 kB
00600000-00700000 rw-p 00200000 fe:00 11 /usr/lib/libclean.so
Rss:                  12 kB
Anonymous:            12 kB
Private_Dirty:       12 kB
Swap:                  0 kB
00700000-00800000 r--s 00000000 fe:00 12 /var/db/mapped.db
Rss:                  40 kB
Anonymous:             0 kB
Private_Dirty:        0 kB
Swap:                  0 kB
00800000-00900000 rw-p 00000000 00:00 0
Rss:                 100 kB
Anonymous:           100 kB
Private_Dirty:      100 kB
Swap:                  0 kB
00900000-00a00000 r--p 00000000 fe:00 13 /usr/lib/locale/locale-archive
Rss:                   0 kB
Anonymous:             0 kB
Private_Dirty:        0 kB
Swap:                  0 kB
7ffd0000-7ffd1000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   4 kB
Anonymous:             0 kB
Private_Dirty:        0 kB
Swap:                  0 kB
00b00000-00c00000 r--p 00000000 fe:00 14 /usr/lib/libother.so
Rss:                  20 kB
Anonymous:             0 kB
Private_Dirty:        0 kB
Swap:                  0 kB
00c00000-00d00000 r--p 00000000 fe:00 15 /usr/lib/libswapped.so
Rss:                   8 kB
Anonymous:             0 kB
Private_Dirty:         0 kB
Swap:                  4 kB
00d00000-00e00000 r--p 00000000 fe:00 16 /usr/lib/libdirty.so
Rss:                   8 kB
Anonymous:             0 kB
Private_Dirty:         4 kB
Swap:                  0 kB
00e00000-00f00000 r--p 00000000 fe:00 17 /usr/lib/libnofields.so
Rss:                   8 kB
"""


def test_only_clean_private_read_only_file_mappings_with_resident_pages() -> None:
    # not: relocated data (copy-on-write pages), writable, shared, anonymous, nothing
    # resident, the vdso; a modified page swapped out or dirty; fields unknown
    assert _candidates(SMAPS) == [(0x400000, 0x500000, 64), (0xB00000, 0xC00000, 20)]


PROBE = textwrap.dedent(
    """
    import hashlib, json, ssl, sys, threading
    import pydantic
    from hookline.pages import release_file_pages

    class M(pydantic.BaseModel):
        n: int
        tags: list[str]

    def core_rss() -> int:
        total, name = 0, ""
        for line in open("/proc/self/smaps"):
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                name = head[5] if len(head) > 5 else ""
            elif head[0] == "Rss:" and "_pydantic_core" in name:
                total += int(head[1])
        return total

    M(n=1, tags=["a"])
    before = core_rss()
    if sys.argv[1] == "thread":
        stop = threading.Event()
        threading.Thread(target=stop.wait).start()
        released = release_file_pages()
        stop.set()
    else:
        released = release_file_pages()
    after = core_rss()
    # everything still works: pydantic-core's code, libcrypto's, the relocated data of both
    again = M.model_validate({"n": "2", "tags": ["b", "c"]})
    digest = hashlib.sha256(b"x").hexdigest()
    context = ssl.create_default_context()
    print(json.dumps({
        "released": released, "before": before, "after": after, "n": again.n,
        "digest": digest, "verify": context.verify_mode == ssl.CERT_REQUIRED,
    }))
    """
)


def _probe(mode: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_a_process_keeps_working_with_fewer_library_pages() -> None:
    result = _probe("alone")
    assert isinstance(result["released"], int) and result["released"] > 0
    assert isinstance(result["before"], int) and isinstance(result["after"], int)
    assert result["after"] < result["before"]
    assert result["n"] == 2
    assert result["digest"] == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    assert result["verify"] is True


def test_nothing_is_released_while_another_thread_runs() -> None:
    result = _probe("thread")
    assert result["released"] == 0
    assert result["after"] == result["before"]
    assert result["n"] == 2


ARENAS = textwrap.dedent(
    """
    import sys, threading
    from hookline.pages import one_malloc_arena

    def arenas() -> int:  # glibc's thread arenas: 64 MiB reservations, 64 MiB aligned
        count = 0
        for line in open("/proc/self/maps"):
            fields = line.split()
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if len(fields) == 5 and low % (64 << 20) == 0 and high - low >= 1 << 20:
                count += 1
        return count

    if sys.argv[1] == "one":
        assert one_malloc_arena()
    before = arenas()
    barrier = threading.Barrier(4)

    def allocate() -> None:
        barrier.wait()  # all at once: each would need an arena of its own
        blocks = [bytearray(2000) for _ in range(2000)]
        barrier.wait()
        del blocks

    threads = [threading.Thread(target=allocate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(arenas() - before)
    """
)


def _new_arenas(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", ARENAS, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return int(out.stdout)


def test_one_malloc_arena_for_every_thread() -> None:
    assert _new_arenas("default") > 0  # the test can see arenas: glibc gives threads their own
    assert _new_arenas("one") == 0
