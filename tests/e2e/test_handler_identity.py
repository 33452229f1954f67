"""Handler identity (stacked decorators, clashes) through a real ``hookline serve``."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli_startup import hookline, write_config
from tests.support.clients import post_stripe, wait_status
from tests.support.server import HooklineProcess, base_config


def test_stacked_decorators_each_run_for_their_own_events(tmp_path: Path, sqlite_url: str) -> None:
    config = base_config(sqlite_url, handlers=["tests.e2e.pipeline_handlers"], workers=1)
    server = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)}).start()
    try:
        a = post_stripe(server, "evt_stacked_a", "test.stacked_a")["id"]
        b = post_stripe(server, "evt_stacked_b", "test.stacked_b")["id"]
        with server.admin() as admin:
            runs = {
                event_type: wait_status(admin, event_id, "succeeded")["runs"]
                for event_type, event_id in (("test.stacked_a", a), ("test.stacked_b", b))
            }
    finally:
        server.stop()
    for event_type, event_runs in runs.items():
        assert [r["handler"] for r in event_runs] == [
            f"tests.e2e.pipeline_handlers:stacked[stripe:{event_type}]"
        ]
        assert event_runs[0]["result"] == event_type
    effects = (tmp_path / "effects.log").read_text().splitlines()
    assert effects.count("stacked test.stacked_a evt_stacked_a") == 1
    assert effects.count("stacked test.stacked_b evt_stacked_b") == 1


def test_a_duplicate_identity_exits_2_naming_both(tmp_path: Path) -> None:
    (tmp_path / "clashing_handlers.py").write_text(
        "from hookline import handler\n"
        "@handler('stripe', 'invoice.paid', name='billing')\n"
        "async def first(event, ctx): ...\n"
        "@handler('stripe', 'invoice.voided', name='billing')\n"
        "async def second(event, ctx): ...\n"
    )
    config = write_config(tmp_path, '[pipeline]\nhandlers = "clashing_handlers"\n')
    for command in ("serve", "worker"):
        result = hookline(tmp_path, command, "--config", str(config))
        assert result.returncode == 2, result.stderr
        message = result.stderr.strip()
        assert len(message.splitlines()) == 1, message
        assert "identity 'billing'" in message
        assert "clashing_handlers:first for stripe:invoice.paid" in message
        assert "clashing_handlers:second for stripe:invoice.voided" in message
    assert not (tmp_path / "hookline.db").exists()  # nothing started
