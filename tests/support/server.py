"""A real ``hookline serve`` (or ``hookline worker``) process for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]

STRIPE_SECRET = "whsec_test_stripe_secret_e2e"
GITHUB_SECRET = "test-github-secret"
STANDARD_SECRET = "whsec_dGVzdC1zdGFuZGFyZC13ZWJob29rcy1zZWNyZXQ="
SHOPIFY_SECRET = "test-shopify-secret"
SLACK_SECRET = "test-slack-signing-secret"
ADMIN_TOKEN = "test-admin-token-0123456789"
API_KEY = "test-api-key-0123456789"
ALL_SECRETS = (
    STRIPE_SECRET,
    GITHUB_SECRET,
    STANDARD_SECRET,
    SHOPIFY_SECRET,
    SLACK_SECRET,
    ADMIN_TOKEN,
    API_KEY,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_config(
    db_url: str,
    *,
    handlers: list[str] | None = None,
    workers: int = 0,
    pipeline: dict[str, Any] | None = None,
    max_body_bytes: int = 1_048_576,
    secrets: dict[str, str] | None = None,
    api_keys: list[str] | None = None,
    schedules: list[dict[str, Any]] | None = None,
    processes: int = 1,
) -> str:
    """A test config with one source per provider; ``pipeline`` adds/overrides keys,
    ``secrets`` is the ``[secrets]`` table, ``api_keys`` replaces ``[api] keys``,
    ``schedules`` are ``[[schedules]]`` tables. One HTTP process unless ``processes`` says
    otherwise (users get one per core): tests that count what one process saw stay exact."""
    pipe: dict[str, Any] = {
        "handlers": handlers or [],
        "workers": workers,
        "backoff_base_seconds": 0.05,
        "backoff_max_seconds": 0.5,
        "lease_seconds": 5,
        "poll_interval_seconds": 0.01,
        "shutdown_grace_seconds": 5,
    }
    pipe.update(pipeline or {})

    def toml_value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(toml_value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
        return str(v)

    pipeline_toml = "\n".join(f"{k} = {toml_value(v)}" for k, v in pipe.items())
    secrets_toml = "\n".join(f"{k} = {toml_value(v)}" for k, v in (secrets or {}).items())
    keys_toml = toml_value([API_KEY] if api_keys is None else api_keys)
    schedules_toml = "".join(
        "\n[[schedules]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in entry.items())
        for entry in schedules or []
    )
    return f"""
[server]
host = "127.0.0.1"
max_body_bytes = {max_body_bytes}
graceful_timeout_seconds = 5
processes = {processes}

[storage]
url = "{db_url}"

[admin]
token = "{ADMIN_TOKEN}"

[api]
keys = {keys_toml}

[secrets]
{secrets_toml}

[pipeline]
{pipeline_toml}

[[sources]]
name = "stripe"
provider = "stripe"
secrets = ["whsec_old_rotated_secret", "{STRIPE_SECRET}"]

[[sources]]
name = "github"
provider = "github"
secrets = ["{GITHUB_SECRET}"]

[[sources]]
name = "acme"
provider = "standard"
secrets = ["{STANDARD_SECRET}"]

[[sources]]
name = "shopify"
provider = "hmac"
secrets = ["{SHOPIFY_SECRET}"]
signature_header = "X-Shopify-Hmac-Sha256"
encoding = "base64"
id_header = "X-Shopify-Webhook-Id"
type_header = "X-Shopify-Topic"

[[sources]]
name = "slack"
provider = "slack"
secrets = ["{SLACK_SECRET}"]
{schedules_toml}"""


def demo_config(
    db_url: str,
    port: int,
    *,
    handlers: bool = False,
    workers: int = 0,
    schedules: bool = False,
    notify_url: str | None = None,
) -> str:
    """``hookline.example.toml`` itself (its secrets signed ``fixtures/``), changed only
    where a test must: the database, the port, whether its example handlers run, whether
    its ``[[schedules]]`` tick (they need the handlers; off, no job is enqueued behind a
    test's back), and where ``ctx.notify`` goes (nowhere unless ``notify_url`` is given: the
    demo's target is the Next.js example on :3000, which a test does not run)."""
    text = (ROOT / "hookline.example.toml").read_text("utf-8")
    if not schedules:
        text, count = re.subn(r"^\[\[schedules\]\]\n(?:[^\[\n].*\n|\n)*", "", text, flags=re.M)
        assert count >= 1, "hookline.example.toml no longer has [[schedules]]"
    changes = [
        (r'^url = "sqlite:[^"]*"$', f'url = "{db_url}"'),
        (r"^port = \d+$", f"port = {port}"),
        (r"^workers = \d+$", f"workers = {workers}"),
        (r"^notify_url = .*$", f'notify_url = "{notify_url}"' if notify_url else ""),
    ]
    if not notify_url:
        changes.append((r"^notify_secret = .*$", ""))
    if not handlers:
        changes.append((r"^handlers = .*$", "handlers = []"))
    for pattern, replacement in changes:
        text, count = re.subn(pattern, replacement.replace("\\", r"\\"), text, flags=re.M)
        assert count == 1, f"hookline.example.toml no longer has one line like {pattern}"
    parsed = tomllib.loads(text)
    assert parsed["storage"]["url"] == db_url and parsed["server"]["port"] == port
    assert parsed["pipeline"]["workers"] == workers
    assert bool(parsed.get("schedules")) == schedules
    assert parsed["pipeline"].get("notify_url") == notify_url
    return text


class HooklineProcess:
    """Runs ``hookline <command>`` with a config file; logs go to files in ``workdir``."""

    _instances = 0

    def __init__(
        self,
        workdir: Path,
        config_text: str,
        command: str = "serve",
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        module: str = "hookline.cli",
    ) -> None:
        self.workdir = workdir
        self.module = module  # e.g. tests.support.skewed_clock: the CLI with a wrong clock
        self.command = command
        self.extra_args = extra_args
        self.port = free_port() if command == "serve" else 0
        # several processes of one command in one directory each keep their config and logs
        HooklineProcess._instances += 1
        self.name = f"{command}-{self.port or HooklineProcess._instances}"
        self.config_path = workdir / f"hookline-{self.name}.toml"
        self.config_path.write_text(config_text)
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PYTHONPATH": f"{ROOT}:{workdir}", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}-{self.starts}.log"

    def start(self, wait: bool = True) -> HooklineProcess:
        self.starts += 1
        args = [
            sys.executable,
            "-m",
            self.module,
            self.command,
            "--config",
            str(self.config_path),
        ]
        if self.command == "serve":
            args += ["--port", str(self.port)]
        args += list(self.extra_args)
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                args,
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait and self.command == "serve":
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"hookline exited {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"hookline did not become ready:\n{self.logs()}")

    def logs(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob(f"{self.name}-*.log"))
        )

    def kill9(self) -> None:
        """SIGKILL the whole process group (server and its worker children)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.terminate(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=10, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
