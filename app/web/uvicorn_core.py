"""Import uvicorn's server without its command line.

``import uvicorn`` runs ``uvicorn/__init__.py``, which imports ``uvicorn.main`` (the
``uvicorn`` command) for the names ``main`` and ``run``; that imports click, the reload
supervisors (watchfiles, with anyio's pieces it needs) and ``multiprocessing``: about
3 MiB of Python objects that ``serve`` and each HTTP process hold (a forked one shares
them copy-on-write, but RSS counts them in each), for code hookline never runs: it builds
``uvicorn.Config`` and ``uvicorn.Server`` itself. ``defer_uvicorn_main()`` registers a
stand-in ``uvicorn.main`` before uvicorn is imported: its ``Server`` is uvicorn's, and its
``main`` and ``run`` (any other name too) import the real module on first use, so nothing
changes for a caller of ``uvicorn.run`` or ``uvicorn.main`` in the same process; only that
import happens later.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

MAIN = "uvicorn.main"


class _DeferredMain(types.ModuleType):
    """``uvicorn.main`` until something other than ``Server`` is needed from it."""

    def __getattr__(self, name: str) -> Any:
        if name == "Server":  # what uvicorn/__init__.py takes from it, besides main and run
            from uvicorn.server import Server

            return Server
        if name.startswith("__"):  # the import system asks for __path__, __spec__ …
            raise AttributeError(name)
        return getattr(_real_main(), name)


def _real_main() -> types.ModuleType:
    if isinstance(sys.modules.get(MAIN), _DeferredMain):
        del sys.modules[MAIN]
    real = importlib.import_module(MAIN)
    # importing the submodule set ``uvicorn.main`` to it: the package's ``main`` is the
    # command, as uvicorn/__init__.py's ``from uvicorn.main import main`` makes it
    sys.modules["uvicorn"].main = real.main  # type: ignore[attr-defined]
    return real


def _main(*args: Any, **kwargs: Any) -> Any:
    return _real_main().main(*args, **kwargs)


def _run(*args: Any, **kwargs: Any) -> Any:
    return _real_main().run(*args, **kwargs)


def defer_uvicorn_main() -> bool:
    """Make the coming ``import uvicorn`` skip ``uvicorn.main`` (see the module's docstring);
    False if uvicorn is imported already (nothing to gain then)."""
    if "uvicorn" in sys.modules or MAIN in sys.modules:
        return False
    deferred = _DeferredMain(MAIN, "uvicorn.main, imported on first use (hookline)")
    deferred.main = _main  # type: ignore[attr-defined]
    deferred.run = _run  # type: ignore[attr-defined]
    sys.modules[MAIN] = deferred
    return True
