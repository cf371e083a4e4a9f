"""Microsoft Entra ID tokens for Azure OpenAI connections.

A connection authenticates to Azure OpenAI with its resource key (the ``api-key`` header; nothing in
this module) or with an Entra ID bearer token for the scope :data:`AZURE_SCOPE`:

* a token given in the connection (extra ``azure_ad_token``): sent as it is; Azure refuses it once it
  expires (tokens live about an hour), so this suits short jobs and tests;
* ``use_azure_credential: true``: a credential from ``azure-identity`` (the ``azure`` extra):
  ``DefaultAzureCredential`` (environment, workload identity, managed identity, Azure CLI, ...), or the
  user-assigned managed identity named by ``managed_identity_client_id``.

:class:`TokenProvider` caches the token and fetches a new one :data:`REFRESH_MARGIN` seconds before it
expires, so no request leaves with a token about to lapse. One provider is shared per connection
settings in the process (:func:`provider_for`): the threads of an upload and every trigger of a
triggerer share one token. It is thread-safe (one fetch at a time; others wait for its result) and
usable from the event loop (:meth:`TokenProvider.aget` fetches in a thread, never blocking the loop).

A token never appears in a repr, a log line or an error message; every token fetched is handed to
Airflow's secrets masker.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from airflow_openai_files.exceptions import OpenAIFilesConfigError, OpenAIFilesError

if TYPE_CHECKING:
    from airflow_openai_files.client.settings import ClientSettings

#: The Entra ID scope of Azure OpenAI (Cognitive Services) data-plane calls.
AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"
#: A token is replaced this many seconds before it expires.
REFRESH_MARGIN = 300.0


class Credential(Protocol):
    """What ``azure-identity`` credentials offer: ``get_token(scope)`` -> ``AccessToken(token, expires_on)``."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


def default_credential(managed_identity_client_id: str | None = None) -> Credential:
    """
    The credential behind ``use_azure_credential``: ``DefaultAzureCredential``, or the user-assigned
    managed identity when a client id is given. Tests replace this function (no network).
    """
    try:
        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
    except ImportError:
        raise OpenAIFilesConfigError(
            "use_azure_credential needs the azure-identity package: pip install 'airflow-provider-openai-files[azure]'"
        ) from None
    if managed_identity_client_id:
        return ManagedIdentityCredential(client_id=managed_identity_client_id)
    return DefaultAzureCredential()


def _mask(token: str) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    mask_secret(token)


class TokenProvider:
    """
    A cached Entra ID token, fetched again shortly before it expires.

    :param credential: an object with ``get_token(scope)`` (an ``azure-identity`` credential or a stand-in).
    :param scope: the token's scope.
    :param clock: ``time.time`` (tests move it).
    """

    def __init__(
        self,
        credential: Credential,
        *,
        scope: str = AZURE_SCOPE,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = REFRESH_MARGIN,
    ) -> None:
        self.credential = credential
        self.scope = scope
        self.clock = clock
        self.refresh_margin = refresh_margin
        self._token: str | None = None
        self._expires_on = 0.0
        self._lock = threading.Lock()
        #: How many tokens were fetched (for logs and tests).
        self.fetches = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scope={self.scope!r}, credential={type(self.credential).__name__})"

    def _fresh(self) -> str | None:
        if self._token is not None and self.clock() < self._expires_on - self.refresh_margin:
            return self._token
        return None

    def get(self) -> str:
        """The current token, fetching a new one when there is none or it expires within the margin."""
        token = self._fresh()
        if token is not None:
            return token
        with self._lock:
            token = self._fresh()  # another thread may have fetched it while this one waited
            if token is not None:
                return token
            try:
                access = self.credential.get_token(self.scope)
            except OpenAIFilesError:
                raise
            except Exception as err:
                # azure-identity's messages name the credential chain, never a token. Not a config
                # error: a managed identity endpoint that timed out heals, so Airflow may retry the task.
                raise OpenAIFilesError(
                    f"Could not get a Microsoft Entra ID token for {self.scope}: {type(err).__name__}: {err}"
                ) from None
            token = str(getattr(access, "token", "") or "")
            if not token:
                raise OpenAIFilesConfigError(f"The Entra ID credential returned an empty token for {self.scope}")
            _mask(token)
            self._token = token
            self._expires_on = float(getattr(access, "expires_on", 0) or 0)
            self.fetches += 1
            return token

    async def aget(self) -> str:
        """:meth:`get` for the event loop: a fetch runs in a thread, a cached token is returned at once."""
        token = self._fresh()
        if token is not None:
            return token
        return await asyncio.to_thread(self.get)

    def invalidate(self) -> None:
        """Forget the token (after a 401 with it, the next request fetches a new one)."""
        with self._lock:
            self._token = None
            self._expires_on = 0.0


class StaticToken:
    """A token given in the connection: sent as is (Azure refuses it once it expires)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token=***)"

    def get(self) -> str:
        return self._token

    async def aget(self) -> str:
        return self._token

    def invalidate(self) -> None:
        return None


_PROVIDERS: dict[tuple[Any, ...], TokenProvider] = {}
_PROVIDERS_LOCK = threading.Lock()


def provider_for(settings: ClientSettings, credential: Credential | None = None) -> TokenProvider | StaticToken | None:
    """
    The bearer token source of an Azure connection that does not use its key; ``None`` for key auth.

    Credential-based providers are shared per (connection id, managed identity) in the process, so the
    sync hook's threads and all triggers of a connection reuse one cached token. An explicit
    ``credential`` gets a provider of its own.
    """
    if settings.azure_ad_token:
        return StaticToken(settings.azure_ad_token)
    if not settings.use_azure_credential:
        return None
    if credential is not None:
        return TokenProvider(credential)
    key = (settings.conn_id, settings.managed_identity_client_id)
    with _PROVIDERS_LOCK:
        provider = _PROVIDERS.get(key)
        if provider is None:
            provider = _PROVIDERS[key] = TokenProvider(default_credential(settings.managed_identity_client_id))
        return provider


def forget_providers() -> None:
    """Drop every shared provider (tests; a rotated identity)."""
    with _PROVIDERS_LOCK:
        _PROVIDERS.clear()
