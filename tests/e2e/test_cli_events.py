"""``hookline events …`` and ``hookline prune`` as processes, beside a running server.

The commands open the server's database themselves (on SQLite, the very file) while
``hookline serve`` (one worker) keeps writing to it; on both backends. Three events:
one whose run succeeds, one whose run fails with ``NonRetryableError``, one that no
handler matches.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hookline.providers import REDACTED
from tests.support.cli import hookline, replay_lines
from tests.support.clients import event_detail, post_stripe, stripe_body, wait_for, wait_status
from tests.support.server import HooklineProcess, base_config

HANDLERS = ["tests.e2e.pipeline_handlers"]


@dataclass
class Stored:
    server: HooklineProcess
    admin: httpx.Client
    ok: str  # succeeded (test.two_steps)
    failed: str  # failed at once (test.fixable raises NonRetryableError)
    unhandled: str  # no handler


@pytest.fixture
def stored(tmp_path: Path, db_url: str) -> Iterator[Stored]:
    config = base_config(db_url, handlers=HANDLERS, workers=1)
    proc = HooklineProcess(tmp_path, config, env={"HOOKLINE_TEST_DIR": str(tmp_path)}).start()
    try:
        with proc.admin() as admin:
            ok = post_stripe(proc, "evt_cli_ok", "test.two_steps")["id"]
            failed = post_stripe(proc, "evt_cli_failed", "test.fixable")["id"]
            unhandled = post_stripe(proc, "evt_cli_unhandled", "no.handler")["id"]
            wait_status(admin, ok, "succeeded")
            wait_status(admin, failed, "failed")
            assert event_detail(admin, unhandled)["status"] == "unhandled"
            yield Stored(proc, admin, ok, failed, unhandled)
    finally:
        proc.stop()


def cli(on: Stored | HooklineProcess, *args: str | Path) -> tuple[int, str, str]:
    server = on.server if isinstance(on, Stored) else on
    result = hookline(*args, "--config", server.config_path)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def row(stdout: str, event_id: str) -> list[str]:
    """The cells of the table row of ``event_id``."""
    (line,) = [line for line in stdout.splitlines() if event_id in line]
    return [cell.strip() for cell in line.strip("│ ").split("│")]


def effects(tmp_path: Path, line: str) -> int:
    path = tmp_path / "effects.log"
    return path.read_text().splitlines().count(line) if path.exists() else 0


def test_list_filters_and_orders_newest_first(stored: Stored) -> None:
    code, out, _ = cli(stored, "events", "list")
    assert code == 0
    assert row(out, stored.ok)[1:] == [
        "stripe",
        "evt_cli_ok",
        "test.two_steps",
        "succeeded",
        row(out, stored.ok)[-1],
    ]
    assert row(out, stored.failed)[2:5] == ["evt_cli_failed", "test.fixable", "failed"]
    assert row(out, stored.unhandled)[4] == "unhandled"
    positions = [out.index(e) for e in (stored.unhandled, stored.failed, stored.ok)]
    assert positions == sorted(positions)
    assert out.rstrip().endswith("3 event(s)")

    _, out, _ = cli(stored, "events", "list", "--status", "failed")
    assert stored.failed in out and stored.ok not in out and stored.unhandled not in out
    _, out, _ = cli(stored, "events", "list", "--type", "test.*", "--source", "stripe")
    assert stored.ok in out and stored.failed in out and stored.unhandled not in out
    _, out, _ = cli(stored, "events", "list", "--limit", "1")
    assert stored.unhandled in out and stored.failed not in out
    assert out.rstrip().endswith("1 event(s) (limit 1)")
    _, out, _ = cli(stored, "events", "list", "--source", "github")
    assert out.rstrip().endswith("0 event(s)")

    code, _, err = cli(stored, "events", "list", "--status", "done")
    assert code == 2 and "--status must be one of" in err


def test_show_prints_the_detail_with_runs_and_steps(stored: Stored) -> None:
    code, out, _ = cli(stored, "events", "show", stored.ok)
    assert code == 0
    detail = json.loads(out)
    assert detail == event_detail(stored.admin, stored.ok)  # the admin API's shape
    assert detail["eventId"] == "evt_cli_ok" and detail["payload"]["type"] == "test.two_steps"
    assert detail["headers"]["stripe-signature"] == REDACTED
    (run,) = detail["runs"]
    assert run["status"] == "succeeded"
    assert [s["name"] for s in run["steps"]] == ["one", "two"]

    _, out, _ = cli(stored, "events", "show", stored.failed)
    (run,) = json.loads(out)["runs"]
    assert run["status"] == "failed"
    attempt = run["steps"][-1]["attempts"][0]
    assert "not fixed yet" in attempt["error"] and "NonRetryableError" in attempt["traceback"]

    code, out, err = cli(stored, "events", "show", "evt_nosuch")
    assert code == 1 and out == "" and "no event with id 'evt_nosuch'" in err


def test_redeliver_resumes_or_starts_fresh(stored: Stored, tmp_path: Path) -> None:
    code, out, _ = cli(stored, "events", "redeliver", stored.ok)
    assert code == 0
    (resumed,) = out.split()
    assert resumed.startswith("run_")
    detail = wait_for(
        lambda: (
            (d := event_detail(stored.admin, stored.ok))["runs"][-1]["status"] == "succeeded"
            and len(d["runs"]) == 2
            and d
        ),
        what="the resumed run",
    )
    assert detail["runs"][-1]["id"] == resumed
    assert effects(tmp_path, "one evt_cli_ok") == 1  # resume reused the recorded steps

    code, out, _ = cli(stored, "events", "redeliver", stored.ok, "--fresh")
    assert code == 0
    (fresh,) = out.split()
    wait_for(
        lambda: (
            [r["status"] for r in event_detail(stored.admin, stored.ok)["runs"]][-1:]
            == ["succeeded"]
            and effects(tmp_path, "one evt_cli_ok") == 2
        ),
        what="the fresh run",
    )
    assert event_detail(stored.admin, stored.ok)["runs"][-1]["id"] == fresh

    code, out, err = cli(stored, "events", "redeliver", stored.unhandled)
    assert code == 0 and out == "" and "nothing to do" in err
    code, _, err = cli(stored, "events", "redeliver", "evt_nosuch")
    assert code == 1 and "no event with id" in err


def test_export_replay_prune_replay(stored: Stored, tmp_path: Path) -> None:
    exported = tmp_path / "f.json"
    code, out, _ = cli(stored, "events", "export", stored.ok, "--out", exported)
    assert code == 0 and str(exported) in out
    fixture = json.loads(exported.read_text("utf-8"))
    assert fixture["source"] == "stripe" and fixture["method"] == "POST"
    assert fixture["body"] == stripe_body("evt_cli_ok", "test.two_steps").decode()
    assert fixture["headers"]["stripe-signature"] == REDACTED
    assert not {"host", "content-length", "connection"} & set(fixture["headers"])

    url = stored.server.url
    # its signature is redacted: replaying it signs it afresh, with or without --resign
    for flags in [(), ("--resign",)]:
        code, out, _ = cli(stored, "replay", exported, "--url", url, *flags)
        line = replay_lines(out)[str(exported)]
        assert code == 0 and "evt_cli_ok  duplicate=true  re-signed (redacted)" in line
    # export does not overwrite it, nor write through a link, without --force
    code, _, err = cli(stored, "events", "export", stored.ok, "--out", exported)
    assert code == 1 and "exists; pass --force" in err
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    code, _, err = cli(stored, "events", "export", stored.ok, "--out", link)
    assert code == 1 and "symbolic link" in err and not (tmp_path / "elsewhere.json").exists()
    exported.write_text("old")
    code, _, _ = cli(stored, "events", "export", stored.ok, "--out", exported, "--force")
    assert code == 0 and json.loads(exported.read_text("utf-8"))["source"] == "stripe"

    code, out, _ = cli(stored, "prune", "--older-than", "1h")
    assert code == 0 and out.startswith("pruned 0 event(s)")
    code, out, _ = cli(stored, "prune", "--older-than", "0s")
    assert code == 0 and out.startswith("pruned 2 event(s)")  # the failed one is kept
    assert cli(stored, "events", "show", stored.ok)[0] == 1
    assert cli(stored, "events", "show", stored.unhandled)[0] == 1
    assert cli(stored, "events", "show", stored.failed)[0] == 0

    code, out, _ = cli(stored, "replay", exported, "--url", url)
    line = replay_lines(out)[str(exported)]
    assert code == 0 and "evt_cli_ok  duplicate=false  re-signed (redacted)" in line
    items = stored.admin.get("/admin/events").json()["items"]
    assert [e["eventId"] for e in items] == ["evt_cli_ok", "evt_cli_failed"]
    assert items[0]["id"] != stored.ok  # stored anew
    wait_status(stored.admin, items[0]["id"], "succeeded")

    code, out, _ = cli(stored, "prune", "--older-than", "0s", "--include-failed")
    assert code == 0 and out.startswith("pruned 2 event(s)")
    assert cli(stored, "events", "show", stored.failed)[0] == 1
    assert stored.admin.get("/admin/events").json()["items"] == []


def test_usage_errors(server: HooklineProcess, tmp_path: Path) -> None:
    for bad in ("30", "1w", "-1d", "1.5h", "soon"):
        code, out, err = cli(server, "prune", "--older-than", bad)
        assert code == 2 and out == "" and f"invalid duration {bad!r}" in err
    code, _, err = cli(server, "events", "export", "evt_nosuch", "--out", tmp_path / "x.json")
    assert code == 1 and "no event with id" in err and not (tmp_path / "x.json").exists()
    event_id = post_stripe(server, "evt_cli_export", "invoice.paid")["id"]
    code, _, err = cli(server, "events", "export", event_id, "--out", tmp_path / "no" / "x.json")
    assert code == 1 and "cannot write" in err

    missing_db = tmp_path / "other.toml"
    missing_db.write_text(base_config(f"sqlite:///{tmp_path / 'absent' / 'none.db'}"))
    result = hookline("events", "list", "--config", missing_db)
    assert result.returncode == 1 and "no database at" in result.stderr
    assert not (tmp_path / "absent").exists()  # nothing created


def test_a_jobs_event_is_not_exported_as_a_fixture(stored: Stored, tmp_path: Path) -> None:
    """No webhook source takes a job back (replaying the file was a 404): export says how
    to run a job again instead of writing a file that cannot be replayed."""
    code, out, err = cli(
        stored, "jobs", "enqueue", "ordered-job", "--payload", '{"key": "k", "number": 1}'
    )
    assert code == 0, err
    job_id = json.loads(out)["jobId"]
    code, _, err = cli(stored, "events", "export", job_id, "--out", tmp_path / "job.json")
    assert code == 1 and "is a job, not a webhook" in err and "events redeliver" in err
    assert not (tmp_path / "job.json").exists()
