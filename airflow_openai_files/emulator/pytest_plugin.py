"""pytest fixtures for the emulator (registered through the ``pytest11`` entry point).

- ``openai_files_emulator``: a running :class:`~airflow_openai_files.emulator.Emulator` with a
  fresh data directory under ``tmp_path``, one per test (start and stop take a few tens of ms).
- ``openai_files_connection``: the same emulator, with ``AIRFLOW_CONN_OPENAI_FILES_DEFAULT``
  pointing the ``openai_files_default`` connection at it.

Nothing heavy is imported until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_openai_files.limits import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow_openai_files.emulator.runner import Emulator


@pytest.fixture
def openai_files_emulator(tmp_path: Path) -> Iterator[Emulator]:
    from airflow_openai_files.emulator.runner import Emulator

    with Emulator(data_dir=tmp_path / "openai-files-emulator") as emulator:
        yield emulator


@pytest.fixture
def openai_files_connection(openai_files_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    monkeypatch.setenv(f"AIRFLOW_CONN_{DEFAULT_CONN_ID.upper()}", openai_files_emulator.airflow_connection())
    yield openai_files_emulator
