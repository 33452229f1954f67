"""``hookline.web.uvicorn_core``: with the stand-in, importing uvicorn's server and
hookline's HTTP processes imports neither click nor the reload supervisors, and
``uvicorn.run``/``uvicorn.main`` still work (they import the real ``uvicorn.main``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import json, sys
    from hookline.web.uvicorn_core import defer_uvicorn_main

    deferred = defer_uvicorn_main() if sys.argv[1] == "deferred" else False
    import hookline.serve
    import uvicorn
    from uvicorn.server import Server

    heavy = sorted(m for m in ("click", "watchfiles", "multiprocessing") if m in sys.modules)
    same_server = uvicorn.Server is Server and hookline.serve.uvicorn.Server is Server
    uvicorn.main(["--version"], standalone_mode=False)  # uvicorn's CLI, imported now
    from uvicorn.main import run

    print(json.dumps({
        "deferred": deferred, "heavy": heavy, "same_server": same_server,
        "main": type(uvicorn.main).__name__, "run": run.__module__,
        "again": defer_uvicorn_main(),
    }))
    """
)


def _probe(mode: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, timeout=60
    )
    assert "Running uvicorn" in out.stdout  # the real `uvicorn --version` ran
    result: dict[str, object] = json.loads(out.stdout.splitlines()[-1])
    return result


def test_the_server_without_the_cli_and_the_cli_on_demand() -> None:
    result = _probe("deferred")
    assert result["deferred"] is True
    assert result["heavy"] == []
    assert result["same_server"] is True
    assert result["main"] == "Command"  # click's command, as `import uvicorn` leaves it
    assert result["run"] == "uvicorn.main"
    assert result["again"] is False  # uvicorn is imported: nothing to defer


def test_without_the_stand_in_uvicorn_imports_its_cli() -> None:
    # what the stand-in saves (if uvicorn stops importing these, the stand-in can go)
    assert _probe("plain")["heavy"] == ["click", "multiprocessing", "watchfiles"]
