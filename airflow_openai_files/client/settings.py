"""Turns an ``openai_files`` Airflow Connection into validated client settings."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_openai_files import __version__
from airflow_openai_files._compat import AirflowNotFoundException
from airflow_openai_files.client.form import AZURE_HOST_DESCRIPTION, DEFAULT_BASE_URL, HOST_DESCRIPTION
from airflow_openai_files.exceptions import OpenAIFilesConfigError, OpenAIFilesError
from airflow_openai_files.limits import AZURE_MULTIPART_THRESHOLD, CONN_TYPE, FLAVORS, MiB

DEFAULT_TIMEOUT = 600.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_MULTIPART_THRESHOLD = 512 * MiB
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_API_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,63}$")
#: Extras that only mean something on Azure; set on an ``openai`` connection they are a mistake.
AZURE_ONLY_EXTRAS = ("api_version", "azure_ad_token", "use_azure_credential", "managed_identity_client_id")

USER_AGENT = f"airflow-provider-openai-files/{__version__} python/{platform.python_version()}"
#: Sent with every vector store request, as the official SDK does (``vector_stores`` belong to the v2 Assistants
#: family of endpoints: openai-python's ``resources/vector_stores`` pass ``{"OpenAI-Beta": "assistants=v2"}``).
BETA_HEADERS = {"OpenAI-Beta": "assistants=v2"}


def path_headers(path: str) -> dict[str, str] | None:
    """Headers a request to ``path`` needs besides the auth ones: the beta header on vector store paths.

    Decided here, by path, so the sync and the async transport (triggers, the shared poller) send the same.
    """
    return dict(BETA_HEADERS) if path.lstrip("/").startswith("vector_stores") else None


@dataclass(frozen=True)
class ClientSettings:
    """
    Everything needed to talk to the API; built once per hook or trigger.

    The *flavor* (``openai`` or ``azure``) is a property of the connection, and this class is the one
    place that knows what it changes on the wire: the URL of a path (:meth:`url`), the ``api-version``
    query (:meth:`query`), the auth header (:meth:`headers`; an Entra ID bearer from a credential is
    added per request by the transports, see :mod:`airflow_openai_files.client.azure`), and per-flavor
    defaults (:attr:`files_need_processing`, the Uploads API threshold). Resource code never asks.
    """

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
    #: ``openai`` (api.openai.com and compatible services) or ``azure`` (Azure OpenAI).
    flavor: str = "openai"
    #: Azure: the ``api-version`` query of the ``/openai/...`` routes; ``None``: the ``/openai/v1`` routes.
    api_version: str | None = None
    #: Azure: a Microsoft Entra ID bearer token given in the connection (instead of the resource key).
    azure_ad_token: str | None = field(default=None, repr=False)
    #: Azure: fetch Entra ID tokens with azure-identity (``DefaultAzureCredential`` / managed identity).
    use_azure_credential: bool = False
    managed_identity_client_id: str | None = None
    #: The host was given without a scheme and ``https://`` was put in front of it.
    scheme_assumed: bool = False

    @property
    def is_azure(self) -> bool:
        return self.flavor == "azure"

    @property
    def files_need_processing(self) -> bool:
        """
        Whether a file must be ``processed`` before a batch or fine-tuning job may use it.

        Azure OpenAI refuses a batch or job whose file is not ``processed`` yet; OpenAI accepts the file
        at once (content problems surface on the job). Operators that consume a file call
        ``hook.wait_for_input_file(file_id)``, which waits only when this is true.
        """
        return self.is_azure

    @property
    def endpoint(self) -> str:
        """Azure: ``https://<resource>.openai.azure.com`` (what ``AzureOpenAI(azure_endpoint=...)`` takes)."""
        if not self.is_azure:
            return self.base_url
        return self.base_url.removesuffix("/v1").removesuffix("/openai")

    @property
    def uses_key(self) -> bool:
        return bool(self.api_key) and not (self.azure_ad_token or self.use_azure_credential)

    def headers(self) -> dict[str, str]:
        """Headers of every request; an Entra ID bearer from a credential is added per request."""
        headers = {"User-Agent": USER_AGENT}
        if not self.is_azure:
            headers["Authorization"] = f"Bearer {self.api_key}"
            if self.organization:
                headers["OpenAI-Organization"] = self.organization
            if self.project:
                headers["OpenAI-Project"] = self.project
        elif self.azure_ad_token:
            headers["Authorization"] = f"Bearer {self.azure_ad_token}"
        elif self.uses_key:
            headers["api-key"] = self.api_key
        return headers

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def query(self, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The query of a request: ``params`` plus Azure's ``api-version`` on the versioned routes."""
        if not self.api_version:
            return params
        return {**(params or {}), "api-version": self.api_version}

    def describe_routes(self) -> str:
        """Which API and routes this connection uses, for one log line per hook (never a secret)."""
        if not self.is_azure:
            return f"Connection {self.conn_id!r}: OpenAI API at {self.base_url}"
        if self.api_version:
            return (
                f"Connection {self.conn_id!r}: Azure OpenAI at {self.endpoint}, versioned /openai routes with "
                f"api-version {self.api_version} (the extra 'api_version')"
            )
        return (
            f"Connection {self.conn_id!r}: Azure OpenAI at {self.endpoint}, /openai/v1 routes (no 'api_version' "
            "extra: the v1 API, which takes no api-version)"
        )

    def secrets(self) -> list[str]:
        """Values to hand to the secrets masker."""
        return [value for value in (self.api_key, self.azure_ad_token) if value]


def _fail(conn_id: str, field_name: str, problem: str, *, azure: bool = False) -> OpenAIFilesConfigError:
    if field_name == "host":
        problem = f"{problem}. {AZURE_HOST_DESCRIPTION if azure else HOST_DESCRIPTION}"
    err = OpenAIFilesConfigError(f"Connection {conn_id!r}: field {field_name!r} {problem}")
    # For the UI's test button, whose temporary connection id means nothing to the person filling the form.
    err.field, err.problem = field_name, problem
    return err


def normalize_base_url(
    conn_id: str, host: str | None, port: int | None = None, schema: str | None = None, *, azure: bool = False
) -> str:
    """
    Return the base URL for a connection's host, defaulting to the public API.

    A connection given as a URI (``openai-files://:KEY@host:8089/v1``) arrives split into host, port and
    schema (``v1``); they are put back together.
    """
    raw = (host or "").strip()
    if not raw:
        if azure:
            raise _fail(
                conn_id, "host", "(Base URL) is empty: an Azure connection needs its resource endpoint", azure=True
            )
        return DEFAULT_BASE_URL
    if "://" not in raw:
        raw = f"https://{raw}"
    if any(ch.isspace() for ch in raw):
        raise _fail(conn_id, "host", f"(Base URL) {raw!r} contains whitespace", azure=azure)
    try:
        parts = urlsplit(raw)
        parsed_port = parts.port
    except ValueError as err:
        raise _fail(conn_id, "host", f"(Base URL) {raw!r} is not a valid URL: {err}", azure=azure) from None
    if parts.scheme not in ("http", "https"):
        raise _fail(conn_id, "host", f"(Base URL) must use http or https, got {parts.scheme!r}", azure=azure)
    if not parts.hostname:
        raise _fail(conn_id, "host", f"(Base URL) {raw!r} has no host name", azure=azure)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise _fail(conn_id, "host", "(Base URL) must not carry credentials, a query or a fragment", azure=azure)
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


def _flag(conn_id: str, name: str, value: Any) -> bool:
    if value is None or value == "" or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _fail(conn_id, name, f"must be true or false, got {value!r}")


def _text(extra: dict[str, Any], name: str) -> str | None:
    value = extra.get(name)
    return (str(value).strip() or None) if value not in (None, "") else None


def _flavor(conn_id: str, extra: dict[str, Any]) -> str:
    flavor = (_text(extra, "flavor") or "openai").lower()
    if flavor not in FLAVORS:
        raise _fail(conn_id, "flavor", f"must be one of {', '.join(FLAVORS)}, got {extra.get('flavor')!r}")
    return flavor


def azure_base_url(conn_id: str, host: str | None, port: int | None, api_version: str | None) -> str:
    """
    ``https://<resource>.openai.azure.com`` plus ``/openai`` (versioned routes) or ``/openai/v1``.

    The host may already end in ``/openai`` or ``/openai/v1`` (copied from the portal or the SDK docs):
    that part is dropped, the route style follows ``api_version`` alone.
    """
    url = normalize_base_url(conn_id, host, port, azure=True)
    for suffix in ("/openai/v1", "/openai"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
            break
    return f"{url}/openai" if api_version else f"{url}/openai/v1"


def _azure_auth(conn_id: str, password: str | None, extra: dict[str, Any]) -> dict[str, Any]:
    """Exactly one of: the resource key (password), ``azure_ad_token``, ``use_azure_credential``."""
    key = (password or "").strip() or (_text(extra, "api_key") or "")
    token = _text(extra, "azure_ad_token")
    use_credential = _flag(conn_id, "use_azure_credential", extra.get("use_azure_credential"))
    client_id = _text(extra, "managed_identity_client_id")
    chosen = [
        name
        for name, on in (("password", key), ("azure_ad_token", token), ("use_azure_credential", use_credential))
        if on
    ]
    if not chosen:
        raise _fail(
            conn_id,
            "password",
            "(API Key) is empty: an Azure connection needs the resource key as its password, or the extra "
            "'azure_ad_token' (a Microsoft Entra ID token), or 'use_azure_credential': true",
        )
    if len(chosen) > 1:
        raise _fail(conn_id, chosen[1], f"conflicts with {chosen[0]!r}: give only one way to authenticate")
    if client_id and not use_credential:
        raise _fail(conn_id, "managed_identity_client_id", "is only used with 'use_azure_credential': true")
    return {
        "api_key": key,
        "azure_ad_token": token,
        "use_azure_credential": use_credential,
        "managed_identity_client_id": client_id,
    }


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
    flavor = _flavor(conn_id, extra)
    if flavor == "azure":
        api_version = _text(extra, "api_version")
        if api_version is not None and not _API_VERSION_RE.match(api_version):
            raise _fail(conn_id, "api_version", f"is not an API version such as 2024-10-21: {api_version!r}")
        auth = _azure_auth(conn_id, password, extra)
        base_url = azure_base_url(conn_id, host, port, api_version)
        default_threshold = AZURE_MULTIPART_THRESHOLD
    else:
        misplaced = [name for name in AZURE_ONLY_EXTRAS if extra.get(name) not in (None, "", False)]
        if misplaced:
            raise _fail(conn_id, misplaced[0], "is only used when the extra 'flavor' is 'azure'")
        api_key = (password or "").strip() or str(extra.get("api_key") or "").strip()
        if not api_key:
            raise _fail(conn_id, "password", "(API Key) is empty: set the connection's password to an OpenAI key")
        api_version, auth = None, {"api_key": api_key}
        base_url = normalize_base_url(conn_id, host, port, schema)
        default_threshold = DEFAULT_MULTIPART_THRESHOLD
    given = (host or "").strip()
    return ClientSettings(
        conn_id=conn_id,
        base_url=base_url,
        scheme_assumed=bool(given) and "://" not in given,
        organization=(str(extra["organization"]).strip() or None) if extra.get("organization") else None,
        project=(str(extra["project"]).strip() or None) if extra.get("project") else None,
        timeout=_number(conn_id, "timeout", extra.get("timeout"), DEFAULT_TIMEOUT),
        connect_timeout=_number(conn_id, "connect_timeout", extra.get("connect_timeout"), DEFAULT_CONNECT_TIMEOUT),
        max_retries=_integer(conn_id, "max_retries", extra.get("max_retries"), DEFAULT_MAX_RETRIES, 0),
        verify=_verify(conn_id, extra.get("verify"), extra.get("ca_bundle")),
        multipart_threshold=_integer(
            conn_id, "multipart_threshold", extra.get("multipart_threshold"), default_threshold, 1
        ),
        flavor=flavor,
        api_version=api_version,
        **auth,
    )


def load_settings(conn_id: str) -> ClientSettings:
    """Read the Airflow connection ``conn_id`` and hand its key to the secrets masker."""
    from airflow_openai_files._compat import get_connection

    try:
        conn = get_connection(conn_id)
    except AirflowNotFoundException as err:
        raise OpenAIFilesConfigError(
            f"Connection {conn_id!r} was not found ({err}): create an '{CONN_TYPE}' connection in the UI or set "
            f"AIRFLOW_CONN_{conn_id.upper()}"
        ) from None
    try:
        extra = conn.extra_dejson or {}
    except Exception:
        raise _fail(conn_id, "extra", "is not valid JSON") from None
    settings = parse_settings(
        conn_id, host=conn.host, password=conn.password, extra=extra, port=conn.port, schema=conn.schema
    )
    for secret in settings.secrets():
        mask_key(secret)
    return settings


def mask_key(api_key: str) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    mask_secret(api_key)


# -- errors that name their connection ----------------------------------------------------------------------


def _auth_source(settings: ClientSettings) -> str:
    """Which connection value authenticates, by name (never the value)."""
    if settings.azure_ad_token:
        return "the Entra ID token in the extra 'azure_ad_token'"
    if settings.use_azure_credential:
        return "the Entra ID token from its Azure credential ('use_azure_credential')"
    return "the API key in its password field"


def explain(settings: ClientSettings, err: OpenAIFilesError, cause: BaseException | None = None) -> OpenAIFilesError:
    """
    ``err`` (an :class:`OpenAIFilesError` leaving a transport) naming the connection it was sent with and, where
    the fault is one of the connection's values, that value: a user with several connections must not guess.

    Never a secret: a refused key or token is named by its field, not shown. A TLS handshake answered in plain
    HTTP (``cause``) becomes an :class:`OpenAIFilesConfigError` (fails the task on its first try) that says
    whether ``https://`` was assumed for a host without a scheme, and how to give ``http://``.
    """
    from airflow_openai_files.client.retry import plain_http_answer

    conn = f"connection {settings.conn_id!r}"
    if cause is not None and plain_http_answer(cause):
        scheme = urlsplit(settings.base_url)
        plain = f"http://{scheme.netloc}{scheme.path}"
        why = "its host has no scheme, so https:// was assumed" if settings.scheme_assumed else "its host says https://"
        config = OpenAIFilesConfigError(
            f"{err.message}. The server at {settings.base_url} answered the TLS handshake in plain HTTP: {why}. "
            f"If that server speaks plain HTTP (as the local emulator does), set the host of {conn} to {plain}"
        )
        config.field, config.problem = "host", f"{settings.base_url!r} is served in plain HTTP, not HTTPS"
        return config
    status = err.http_status
    if status == 401:
        note = f"the service refused {_auth_source(settings)} of {conn} ({settings.endpoint})"
    elif status == 400 and settings.api_version and "api version" in err.message.lower().replace("-", " "):
        note = (
            f"{conn} sets the extra 'api_version' to {settings.api_version!r}, which {settings.endpoint} does not "
            "support: set a version the resource supports, or remove the extra to use the /openai/v1 routes"
        )
    elif status is None:
        note = f"{conn} points at {settings.base_url}"
    else:
        note = conn
    return err.reworded(f"{err.message} [{note}]")
