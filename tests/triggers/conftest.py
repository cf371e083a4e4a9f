"""An emulator whose files stay ``uploaded`` until its clock is advanced, with the default connection on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import set_connection

PROCESSING_DELAY = 3600.0


@pytest.fixture
def slow_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from airflow_openai_files.emulator import Emulator

    with Emulator(data_dir=tmp_path / "emulator", processing_delay=PROCESSING_DELAY) as emulator:
        set_connection(monkeypatch, host=emulator.base_url, password=emulator.api_key)
        yield emulator
