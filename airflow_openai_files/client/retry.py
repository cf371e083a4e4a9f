"""The one retry decision shared by the sync hook (requests) and the async hook (httpx).

Which failures heal (:func:`classify` for answers, :func:`should_retry` for any exception) and how long to
wait (:meth:`RetryPolicy.wait_for`) are decided here and nowhere else; the two hooks only run the loop
(``time.sleep`` on the worker, ``asyncio.sleep`` on the triggerer). Standard library only.

Mirrors the official SDK: retry 408, 409, 429 and 5xx (plus connection errors and timeouts), let
``x-should-retry`` force the decision, never retry a 429 that means the quota is spent, and wait what
the server asks for when that is sane, else exponential backoff with jitter.
"""

from __future__ import annotations

import email.utils
import json
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_openai_files.exceptions import OpenAIFilesError, RetryableError

__all__ = [
    "RetryPolicy",
    "RetryableError",
    "classify",
    "describe",
    "json_object",
    "parse_retry_after",
    "plain_http_answer",
    "request_id_from",
    "should_retry",
]

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
QUOTA_CODES = frozenset({"insufficient_quota"})


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


#: Where the request id is, in order: OpenAI's header, then Azure API Management's and Azure's own.
REQUEST_ID_HEADERS = ("x-request-id", "apim-request-id", "x-ms-request-id")


def request_id_from(headers: Mapping[str, str]) -> str | None:
    """
    The request id of an answer: ``x-request-id``, else Azure's ``apim-request-id`` / ``x-ms-request-id``.

    ``headers`` is a case-insensitive mapping (requests, httpx) or a dict with lower-case keys.
    """
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return str(value)
    return None


def error_fields(body: bytes | str | None) -> dict[str, Any]:
    """
    The error object of a response body, or ``{}``.

    OpenAI and Azure's data plane answer ``{"error": {"message", "type", "param", "code"}}`` (Azure
    sends only ``code`` and ``message``, its codes being strings such as ``"404"`` or ``"BadRequest"``);
    Azure's gateway refuses a bad Entra ID token with ``{"statusCode": 401, "message": "..."}``.
    """
    if not body:
        return {}
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(payload, dict):
        return {}
    error = payload.get("error")
    if isinstance(error, dict):
        return error
    if isinstance(error, str):  # some gateways send {"error": "message"}
        return {"message": error}
    if isinstance(payload.get("message"), str):
        code = payload.get("code", payload.get("statusCode"))
        return {"message": payload["message"], "code": str(code) if code is not None else None}
    return {}


def json_object(parse: Callable[[], Any], what: str, headers: Mapping[str, str]) -> dict[str, Any]:
    """The JSON object of a 2xx answer (``parse`` is the client's ``response.json``), or a clear error."""
    try:
        payload = parse()
    except ValueError:
        raise OpenAIFilesError(f"{what}: the answer was not JSON", request_id=request_id_from(headers)) from None
    if not isinstance(payload, dict):
        raise OpenAIFilesError(
            f"{what}: expected a JSON object, got {type(payload).__name__}", request_id=request_id_from(headers)
        )
    return payload


def classify(status: int, headers: Mapping[str, str], body: bytes | str | None, *, what: str) -> OpenAIFilesError:
    """Build the error for a non-2xx answer: a RetryableError when the policy allows a retry."""
    lowered = {k.lower(): v for k, v in headers.items()}
    err = error_fields(body)
    message = str(err.get("message") or (body[:200] if isinstance(body, str) else "") or "no error message")
    kwargs: dict[str, Any] = {
        "http_status": status,
        "error_type": err.get("type"),
        "code": err.get("code"),
        "param": err.get("param"),
        "request_id": request_id_from(lowered),
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


def gave_up(err: OpenAIFilesError, attempts: int, started: float) -> OpenAIFilesError:
    """The error a transport raises once its retries are spent: the last one, saying how long it tried.

    Re-typed as a plain :class:`OpenAIFilesError` (never :class:`RetryableError`, which means "this
    loop may try again"), so both transports raise the same class for the same failure.
    """
    return err.reworded(
        f"{err.message}; gave up after {attempts} attempt(s) in {time.monotonic() - started:.1f}s",
        cls=OpenAIFilesError if isinstance(err, RetryableError) else None,
    )


#: The log line of a retry, the same on the worker and the triggerer.
RETRY_LOG = "Attempt %d of %d failed (%s); retrying in %.2fs"


# -- which exceptions a retry can heal ------------------------------------------------------------------
#
# One decision for the requests/urllib3 transport (worker) and the httpx client (triggerer). The client
# libraries are recognised by the module their exception classes come from, never imported here: the
# triggerer must not load requests, urllib3 or tenacity just to ask this question.

# Subclasses of these (by module and class name) are not worth another attempt whatever their base says.
_NEVER = frozenset(
    {
        ("requests.exceptions", "SSLError"),  # requests' TLS failures: certificates, protocol versions
        ("requests.exceptions", "InvalidURL"),
        ("requests.exceptions", "InvalidSchema"),
        ("requests.exceptions", "MissingSchema"),
        ("requests.exceptions", "InvalidHeader"),
        ("requests.exceptions", "InvalidProxyURL"),
        ("httpx", "UnsupportedProtocol"),
        ("httpx", "LocalProtocolError"),  # we built a request the protocol refuses: a bug, not weather
        ("httpx", "ProxyError"),
    }
)
# A dropped or refused connection, a timeout, a body cut short.
_HEALS = frozenset(
    {
        ("requests.exceptions", "ConnectionError"),
        ("requests.exceptions", "Timeout"),
        ("requests.exceptions", "ChunkedEncodingError"),
        ("urllib3.exceptions", "ProtocolError"),
        ("urllib3.exceptions", "TimeoutError"),
        ("urllib3.exceptions", "NewConnectionError"),
        ("urllib3.exceptions", "MaxRetryError"),
        ("httpx", "TransportError"),  # ConnectError, ReadError, RemoteProtocolError, timeouts, ...
    }
)


def _names(exc: BaseException) -> set[tuple[str, str]]:
    """(public module, class name) of every class ``exc`` is an instance of."""
    names = set()
    for cls in type(exc).__mro__:
        module = cls.__module__
        if module.startswith("httpx."):  # httpx defines its classes in httpx._exceptions
            module = "httpx"
        names.add((module, cls.__name__))
    return names


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception behind it: causes, contexts, urllib3's ``reason`` and wrapped ``args``."""
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or any(current is known for known in seen):
            continue
        seen.append(current)
        todo.extend((current.__cause__, current.__context__, getattr(current, "reason", None)))
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))
    return seen


def certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind ``exc`` (however the client wrapped it), if there is one."""
    for link in _chain(exc):
        if isinstance(link, ssl.SSLCertVerificationError):
            return link
    return None


def plain_http_answer(exc: BaseException) -> bool:
    """
    Whether a TLS handshake was answered in plain HTTP: OpenSSL's ``WRONG_VERSION_NUMBER`` (the first bytes
    back were ``HTTP/1.1 400 ...``, not a TLS record). An ``https://`` URL pointing at a plain-HTTP server,
    such as the local emulator: a configuration mistake, never retried, and worth saying in those words.
    """
    return any(
        isinstance(link, ssl.SSLError)
        and (getattr(link, "reason", None) == "WRONG_VERSION_NUMBER" or "WRONG_VERSION_NUMBER" in str(link))
        for link in _chain(exc)
    )


def _tls_failure(exc: BaseException) -> bool:
    """A TLS error other than the peer closing the connection (which is a dropped connection, and heals)."""
    return any(
        isinstance(link, ssl.SSLError) and not isinstance(link, (ssl.SSLEOFError, ssl.SSLZeroReturnError))
        for link in _chain(exc)
    )


def should_retry(exc: BaseException) -> bool:
    """
    Whether another attempt can heal the failure ``exc``; the same answer on the worker and the triggerer.

    Retried: a :class:`RetryableError` (the status rules of :func:`classify`), a refused or dropped
    connection, a connect or read timeout, a body cut short (requests, urllib3, httpx or the built-in
    ``ConnectionError``/``TimeoutError``). Never retried: a TLS certificate failure anywhere in the chain,
    other TLS failures, a malformed URL or unsupported scheme, every other :class:`OpenAIFilesError`,
    and anything unknown (a bug does not heal by repeating it).
    """
    if isinstance(exc, OpenAIFilesError):
        return isinstance(exc, RetryableError)
    if _tls_failure(exc):  # includes every certificate verification failure
        return False
    names = _names(exc)
    if names & _NEVER:
        return False
    if names & _HEALS:
        return True
    return isinstance(exc, (ConnectionError, TimeoutError))


def describe(exc: BaseException) -> str:
    """A transport failure in words for the person on call (never a key: exceptions carry no headers)."""
    if isinstance(exc, OpenAIFilesError):
        return str(exc)
    cert = certificate_failure(exc)
    if cert is not None:
        reason = f"{cert.reason or 'CERTIFICATE_VERIFY_FAILED'}: {cert.verify_message or cert}"
        return (
            f"TLS certificate verification failed ({reason}); not retried: give the connection's 'verify' "
            "a CA bundle that trusts the server, or fix the server's certificate"
        )
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
