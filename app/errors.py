"""The exceptions of hookline.

Exception tree::

    HooklineError                 -- root of everything hookline raises on purpose
     +-- ConfigError              -- invalid configuration file (CLI exit status 2)
     +-- StartupError             -- a handler module failed to import (exit 2)
     +-- StoreError               -- storage failure
     |    +-- SchemaError         -- not hookline's database, or a schema older/newer than this code
     +-- PipelineError            -- misuse of the handler API
     |    +-- NonDeterminismError -- a replayed step has another name than was recorded
     +-- NonRetryableError        -- raised by handler code: fail the run at once
     +-- RedeliveryInProgress     -- a fresh redelivery while a run of the event is active

Provider verification errors live in ``hookline.providers.base``: the providers import
nothing else of hookline.
"""

from __future__ import annotations


class HooklineError(Exception):
    """Root of every error hookline raises on purpose."""


class ConfigError(HooklineError):
    """The configuration is invalid; the message names the key and the problem."""


class StartupError(HooklineError):
    """The service cannot start (e.g. a handler module does not import)."""


class StoreError(HooklineError):
    """The store failed."""


class SchemaError(StoreError):
    """The database is not one this version of hookline may use: its schema is older or
    newer, it holds another application's tables, or it is not a database at all."""


class PipelineError(HooklineError):
    """The handler API was misused."""


class NonDeterminismError(PipelineError):
    """A step replayed at a position has another name than the one recorded there."""


class NonRetryableError(HooklineError):
    """Raise from a handler or step to fail the run at once, without retries."""


class RedeliveryInProgress(HooklineError):
    """A ``fresh`` redelivery was asked for while runs of the event are still queued,
    running or retrying; nothing was created. ``run_ids`` are those active runs."""

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__(
            f"a fresh redelivery would run every step again while run(s) {', '.join(run_ids)} "
            "of this event are still queued, running or retrying; nothing was created. Wait for "
            "them to end (or cancel them), then redeliver again"
        )
        self.run_ids = run_ids
