#!/usr/bin/env python3
"""Re-sign the captured webhook fixtures in fixtures/ with the demo secrets.

Edit a fixture's ``body``, then run::

    python3 scripts/sign_fixtures.py                 # re-sign every fixtures/**/*.json in place
    python3 scripts/sign_fixtures.py fixtures/github # only these files / folders
    python3 scripts/sign_fixtures.py --check         # verify only; exit 1 if any signature is wrong

Standalone and stdlib-only on purpose (no import from the project): it is an
independent second implementation of each provider's signing scheme, so a bug
in ``providers/`` cannot make a wrong fixture look right.

The secrets come from the demo config (``hookline.example.toml``, or
``--config``); each fixture's ``source`` names a ``[[sources]]`` entry and its
``provider`` picks the scheme. The first secret of the source signs. Every
timestamp already in the fixture (Stripe ``t=``, ``webhook-timestamp``, an HMAC
source's ``timestamp_header``) is kept: a fixture stays a capture of one moment,
and ``hookline replay`` re-signs stale ones when it sends them. A fixture with
no timestamp yet gets the current time.

The body is signed exactly as it stands in the fixture, encoded as UTF-8.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "hookline.example.toml"
DEFAULT_FIXTURES = ROOT / "fixtures"

Headers = dict[str, str]
Source = dict[str, Any]


class FixtureError(Exception):
    pass


# --------------------------------------------------------------------------- config


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: Any, key: str) -> Any:
    """Replace ${VAR} in strings (the config's own rule), so a real config works too."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise FixtureError(f"{key}: environment variable {name} is not set")
            return os.environ[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, key) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, f"{key}.{k}") for k, v in value.items()}
    return value


def load_sources(config_path: Path) -> dict[str, Source]:
    with config_path.open("rb") as f:
        config = tomllib.load(f)
    sources: dict[str, Source] = {}
    for i, raw in enumerate(config.get("sources", [])):
        source = _expand(raw, f"sources[{i}]")
        sources[source["name"]] = source
    return sources


# --------------------------------------------------------------------------- headers


def get_header(headers: Headers, name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def set_header(headers: Headers, name: str, value: str) -> None:
    """Set a header, keeping the spelling of an existing key (the provider's casing)."""
    for key in headers:
        if key.lower() == name.lower():
            headers[key] = value
            return
    headers[name] = value


def _hmac(key: bytes, content: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, content, getattr(hashlib, algorithm)).digest()


def _timestamp(value: str | None) -> str:
    return value if value else str(int(time.time()))


# --------------------------------------------------------------------------- providers


def sign_stripe(headers: Headers, body: bytes, source: Source) -> None:
    # Stripe keys the HMAC with the whole "whsec_..." string as UTF-8.
    secret = source["secrets"][0].encode()
    current = get_header(headers, "Stripe-Signature") or ""
    m = re.search(r"(?:^|,)\s*t=(\d+)", current)
    t = _timestamp(m.group(1) if m else None)
    v1 = _hmac(secret, t.encode() + b"." + body).hex()
    set_header(headers, "Stripe-Signature", f"t={t},v1={v1}")


def sign_github(headers: Headers, body: bytes, source: Source) -> None:
    secret = source["secrets"][0].encode()
    set_header(headers, "X-Hub-Signature", "sha1=" + _hmac(secret, body, "sha1").hex())
    set_header(headers, "X-Hub-Signature-256", "sha256=" + _hmac(secret, body).hex())


def sign_standard(headers: Headers, body: bytes, source: Source) -> None:
    # Standard Webhooks: the key is the base64 that follows "whsec_".
    secret = source["secrets"][0]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = get_header(headers, "webhook-id")
    if not msg_id:
        raise FixtureError("a Standard Webhooks fixture needs a webhook-id header")
    ts = _timestamp(get_header(headers, "webhook-timestamp"))
    set_header(headers, "webhook-timestamp", ts)
    sig = _hmac(key, f"{msg_id}.{ts}.".encode() + body)
    set_header(headers, "webhook-signature", "v1," + base64.b64encode(sig).decode())


def sign_slack(headers: Headers, body: bytes, source: Source) -> None:
    # v0=hex(HMAC-SHA256(secret, "v0:{timestamp}:{body}")), JSON and form bodies alike.
    secret = source["secrets"][0].encode()
    ts = _timestamp(get_header(headers, "X-Slack-Request-Timestamp"))
    set_header(headers, "X-Slack-Request-Timestamp", ts)
    digest = _hmac(secret, b"v0:" + ts.encode() + b":" + body).hex()
    set_header(headers, "X-Slack-Signature", "v0=" + digest)


def sign_hmac(headers: Headers, body: bytes, source: Source) -> None:
    secret = source["secrets"][0].encode()
    template: str = source.get("signed_content") or "{body}"
    timestamp_header: str = source.get("timestamp_header") or ""
    if "{timestamp}" in template and not timestamp_header:
        raise FixtureError(
            f"source {source['name']}: signed_content uses {{timestamp}} "
            "but timestamp_header is not set"
        )
    if timestamp_header:
        ts = _timestamp(get_header(headers, timestamp_header))
        set_header(headers, timestamp_header, ts)
        template = template.replace("{timestamp}", ts)
    # Split rather than str.format: the body is full of braces.
    before, sep, after = template.partition("{body}")
    content = before.encode() + (body if sep else b"") + after.encode()
    digest = _hmac(secret, content, source.get("algorithm") or "sha256")
    encoding = source.get("encoding") or "hex"
    if encoding == "hex":
        encoded = digest.hex()
    elif encoding == "base64":
        encoded = base64.b64encode(digest).decode()
    else:
        raise FixtureError(f"source {source['name']}: unknown encoding {encoding!r}")
    prefix = source.get("signature_prefix") or ""
    set_header(headers, source["signature_header"], prefix + encoded)


SIGNERS: dict[str, Callable[[Headers, bytes, Source], None]] = {
    "stripe": sign_stripe,
    "github": sign_github,
    "standard": sign_standard,
    "slack": sign_slack,
    "hmac": sign_hmac,
}


# --------------------------------------------------------------------------- files


def fixture_paths(args: list[str]) -> list[Path]:
    paths: list[Path] = []
    for arg in args or [str(DEFAULT_FIXTURES)]:
        p = Path(arg)
        if p.is_dir():
            paths.extend(sorted(p.rglob("*.json")))
        elif p.is_file():
            paths.append(p)
        else:
            raise FixtureError(f"{arg}: no such file or folder")
    return paths


def resign(fixture: dict[str, Any], sources: dict[str, Source]) -> dict[str, Any]:
    name = fixture.get("source")
    if name not in sources:
        raise FixtureError(f"source {name!r} is not in the config")
    source = sources[name]
    signer = SIGNERS.get(source.get("provider", ""))
    if signer is None:
        raise FixtureError(f"source {name!r}: unknown provider {source.get('provider')!r}")
    body = fixture.get("body")
    if not isinstance(body, str):
        raise FixtureError("body must be a string (the raw body as sent)")
    headers = dict(fixture.get("headers") or {})
    signer(headers, body.encode("utf-8"), source)
    return {**fixture, "headers": headers}


def dump(fixture: dict[str, Any]) -> str:
    return json.dumps(fixture, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="fixture files or folders (default: fixtures/)")
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="config holding the sources' secrets (default: hookline.example.toml)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="verify only: report fixtures whose signatures are not current",
    )
    args = parser.parse_args(argv)

    try:
        sources = load_sources(args.config)
        paths = fixture_paths(args.paths)
    except (OSError, FixtureError, tomllib.TOMLDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    bad = 0
    for path in paths:
        try:
            fixture = json.loads(path.read_text(encoding="utf-8"))
            signed = resign(fixture, sources)
        except (OSError, ValueError, FixtureError) as exc:
            print(f"error  {path}: {exc}", file=sys.stderr)
            bad += 1
            continue
        if signed["headers"] == fixture.get("headers"):
            print(f"ok     {path}")
        elif args.check:
            print(f"STALE  {path}: signature does not match the body", file=sys.stderr)
            bad += 1
        else:
            path.write_text(dump(signed), encoding="utf-8")
            print(f"signed {path}")
    print(f"{len(paths)} fixture(s), {bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
