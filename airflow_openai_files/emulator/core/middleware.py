"""The outermost ASGI layer: authentication of the API routes, ``x-request-id`` /
``openai-processing-ms`` / ``openai-version`` on every answer, the request log, and draining an
unread request body before answering (a client still sending a large body sees the error instead
of a broken pipe).

In Azure mode (``config.flavor == "azure"``) it is also Azure OpenAI's gateway, so that every resource
router (files, uploads, batches, fine-tuning, ...) is served on Azure's routes without knowing it:
``/openai/<path>?api-version=V`` and ``/openai/v1/<path>`` are checked (a missing api-version: 404
"Resource not found"; an unknown one: 400 "API version not supported"), authenticated (``api-key``
header, or an Entra ID ``Authorization: Bearer``), and handed to the app as ``/v1/<path>``; the public
prefix is kept in the scope under :data:`SCOPE_PUBLIC_PREFIX` (for ``Location`` headers). Answers carry
``apim-request-id`` instead of OpenAI's headers. The request log keeps the path the client sent.

It shares two scope keys with the fault middleware (:mod:`.faults`), named here.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from airflow_openai_files.emulator.core import errors
from airflow_openai_files.emulator.core.config import (
    API_PREFIX,
    AZURE_PREFIX,
    AZURE_V1_API_VERSIONS,
    AZURE_V1_PREFIX,
    EmulatorConfig,
)

if TYPE_CHECKING:
    from airflow_openai_files.emulator.core.state import EmulatorState

#: uvicorn's request cycle, which owns the transport: connection faults close it.
SCOPE_CYCLE = "emulator.cycle"
#: a callable logging the request with status 0 (the connection was closed without an answer).
SCOPE_LOG_NO_ANSWER = "emulator.log_no_answer"

#: The prefix the client used (``/openai`` or ``/openai/v1``) of an Azure request routed to ``/v1``.
SCOPE_PUBLIC_PREFIX = "emulator.public_prefix"

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


def azure_route(config: EmulatorConfig, path: str, query: str) -> tuple[str, str] | errors.EmulatorError:
    """``(internal path, public prefix)`` of an Azure request, or Azure's refusal."""
    from urllib.parse import parse_qs

    versions = parse_qs(query).get("api-version")
    version = versions[-1] if versions else None
    if path == AZURE_V1_PREFIX or path.startswith(AZURE_V1_PREFIX + "/"):
        if version is not None and version not in AZURE_V1_API_VERSIONS:
            return errors.azure_api_version_not_supported()
        return API_PREFIX + path[len(AZURE_V1_PREFIX) :], AZURE_V1_PREFIX
    if path.startswith(AZURE_PREFIX + "/"):
        if not version:
            return errors.azure_resource_not_found()
        if version not in config.api_versions:
            return errors.azure_api_version_not_supported()
        return API_PREFIX + path[len(AZURE_PREFIX) :], AZURE_PREFIX
    return errors.azure_resource_not_found()


def azure_auth_error(headers: dict[bytes, bytes], config: EmulatorConfig) -> errors.EmulatorError | None:
    """``api-key`` must be a configured key (any non-empty key if none is); a bearer token must be one of
    the configured Entra ID tokens or keys (Azure's v1 routes take the key as a bearer too), any
    non-empty one if no token is configured."""
    raw_key = headers.get(b"api-key")
    if raw_key is not None:
        key = raw_key.decode("latin-1").strip()
        if not key or (config.api_keys and key not in config.api_keys):
            return errors.azure_bad_key()
        return None
    scheme, _, token = (headers.get(b"authorization") or b"").decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return errors.azure_bad_key()
    if config.bearer_tokens and token not in (*config.bearer_tokens, *config.api_keys):
        return errors.azure_bad_token()
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
                self.state.request_count += 1
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
                if config.is_azure:
                    # Azure's API Management stamps its own id; OpenAI's headers are not sent.
                    stamps = [(b"apim-request-id", str(uuid.uuid4()).encode()), (b"x-ms-region", b"emulator")]
                else:
                    stamps = [
                        (b"x-request-id", f"req_{uuid.uuid4().hex}".encode()),
                        (b"openai-processing-ms", str(elapsed_ms).encode()),
                        (b"openai-version", OPENAI_VERSION),
                    ]
                headers = [*message.get("headers", []), *stamps]
                message = {**message, "headers": headers}
                log(message["status"])
            await send(message)

        error: errors.EmulatorError | None = None
        if config.is_azure and not config.is_admin_path(path):
            error = azure_auth_error(dict(scope["headers"]), config)
            if error is None:
                routed = azure_route(config, path, scope.get("query_string", b"").decode("latin-1"))
                if isinstance(routed, errors.EmulatorError):
                    error = routed
                else:
                    inner, prefix = routed
                    scope = {**scope, "path": inner, "raw_path": inner.encode(), SCOPE_PUBLIC_PREFIX: prefix}
        elif config.is_api_path(path):
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
