"""The outermost ASGI layer: authentication of the API routes, ``x-request-id`` /
``openai-processing-ms`` / ``openai-version`` on every answer, the request log, and draining an
unread request body before answering (a client still sending a large body sees the error instead
of a broken pipe).

It shares two scope keys with the fault middleware (:mod:`.faults`), named here.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from airflow_openai_files.emulator import errors

if TYPE_CHECKING:
    from airflow_openai_files.emulator.state import EmulatorState

#: uvicorn's request cycle, which owns the transport: connection faults close it.
SCOPE_CYCLE = "emulator.cycle"
#: a callable logging the request with status 0 (the connection was closed without an answer).
SCOPE_LOG_NO_ANSWER = "emulator.log_no_answer"

OPENAI_VERSION = b"2020-10-01"


def mask_key(key: str) -> str:
    """``sk-ab***wxyz``: enough to recognise a key, never the whole of it."""
    if len(key) <= 8:
        return "*" * len(key)
    return f"{key[:5]}{'*' * min(len(key) - 9, 20)}{key[-4:]}"


def auth_error(authorization: str | None, api_keys: tuple[str, ...]) -> errors.EmulatorError | None:
    scheme, _, key = (authorization or "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return errors.missing_key()
    if api_keys and key not in api_keys:
        return errors.incorrect_key(mask_key(key))
    return None


class ContextMiddleware:
    def __init__(self, app: Any, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        config = self.state.config
        started = time.perf_counter()
        scope[SCOPE_CYCLE] = getattr(receive, "__self__", None)
        seen = {"body_done": False, "logged": False}
        path: str = scope["path"]

        def log(status: int) -> None:
            # Logged when the answer starts (or the connection is dropped), before the client can
            # see anything; status 0: the connection was closed without an answer.
            if not seen["logged"] and not config.is_admin_path(path):
                self.state.requests.append((scope["method"], path, status))
            seen["logged"] = True

        scope[SCOPE_LOG_NO_ANSWER] = lambda: log(0)

        async def tracked_receive() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                seen["body_done"] = True
            return message

        async def stamped_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                while not seen["body_done"]:
                    await tracked_receive()
                elapsed_ms = int((time.perf_counter() - started) * 1000)
                headers = [
                    *message.get("headers", []),
                    (b"x-request-id", f"req_{uuid.uuid4().hex}".encode()),
                    (b"openai-processing-ms", str(elapsed_ms).encode()),
                    (b"openai-version", OPENAI_VERSION),
                ]
                message = {**message, "headers": headers}
                log(message["status"])
            await send(message)

        if config.is_api_path(path):
            raw = dict(scope["headers"]).get(b"authorization")
            error = auth_error(raw.decode("latin-1") if raw else None, config.api_keys)
            if error is not None:
                body = json.dumps(error.body(), separators=(",", ":")).encode()
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await stamped_send({"type": "http.response.start", "status": error.status, "headers": headers})
                await stamped_send({"type": "http.response.body", "body": body})
                return
        try:
            await self.app(scope, tracked_receive, stamped_send)
        finally:
            log(0)
