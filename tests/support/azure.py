"""Run a test against the emulator as OpenAI and as Azure OpenAI, with only the connection swapped.

Import the fixtures into a test module (or a ``conftest.py``) to parametrise it over flavors::

    from tests.support.azure import flavor, flavor_target, flavor_target_factory  # noqa: F401

    def test_upload(flavor_target):
        emulator, connection = flavor_target          # also .flavor, .path("files")
        file = OpenAIFilesHook().upload_file(...)     # the default connection points at the emulator
        assert emulator.file(file["id"])["status"] in flavor_target.settled_statuses

``flavor`` is ``openai`` (``/v1`` routes, bearer key) or ``azure`` (``/openai/...?api-version=2024-10-21``,
``api-key`` header, files ``pending`` -> ``running`` -> ``processed``); :data:`ALL_ROUTE_STYLES` adds
``azure-v1`` (the ``/openai/v1`` routes, no api-version). ``flavor_target_factory(**emulator_kwargs)``
starts an emulator with other options (``processing_delay=...``) and points the connection at it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from airflow_openai_files.emulator import Emulator
from airflow_openai_files.emulator.pytest_plugin import EmulatorPool
from airflow_openai_files.limits import AZURE_GA_API_VERSION, DEFAULT_CONN_ID

#: The flavors every parametrised suite runs on.
FLAVORS = ("openai", "azure")
#: Every route style: adds Azure's v1 routes (no api-version).
ALL_ROUTE_STYLES = ("openai", "azure", "azure-v1")
AZURE_KEY = "azure-resource-key-0123456789SECRET"
OPENAI_KEY = "sk-flavor-test-0123456789SECRET"


class FlavorTarget(NamedTuple):
    """An emulator playing one flavor and the connection JSON pointing at it (set as the default connection)."""

    emulator: Emulator
    connection: str
    flavor: str = "openai"

    @property
    def is_azure(self) -> bool:
        return self.flavor.startswith("azure")

    def path(self, resource_path: str) -> str:
        """The path of ``resource_path`` (``"files"``) as the emulator's request log records it."""
        prefix = {"openai": "/v1", "azure": "/openai", "azure-v1": "/openai/v1"}[self.flavor]
        return f"{prefix}/{resource_path.lstrip('/')}"

    @property
    def settled_statuses(self) -> tuple[str, ...]:
        """The statuses a new valid file may show before it is processed, and ``processed``."""
        return ("pending", "running", "processed") if self.is_azure else ("uploaded", "processed")

    @property
    def new_file_status(self) -> str:
        """A new file's status while the processing delay runs."""
        return "pending" if self.is_azure else "uploaded"


def connection_for(emulator: Emulator, flavor: str, **extra: Any) -> str:
    """The connection JSON for ``emulator`` in the route style ``flavor``."""
    if flavor == "azure-v1":
        extra = {"api_version": "", **extra}
    elif flavor == "azure":
        extra = {"api_version": AZURE_GA_API_VERSION, **extra}
    return emulator.airflow_connection(**extra)


def emulator_settings(flavor: str, **kwargs: Any) -> dict[str, Any]:
    """The ``Emulator`` keyword arguments that make it play ``flavor`` (a key of the flavor's shape)."""
    kwargs.setdefault("api_key", AZURE_KEY if flavor.startswith("azure") else OPENAI_KEY)
    return {"flavor": "azure" if flavor.startswith("azure") else "openai", **kwargs}


@pytest.fixture(params=FLAVORS)
def flavor(request: pytest.FixtureRequest) -> str:
    """``openai`` or ``azure``: the test runs once per flavor."""
    return str(request.param)


@pytest.fixture
def flavor_target_factory(
    flavor: str, openai_files_emulators: EmulatorPool, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., FlavorTarget]:
    """``make(conn_id=DEFAULT_CONN_ID, connection_extra=None, **emulator_kwargs) -> FlavorTarget``: an
    emptied emulator of the session (the plugin's ``openai_files_emulators``) playing the test's flavor."""

    def make(
        conn_id: str = DEFAULT_CONN_ID, connection_extra: dict[str, Any] | None = None, **emulator_kwargs: Any
    ) -> FlavorTarget:
        emulator = openai_files_emulators.get(**emulator_settings(flavor, **emulator_kwargs))
        connection = connection_for(emulator, flavor, **(connection_extra or {}))
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection)
        return FlavorTarget(emulator, connection, flavor)

    return make


@pytest.fixture
def flavor_target(flavor_target_factory: Callable[..., FlavorTarget]) -> FlavorTarget:
    """An emulator of the test's flavor (no processing delay), the default connection pointing at it."""
    return flavor_target_factory()


def connection_extra(connection: str) -> dict[str, Any]:
    extra: dict[str, Any] = json.loads(connection).get("extra") or {}
    return extra
