"""How a webhook body becomes data: JSON, or an ``application/x-www-form-urlencoded`` form.

One rule, used by the providers (to find an event's id and type) and by hookline
(``Event.data``, the admin API's ``payload``, the dashboard and the CLI), so a handler
sees exactly what the provider read:

- ``Content-Type: application/x-www-form-urlencoded`` → the form, parsed from the raw
  bytes as UTF-8: ``{field: value}``, a field sent more than once as a list of its
  values. When the form's only field is ``payload`` and it holds JSON (GitHub's form
  content type, Slack's interactivity requests), the data is that JSON instead.
- any other content type, or none → the body as JSON.

The signature is always checked over the raw bytes before any of this runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from hookline.providers._util import load_json_exact
from hookline.providers.base import InvalidPayload

FORM = "application/x-www-form-urlencoded"
#: More fields than any Slack or GitHub form has; bounds the parser's work.
MAX_FORM_FIELDS = 1000

FormData = dict[str, str | list[str]]


def media_type(headers: Mapping[str, str]) -> str:
    """The ``content-type`` without parameters, lower-cased ("" when absent)."""
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_form(headers: Mapping[str, str]) -> bool:
    return media_type(headers) == FORM


def parse_form(body: bytes) -> FormData:
    """A urlencoded form; ``InvalidPayload`` when it is not UTF-8 or has too many fields."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except UnicodeDecodeError:
        raise InvalidPayload("form body is not UTF-8") from None
    except ValueError:  # max_num_fields exceeded
        raise InvalidPayload(f"form body has more than {MAX_FORM_FIELDS} fields") from None
    form: FormData = {}
    for key, value in pairs:
        present = form.get(key)
        if present is None:
            form[key] = value
        elif isinstance(present, list):
            present.append(value)
        else:
            form[key] = [present, value]
    return form


def form_payload(form: FormData) -> Any:
    """The JSON of a form whose only field is ``payload``; ``InvalidPayload`` otherwise."""
    value = form.get("payload")
    if len(form) != 1 or not isinstance(value, str):
        raise InvalidPayload("form body has no single payload field")
    return load_json_exact(value.encode("utf-8"))


def decode_body(body: bytes, headers: Mapping[str, str]) -> Any:
    """The data of a body (see the module docstring); ``InvalidPayload`` when it does not
    parse as what its content type says."""
    if not is_form(headers):
        return load_json_exact(body)
    form = parse_form(body)
    if set(form) == {"payload"}:
        try:
            return form_payload(form)
        except InvalidPayload:
            return form  # a lone payload field that is not JSON stays a form field
    return form
