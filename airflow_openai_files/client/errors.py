"""What a failed request says about its connection: errors name the connection and the value at fault.

A user with several connections must not guess which one an error came from; where the fault is one of the
connection's values (the ``api_version`` extra, the credential, the host's scheme) the error names it.
Called by both transports (the sync :mod:`~airflow_openai_files.client.transport` and the async hook) on
every error they raise.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from airflow_openai_files.client.retry import plain_http_answer
from airflow_openai_files.client.settings import ClientSettings
from airflow_openai_files.exceptions import OpenAIFilesConfigError, OpenAIFilesError


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
