"""``hookline.shared_dir.process_id``: the pid without a system call, renewed at a fork.

The lockout reopens its file and prometheus_client writes its counters per process by it,
so a forked HTTP process that kept its parent's pid would write into the parent's files."""

from __future__ import annotations

import os

from hookline.shared_dir import process_id


def test_process_id_is_this_process_and_a_forked_child_gets_its_own() -> None:
    assert process_id() == os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        os.write(write, f"{process_id()} {os.getpid()}".encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        seen, real = (int(n) for n in pipe.read().split())
    os.waitpid(child, 0)
    assert seen == real != os.getpid()
    assert process_id() == os.getpid()
