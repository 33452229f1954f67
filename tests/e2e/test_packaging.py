"""hookline installs under its own name, beside a user's own ``app`` package.

The repository keeps ``app/`` and ``providers/`` at the top; a wheel must hold them as
``hookline`` and ``hookline.providers`` only, so a FastAPI/Flask/Django project whose code
lives in its own ``app/`` can import both. Checked with a real ``pip install .`` into a
fresh virtual environment and a real ``hookline serve`` run from a throwaway user project.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.clients import stripe_body, wait_for
from tests.support.server import ADMIN_TOKEN, ROOT, STRIPE_SECRET, free_port
from tests.support.signing import stripe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with ``pip install <this repository>`` (not editable)."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # a copy of the sources: pip builds in the tree and must not write into the checkout
    source = tmp_path_factory.mktemp("src") / "hookline"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "node_modules", "*.egg-info", "__pycache__", "*.db*"
        ),
    )
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-input", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return venv


def _site_packages(venv: Path) -> Path:
    found = list(venv.glob("lib/python3*/site-packages"))
    assert len(found) == 1
    return found[0]


def test_a_wheel_installs_hookline_and_nothing_named_app_or_providers(fresh_venv: Path) -> None:
    site = _site_packages(fresh_venv)
    top_level = {p.name for p in site.iterdir()}
    assert "hookline" in top_level
    for name in ("app", "providers", "examples"):
        assert name not in top_level, f"{name!r} must not land in site-packages"
    assert (site / "hookline" / "providers" / "stripe.py").is_file()
    assert (site / "hookline" / "py.typed").is_file()  # users' type checkers see our types
    assert list((site / "hookline" / "sql" / "sqlite" / "migrations").glob("*.sql"))
    probe = (
        "import hookline\n"
        "from hookline import handler, Context, Event, NonRetryableError\n"
        "import hookline.providers, hookline.cli\n"
        "print(hookline.__file__)\n"
    )
    done = subprocess.run(
        [str(fresh_venv / "bin" / "python"), "-c", probe],
        cwd=fresh_venv,  # not the repository: nothing may come from the checkout
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(site))


USER_MODELS = """
from dataclasses import dataclass


@dataclass
class Order:
    id: str
    email: str
"""

USER_HANDLERS = """
import json
from pathlib import Path

from app.models import Order  # the user's own `app` package
from hookline import Context, Event, handler


def save(order: Order) -> dict:
    with Path("orders.jsonl").open("a") as f:
        record = {"id": order.id, "email": order.email, "type": type(order).__module__}
        f.write(json.dumps(record) + "\\n")
    return {"saved": order.id}


@handler("stripe", "checkout.session.completed")
async def fulfil(event: Event, ctx: Context) -> dict:
    session = event.data["data"]["object"]
    return await ctx.step("save", save, Order(session["id"], session["email"]))
"""


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    project = tmp_path / "shop"
    (project / "app").mkdir(parents=True)
    (project / "app" / "__init__.py").write_text("")
    (project / "app" / "models.py").write_text(USER_MODELS)
    (project / "shop_handlers.py").write_text(USER_HANDLERS)
    return project


def test_a_user_project_with_its_own_app_package_runs_under_hookline_serve(
    fresh_venv: Path, user_project: Path
) -> None:
    port = free_port()
    (user_project / "hookline.toml").write_text(
        f"""
[server]
port = {port}
[storage]
url = "sqlite:///./data/hookline.db"
[admin]
token = "{ADMIN_TOKEN}"
[pipeline]
handlers = "shop_handlers"
workers = 1
poll_interval_seconds = 0.01
[[sources]]
name = "stripe"
provider = "stripe"
secrets = ["{STRIPE_SECRET}"]
"""
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HOOKLINE_CONFIG")}
    log = (user_project / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(fresh_venv / "bin" / "hookline"), "serve"],  # ./hookline.toml by default
        cwd=user_project,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_ready(proc, port, user_project)
        body, headers = stripe(
            stripe_body(
                "evt_user_app_1",
                "checkout.session.completed",
                {"object": {"id": "cs_1", "email": "a@example.com"}},
            )
        )
        response = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/stripe", content=body, headers=headers
        )
        assert response.status_code == 200, response.text
        orders = user_project / "orders.jsonl"
        wait_for(orders.exists, timeout=30, what="the user's handler to run")
        saved = json.loads(orders.read_text().splitlines()[0])
        assert saved == {"id": "cs_1", "email": "a@example.com", "type": "app.models"}
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        event = httpx.get(
            f"http://127.0.0.1:{port}/admin/events/{response.json()['id']}", headers=admin
        ).json()
        assert event["runs"][0]["handler"] == "shop_handlers:fulfil"
        assert event["runs"][0]["steps"][0]["result"] == {"saved": "cs_1"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _wait_ready(proc: subprocess.Popen[bytes], port: int, project: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError((project / "serve.log").read_text(errors="replace"))
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("not ready:\n" + (project / "serve.log").read_text(errors="replace"))
