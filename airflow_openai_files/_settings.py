"""Turns an ``openai_files`` Airflow Connection into validated client settings."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_openai_files import __version__
from airflow_openai_files._compat import AirflowNotFoundException
from airflow_openai_files._connection_form import DEFAULT_BASE_URL, HOST_DESCRIPTION
from airflow_openai_files.exceptions import OpenAIFilesConfigError
from airflow_openai_files.limits import CONN_TYPE, MiB

DEFAULT_TIMEOUT = 600.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_MULTIPART_THRESHOLD = 512 * MiB
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")

USER_AGENT = f"airflow-provider-openai-files/{__version__} python/{platform.python_version()}"


@dataclass(frozen=True)
class ClientSettings:
    """Everything needed to talk to the Files API; built once per hook or trigger."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    organization: str | None = None
    project: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    #: What ``requests`` / ``ssl`` are given: True, False, or the CA bundle path to trust.
    verify: bool | str = True
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}", "User-Agent": USER_AGENT}
        if self.organization:
            headers["OpenAI-Organization"] = self.organization
        if self.project:
            headers["OpenAI-Project"] = self.project
        return headers

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"


def _fail(conn_id: str, field_name: str, problem: str) -> OpenAIFilesConfigError:
    if field_name == "host":
        problem = f"{problem}. {HOST_DESCRIPTION}"
    return OpenAIFilesConfigError(f"Connection {conn_id!r}: field {field_name!r} {problem}")


def normalize_base_url(conn_id: str, host: str | None, port: int | None = None, schema: str | None = None) -> str:
    """
    Return the base URL for a connection's host, defaulting to the public API.

    A connection given as a URI (``openai-files://:KEY@host:8089/v1``) arrives split into host, port and
    schema (``v1``); they are put back together.
    """
    raw = (host or "").strip()
    if not raw:
        return DEFAULT_BASE_URL
    if "://" not in raw:
        raw = f"https://{raw}"
    if any(ch.isspace() for ch in raw):
        raise _fail(conn_id, "host", f"(Base URL) {raw!r} contains whitespace")
    try:
        parts = urlsplit(raw)
        parsed_port = parts.port
    except ValueError as err:
        raise _fail(conn_id, "host", f"(Base URL) {raw!r} is not a valid URL: {err}") from None
    if parts.scheme not in ("http", "https"):
        raise _fail(conn_id, "host", f"(Base URL) must use http or https, got {parts.scheme!r}")
    if not parts.hostname:
        raise _fail(conn_id, "host", f"(Base URL) {raw!r} has no host name")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise _fail(conn_id, "host", "(Base URL) must not carry credentials, a query or a fragment")
    netloc = parts.netloc
    if port and parsed_port is None:
        netloc = f"{netloc}:{port}"
    path = parts.path
    if schema and schema.strip("/") and path.strip("/") == "":
        path = "/" + schema.strip("/")
    return f"{parts.scheme}://{netloc}{path}".rstrip("/")


def _number(conn_id: str, name: str, value: Any, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(conn_id, name, f"must be a number of seconds, got {value!r}") from None
    if isinstance(value, bool) or not number > 0:
        raise _fail(conn_id, name, f"must be a positive number of seconds, got {value!r}")
    return number


def _integer(conn_id: str, name: str, value: Any, default: int, minimum: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise _fail(conn_id, name, f"must be a whole number, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise _fail(conn_id, name, f"must be a whole number, got {value!r}") from None
    if number < minimum:
        raise _fail(conn_id, name, f"must be at least {minimum}, got {value!r}")
    return number


def _verify(conn_id: str, value: Any, ca_bundle: Any) -> bool | str:
    """
    ``verify`` is a switch; ``ca_bundle`` a path. For compatibility ``verify`` may still hold the
    strings ``true``/``false`` (and their kin) or a CA bundle path, but only something that looks
    like a path is taken as one: a typo of ``false`` is an error, not a certificate file.
    """
    bundle = str(ca_bundle).strip() if ca_bundle not in (None, "") else ""
    if value is None or value == "":
        switch: bool | str = True
    elif isinstance(value, bool):
        switch = value
    else:
        text = str(value).strip()
        if text.lower() in _TRUE:
            switch = True
        elif text.lower() in _FALSE:
            switch = False
        elif os.sep in text or "/" in text or text.lower().endswith((".pem", ".crt", ".cer")):
            switch = text  # the former way of naming a CA bundle
        else:
            raise _fail(
                conn_id, "verify", f"must be true or false, got {value!r} (put a CA bundle path in 'ca_bundle')"
            )
    if switch is False:
        return False
    return bundle or switch


def parse_settings(
    conn_id: str,
    *,
    host: str | None,
    password: str | None,
    extra: dict[str, Any],
    port: int | None = None,
    schema: str | None = None,
) -> ClientSettings:
    """Validate connection fields; every problem names the connection and the field."""
    api_key = (password or "").strip() or str(extra.get("api_key") or "").strip()
    if not api_key:
        raise _fail(conn_id, "password", "(API Key) is empty: set the connection's password to an OpenAI key")
    return ClientSettings(
        conn_id=conn_id,
        base_url=normalize_base_url(conn_id, host, port, schema),
        api_key=api_key,
        organization=(str(extra["organization"]).strip() or None) if extra.get("organization") else None,
        project=(str(extra["project"]).strip() or None) if extra.get("project") else None,
        timeout=_number(conn_id, "timeout", extra.get("timeout"), DEFAULT_TIMEOUT),
        connect_timeout=_number(conn_id, "connect_timeout", extra.get("connect_timeout"), DEFAULT_CONNECT_TIMEOUT),
        max_retries=_integer(conn_id, "max_retries", extra.get("max_retries"), DEFAULT_MAX_RETRIES, 0),
        verify=_verify(conn_id, extra.get("verify"), extra.get("ca_bundle")),
        multipart_threshold=_integer(
            conn_id, "multipart_threshold", extra.get("multipart_threshold"), DEFAULT_MULTIPART_THRESHOLD, 1
        ),
    )


def load_settings(conn_id: str) -> ClientSettings:
    """Read the Airflow connection ``conn_id`` and hand its key to the secrets masker."""
    from airflow_openai_files._compat import get_connection

    try:
        conn = get_connection(conn_id)
    except AirflowNotFoundException:
        raise OpenAIFilesConfigError(
            f"Connection {conn_id!r} is not defined: create an '{CONN_TYPE}' connection in the UI or set "
            f"AIRFLOW_CONN_{conn_id.upper()}"
        ) from None
    try:
        extra = conn.extra_dejson or {}
    except Exception:
        raise _fail(conn_id, "extra", "is not valid JSON") from None
    settings = parse_settings(
        conn_id, host=conn.host, password=conn.password, extra=extra, port=conn.port, schema=conn.schema
    )
    mask_key(settings.api_key)
    return settings


def mask_key(api_key: str) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    mask_secret(api_key)
