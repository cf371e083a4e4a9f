"""Scripted faults for the next N matching requests, applied by a raw ASGI middleware.

A fault matches on the HTTP method (``"*"`` for any) and an :func:`fnmatch.fnmatchcase` pattern of
the path (``"/v1/files/*/content"``), and does one of:

- ``action="close_after_body"``: the real app reads and handles the request (a file IS created),
  then the TCP connection is closed without any response: the "did my upload happen?" case;
- ``action="truncate_body"``: the real response headers (with the full ``Content-Length``) and
  half of the body are sent, then the connection is closed;
- ``status=...``: an error answer with that status, optional headers (``retry-after``,
  ``retry-after-ms``, ``x-should-retry``) and an ``{"error": {...}}`` body, the request body being
  read and discarded first;
- ``delay=...`` alone: wait, then handle the request normally (a delay also precedes the others).

Closing a connection has no ASGI message: the middleware closes the server's transport, which
uvicorn's request cycle (both the h11 and httptools implementations) exposes as the
``transport`` attribute of the ``receive`` callable's owner; :mod:`.middleware` stores that cycle in
the scope under :data:`~.middleware.SCOPE_CYCLE`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_openai_files.emulator.core.middleware import SCOPE_CYCLE, SCOPE_LOG_NO_ANSWER

ACTIONS = ("close_after_body", "truncate_body")

_DEFAULT_MESSAGES = {
    429: ("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


@dataclass
class Fault:
    method: str = "*"
    path: str = "/v1/*"
    times: int = 1
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    delay: float = 0.0
    action: str | None = None

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        self.headers = {str(k).lower(): str(v) for k, v in (self.headers or {}).items()}
        if self.action is not None and self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; expected one of {ACTIONS}")
        if self.status is not None and not 100 <= int(self.status) <= 599:
            raise ValueError(f"bad fault status {self.status!r}")
        if self.action is None and self.status is None and not self.delay:
            raise ValueError("a fault needs a status, a delay or an action")
        if self.times < 1:
            raise ValueError("times must be at least 1")

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method.upper()) and fnmatch.fnmatchcase(path, self.path)

    def error_body(self) -> bytes:
        assert self.status is not None
        message, type_, code = _DEFAULT_MESSAGES.get(
            self.status, (f"Emulated fault (HTTP {self.status}).", "invalid_request_error", None)
        )
        error: dict[str, Any] = {"message": message, "type": type_, "param": None, "code": code}
        error.update(self.error or {})
        return json.dumps({"error": error}).encode()


class FaultRegistry:
    """Thread-safe list of pending faults; each match uses up one of its ``times``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, **kwargs: Any) -> Fault:
        fault = Fault(**kwargs)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(fault) for fault in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


async def _close_connection(scope: dict[str, Any]) -> None:
    cycle = scope.get(SCOPE_CYCLE)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("connection faults need the uvicorn server (no transport in this scope)")
    log_no_answer = scope.get(SCOPE_LOG_NO_ANSWER)
    if log_no_answer is not None:
        log_no_answer()  # a no-op when the answer had started (truncate_body)
    transport.close()
    # Let uvicorn's connection_lost() run so the cycle knows not to answer with a 500 after us.
    for _ in range(100):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0.001)


class FaultMiddleware:
    def __init__(self, app: Any, registry: FaultRegistry, skip: Callable[[str], bool] | None = None) -> None:
        self.app = app
        self.registry = registry
        self.skip = skip or (lambda path: path.startswith("/_emulator"))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        fault = None
        if scope["type"] == "http" and not self.skip(scope["path"]):
            fault = self.registry.take(scope["method"], scope["path"])
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.action == "close_after_body":
            await self._close_after_body(scope, receive)
        elif fault.action == "truncate_body":
            await self._truncate_body(scope, receive, send)
        elif fault.status is not None:
            body = fault.error_body()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in fault.headers.items()]
            await send({"type": "http.response.start", "status": fault.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        else:
            await self.app(scope, receive, send)

    async def _close_after_body(self, scope: dict[str, Any], receive: Any) -> None:
        async def swallow(message: dict[str, Any]) -> None:
            return None

        await self.app(scope, receive, swallow)
        await _close_connection(scope)

    async def _truncate_body(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        state: dict[str, Any] = {"left": None, "closed": False}

        async def truncating_send(message: dict[str, Any]) -> None:
            if state["closed"]:
                return
            if message["type"] == "http.response.start":
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-length":
                        state["left"] = int(value) // 2
                await send(message)
                return
            body = message.get("body", b"")
            if state["left"] is None:
                state["left"] = len(body) // 2
            piece = body[: state["left"]]
            state["left"] -= len(piece)
            if piece:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            if state["left"] <= 0 or not message.get("more_body", False):
                state["closed"] = True
                await _close_connection(scope)

        await self.app(scope, receive, truncating_send)
