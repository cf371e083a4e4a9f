"""Strict request parsing shared by every router: JSON bodies that refuse unknown fields, form
field sets, typed required parameters, query integers and ``expires_after``.

A JSON endpoint reads its body with :func:`read_json` naming the fields it takes::

    body = await read_json(request, allowed=("filename", "purpose", "bytes", "mime_type", "expires_after"))
    filename = required(body, "filename", str)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from airflow_openai_files.emulator.core import errors
from airflow_openai_files.limits import EXPIRES_MAX_SECONDS, EXPIRES_MIN_SECONDS


def check_known(names: Iterable[str], allowed: Iterable[str]) -> None:
    """400 ``Unrecognized request argument supplied: <name>`` for any name outside ``allowed``."""
    known = set(allowed)  # once: ``allowed`` may be a one-shot iterator
    unknown = {name for name in names if name not in known}
    if unknown:
        raise errors.unrecognized_argument(unknown)


async def read_json(request: Any, *, allowed: Iterable[str]) -> dict[str, Any]:
    """The JSON object body of ``request``; unknown top-level fields are refused like the service does."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise errors.bad_json() from None
    if not isinstance(body, dict):
        raise errors.bad_json()
    check_known(body, allowed)
    return body


def required(body: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in body or body[name] is None:
        raise errors.missing_key_param(name)
    value = body[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise errors.invalid_type(name)
    return value


def int_param(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise errors.not_an_integer(name, value) from None
    if not low <= number <= high:
        raise errors.integer_out_of_range(name, number, low, high)
    return number


def parse_expires_after(anchor: Any, seconds: Any, prefix: str = "expires_after") -> int | None:
    """Seconds after creation, or None when neither part is given."""
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise errors.invalid_value(
            f"{prefix}[anchor]", f"Invalid value for '{prefix}[anchor]': expected 'created_at'.", code=None
        )
    try:
        value = int(seconds)
        if isinstance(seconds, bool) or float(seconds) != value:
            raise ValueError
    except (TypeError, ValueError):
        raise errors.invalid_value(
            f"{prefix}[seconds]", f"Invalid '{prefix}[seconds]': expected an integer.", code=None
        ) from None
    if not EXPIRES_MIN_SECONDS <= value <= EXPIRES_MAX_SECONDS:
        raise errors.invalid_value(
            f"{prefix}[seconds]",
            f"Invalid '{prefix}[seconds]': must be between {EXPIRES_MIN_SECONDS} and {EXPIRES_MAX_SECONDS}"
            f" seconds, got {value}.",
            code=None,
        )
    return value


def expires_after_object(value: Any) -> int | None:
    """``expires_after`` as a JSON object ``{"anchor", "seconds"}`` (Uploads, later Batches)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise errors.invalid_type("expires_after")
    check_known(value, ("anchor", "seconds"))
    return parse_expires_after(value.get("anchor"), value.get("seconds"))
