"""The retry policy shared by the hook (requests) and the trigger (httpx).

Mirrors the official SDK: retry 408, 409, 429 and 5xx (plus connection errors and timeouts), let
``x-should-retry`` force the decision, never retry a 429 that means the quota is spent, and wait what
the server asks for when that is sane, else exponential backoff with jitter.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_openai_files.exceptions import OpenAIFilesError

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
QUOTA_CODES = frozenset({"insufficient_quota"})


class RetryableError(OpenAIFilesError):
    """An HTTP answer the policy allows to retry; carries the server's wait hint."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


@dataclass
class RetryPolicy:
    """
    How many times and how long to retry.

    :param max_retries: retries after the first attempt (attempts = max_retries + 1).
    :param backoff_base: first backoff in seconds, doubled each retry.
    :param backoff_max: ceiling of the exponential backoff.
    :param max_server_wait: longest server-requested wait honoured; longer hints fall back to backoff.
    :param sleep: how to wait; tests replace it to record waits without sleeping.
    """

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_server_wait: float = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def backoff(self, retry_number: int) -> float:
        """Wait before retry ``retry_number`` (1-based) when the server gave no usable hint."""
        delay = min(self.backoff_base * 2 ** (retry_number - 1), self.backoff_max)
        return delay * (1 - 0.25 * random.random())

    def wait_for(self, retry_number: int, retry_after: float | None) -> float:
        if retry_after is not None and 0 <= retry_after <= self.max_server_wait:
            return retry_after
        return self.backoff(retry_number)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, from ``retry-after-ms`` or ``retry-after``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = lowered.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    parsed = email.utils.parsedate_to_datetime(value) if value.strip() else None
    if parsed is None:
        return None
    return max(0.0, parsed.timestamp() - (time.time() if now is None else now))


def error_fields(body: bytes | str | None) -> dict[str, Any]:
    """OpenAI's ``{"error": {...}}`` object from a response body, or ``{}``."""
    if not body:
        return {}
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else {}


def json_object(parse: Callable[[], Any], what: str, headers: Mapping[str, str]) -> dict[str, Any]:
    """The JSON object of a 2xx answer (``parse`` is the client's ``response.json``), or a clear error."""
    try:
        payload = parse()
    except ValueError:
        raise OpenAIFilesError(f"{what}: the answer was not JSON", request_id=headers.get("x-request-id")) from None
    if not isinstance(payload, dict):
        raise OpenAIFilesError(
            f"{what}: expected a JSON object, got {type(payload).__name__}", request_id=headers.get("x-request-id")
        )
    return payload


def classify(status: int, headers: Mapping[str, str], body: bytes | str | None, *, what: str) -> OpenAIFilesError:
    """Build the error for a non-2xx answer: a RetryableError when the policy allows a retry."""
    lowered = {k.lower(): v for k, v in headers.items()}
    err = error_fields(body)
    message = str(err.get("message") or (body[:200] if isinstance(body, str) else "") or "no error message")
    kwargs: dict[str, Any] = {
        "status_code": status,
        "error_type": err.get("type"),
        "code": err.get("code"),
        "param": err.get("param"),
        "request_id": lowered.get("x-request-id"),
    }
    text = f"{what} failed with HTTP {status}: {message}"
    should_retry = lowered.get("x-should-retry", "").strip().lower()
    quota = status == 429 and (kwargs["code"] in QUOTA_CODES or kwargs["error_type"] in QUOTA_CODES)
    if quota:
        return OpenAIFilesError(f"{text} (quota exhausted: check the plan and billing; not retried)", **kwargs)
    if should_retry == "false":
        return OpenAIFilesError(f"{text} (server said x-should-retry: false)", **kwargs)
    if should_retry == "true" or status in RETRYABLE_STATUSES:
        return RetryableError(text, retry_after=parse_retry_after(lowered), **kwargs)
    return OpenAIFilesError(text, **kwargs)


def _is_certificate_failure(exc: BaseException) -> bool:
    """True when ``exc`` or anything in its cause/context chain is a TLS certificate failure."""
    import ssl

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if type(current).__name__ == "SSLError":  # requests / urllib3 wrap the ssl module's error
            return True
        current = (current.args[0] if current.args and isinstance(current.args[0], BaseException) else None) or (
            current.__cause__ or current.__context__
        )
        if current is None:
            break
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen and _is_certificate_failure(reason):
            return True
    return False


def should_retry(exc: BaseException) -> bool:
    """Minimal shared retry decision (core-sync; core-async's fuller version replaces it on merge)."""
    if isinstance(exc, RetryableError):
        return True
    if isinstance(exc, OpenAIFilesError):
        return False
    if _is_certificate_failure(exc):
        return False  # a certificate problem does not fix itself
    import requests

    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return True
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return True
    try:
        import httpx
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (httpx.TransportError,)) and not isinstance(exc, httpx.UnsupportedProtocol)
