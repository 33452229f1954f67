"""The Next.js example (``examples/nextjs``) for end-to-end tests: built, started, stopped.

Without node and npm the tests are skipped locally and FAIL under ``CI=true``, like
the browser tests. ``prepare()`` runs ``scripts/prepare.mjs``: ``npm ci`` only when
``package-lock.json`` changed since the last install here, ``next build`` and ``tsc`` only
when a source changed since the last build (``make test`` ran it already: then it is a
no-op).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import ROOT, free_port

APP = ROOT / "examples" / "nextjs"
DEMO_API_KEY = "demo-api-key"
DEMO_NOTIFY_SECRET = "whsec_ZGVtby1ob29rbGluZS1ub3RpZnktc2VjcmV0LTAxMjM="
_prepared = False


def require_node() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if not missing:
        return
    message = f"{' and '.join(missing)} not found: the Next.js example needs Node.js 20.9+"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def node_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "NEXT_TELEMETRY_DISABLED": "1", **extra}


def prepare() -> None:
    """npm ci / next build / tsc as due (once per test session)."""
    global _prepared
    require_node()
    if _prepared:
        return
    result = subprocess.run(
        ["node", "scripts/prepare.mjs"],
        cwd=APP,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"prepare.mjs failed:\n{result.stdout}\n{result.stderr}"
    _prepared = True


class NextApp:
    """``next start`` of the built app on a free loopback port; its output goes to a file."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"next-{self.port}.log"
        self.env = node_env(**env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> NextApp:
        prepare()
        next_bin = APP / "node_modules" / ".bin" / "next"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(next_bin), "start", "-H", "127.0.0.1", "-p", str(self.port)],
                cwd=APP,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"next start exited {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"next start did not answer:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
