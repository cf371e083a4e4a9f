"""pytest fixtures for the emulator (registered through the ``pytest11`` entry point, so installing the
package with the ``emulator`` extra is enough to use them in a project's own tests).

- ``openai_files_emulator``: a running :class:`~airflow_openai_files.emulator.Emulator`, emptied before
  the test (files, uploads, batches, jobs, faults, request log, clock). Its settings are the keyword
  arguments of ``Emulator`` given by the test's ``openai_files_emulator`` marker::

      @pytest.mark.openai_files_emulator(processing_delay=3600, api_key="sk-mine")
      def test_waits_for_processing(openai_files_emulator): ...

  A marker on a class or module applies to every test in it (the closest marker wins).
- ``openai_files_connection``: the same emulator, with ``AIRFLOW_CONN_OPENAI_FILES_DEFAULT`` pointing
  the ``openai_files_default`` connection at it for the test's duration.
- ``openai_files_emulators``: the session's emulators, for a test that needs more than one or picks
  settings at run time: ``openai_files_emulators.get(flavor="azure")`` returns an emptied emulator.

Why one emulator per settings per session instead of one per test: starting and stopping one takes
about a quarter of a second (stopping waits for the server's loop to notice), emptying it about a
millisecond; a suite of a thousand tests would spend minutes starting and stopping servers. Emptying
goes through the same code as ``POST /_emulator/reset``, so a test sees exactly what a fresh emulator
would show. A test that stops its emulator gets it replaced; under pytest-xdist each worker process
has its own emulators (ephemeral ports, its own data directories).

Nothing heavy is imported until a fixture is used.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_openai_files.limits import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow_openai_files.emulator.runner import Emulator

MARKER = "openai_files_emulator"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(**settings): the Emulator keyword arguments of the openai_files_emulator fixture"
    )


class EmulatorPool:
    """Running emulators of one test session, one per distinct settings, emptied on each ``get``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._running: dict[str, Emulator] = {}
        self._started = 0

    @staticmethod
    def _key(settings: dict[str, Any]) -> str:
        return json.dumps(settings, sort_keys=True, default=repr)

    def get(self, **settings: Any) -> Emulator:
        """A running emulator with ``settings`` (``Emulator`` keyword arguments, ``data_dir`` excepted),
        emptied: no files, uploads, batches, jobs, faults or logged requests, its clock back to now."""
        from airflow_openai_files.emulator.runner import Emulator

        if "data_dir" in settings:
            raise TypeError("the pool chooses the data directory; start an Emulator yourself to pick one")
        key = self._key(settings)
        emulator = self._running.get(key)
        if emulator is None or emulator.url is None:  # not started yet, or a test stopped it
            self._started += 1
            emulator = Emulator(data_dir=self.root / f"emulator-{self._started}", **settings).start()
            self._running[key] = emulator
        else:
            emulator.reset()
        return emulator

    def stop(self) -> None:
        """Stop them all at once: each stop waits for its server's loop, so in turn they would add up."""
        import threading

        stopping = [threading.Thread(target=emulator.stop) for emulator in self._running.values()]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        self._running.clear()


@pytest.fixture(scope="session")
def openai_files_emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorPool]:
    pool = EmulatorPool(tmp_path_factory.mktemp("openai-files-emulators"))
    yield pool
    pool.stop()


@pytest.fixture
def openai_files_emulator(request: pytest.FixtureRequest, openai_files_emulators: EmulatorPool) -> Emulator:
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None and marker.args:
        raise TypeError(f"@pytest.mark.{MARKER} takes keyword arguments only (the Emulator's settings)")
    return openai_files_emulators.get(**(marker.kwargs if marker is not None else {}))


@pytest.fixture
def openai_files_connection(openai_files_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    monkeypatch.setenv(f"AIRFLOW_CONN_{DEFAULT_CONN_ID.upper()}", openai_files_emulator.airflow_connection())
    yield openai_files_emulator
