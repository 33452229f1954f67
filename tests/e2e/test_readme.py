"""The README's commands, pasted as written, succeed against a fresh ``make run``.

A copy of the repository without any ``hookline.toml`` (a fresh clone; its ``.venv`` is
this one, linked) runs ``make run`` as a user would. Then every shell block of the
README runs in order, in that directory, from a shell that has not activated anything:

- a fenced block tagged ``sh``, ``bash`` or ``shell`` runs as one script that stops at
  the first failing command; every command must succeed;
- a ``console`` block holds ``$ command`` lines, each followed by the output it shows:
  the command must succeed and every line of that output must appear in what it prints
  (see ``Expected``: ids, times and ``...`` stand for what varies from run to run; an id
  the README shows is bound to the real one at its first appearance and replaced by it in
  later commands); a read-only command (a plain GET) is retried for up to 30 s until its
  output matches, as a reader would look again while a job runs;
- fences may be indented (inside a list item);
- a block right after an HTML comment ``<!-- readme-test: skip (reason) -->`` (invisible
  on GitHub) is not run; the reason is required;
- ``source``, ``.``, ``export`` and ``cd`` lines of earlier blocks carry over, as they
  would in the reader's shell.

The only change to what the README says: the demo config's port 8400 (which other
processes on this machine may hold) is a free port, in the config and in the commands.
Blocks added to the README later are picked up by the same rules.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.server import ROOT, free_port

README = ROOT / "README.md"
SHELL_TAGS = ("sh", "bash", "shell")
_FENCE = re.compile(r"^([ \t]*)```([\w-]*)[^\n]*\n(.*?)^\1```[ \t]*$", re.M | re.S)
_SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b(.*?)-->\s*$")
_SESSION = ("source ", ". ", "export ", "cd ")
_COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "node_modules",
    "*.db", "*.db-*", "hookline.toml", "demo-outbox", "screenshots", "artifacts",
)  # fmt: skip


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    tag: str
    text: str
    skip_reason: str | None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.tag})"


def shell_blocks(markdown: str) -> list[Block]:
    blocks = []
    for match in _FENCE.finditer(markdown):
        indent, tag = match.group(1), match.group(2).lower()
        if tag not in (*SHELL_TAGS, "console"):
            continue
        start = markdown.count("\n", 0, match.start())
        before = markdown[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = _SKIP.search(before)
        reason = skip.group(1).strip(" ()") if skip else None
        text = "".join(line.removeprefix(indent) for line in match.group(3).splitlines(True))
        blocks.append(Block(start + 1, tag, text, reason))
    return blocks


def console_commands(text: str) -> list[tuple[str, list[str]]]:
    """``$ command`` lines (continued by a trailing backslash) and the output under each."""
    commands: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            assert not commands, f"console output before any command: {line!r}"
            i += 1
            continue
        command = line[2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command + "\n" + lines[i]  # bash joins the lines itself
        output: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        commands.append((command, output))
    return commands


# What varies between the README and a real run: hookline's ids and ISO-8601 times.
_ID = re.compile(r"\b(?:job|run|evt)_[0-9a-z]{26}\b")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
_VARYING = re.compile(rf"{_ID.pattern}|{_TIME.pattern}|\.\.\.")
_READ_ONLY = re.compile(r"^curl(?!.*\s(?:-X|-d|--data|--request)\b)", re.S)


class Expected:
    """Matches shown output against printed output, binding the README's ids to real ones.

    Each non-blank shown line (leading blanks dropped: long JSON is wrapped in the README)
    must occur in the printed text, where an id matches any id of its kind (the same
    real one wherever the README shows the same id), an ISO time any time, and ``...``
    anything on that line.
    """

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}  # the README's id -> the real one

    def pattern(self, line: str) -> tuple[re.Pattern[str], dict[str, str]]:
        parts, groups, at = [], {}, 0
        for token in _VARYING.finditer(line):
            parts.append(re.escape(line[at : token.start()]))
            text = token.group()
            if text == "...":
                parts.append(".*?")
            elif _TIME.fullmatch(text):
                parts.append(_TIME.pattern)
            elif text in self.ids:
                parts.append(re.escape(self.ids[text]))
            elif text in groups.values():
                name = next(k for k, v in groups.items() if v == text)
                parts.append(f"(?P={name})")
            else:
                name = f"id{len(groups)}"
                groups[name] = text
                parts.append(f"(?P<{name}>{text.split('_')[0]}_[0-9a-z]{{26}})")
            at = token.end()
        parts.append(re.escape(line[at:]))
        return re.compile("".join(parts)), groups

    def missing(self, shown: list[str], printed: str) -> str | None:
        """The first shown line that is not in ``printed``; binds ids as lines match."""
        bound: dict[str, str] = {}
        for line in (raw.strip() for raw in shown):
            if not line:
                continue
            regex, groups = self.pattern(line)
            found = regex.search(printed)
            if found is None:
                return line
            bound.update({readme: found.group(name) for name, readme in groups.items()})
        self.ids.update(bound)
        return None

    def command(self, text: str) -> str:
        return _ID.sub(lambda m: self.ids.get(m.group(), m.group()), text)


def fresh_shell_env() -> dict[str, str]:
    """The environment of a new terminal: no virtualenv, no hookline settings."""
    venv_bin = str(ROOT / ".venv" / "bin")
    drop = {"VIRTUAL_ENV", "HOOKLINE_CONFIG", "PYTHONPATH", "PYTHONHOME", "FORCE_COLOR"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    return env


def bash(script: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=fresh_shell_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class MakeRun:
    """``make run`` in a project directory, stopped like Ctrl-C stops it (the group)."""

    def __init__(self, project: Path, port: int) -> None:
        self.project, self.port = project, port
        self.log = project / f"make-run-{time.monotonic_ns()}.log"
        with self.log.open("wb") as out:
            # -o install: the linked .venv is installed already (and must keep pointing
            # at this checkout); everything else is the Makefile's own recipe.
            self.proc = subprocess.Popen(
                ["make", "-o", "install", "run"],
                cwd=project,
                env=fresh_shell_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"make run exited {self.proc.returncode}:\n{self.output()}")
            try:
                ready = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1)
                if ready.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"make run did not become ready:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, int]:
    """A fresh clone: the repository without hookline.toml, databases or caches."""
    project = tmp_path / "hookline"
    shutil.copytree(ROOT, project, ignore=_COPY_IGNORE)
    (project / ".venv").symlink_to(ROOT / ".venv")
    port = free_port()
    example = project / "hookline.example.toml"
    text, count = re.subn(r"^port = 8400$", f"port = {port}", example.read_text(), flags=re.M)
    assert count == 1, "hookline.example.toml no longer has one `port = 8400` line"
    example.write_text(text)
    assert not (project / "hookline.toml").exists()
    return project, port


@pytest.fixture
def make_run(project: tuple[Path, int]) -> Iterator[MakeRun]:
    run = MakeRun(*project)
    yield run
    run.stop()


def test_the_readme_has_runnable_blocks_and_every_skip_says_why() -> None:
    blocks = shell_blocks(README.read_text("utf-8"))
    assert [b for b in blocks if b.skip_reason is None], "no README block would run"
    for block in blocks:
        assert block.skip_reason != "", f"{block}: a skipped block must say why"


@pytest.mark.timeout(600)
def test_every_readme_command_succeeds_against_a_fresh_make_run(
    project: tuple[Path, int], make_run: MakeRun
) -> None:
    directory, port = project
    make_run.wait_ready()
    created = directory / "hookline.toml"
    assert created.read_text() == (directory / "hookline.example.toml").read_text()
    assert "created hookline.toml from hookline.example.toml" in make_run.output()

    session: list[str] = []
    expected = Expected()
    ran = 0
    for block in shell_blocks(README.read_text("utf-8")):
        if block.skip_reason is not None:
            continue
        text = block.text.replace(":8400", f":{port}")
        if block.tag == "console":
            for command, shown in console_commands(text):
                run_console_command(expected, command, shown, session, directory, block)
                ran += 1
        else:
            result = bash("\n".join(["set -e", *session, text]), directory)
            assert result.returncode == 0, f"{block}:\n{text}\n{result.stdout}\n{result.stderr}"
            session += [line for line in text.splitlines() if line.strip().startswith(_SESSION)]
            ran += 1
    assert ran >= 3


def run_console_command(
    expected: Expected,
    command: str,
    shown: list[str],
    session: list[str],
    directory: Path,
    block: Block,
) -> None:
    command = expected.command(command)
    deadline = time.monotonic() + (30 if _READ_ONLY.match(command) else 0)
    while True:
        result = bash("\n".join([*session, command]), directory)
        report = f"{block}: $ {command}\n{result.stdout}\n{result.stderr}"
        assert result.returncode == 0, report
        missing = expected.missing(shown, result.stdout)
        if missing is None:
            return
        assert time.monotonic() < deadline, f"{missing!r} not in {report}"
        time.sleep(1)


def test_console_lines_match_what_varies_and_bind_ids() -> None:
    expected = Expected()
    readme_id = "job_01m8ma6y16fvfz1b0hehx1ref9"
    real = "job_01aaaaaaaaaaaaaaaaaaaaaaaa"
    printed = f'HTTP/1.1 202 Accepted\r\n\r\n{{"jobId":"{real}","status":"queued"}}'
    shown = ["HTTP/1.1 202 Accepted", "", f'{{"jobId":"{readme_id}","status":"queued"}}']
    assert expected.missing(shown, printed) is None
    assert expected.command(f"curl /jobs/{readme_id}") == f"curl /jobs/{real}"
    # once bound, the id must be the same real one
    other = "job_01bbbbbbbbbbbbbbbbbbbbbbbb"
    assert expected.missing([f'"jobId":"{readme_id}"'], f'"jobId":"{other}"') is not None
    # times and ... match anything; literal text must match exactly
    line = ' "createdAt":"2026-11-29T18:48:51.494Z",...,"paused":true'
    when = '"createdAt":"2027-01-02T03:04:05Z"'
    assert expected.missing([line], when + ',"x":1,"paused":true') is None
    assert expected.missing([line], when + ',"paused":false') == line.strip()
    # the same README id twice within one line is the same real id
    twice = f'"a":"{readme_id}x","b":"{readme_id}"'
    fresh = Expected()
    assert fresh.missing([twice], f'"a":"{real}x","b":"{other}"') is not None
    assert _READ_ONLY.match("curl http://h/jobs/x -H 'A: b'")
    assert not _READ_ONLY.match("curl -X POST http://h/jobs/x")
    assert not _READ_ONLY.match("curl http://h/x \\\n -d '{}'")


def test_make_run_never_overwrites_an_existing_config(project: tuple[Path, int]) -> None:
    directory, port = project
    mine = (directory / "hookline.example.toml").read_text() + "\n# my own settings\n"
    (directory / "hookline.toml").write_text(mine)
    run = MakeRun(directory, port)
    try:
        run.wait_ready()
    finally:
        run.stop()
    assert (directory / "hookline.toml").read_text() == mine
    assert "created hookline.toml" not in run.output()
