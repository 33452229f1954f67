"""``hookline serve --processes 2``: two HTTP processes on one port, supervised.

Real processes on both backends: both answer on the one port (their PIDs differ), a
``kill -9`` of the second one is followed by a restart while the acks go on, and SIGTERM
drains every process (exit 0) with no acknowledged event lost. The scheduler runs once per
``serve`` (in process 0), not once per process.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import tempfile
import threading
import time
from itertools import count
from pathlib import Path

import httpx

from tests.support import signing
from tests.support.server import ADMIN_TOKEN, HooklineProcess, base_config

SENDERS = 4
PID_LINE = re.compile(r'^hookline_http_process_pid\{index="(\d+)"\} (\d+)', re.M)


def wait_for_pids(server: HooklineProcess, want: int, timeout: float = 60) -> dict[int, int]:
    """Index → PID of the HTTP processes, asked over fresh connections until ``want``
    distinct processes have answered."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with httpx.Client(base_url=server.url, timeout=10) as client:  # a new connection
            try:
                text = client.get("/metrics").text
            except httpx.TransportError:
                continue  # one process just died; the listening socket is still there
        seen.update((int(index), int(pid)) for index, pid in PID_LINE.findall(text))
        if len(set(seen.values())) >= want:
            return seen
    raise AssertionError(f"only {seen} answered:\n{server.logs()[-3000:]}")


class Senders:
    """Threads posting fresh Stripe events, each on its own keep-alive connection, until
    told to stop; a request cut off by a dying process is not an ack and is not retried."""

    def __init__(self, server: HooklineProcess) -> None:
        self.acked: set[str] = set()
        self.refusals: list[int] = []
        self._numbers = count()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._url = server.url
        self._threads = [threading.Thread(target=self._run) for _ in range(SENDERS)]

    def _run(self) -> None:
        client = httpx.Client(base_url=self._url, timeout=15)
        try:
            while not self._stop.is_set():
                body, headers = signing.stripe()
                try:
                    response = client.post("/webhooks/stripe", content=body, headers=headers)
                except httpx.TransportError:
                    client.close()  # a dead process's connection: start a new one
                    client = httpx.Client(base_url=self._url, timeout=15)
                    time.sleep(0.05)
                    continue
                with self._lock:
                    if response.status_code == 200:
                        self.acked.add(response.json()["id"])
                    else:
                        self.refusals.append(response.status_code)
        finally:
            client.close()

    def acks(self) -> int:
        with self._lock:
            return len(self.acked)

    def wait_for_more(self, more: int, timeout: float = 60) -> None:
        target = self.acks() + more
        deadline = time.monotonic() + timeout
        while self.acks() < target:
            assert time.monotonic() < deadline, f"acks stalled at {self.acks()}"
            time.sleep(0.05)

    def __enter__(self) -> Senders:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def stored_ids(server: HooklineProcess) -> set[str]:
    with server.admin() as admin:
        return {e["id"] for e in signing.list_events(admin)}


def test_two_processes_share_the_port_survive_kill_9_and_drain_on_sigterm(
    tmp_path: Path, db_url: str
) -> None:
    schedules = [{"name": "often", "every": "1s", "job": "tick"}]
    handlers = ["tests.e2e.schedule_handlers"]
    config = base_config(db_url, processes=1, handlers=handlers, schedules=schedules)
    # the flag overrides [server] processes
    server = HooklineProcess(tmp_path, config, extra_args=("--processes", "2")).start()
    try:
        pids = wait_for_pids(server, 2)
        assert set(pids) == {0, 1}
        assert server.proc is not None and pids[0] == server.proc.pid  # process 0 is `serve`
        # and it is no longer the CLI: it replaced itself (same pid) with the slim entry point
        cmdline = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:4] == [b"-m", b"hookline.child", b"serve"], cmdline

        with Senders(server) as senders:
            senders.wait_for_more(100)
            os.kill(pids[1], signal.SIGKILL)  # mid-burst
            deadline = time.monotonic() + 60
            while (restarted := wait_for_pids(server, 2))[1] == pids[1]:
                assert time.monotonic() < deadline, "process 1 was not restarted"
            assert restarted[0] == pids[0]
            senders.wait_for_more(100)  # acks go on, on both processes
            status = server.terminate(timeout=60)  # the senders are still mid-request
        assert status == 0, server.logs()[-3000:]
        assert set(senders.refusals) <= {503}, senders.refusals
        logs = server.logs()
        assert "http process exited; restarting" in logs
        assert logs.count('"msg":"scheduler started"') == 1, "only process 0 runs the scheduler"

        server.start()  # on the same database
        missing = senders.acked - stored_ids(server)
        assert not missing, f"{len(missing)} of {len(senders.acked)} acked events were lost"
    finally:
        server.stop()


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_the_first_children_are_forked_from_serve_and_share_its_memory(
    tmp_path: Path, sqlite_url: str
) -> None:
    """HTTP process 1 and the workers are forked from ``serve`` (hookline.fork): each names
    itself, and the pages it inherited are shared with serve (dirty pages another process
    maps too), which a process started by exec never has. A restart is a fresh process."""
    config = base_config(sqlite_url, processes=2, workers=2)
    server = HooklineProcess(tmp_path, config).start()
    try:
        assert server.proc is not None
        pid = server.proc.pid
        wait_for_pids(server, 2)
        children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        names = sorted(Path(f"/proc/{child}/comm").read_text().strip() for child in children)
        assert names == ["hookline-http-1", "hookline-worker", "hookline-worker"], names
        for child in children:
            # megabytes of the import heap, shared copy-on-write; an exec'd child has ~none
            assert _kib(child, "Shared_Dirty:") > 4096, (child, _kib(child, "Shared_Dirty:"))

        worker = next(c for c in children if "worker" in Path(f"/proc/{c}/comm").read_text())
        os.kill(worker, signal.SIGKILL)
        tasks = Path(f"/proc/{pid}/task")
        deadline = time.monotonic() + 30
        while True:  # the replacement is started by the monitor thread, with its command
            now = [int(p) for t in tasks.iterdir() for p in (t / "children").read_text().split()]
            fresh = [c for c in now if c not in children]
            if fresh:
                break
            assert time.monotonic() < deadline, "the killed worker was not restarted"
            time.sleep(0.1)
        cmdline = Path(f"/proc/{fresh[0]}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:4] == [b"-m", b"hookline.child", b"worker"], cmdline
        assert server.terminate(timeout=60) == 0, server.logs()[-3000:]
    finally:
        server.stop()


def _group(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid and "zombie" not in (
                    (entry / "status").read_text().split("State:")[1].split("\n")[0].lower()
                ):
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def test_a_port_in_use_exits_1_and_leaves_no_worker_behind(tmp_path: Path, sqlite_url: str) -> None:
    """The workers are forked before the port is bound: when the bind fails, serve stops
    them before it exits 1, rather than leaving them to notice their supervisor is gone."""
    server = HooklineProcess(tmp_path, base_config(sqlite_url, processes=2, workers=2))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", server.port))
        taken.listen()
        server.start(wait=False)
        assert server.proc is not None
        assert server.proc.wait(timeout=60) == 1, server.logs()[-3000:]
        assert _group(server.proc.pid) == [], server.logs()[-3000:]


REQUESTS_LINE = re.compile(
    r'^hookline_webhook_requests_total\{outcome="([a-z_]+)",source="stripe"\} ([0-9.e+]+)', re.M
)


def scrape_totals(server: HooklineProcess, scrapes: int) -> list[tuple[int, float]]:
    """(index of the answering process, stripe requests counted) of ``scrapes`` scrapes,
    each over a new connection, so that either process may answer."""
    out = []
    for _ in range(scrapes):
        with httpx.Client(base_url=server.url, timeout=10) as client:
            text = client.get("/metrics").text
        (index, _pid), *_ = PID_LINE.findall(text)
        out.append((int(index), sum(float(n) for _outcome, n in REQUESTS_LINE.findall(text))))
    return out


def metrics_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("hookline-metrics-*"))


def test_every_process_scrapes_the_counters_of_all_and_they_never_go_down(
    tmp_path: Path,
) -> None:
    before = metrics_dirs()
    config = base_config(f"sqlite:///{tmp_path / 'h.db'}", processes=2)
    server = HooklineProcess(tmp_path, config).start()
    try:
        wait_for_pids(server, 2)
        ours = metrics_dirs() - before
        assert len(ours) == 1  # this serve's shared counters
        with Senders(server) as senders:
            senders.wait_for_more(60)
        sent = senders.acks() + len(senders.refusals)
        totals = scrape_totals(server, 30)
        assert {index for index, _ in totals} == {0, 1}, totals  # both processes answered
        # each scrape, whichever process answers, counts every request of both
        assert all(total == sent for _, total in totals), (sent, totals)
        # a restarted process's predecessor's counts stay in the sum
        pid_1 = wait_for_pids(server, 2)[1]
        os.kill(pid_1, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while wait_for_pids(server, 2)[1] == pid_1:
            assert time.monotonic() < deadline, "process 1 was not restarted"
        with Senders(server) as senders:
            senders.wait_for_more(20)
        more = senders.acks() + len(senders.refusals)
        after = scrape_totals(server, 30)
        assert {index for index, _ in after} == {0, 1}, after
        assert all(total == sent + more for _, total in after), (sent + more, after)
        assert server.terminate() == 0
    finally:
        server.stop()
    assert not any(path.exists() for path in ours)  # removed when serve stopped


def test_wrong_admin_tokens_sent_to_different_processes_count_toward_one_lockout(
    tmp_path: Path,
) -> None:
    """With two HTTP processes a guesser whose connections reach both still gets only
    ``max_failed_logins`` wrong tokens a window, not that many per process."""
    token_line = re.search(r'^token = ".*"$', base_config("sqlite:///x", processes=2), re.M)
    assert token_line is not None
    config = base_config(f"sqlite:///{tmp_path / 'h.db'}", processes=2).replace(
        token_line.group(0), f"{token_line.group(0)}\nmax_failed_logins = 4", 1
    )
    server = HooklineProcess(tmp_path, config).start()
    clients: dict[int, httpx.Client] = {}
    try:
        wait_for_pids(server, 2)
        for _ in range(200):  # a keep-alive connection to each process
            client = httpx.Client(base_url=server.url, timeout=10)
            (index, _pid), *_ = PID_LINE.findall(client.get("/metrics").text)
            if int(index) in clients:
                client.close()
            else:
                clients[int(index)] = client
            if len(clients) == 2:
                break
        assert sorted(clients) == [0, 1], "no connection reached both processes"
        wrong = {"Authorization": "Bearer guess"}
        for n in range(4):  # two wrong tokens to each process
            assert clients[n % 2].get("/admin/events", headers=wrong).status_code == 401
        right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        for client in clients.values():  # both know: locked out, even for the right token
            answer = client.get("/admin/events", headers=right)
            assert answer.status_code == 429, answer.text
            assert int(answer.headers["retry-after"]) > 0
        assert server.terminate() == 0
    finally:
        for client in clients.values():
            client.close()
        server.stop()
