"""``hookline schedules list|trigger|pause|resume`` as processes, on the store directly;
the pause they store is what a ``serve`` started later finds."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import hookline
from tests.support.clients import wait_for
from tests.support.server import HooklineProcess, base_config

SCHEDULES = [
    {"name": "nightly", "job": "tick", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
     "payload": {"schedule": "nightly"}},
    {"name": "often", "job": "tick", "every": "1s", "payload": {"schedule": "often"}},
]  # fmt: skip


def test_list_pause_trigger_resume(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "hookline.toml"
    text = base_config(
        sqlite_url, handlers=["tests.e2e.schedule_handlers"], workers=1, schedules=SCHEDULES
    )
    config.write_text(text)
    assert hookline("migrate", "--config", config).returncode == 0

    def run(*args: str | Path) -> tuple[int, str, str]:
        result = hookline("schedules", *args, "--config", config)
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, result.stdout, result.stderr

    code, out, _ = run("list")
    assert code == 0
    nightly, often = (line for line in out.splitlines() if line.startswith(("nightly", "often")))
    assert "30 2 * * * (Europe/Berlin)" in nightly and "active" in nightly
    assert "every 1s" in often and "active" in often

    assert run("pause", "often") == (0, "paused often\n", "")
    code, out, _ = run("list")
    assert "paused" in next(line for line in out.splitlines() if line.startswith("often"))

    code, out, _ = run("trigger", "often")
    assert code == 0
    job_id = json.loads(out)["jobId"]
    shown = hookline("jobs", "show", job_id, "--config", config)
    assert shown.returncode == 0 and json.loads(shown.stdout)["name"] == "tick"

    for action in ("pause", "resume", "trigger"):
        code, _, err = run(action, "nope")
        assert code == 1 and "no schedule named 'nope'" in err and "nightly, often" in err

    # A serve started now finds `often` paused (the store keeps it), runs the triggered job
    # and records no tick of it, until it is resumed.
    server = HooklineProcess(tmp_path, text, env={"HOOKLINE_TEST_DIR": str(tmp_path)})
    server.start()
    try:
        wait_for(
            lambda: "schedule is paused" in server.logs() and (tmp_path / "ticks.log").exists(),
            timeout=30,
            what="the paused schedule seen, and the triggered job run",
        )
        with server.admin() as admin:
            (item,) = [i for i in admin.get("/admin/schedules").json()["items"]
                       if i["name"] == "often"]  # fmt: skip
            assert item["paused"] is True and item["lastTicks"] == []
            assert run("resume", "often") == (0, "resumed often\n", "")

            def ticked() -> bool:
                items = admin.get("/admin/schedules").json()["items"]
                return any(i["name"] == "often" and i["lastTicks"] for i in items)

            wait_for(ticked, timeout=30, what="a tick after the CLI resumed it")
        assert "schedule resumed" in server.logs()
    finally:
        server.stop()
    (line,) = (tmp_path / "ticks.log").read_text().splitlines()[:1]
    assert line.split()[:1] == ["often"] and line.split()[2] == job_id
