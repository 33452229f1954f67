"""Builds the container image and proves it works: ``make image-test``.

1. The base: ``localhost/debian-base:bookworm`` (Debian 12 + Python 3.11 from Debian
   packages, scripts/build_base_image.sh), built when absent: no registry is needed.
2. ``podman build --build-arg BASE=<that base>`` of the repository's Dockerfile.
3. ``podman run --read-only`` with a named volume for the data, the config mounted
   read-only, its secrets passed as environment variables.
4. Checks: ``/readyz`` answers 200; a Stripe webhook signed here (plain hmac, not
   hookline's code) is acked, then found through the admin API, and the demo handler run by
   the worker process succeeds (its step writes to the volume); the process runs as
   uid 10001, not root; writing anywhere outside the data volume fails, inside it works;
   SIGTERM stops it with exit code 0; a new container on the same volume still has the
   event.

Run it as root on a machine with podman, runc and debootstrap (Debian packages). Every
container and volume it creates is removed; the images are kept for the next run.
``IMAGE_TEST_RUNTIME`` (default ``runc``) and ``IMAGE_TEST_PODMAN_FLAGS`` replace the runtime
and the flags the sandbox it was written in needs (below).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BASE = "localhost/debian-base:bookworm"
IMAGE = "localhost/hookline:image-test"
UID = "10001"
STRIPE_SECRET = "whsec_image_test_" + uuid.uuid4().hex
ADMIN_TOKEN = "image-test-admin-" + uuid.uuid4().hex
# crun and podman's default rlimits are refused where this was written (a sandboxed VM):
# podman's global --runtime, and these flags of both `build` and `run`.
RUNTIME = os.environ.get("IMAGE_TEST_RUNTIME", "runc")
FLAGS = shlex.split(
    os.environ.get(
        "IMAGE_TEST_PODMAN_FLAGS",
        "--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network host",
    )
)

CONFIG = """
[server]
host = "127.0.0.1"
port = {port}

[storage]
url = "sqlite:////var/lib/hookline/hookline.db"

[admin]
token = "${{ADMIN_TOKEN}}"

[pipeline]
handlers = "examples.handlers"   # the demo handlers the image carries in /srv/hookline
workers = 1

[[sources]]
name = "stripe"
provider = "stripe"
secrets = ["${{STRIPE_SECRET}}"]
"""


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", "--runtime", RUNTIME, *args], capture_output=True, text=True, check=check
    )


def fail(message: str) -> None:
    raise SystemExit(f"image-test FAILED: {message}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def signed_stripe(event_id: str) -> tuple[bytes, dict[str, str]]:
    subscription = {"id": "sub_image_test", "customer": "cus_image_test", "status": "active"}
    body = json.dumps(
        {"id": event_id, "object": "event", "type": "customer.subscription.updated",
         "created": int(time.time()), "data": {"object": subscription}}
    ).encode()  # fmt: skip
    timestamp = int(time.time())
    signed = f"{timestamp}.".encode() + body
    signature = hmac.new(STRIPE_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    return body, {
        "Stripe-Signature": f"t={timestamp},v1={signature}",
        "Content-Type": "application/json",
    }


def ensure_base() -> None:
    if podman("image", "exists", BASE, check=False).returncode == 0:
        step(f"base image {BASE} present")
        return
    step(f"building base image {BASE} with debootstrap (a few minutes)")
    subprocess.run([str(ROOT / "scripts" / "build_base_image.sh"), BASE], check=True)


def build() -> None:
    step(f"podman build {IMAGE} (BASE={BASE})")
    result = subprocess.run(
        [
            "podman",
            "--runtime",
            RUNTIME,
            "build",
            *FLAGS,
            "--build-arg",
            f"BASE={BASE}",
            "-t",
            IMAGE,
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
        fail("podman build")


def run_container(name: str, volume: str, config: Path) -> None:
    podman(
        "run", "--detach", "--name", name, *FLAGS,
        "--read-only", "--read-only-tmpfs=false",
        "--volume", f"{volume}:/var/lib/hookline",
        "--volume", f"{config}:/etc/hookline/hookline.toml:ro",
        "--env", f"STRIPE_SECRET={STRIPE_SECRET}",
        "--env", f"ADMIN_TOKEN={ADMIN_TOKEN}",
        IMAGE,
    )  # fmt: skip


def wait_ready(url: str, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        if state != "running":
            print(podman("logs", name, check=False).stderr[-4000:])
            fail(f"container {state} before /readyz answered 200")
        time.sleep(0.25)
    fail("/readyz did not answer 200 within 60 s")


def exec_in(name: str, *command: str) -> subprocess.CompletedProcess[str]:
    return podman("exec", name, *command, check=False)


def check_user(name: str) -> None:
    uid = exec_in(name, "id", "-u").stdout.strip()
    status = exec_in(name, "cat", "/proc/1/status").stdout
    uids = [line.split()[1] for line in status.splitlines() if line.startswith("Uid:")]
    pid1_uid = uids[0] if uids else ""
    pid1 = exec_in(name, "cat", "/proc/1/cmdline").stdout.replace("\0", " ").strip()
    step(f"id -u in the container: {uid}; PID 1 ({pid1}) runs as uid {pid1_uid}")
    if uid != UID or pid1_uid != UID:
        fail(f"expected uid {UID}, got exec {uid!r} / PID 1 {pid1_uid!r}")


def check_read_only(name: str) -> None:
    for path in ("/srv/hookline/probe", "/opt/hookline/probe", "/etc/hookline/probe", "/tmp/probe",
                 "/probe"):  # fmt: skip
        if exec_in(name, "touch", path).returncode == 0:
            fail(f"writing {path} succeeded: the root file system is not read-only")
    if exec_in(name, "touch", "/var/lib/hookline/probe").returncode != 0:
        fail("the data volume /var/lib/hookline is not writable")
    files = exec_in(name, "ls", "/var/lib/hookline").stdout.split()
    step(f"writes outside /var/lib/hookline refused; the volume holds {files}")
    if "hookline.db" not in files:
        fail("hookline.db is not in the data volume")


def find_event(url: str, event_id: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    listing = httpx.get(
        f"{url}/admin/events", params={"q": event_id}, headers=headers, timeout=10
    ).json()
    items = [i for i in listing["items"] if i["eventId"] == event_id]
    if len(items) != 1:
        fail(f"admin API lists {len(items)} events with id {event_id}")
    item: dict[str, object] = items[0]
    return item


def wait_succeeded(url: str, name: str, event_id: str, timeout: float = 60) -> None:
    """The demo handler ran in the worker process: its step wrote to the data volume."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = find_event(url, event_id)["status"]
        if status == "succeeded":
            break
        time.sleep(0.25)
    else:
        print(podman("logs", name, check=False).stderr[-4000:])
        fail(f"the run of {event_id} is {status!r}, not succeeded, after {timeout:.0f} s")
    outbox = exec_in(name, "cat", "/var/lib/hookline/demo-outbox/subscriptions.jsonl").stdout
    if "sub_image_test" not in outbox:
        fail("the handler's step left nothing in /var/lib/hookline/demo-outbox")
    step(f"the worker ran the demo handler: succeeded; its step wrote {outbox.strip()}")


def stop(name: str) -> int:
    podman("stop", "--time", "20", name)
    code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    return int(code)


def main() -> None:
    began = time.monotonic()
    if os.geteuid() != 0:
        fail("run as root (rootful podman)")
    ensure_base()
    build()
    run_id = uuid.uuid4().hex[:8]
    volume = f"hookline-image-test-{run_id}"
    names = [f"hookline-image-test-{run_id}-{n}" for n in (1, 2)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="hookline-image-test-") as tmp:
        config = Path(tmp) / "hookline.toml"
        config.write_text(CONFIG.format(port=port))
        config.chmod(0o644)
        try:
            podman("volume", "create", volume)
            step(f"podman run --read-only, volume {volume}, port {port}")
            run_container(names[0], volume, config)
            wait_ready(url, names[0])
            step("/readyz 200")
            event_id = f"evt_image_test_{run_id}"
            body, headers = signed_stripe(event_id)
            answer = httpx.post(f"{url}/webhooks/stripe", content=body, headers=headers)
            if answer.status_code != 200:
                fail(f"signed webhook answered {answer.status_code}: {answer.text}")
            bad = httpx.post(
                f"{url}/webhooks/stripe",
                content=body,
                headers={**headers, "Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"},
            )
            if bad.status_code != 400:
                fail(f"a wrong signature answered {bad.status_code}, not 400")
            step(f"signed webhook acked {answer.json()}; a wrong signature got 400")
            item = find_event(url, event_id)
            step(f"admin API: {item['eventId']} stored, status {item['status']}")
            wait_succeeded(url, names[0], event_id)
            check_user(names[0])
            check_read_only(names[0])
            code = stop(names[0])
            step(f"SIGTERM: exit code {code}")
            if code != 0:
                print(podman("logs", names[0], check=False).stderr[-4000:])
                fail(f"container exited {code} on SIGTERM")
            run_container(names[1], volume, config)
            wait_ready(url, names[1])
            find_event(url, event_id)
            step("a new container on the same volume still has the event")
        finally:
            for name in names:
                podman("rm", "--force", "--time", "5", name, check=False)
            podman("volume", "rm", "--force", volume, check=False)
    step(f"image-test passed in {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
