"""``hookline.redaction``: the redactor, ``ctx.secrets``, and where they are applied."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline.config import PipelineConfig
from hookline.context import Context, Lease
from hookline.logs import JsonFormatter
from hookline.pipeline import Event, HandlerFn, HandlerSpec, Registry
from hookline.redaction import REDACTED, Redactor, Secrets
from hookline.runner import Runner
from hookline.store.base import NewEvent, NewRun, RunOutcome
from hookline.store.sqlite import SQLiteStore

LONG = "sk_live_4f9a8b7c6d5e"
STANDARD = "whsec_ZGVtby1zdGFuZGFyZC13ZWJob29rcy1zZWNyZXQtMzI="  # base64 of a printable key


def test_every_occurrence_is_replaced_and_nothing_else() -> None:
    redact = Redactor([LONG, "other-secret-value"])
    text = f"Bearer {LONG} failed; retry with {LONG}. other-secret-value!"
    assert redact(text) == f"Bearer {REDACTED} failed; retry with {REDACTED}. {REDACTED}!"
    assert redact("nothing to see") == "nothing to see"
    assert not Redactor([]) and Redactor([""]).__call__("x") == "x"


def test_overlapping_and_nested_values_leave_nothing_of_either() -> None:
    redact = Redactor(["abcdefgh12", "gh12345678", "abcdefgh"])
    assert redact("<abcdefgh12345678>") == f"<{REDACTED}>"
    assert redact("<abcdefgh>") == f"<{REDACTED}>"
    assert redact("x abcdefgh12 y gh12345678 z") == f"x {REDACTED} y {REDACTED} z"


def test_json_escaped_forms_and_standard_webhooks_keys_are_found() -> None:
    quoted = 'pa"ss\\word-123'
    redact = Redactor([quoted, STANDARD])
    line = json.dumps({"error": f"bad {quoted}"})
    assert quoted not in redact(line) and json.dumps(quoted)[1:-1] not in redact(line)
    key = STANDARD.removeprefix("whsec_")
    assert redact(f"key={key}") == f"key={REDACTED}"
    assert redact("demo-standard-webhooks-secret-32") == REDACTED  # what the key decodes to


def test_short_values_are_replaced_only_where_they_stand_alone() -> None:
    redact = Redactor(["4711"])
    assert redact("pin 4711, code=4711") == f"pin {REDACTED}, code={REDACTED}"
    assert redact("line 47119, id a4711") == "line 47119, id a4711"  # inside words: untouched


@given(
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    secret=st.text(min_size=8, max_size=30).filter(lambda s: REDACTED not in s),
)
def test_a_long_secret_never_survives(before: str, after: str, secret: str) -> None:
    redact = Redactor([secret])
    assert secret not in redact(before + secret + after)
    assert secret not in redact(json.dumps({"e": before + secret + after}, ensure_ascii=False))


def test_secrets_mapping_never_shows_a_value() -> None:
    secrets = Secrets({"resend": "re_123456789", "openai": "sk-abcdefgh"})
    assert secrets["resend"] == "re_123456789" and sorted(secrets) == ["openai", "resend"]
    with pytest.raises(KeyError) as caught:
        secrets["stripe"]
    message = str(caught.value)
    assert "'stripe'" in message and "openai, resend" in message
    assert "re_123" not in message and "sk-abc" not in message
    assert "re_123" not in repr(secrets) and "sk-abc" not in str(secrets)


def test_log_lines_are_redacted_whole() -> None:
    formatter = JsonFormatter(Redactor([LONG]))
    logger = logging.getLogger("hookline.test")
    try:
        raise RuntimeError(f"upstream refused {LONG}")
    except RuntimeError:
        import sys

        exc_info = sys.exc_info()
    record = logger.makeRecord(
        logger.name, logging.ERROR, __file__, 1, f"msg {LONG}", (), exc_info, extra={"f": LONG}
    )
    line = formatter.format(record)
    assert LONG not in line and line.count(REDACTED) == 3
    entry = json.loads(line)
    assert entry["msg"] == f"msg {REDACTED}" and entry["f"] == REDACTED


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(f"sqlite:///{tmp_path / 'h.db'}")
    await s.open()
    await s.migrate()
    yield s
    await s.close()


async def run_once(store: SQLiteStore, handle: HandlerFn) -> RunOutcome | None:
    """Store an event for handler "h" (one attempt), claim its run and execute it with the
    secret ``LONG`` in ``ctx.secrets["api"]`` and in the redactor."""
    await store.ingest(
        NewEvent("evt_1", "stripe", "p1", "t", time.time(), {}, b"{}",
                 [NewRun("run_1", "h", max_attempts=1)]),
        resume_failed=True,
    )  # fmt: skip
    (claimed,) = await store.claim_runs("w1", ["h"], 1, 30)
    runner = Runner(
        store,
        Registry([HandlerSpec("h", handle, "stripe", "*")]),
        PipelineConfig(),
        secrets=Secrets({"api": LONG}),
        redact=Redactor([LONG]),
    )
    lease = Lease(claimed.claim("w1"), deadline=time.monotonic() + 30)
    return await runner.execute(claimed, lease)


async def test_a_failing_step_with_a_secret_in_its_error_is_stored_redacted(
    store: SQLiteStore,
) -> None:
    seen: list[str] = []

    def call_api(key: str) -> None:
        raise PermissionError(f"API key {key} was revoked")

    async def handle(event: Event, ctx: Context) -> None:
        seen.append(ctx.secrets["api"])
        await ctx.step("call", call_api, ctx.secrets["api"])

    outcome = await run_once(store, handle)
    assert seen == [LONG]  # the handler had the real value
    assert outcome is not None and outcome.status == "failed" and outcome.error is not None
    assert LONG not in outcome.error and f"API key {REDACTED} was revoked" in outcome.error
    (step,) = await store.load_steps("evt_1", "h", 0, attempts=True)
    (attempt,) = step.attempts
    assert attempt.error == f"PermissionError: API key {REDACTED} was revoked"
    assert attempt.traceback is not None and LONG not in attempt.traceback
    assert REDACTED in attempt.traceback


async def test_a_secret_cut_by_a_length_limit_leaves_no_piece(store: SQLiteStore) -> None:
    """Errors and tracebacks are cut to a length; the cut comes after redaction, so a secret
    straddling it is not stored as a fragment the redactor would no longer know."""
    from hookline.context import MAX_ERROR_CHARS

    head = LONG[: len(LONG) // 2]  # what a cut through the secret would have left

    def call_api() -> None:  # the secret straddles the step error's cut (2,000 chars)
        raise PermissionError("x" * (MAX_ERROR_CHARS - len("PermissionError: ") - 10) + LONG)

    async def handle(event: Event, ctx: Context) -> None:
        await ctx.step("call", call_api)

    outcome = await run_once(store, handle)
    assert outcome is not None and outcome.error is not None and head not in outcome.error
    (step,) = await store.load_steps("evt_1", "h", 0, attempts=True)
    (attempt,) = step.attempts
    assert attempt.error is not None and len(attempt.error) <= MAX_ERROR_CHARS
    assert head not in attempt.error and attempt.error.endswith("x[redacted]")


@pytest.mark.parametrize("keep_end", [False, True])
def test_redacted_cut_cuts_after_redacting(keep_end: bool) -> None:
    from hookline.redaction import redacted_cut

    text = "a" * 95 + LONG + "b" * 95  # the secret straddles both cuts at 100
    cut = redacted_cut(text, 100, Redactor([LONG]), keep_end=keep_end)
    assert len(cut) == 100 and LONG[:5] not in cut and LONG[-5:] not in cut
    unredacted = text[-100:] if keep_end else text[:100]
    assert redacted_cut(text, 100, None, keep_end=keep_end) == unredacted
    # many long secrets: redaction shrinks the text a lot, and still no piece is kept
    secret = "sk_live_" + "Z" * 56
    crowded = (secret + ",") * 6 + secret + "tail" * 100
    kept = redacted_cut(crowded, 100, Redactor([secret]))
    assert "sk_live" not in kept and kept.startswith("[redacted],")


def test_shown_records_are_redacted_string_by_string_and_stay_json() -> None:
    import orjson

    from hookline.web.shapes import redacted

    redact = Redactor([LONG, "12345678901"])
    shape = {
        "headers": {"x-token": LONG, "attempts": 2},
        "payload": orjson.Fragment(b'{"k": "%s", "n": 12345678901}' % LONG.encode()),
        "result": {"list": [LONG, 12345678901]},
    }
    shown = json.loads(orjson.dumps(redacted(shape, redact)))
    assert shown["headers"] == {"x-token": REDACTED, "attempts": 2}
    # the payload's text, redacted whole, would not parse (a secret stood as a number):
    # its strings are redacted one by one instead
    assert shown["payload"] == {"k": REDACTED, "n": 12345678901}
    assert shown["result"] == {"list": [REDACTED, 12345678901]}
    clean = orjson.Fragment(b'{"k": "nothing secret"}')
    assert redacted({"payload": clean}, redact)["payload"] is clean
