"""What two checks added to hot paths cost, per call, on this machine.

- ``load_json_exact`` (``Event.data``, a form's payload, an hmac ``id_field``): one
  ``bytes.translate`` and a search for 19 digits in a row before the orjson parse, against
  ``load_json`` alone, on the ``fixtures/stripe`` bodies (the 2-4 KB events the ingest
  benchmark sends).
- ``GroupCommitWriter.file_problem`` (one ``os.stat`` of the database path, once a batch):
  the SQLite writer's check that the file it opened is still the one at its path.

    .venv/bin/python bench/check_costs.py [--rounds 200000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import timeit
from pathlib import Path

from hookline.providers._util import _DIGITS_AS_ZERO, _LONG_RUN, load_json, load_json_exact
from hookline.store.group_commit import GroupCommitWriter

ROOT = Path(__file__).resolve().parents[1]


def per_call_us(fn: object, rounds: int) -> float:
    """The best of five timings, in µs a call."""
    return min(timeit.repeat(fn, number=rounds, repeat=5)) / rounds * 1e6  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    rounds = parser.parse_args().rounds
    bodies = [
        json.loads(path.read_text())["body"].encode()
        for path in sorted((ROOT / "fixtures" / "stripe").glob("*.json"))
    ]
    for body in bodies:
        fast = per_call_us(lambda body=body: load_json(body), rounds)
        exact = per_call_us(lambda body=body: load_json_exact(body), rounds)
        check = per_call_us(lambda body=body: _LONG_RUN in body.translate(_DIGITS_AS_ZERO), rounds)
        print(
            f"{len(body):>6} B body: load_json {fast:6.2f} µs, load_json_exact {exact:6.2f} µs, "
            f"the 19-digit check alone {check:5.2f} µs"
        )
    with tempfile.TemporaryDirectory() as folder:
        writer = GroupCommitWriter(str(Path(folder) / "check.db"))
        writer.start()
        try:
            stat = per_call_us(writer.file_problem, rounds)
        finally:
            writer.stop()
    print(f"file_problem (one os.stat a group-commit batch): {stat:.2f} µs")


if __name__ == "__main__":
    main()
